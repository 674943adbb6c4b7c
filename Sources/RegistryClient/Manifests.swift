import Foundation
import KubeTypes
import RegistryTypes

/// The manifest and config media types the client understands.
public enum MediaType {
    public static let dockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
    public static let dockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
    public static let ociManifest = "application/vnd.oci.image.manifest.v1+json"
    public static let ociIndex = "application/vnd.oci.image.index.v1+json"
    public static let dockerConfig = "application/vnd.docker.container.image.v1+json"
    public static let ociConfig = "application/vnd.oci.image.config.v1+json"
    public static let dockerLayer = "application/vnd.docker.image.rootfs.diff.tar.gzip"
    public static let ociLayer = "application/vnd.oci.image.layer.v1.tar+gzip"

    /// Single-platform image manifests.
    public static let imageManifests: Set<String> = [dockerManifest, ociManifest]
    /// Multi-platform indexes.
    public static let indexes: Set<String> = [dockerManifestList, ociIndex]
    /// Image config blobs.
    public static let configs: Set<String> = [dockerConfig, ociConfig]

    /// The `Accept` header for manifest requests, preferred types first.
    public static let manifestAccept = [ociIndex, dockerManifestList, ociManifest, dockerManifest].joined(separator: ", ")

    /// The media type without parameters (`; charset=utf-8`), lowercased.
    public static func essence(_ value: String) -> String {
        String(value.split(separator: ";", maxSplits: 1).first ?? "").trimmingCharacters(in: .whitespaces).lowercased()
    }
}

/// An OS and CPU architecture, with an optional variant: `linux/amd64`, `linux/arm/v7`.
public struct Platform: Sendable, Hashable, Codable, CustomStringConvertible {
    public var os: String
    public var architecture: String
    public var variant: String?

    public static let linuxAMD64 = Platform(os: "linux", architecture: "amd64")

    public init(os: String, architecture: String, variant: String? = nil) {
        self.os = os
        self.architecture = architecture
        self.variant = variant.flatMap { $0.isEmpty ? nil : $0 }
    }

    /// Parses `os/arch` or `os/arch/variant`.
    public init(parsing text: String) throws(RegistryError.PlatformSyntax) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard (2...3).contains(parts.count), parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" || $0 == ".") } })
        else { throw RegistryError.PlatformSyntax(text: text) }
        self.init(os: parts[0].lowercased(), architecture: parts[1].lowercased(), variant: parts.count == 3 ? parts[2].lowercased() : nil)
    }

    public var description: String {
        [os, architecture, variant].compactMap { $0 }.joined(separator: "/")
    }

    /// The variant an image built for this architecture has when none is written: `v8` for
    /// `arm64`, `v7` for `arm`, `v1` for `amd64`.
    static func defaultVariant(architecture: String) -> String? {
        switch architecture {
        case "arm64": "v8"
        case "arm": "v7"
        case "amd64": "v1"
        default: nil
        }
    }

    private var effectiveVariant: String? { variant ?? Self.defaultVariant(architecture: architecture) }

    /// Whether an image for `candidate` serves a request for `self`: same OS and architecture, and
    /// the same variant once the architecture's default variant is filled in on both sides
    /// (`linux/arm64` matches `linux/arm64/v8`; `linux/arm` asks for `v7`).
    public func matches(_ candidate: Platform) -> Bool {
        os == candidate.os && architecture == candidate.architecture && effectiveVariant == candidate.effectiveVariant
    }

    /// The entry of `candidates` that serves this platform: an exact match (variant defaults
    /// filled in) first; when the request names no variant and none matches exactly, the only
    /// candidate of the same OS and architecture, if there is exactly one.
    public func select<T>(from candidates: [T], platform: (T) -> Platform?) -> T? {
        if let exact = candidates.first(where: { platform($0).map(matches) ?? false }) { return exact }
        guard variant == nil else { return nil }
        let sameArchitecture = candidates.filter {
            guard let other = platform($0) else { return false }
            return other.os == os && other.architecture == architecture
        }
        return sameArchitecture.count == 1 ? sameArchitecture[0] : nil
    }
}

/// A content descriptor in a manifest or index.
public struct Descriptor: Sendable, Hashable, Codable {
    public var mediaType: String
    public var digest: Digest
    public var size: Int64
    public var platform: DescriptorPlatform?
    public var annotations: [String: String]?

    public init(mediaType: String, digest: Digest, size: Int64, platform: DescriptorPlatform? = nil,
                annotations: [String: String]? = nil) {
        self.mediaType = mediaType
        self.digest = digest
        self.size = size
        self.platform = platform
        self.annotations = annotations
    }
}

/// The `platform` object of an index entry (JSON names as in the OCI spec).
public struct DescriptorPlatform: Sendable, Hashable, Codable {
    public var architecture: String
    public var os: String
    public var variant: String?
    public var osVersion: String?

    enum CodingKeys: String, CodingKey {
        case architecture, os, variant
        case osVersion = "os.version"
    }

    public init(architecture: String, os: String, variant: String? = nil) {
        self.architecture = architecture
        self.os = os
        self.variant = variant
    }

    public var platform: Platform { Platform(os: os, architecture: architecture, variant: variant) }
}

/// A single-platform image manifest (Docker schema 2 or OCI).
public struct ImageManifest: Sendable, Hashable, Codable {
    public var schemaVersion: Int
    public var mediaType: String?
    public var config: Descriptor
    public var layers: [Descriptor]
    public var annotations: [String: String]?

    public init(schemaVersion: Int = 2, mediaType: String?, config: Descriptor, layers: [Descriptor],
                annotations: [String: String]? = nil) {
        self.schemaVersion = schemaVersion
        self.mediaType = mediaType
        self.config = config
        self.layers = layers
        self.annotations = annotations
    }
}

/// A multi-platform index (Docker manifest list or OCI index).
public struct ImageIndex: Sendable, Hashable, Codable {
    public var schemaVersion: Int
    public var mediaType: String?
    public var manifests: [Descriptor]
    public var annotations: [String: String]?

    public init(schemaVersion: Int = 2, mediaType: String?, manifests: [Descriptor],
                annotations: [String: String]? = nil) {
        self.schemaVersion = schemaVersion
        self.mediaType = mediaType
        self.manifests = manifests
        self.annotations = annotations
    }

    /// The platforms the index offers (entries without a platform, such as attestations, left out).
    public var platforms: [Platform] {
        manifests.compactMap { $0.platform?.platform }.filter { $0.os != "unknown" }
    }
}

/// The parts of an image config blob (`application/vnd.oci.image.config.v1+json`) that matter here.
public struct ImageConfiguration: Sendable, Hashable, Codable {
    public var architecture: String?
    public var os: String?
    public var variant: String?
    public var created: String?
    /// The run configuration (`config` in the blob).
    public var config: RunConfiguration?

    public init(architecture: String? = nil, os: String? = nil, variant: String? = nil,
                config: RunConfiguration? = nil) {
        self.architecture = architecture
        self.os = os
        self.variant = variant
        self.config = config
    }

    /// The image's default run settings (the capitalized names are the format's).
    public struct RunConfiguration: Sendable, Hashable, Codable {
        public var user: String?
        public var env: [String]?
        public var workingDir: String?
        public var entrypoint: [String]?
        public var cmd: [String]?
        public var labels: [String: String]?
        public var exposedPorts: [String: JSONValue]?
        public var stopSignal: String?

        enum CodingKeys: String, CodingKey {
            case user = "User", env = "Env", workingDir = "WorkingDir", entrypoint = "Entrypoint", cmd = "Cmd"
            case labels = "Labels", exposedPorts = "ExposedPorts", stopSignal = "StopSignal"
        }

        public init(user: String? = nil, env: [String]? = nil, workingDir: String? = nil,
                    entrypoint: [String]? = nil, cmd: [String]? = nil, labels: [String: String]? = nil) {
            self.user = user
            self.env = env
            self.workingDir = workingDir
            self.entrypoint = entrypoint
            self.cmd = cmd
            self.labels = labels
        }
    }

    /// The configured user (`User`), nil when unset or empty (which means root).
    public var user: String? { config?.user.flatMap { $0.isEmpty ? nil : $0 } }
    public var env: [String] { config?.env ?? [] }
    public var workingDir: String? { config?.workingDir.flatMap { $0.isEmpty ? nil : $0 } }
    public var entrypoint: [String] { config?.entrypoint ?? [] }
    public var cmd: [String] { config?.cmd ?? [] }
    public var labels: [String: String] { config?.labels ?? [:] }
    public var exposedPorts: [String] { (config?.exposedPorts?.keys).map { $0.sorted() } ?? [] }

    /// `Env` as a dictionary (a later entry wins; an entry without `=` has an empty value).
    public var environment: [String: String] {
        var result: [String: String] = [:]
        for entry in env {
            if let equals = entry.firstIndex(of: "=") {
                result[String(entry[..<equals])] = String(entry[entry.index(after: equals)...])
            } else {
                result[entry] = ""
            }
        }
        return result
    }

    /// The platform the config declares.
    public var platform: Platform? {
        guard let os, let architecture else { return nil }
        return Platform(os: os, architecture: architecture, variant: variant)
    }
}
