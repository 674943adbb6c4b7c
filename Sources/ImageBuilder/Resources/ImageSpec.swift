import Foundation
import KubeTypes

/// `imagespecs.primehub.io`: what to build (a base image plus packages and environment) and what
/// came of it.
public struct ImageSpec: SpecStatusObject, Hashable {
    public static let resourceType = ResourceType(
        group: "primehub.io", version: "v1alpha1", plural: "imagespecs", kind: "ImageSpec", namespaced: true)

    public var apiVersion: String? = "primehub.io/v1alpha1"
    public var kind: String? = "ImageSpec"
    public var metadata: ObjectMeta
    public var spec: ImageSpecSpec
    public var status: ImageSpecStatus?
    /// Members this model does not know, kept for a lossless round trip.
    public var unknownFields = UnknownFields()

    public init(metadata: ObjectMeta, spec: ImageSpecSpec, status: ImageSpecStatus? = nil) {
        self.metadata = metadata
        self.spec = spec
        self.status = status
    }

    /// An ImageSpec stored without a spec (`spec: null` passes both CRDs) decodes with an empty
    /// one, so that validation stalls it naming `spec.baseImage` instead of the whole list failing
    /// to decode (which would stop every ImageSpec of the namespace from being reconciled).
    public static var specWhenMissing: ImageSpecSpec? { ImageSpecSpec(baseImage: "") }
}

public struct ImageSpecSpec: Codable, Sendable, Hashable {
    /// The image to build on (`jupyter/base-notebook`, `quay.io/org/image:tag@sha256:…`).
    public var baseImage: String
    /// A `kubernetes.io/dockerconfigjson` Secret for pulling the base image.
    public var pullSecret: String?
    public var packages: Packages
    /// Rebuild trigger: a newer time than the last build's starts a new build.
    public var updateTime: Date?
    /// Environment variables set in the image, in order.
    public var env: [ImageEnvVar]?
    /// Stop the running build.
    public var cancel: Bool?
    /// Publish the built image in PrimeHub's image list.
    public var publish: Publish?

    public init(baseImage: String, pullSecret: String? = nil, packages: Packages = Packages(), updateTime: Date? = nil,
                env: [ImageEnvVar]? = nil, cancel: Bool? = nil, publish: Publish? = nil) {
        self.baseImage = baseImage
        self.pullSecret = pullSecret
        self.packages = packages
        self.updateTime = updateTime
        self.env = env
        self.cancel = cancel
        self.publish = publish
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        // Missing: empty, which validation reports as the missing required field.
        baseImage = try container.decodeIfPresent(String.self, forKey: .baseImage) ?? ""
        pullSecret = try container.decodeIfPresent(String.self, forKey: .pullSecret)
        packages = try container.decodeIfPresent(Packages.self, forKey: .packages) ?? Packages()
        updateTime = try container.decodeIfPresent(Date.self, forKey: .updateTime)
        env = try container.decodeIfPresent([ImageEnvVar].self, forKey: .env)
        cancel = try container.decodeIfPresent(Bool.self, forKey: .cancel)
        publish = try container.decodeIfPresent(Publish.self, forKey: .publish)
    }
}

/// Package lists, each installed in the order given.
public struct Packages: Codable, Sendable, Hashable {
    public var apt: [String]?
    public var pip: [String]?
    /// Match specs, plus PrimeHub's channel items (`"-c", "conda-forge"`).
    public var conda: [String]?

    public init(apt: [String]? = nil, pip: [String]? = nil, conda: [String]? = nil) {
        self.apt = apt
        self.pip = pip
        self.conda = conda
    }

    public var isEmpty: Bool { (apt ?? []).isEmpty && (pip ?? []).isEmpty && (conda ?? []).isEmpty }
}

/// An environment variable set in the built image.
public struct ImageEnvVar: Codable, Sendable, Hashable {
    public var name: String
    public var value: String?

    public init(name: String, value: String?) {
        self.name = name
        self.value = value
    }
}

/// The entry for PrimeHub's image list (an `images.primehub.io` object) that a successful build
/// fills in.
public struct Publish: Codable, Sendable, Hashable {
    /// Name of the Image object; the ImageSpec's name when nil.
    public var name: String?
    public var displayName: String?
    public var description: String?
    /// `cpu`, `gpu` or `both`.
    public var type: String?
    /// Empty or nil: a system image; otherwise the group the image belongs to.
    public var groupName: String?

    public init(name: String? = nil, displayName: String? = nil, description: String? = nil, type: String? = nil,
                groupName: String? = nil) {
        self.name = name
        self.displayName = displayName
        self.description = description
        self.type = type
        self.groupName = groupName
    }
}

/// The observed state. `phase`, `jobName` and `image` are always written (PrimeHub's CRD requires
/// them, empty strings allowed).
public struct ImageSpecStatus: Codable, Sendable, Hashable {
    /// PrimeHub's phase: `Pending`, `Running`, `Succeeded`, `Failed` or `Cancelled` (see `BuildPhase`).
    public var phase: String
    /// The Job of the current build.
    public var jobName: String
    /// The image of the last successful build of the current spec.
    public var image: String
    public var observedGeneration: Int64?
    public var conditions: [Condition]?
    /// Digest of `image`.
    public var digest: String?
    /// Digest the base image resolved to for the current build.
    public var baseImageDigest: String?
    public var startTime: Date?
    public var completionTime: Date?
    /// Builds of this ImageSpec, newest first.
    public var builds: [BuildRecord]?

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
        observedGeneration = try container.decodeIfPresent(Int64.self, forKey: .observedGeneration)
        conditions = try container.decodeIfPresent([Condition].self, forKey: .conditions)
        digest = try container.decodeIfPresent(String.self, forKey: .digest)
        baseImageDigest = try container.decodeIfPresent(String.self, forKey: .baseImageDigest)
        startTime = try container.decodeIfPresent(Date.self, forKey: .startTime)
        completionTime = try container.decodeIfPresent(Date.self, forKey: .completionTime)
        builds = try container.decodeIfPresent([BuildRecord].self, forKey: .builds)
    }
}

/// PrimeHub's build phases, as written to `status.phase`.
public enum BuildPhase: String, Sendable, CaseIterable {
    case pending = "Pending"
    case running = "Running"
    case succeeded = "Succeeded"
    case failed = "Failed"
    case cancelled = "Cancelled"

    public var isFinished: Bool { self == .succeeded || self == .failed || self == .cancelled }
}

/// One build of an ImageSpec.
public struct BuildRecord: Codable, Sendable, Hashable {
    public var jobName: String
    public var hash: String
    /// A `BuildPhase` raw value.
    public var phase: String
    public var image: String?
    public var digest: String?
    public var startTime: Date?
    public var completionTime: Date?
    /// Why it ended as it did (`BuildFailed`, `DeadlineExceeded`, `Cancelled` …).
    public var reason: String?

    public init(jobName: String, hash: String, phase: String, image: String? = nil, digest: String? = nil,
                startTime: Date? = nil, completionTime: Date? = nil, reason: String? = nil) {
        self.jobName = jobName
        self.hash = hash
        self.phase = phase
        self.image = image
        self.digest = digest
        self.startTime = startTime
        self.completionTime = completionTime
        self.reason = reason
    }
}

extension ImageSpecStatus {
    /// Records `build`: replaces the record of the same job or puts it first, then keeps at most
    /// `limit` records (newest first).
    public mutating func record(_ build: BuildRecord, limit: Int) {
        var list = builds ?? []
        if let index = list.firstIndex(where: { $0.jobName == build.jobName }) {
            list[index] = build
        } else {
            list.insert(build, at: 0)
        }
        builds = Array(list.prefix(max(limit, 1)))
    }
}
