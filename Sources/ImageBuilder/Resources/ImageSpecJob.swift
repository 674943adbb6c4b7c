import Foundation
import KubeTypes

/// `imagespecjobs.primehub.io`: PrimeHub's record of one build. PrimeHub's console finds build
/// logs through `status.podName` of the ImageSpecJob named after an Image.
public struct ImageSpecJob: SpecStatusObject, Hashable {
    public static let resourceType = ResourceType(
        group: "primehub.io", version: "v1alpha1", plural: "imagespecjobs", kind: "ImageSpecJob", namespaced: true)

    public var apiVersion: String? = "primehub.io/v1alpha1"
    public var kind: String? = "ImageSpecJob"
    public var metadata: ObjectMeta
    public var spec: Spec
    public var status: Status?
    public var unknownFields = UnknownFields()

    public init(metadata: ObjectMeta, spec: Spec, status: Status? = nil) {
        self.metadata = metadata
        self.spec = spec
        self.status = status
    }

    public static var specWhenMissing: Spec? { nil }

    public struct Spec: Codable, Sendable, Hashable {
        public var baseImage: String
        public var packages: Packages
        public var pullSecret: String?
        public var pushSecret: String
        public var repoPrefix: String?
        public var targetImage: String
        public var updateTime: Date?

        public init(baseImage: String, packages: Packages, pullSecret: String? = nil, pushSecret: String,
                    repoPrefix: String? = nil, targetImage: String, updateTime: Date? = nil) {
            self.baseImage = baseImage
            self.packages = packages
            self.pullSecret = pullSecret
            self.pushSecret = pushSecret
            self.repoPrefix = repoPrefix
            self.targetImage = targetImage
            self.updateTime = updateTime
        }
    }

    /// `phase` and `podName` are required by PrimeHub's CRD.
    public struct Status: Codable, Sendable, Hashable {
        public var phase: String
        public var podName: String
        public var startTime: Date?
        public var finishTime: Date?

        public init(phase: String = "", podName: String = "", startTime: Date? = nil, finishTime: Date? = nil) {
            self.phase = phase
            self.podName = podName
            self.startTime = startTime
            self.finishTime = finishTime
        }
    }
}
