import Foundation

public struct Namespace: KubeObject, Hashable {
    public static let resourceType = ResourceType.namespaces
    public var apiVersion: String? = "v1"
    public var kind: String? = "Namespace"
    public var metadata: ObjectMeta

    public init(metadata: ObjectMeta) { self.metadata = metadata }
}

public struct ConfigMap: KubeObject, Hashable {
    public static let resourceType = ResourceType.configMaps
    public var apiVersion: String? = "v1"
    public var kind: String? = "ConfigMap"
    public var metadata: ObjectMeta
    public var data: [String: String]?
    /// Base64 in JSON; raw bytes here.
    public var binaryData: [String: Data]?
    public var immutable: Bool?

    public init(metadata: ObjectMeta, data: [String: String]? = nil, binaryData: [String: Data]? = nil,
                immutable: Bool? = nil) {
        self.metadata = metadata
        self.data = data
        self.binaryData = binaryData
        self.immutable = immutable
    }
}

public struct Secret: KubeObject, Hashable {
    public static let resourceType = ResourceType.secrets
    public var apiVersion: String? = "v1"
    public var kind: String? = "Secret"
    public var metadata: ObjectMeta
    /// `kubernetes.io/dockerconfigjson`, `Opaque`, …
    public var type: String?
    /// Base64 in JSON; raw bytes here.
    public var data: [String: Data]?
    /// Write-only convenience: merged into `data` by the API server.
    public var stringData: [String: String]?
    public var immutable: Bool?

    public init(metadata: ObjectMeta, type: String? = nil, data: [String: Data]? = nil,
                stringData: [String: String]? = nil) {
        self.metadata = metadata
        self.type = type
        self.data = data
        self.stringData = stringData
    }
}

public struct Pod: KubeObject, Hashable {
    public static let resourceType = ResourceType.pods
    public var apiVersion: String? = "v1"
    public var kind: String? = "Pod"
    public var metadata: ObjectMeta
    public var spec: PodSpec?
    public var status: PodStatus?

    public init(metadata: ObjectMeta, spec: PodSpec? = nil, status: PodStatus? = nil) {
        self.metadata = metadata
        self.spec = spec
        self.status = status
    }

    enum CodingKeys: String, CodingKey { case apiVersion, kind, metadata, spec, status }

    /// Reads the spec as a summary when the decoder's profile asks for one.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        apiVersion = try container.decodeIfPresent(String.self, forKey: .apiVersion)
        kind = try container.decodeIfPresent(String.self, forKey: .kind)
        metadata = try container.decode(ObjectMeta.self, forKey: .metadata)
        spec = try PodSpec.decodeIfPresent(from: container, forKey: .spec, profile: decoder.decodingProfile)
        status = try container.decodeIfPresent(PodStatus.self, forKey: .status)
    }
}

public struct PodTemplateSpec: Codable, Sendable, Hashable {
    public var metadata: ObjectMeta?
    public var spec: PodSpec?

    public init(metadata: ObjectMeta? = nil, spec: PodSpec? = nil) {
        self.metadata = metadata
        self.spec = spec
    }

    enum CodingKeys: String, CodingKey { case metadata, spec }

    /// Reads the spec as a summary, and no metadata, when the decoder's profile asks for a summary.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let profile = decoder.decodingProfile
        if !profile.podSpecSummary { metadata = try container.decodeIfPresent(ObjectMeta.self, forKey: .metadata) }
        spec = try PodSpec.decodeIfPresent(from: container, forKey: .spec, profile: profile)
    }
}

extension PodSpec {
    /// The parts of a pod spec that `DecodingProfile.podSpecSummary` keeps.
    private struct Summary: Decodable {
        struct ContainerSummary: Decodable {
            var name: String
            var image: String?
        }
        var containers: [ContainerSummary]
        var initContainers: [ContainerSummary]?
        var restartPolicy: String?
        var nodeName: String?
    }

    /// The spec at `key`, whole or summarised as `profile` says.
    static func decodeIfPresent<Key: CodingKey>(from container: KeyedDecodingContainer<Key>, forKey key: Key,
                                                profile: DecodingProfile) throws -> PodSpec? {
        guard profile.podSpecSummary else { return try container.decodeIfPresent(PodSpec.self, forKey: key) }
        guard let summary = try container.decodeIfPresent(Summary.self, forKey: key) else { return nil }
        return PodSpec(summaryOf: summary.containers.map { Container(name: $0.name, image: $0.image) },
                       initContainers: summary.initContainers?.map { Container(name: $0.name, image: $0.image) },
                       restartPolicy: summary.restartPolicy, nodeName: summary.nodeName)
    }

    /// What a controller following Pods by their status reads of a spec: each (init) container's
    /// name and image, the restart policy and the node (what `DecodingProfile.podSpecSummary` decodes).
    public var summary: PodSpec {
        PodSpec(summaryOf: containers.map { Container(name: $0.name, image: $0.image) },
                initContainers: initContainers?.map { Container(name: $0.name, image: $0.image) },
                restartPolicy: restartPolicy, nodeName: nodeName)
    }

    /// A spec of only what a summary keeps: containers of a name and an image, the restart policy
    /// and the node.
    private init(summaryOf containers: [Container], initContainers: [Container]?, restartPolicy: String?, nodeName: String?) {
        self.init(containers: containers)
        self.initContainers = initContainers
        self.restartPolicy = restartPolicy
        self.nodeName = nodeName
    }
}

public struct PodSpec: Codable, Sendable, Hashable {
    public var containers: [Container]
    public var initContainers: [Container]?
    public var volumes: [Volume]?
    /// `Always`, `OnFailure` or `Never`.
    public var restartPolicy: String?
    public var serviceAccountName: String?
    public var automountServiceAccountToken: Bool?
    public var nodeSelector: [String: String]?
    public var tolerations: [Toleration]?
    /// Kept as JSON: the operator passes it through from configuration.
    public var affinity: JSONValue?
    public var priorityClassName: String?
    public var securityContext: JSONValue?
    public var imagePullSecrets: [LocalObjectReference]?
    public var activeDeadlineSeconds: Int64?
    public var terminationGracePeriodSeconds: Int64?
    public var nodeName: String?

    public init(containers: [Container], volumes: [Volume]? = nil, restartPolicy: String? = nil) {
        self.containers = containers
        self.volumes = volumes
        self.restartPolicy = restartPolicy
    }
}

public struct LocalObjectReference: Codable, Sendable, Hashable {
    public var name: String
    public init(name: String) { self.name = name }
}

public struct Container: Codable, Sendable, Hashable {
    public var name: String
    public var image: String?
    public var command: [String]?
    public var args: [String]?
    public var workingDir: String?
    public var env: [EnvVar]?
    public var volumeMounts: [VolumeMount]?
    public var resources: ResourceRequirements?
    public var securityContext: SecurityContext?
    /// `File` or `FallbackToLogsOnError`.
    public var terminationMessagePolicy: String?
    public var terminationMessagePath: String?
    public var imagePullPolicy: String?

    public init(name: String, image: String? = nil, command: [String]? = nil, args: [String]? = nil) {
        self.name = name
        self.image = image
        self.command = command
        self.args = args
    }
}

public struct EnvVar: Codable, Sendable, Hashable {
    public var name: String
    public var value: String?
    public var valueFrom: JSONValue?

    public init(name: String, value: String? = nil) {
        self.name = name
        self.value = value
    }
}

public struct VolumeMount: Codable, Sendable, Hashable {
    public var name: String
    public var mountPath: String
    public var subPath: String?
    public var readOnly: Bool?

    public init(name: String, mountPath: String, subPath: String? = nil, readOnly: Bool? = nil) {
        self.name = name
        self.mountPath = mountPath
        self.subPath = subPath
        self.readOnly = readOnly
    }
}

public struct Volume: Codable, Sendable, Hashable {
    public var name: String
    public var configMap: ConfigMapVolumeSource?
    public var secret: SecretVolumeSource?
    public var emptyDir: EmptyDirVolumeSource?

    public init(name: String, configMap: ConfigMapVolumeSource? = nil, secret: SecretVolumeSource? = nil,
                emptyDir: EmptyDirVolumeSource? = nil) {
        self.name = name
        self.configMap = configMap
        self.secret = secret
        self.emptyDir = emptyDir
    }
}

public struct KeyToPath: Codable, Sendable, Hashable {
    public var key: String
    public var path: String
    public var mode: Int32?

    public init(key: String, path: String, mode: Int32? = nil) {
        self.key = key
        self.path = path
        self.mode = mode
    }
}

public struct ConfigMapVolumeSource: Codable, Sendable, Hashable {
    public var name: String
    public var items: [KeyToPath]?
    public var defaultMode: Int32?
    public var optional: Bool?

    public init(name: String, items: [KeyToPath]? = nil, defaultMode: Int32? = nil) {
        self.name = name
        self.items = items
        self.defaultMode = defaultMode
    }
}

public struct SecretVolumeSource: Codable, Sendable, Hashable {
    public var secretName: String
    public var items: [KeyToPath]?
    public var defaultMode: Int32?
    public var optional: Bool?

    public init(secretName: String, items: [KeyToPath]? = nil, defaultMode: Int32? = nil) {
        self.secretName = secretName
        self.items = items
        self.defaultMode = defaultMode
    }
}

public struct EmptyDirVolumeSource: Codable, Sendable, Hashable {
    public var medium: String?
    /// A quantity such as `30Gi`.
    public var sizeLimit: String?

    public init(medium: String? = nil, sizeLimit: String? = nil) {
        self.medium = medium
        self.sizeLimit = sizeLimit
    }
}

/// Resource quantities are kept as strings (`500m`, `2Gi`), exactly as written.
public struct ResourceRequirements: Codable, Sendable, Hashable {
    public var requests: [String: String]?
    public var limits: [String: String]?

    public init(requests: [String: String]? = nil, limits: [String: String]? = nil) {
        self.requests = requests
        self.limits = limits
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        requests = try container.decodeIfPresent([String: Quantity].self, forKey: .requests)?.mapValues(\.text)
        limits = try container.decodeIfPresent([String: Quantity].self, forKey: .limits)?.mapValues(\.text)
    }

    enum CodingKeys: String, CodingKey { case requests, limits }

    /// A quantity written as a string or a bare number.
    struct Quantity: Decodable {
        var text: String
        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let text = try? container.decode(String.self) {
                self.text = text
            } else if let number = try? container.decode(Int64.self) {
                text = String(number)
            } else {
                text = String(try container.decode(Double.self))
            }
        }
    }
}

public struct SecurityContext: Codable, Sendable, Hashable {
    public var privileged: Bool?
    public var allowPrivilegeEscalation: Bool?
    public var runAsUser: Int64?
    public var runAsGroup: Int64?
    public var runAsNonRoot: Bool?
    public var readOnlyRootFilesystem: Bool?
    public var capabilities: Capabilities?
    /// The seccomp profile (Kubernetes 1.19+); nil leaves it to the runtime and the Pod.
    public var seccompProfile: SeccompProfile?

    public init(privileged: Bool? = nil, allowPrivilegeEscalation: Bool? = nil, runAsUser: Int64? = nil,
                capabilities: Capabilities? = nil) {
        self.privileged = privileged
        self.allowPrivilegeEscalation = allowPrivilegeEscalation
        self.runAsUser = runAsUser
        self.capabilities = capabilities
    }
}

/// A container's seccomp profile: `RuntimeDefault`, `Unconfined`, or `Localhost` with a profile
/// path relative to the kubelet's seccomp profile root.
public struct SeccompProfile: Codable, Sendable, Hashable {
    public var type: String
    public var localhostProfile: String?

    public init(type: String, localhostProfile: String? = nil) {
        self.type = type
        self.localhostProfile = localhostProfile
    }
}

public struct Capabilities: Codable, Sendable, Hashable {
    public var add: [String]?
    public var drop: [String]?

    public init(add: [String]? = nil, drop: [String]? = nil) {
        self.add = add
        self.drop = drop
    }
}

public struct Toleration: Codable, Sendable, Hashable {
    public var key: String?
    /// `Exists` or `Equal`.
    public var `operator`: String?
    public var value: String?
    /// `NoSchedule`, `PreferNoSchedule`, `NoExecute`.
    public var effect: String?
    public var tolerationSeconds: Int64?

    public init(key: String? = nil, operator: String? = nil, value: String? = nil, effect: String? = nil,
                tolerationSeconds: Int64? = nil) {
        self.key = key
        self.operator = `operator`
        self.value = value
        self.effect = effect
        self.tolerationSeconds = tolerationSeconds
    }
}

public struct PodStatus: Codable, Sendable, Hashable {
    /// `Pending`, `Running`, `Succeeded`, `Failed`, `Unknown`.
    public var phase: String?
    public var conditions: [PodCondition]?
    public var message: String?
    public var reason: String?
    public var startTime: Date?
    public var containerStatuses: [ContainerStatus]?
    public var initContainerStatuses: [ContainerStatus]?

    public init(phase: String? = nil, conditions: [PodCondition]? = nil, containerStatuses: [ContainerStatus]? = nil) {
        self.phase = phase
        self.conditions = conditions
        self.containerStatuses = containerStatuses
    }
}

public struct PodCondition: Codable, Sendable, Hashable {
    public var type: String
    public var status: String
    public var reason: String?
    public var message: String?
    public var lastTransitionTime: Date?

    public init(type: String, status: String, reason: String? = nil, message: String? = nil) {
        self.type = type
        self.status = status
        self.reason = reason
        self.message = message
    }
}

public struct ContainerStatus: Codable, Sendable, Hashable {
    public var name: String
    public var ready: Bool?
    public var restartCount: Int32?
    public var image: String?
    public var imageID: String?
    public var state: ContainerState?
    public var lastState: ContainerState?

    public init(name: String, ready: Bool? = nil, state: ContainerState? = nil) {
        self.name = name
        self.ready = ready
        self.state = state
    }
}

public struct ContainerState: Codable, Sendable, Hashable {
    public var waiting: ContainerStateWaiting?
    public var running: ContainerStateRunning?
    public var terminated: ContainerStateTerminated?

    public init(waiting: ContainerStateWaiting? = nil, running: ContainerStateRunning? = nil,
                terminated: ContainerStateTerminated? = nil) {
        self.waiting = waiting
        self.running = running
        self.terminated = terminated
    }
}

public struct ContainerStateWaiting: Codable, Sendable, Hashable {
    /// `ImagePullBackOff`, `ErrImagePull`, `CreateContainerConfigError`, …
    public var reason: String?
    public var message: String?

    public init(reason: String? = nil, message: String? = nil) {
        self.reason = reason
        self.message = message
    }
}

public struct ContainerStateRunning: Codable, Sendable, Hashable {
    public var startedAt: Date?
    public init(startedAt: Date? = nil) { self.startedAt = startedAt }
}

public struct ContainerStateTerminated: Codable, Sendable, Hashable {
    public var exitCode: Int32
    public var signal: Int32?
    /// `Completed`, `Error`, `OOMKilled`, `DeadlineExceeded`, …
    public var reason: String?
    /// The termination message (kaniko's digest file, or the log tail on error).
    public var message: String?
    public var startedAt: Date?
    public var finishedAt: Date?

    public init(exitCode: Int32, reason: String? = nil, message: String? = nil, startedAt: Date? = nil,
                finishedAt: Date? = nil) {
        self.exitCode = exitCode
        self.reason = reason
        self.message = message
        self.startedAt = startedAt
        self.finishedAt = finishedAt
    }
}
