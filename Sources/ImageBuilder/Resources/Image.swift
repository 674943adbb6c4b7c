import Foundation
import KubeTypes

/// `images.primehub.io`: an entry of PrimeHub's image list. It has no status subresource: status is
/// written with an update of the whole object.
public struct Image: SpecStatusObject, Hashable {
    public static let resourceType = ResourceType(
        group: "primehub.io", version: "v1alpha1", plural: "images", kind: "Image", namespaced: true)

    public var apiVersion: String? = "primehub.io/v1alpha1"
    public var kind: String? = "Image"
    public var metadata: ObjectMeta
    public var spec: Spec
    public var status: Status?
    public var unknownFields = UnknownFields()

    public init(metadata: ObjectMeta, spec: Spec = Spec(), status: Status? = nil) {
        self.metadata = metadata
        self.spec = spec
        self.status = status
    }

    public struct Spec: Codable, Sendable, Hashable {
        public var displayName: String?
        public var description: String?
        /// `cpu`, `gpu` or `both`.
        public var type: String?
        /// The image for CPU instances; the UI lists the Image as ready only when this is set.
        public var url: String?
        public var urlForGpu: String?
        /// Secret for pulling `url`.
        public var pullSecret: String?
        /// Empty: a system image; otherwise the owning group.
        public var groupName: String?
        /// PrimeHub's "build this image for me".
        public var imageSpec: BuildRequest?

        public init(displayName: String? = nil, description: String? = nil, type: String? = nil, url: String? = nil,
                    urlForGpu: String? = nil, pullSecret: String? = nil, groupName: String? = nil,
                    imageSpec: BuildRequest? = nil) {
            self.displayName = displayName
            self.description = description
            self.type = type
            self.url = url
            self.urlForGpu = urlForGpu
            self.pullSecret = pullSecret
            self.groupName = groupName
            self.imageSpec = imageSpec
        }
    }

    /// `spec.imageSpec`: a build request made through PrimeHub's console.
    public struct BuildRequest: Codable, Sendable, Hashable {
        /// Empty or nil: no build requested.
        public var baseImage: String?
        public var pullSecret: String?
        public var packages: Packages?
        public var updateTime: Date?
        public var cancel: Bool?

        public init(baseImage: String? = nil, pullSecret: String? = nil, packages: Packages? = nil,
                    updateTime: Date? = nil, cancel: Bool? = nil) {
            self.baseImage = baseImage
            self.pullSecret = pullSecret
            self.packages = packages
            self.updateTime = updateTime
            self.cancel = cancel
        }

        /// The equivalent ImageSpec spec, nil when no build is requested.
        public var imageSpecSpec: ImageSpecSpec? {
            guard let baseImage, !baseImage.isEmpty else { return nil }
            return ImageSpecSpec(baseImage: baseImage, pullSecret: pullSecret, packages: packages ?? Packages(),
                                 updateTime: updateTime, cancel: cancel)
        }
    }

    public struct Status: Codable, Sendable, Hashable {
        public var jobCondition: JobCondition

        public init(jobCondition: JobCondition = JobCondition()) { self.jobCondition = jobCondition }
    }

    /// The state of the build behind this Image; all three always written (PrimeHub requires them).
    public struct JobCondition: Codable, Sendable, Hashable {
        public var phase: String
        public var jobName: String
        public var image: String

        public init(phase: String = "", jobName: String = "", image: String = "") {
            self.phase = phase
            self.jobName = jobName
            self.image = image
        }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            phase = try container.decodeIfPresent(String.self, forKey: .phase) ?? ""
            jobName = try container.decodeIfPresent(String.self, forKey: .jobName) ?? ""
            image = try container.decodeIfPresent(String.self, forKey: .image) ?? ""
        }
    }

    public static var specWhenMissing: Spec? { Spec() }
}
