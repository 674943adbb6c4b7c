import Foundation
import KubeTypes
import RegistryTypes

/// Everything a build is planned from.
public struct BuildInputs: Sendable, Hashable {
    public var imageSpec: ValidImageSpec
    public var config: OperatorConfig
    /// The base image's configured user, restored at the end of the Dockerfile.
    public var baseImageUser: ImageUser
    /// The digest the base image resolved to, pinned in `FROM` when given.
    public var baseImageDigest: String?
    /// The merged registry credentials; nil when they are not at hand (offline rendering), in
    /// which case the plan names the Secret but does not carry it.
    public var credentials: RegistryCredentials?
    /// The build's identity when the caller computed it already (`BuildIdentity.of`); computed
    /// from `imageSpec` and `config` when nil.
    public var identity: BuildIdentity?

    public init(imageSpec: ValidImageSpec, config: OperatorConfig, baseImageUser: ImageUser,
                baseImageDigest: String? = nil, credentials: RegistryCredentials? = nil, identity: BuildIdentity? = nil) {
        self.imageSpec = imageSpec
        self.config = config
        self.baseImageUser = baseImageUser
        self.baseImageDigest = baseImageDigest
        self.credentials = credentials
        self.identity = identity
    }
}

/// What to create for one build: a ConfigMap with the build context, a Secret with the merged
/// registry credentials, and a kaniko Job, all named `jobName` and owned by the ImageSpec.
public struct BuildPlan: Sendable, Hashable {
    public var identity: BuildIdentity
    public var hash: String { identity.hash }
    public var targetImage: String { identity.targetImage }
    public var jobName: String { identity.jobName }
    public var context: BuildContext
    public var configMap: ConfigMap
    /// The Secret the Job mounts as kaniko's docker config; nil when no secret is involved.
    public var registrySecretName: String?
    /// That Secret, when `BuildInputs.credentials` were given.
    public var registrySecret: Secret?
    public var job: Job

    /// ConfigMap, Secret (when present) and Job, in the order to create them.
    public func manifests() throws -> [JSONValue] {
        var list = [try JSONValue(encoding: configMap)]
        if let registrySecret { list.append(try JSONValue(encoding: registrySecret)) }
        list.append(try JSONValue(encoding: job))
        return list
    }
}

public struct PlanError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The input at fault: a field of the ImageSpec (`metadata.name`) or of the configuration
    /// (`registry.pushRepo`).
    public var path: FieldPath
    public var reason: String

    public init(_ path: FieldPath, _ reason: String) {
        self.path = path
        self.reason = reason
    }

    public var description: String { "\(path): \(reason)" }
}

/// Plans builds. Pure: the same inputs give the same plan, byte for byte.
public enum BuildPlanner {
    /// The kaniko container's name, for finding its terminated state.
    public static let containerName = "build"
    public static let workspace = "/workspace"
    public static let dockerConfigDirectory = "/kaniko/.docker"
    public static let caFile = "registry-ca.crt"
    public static let caPath = "/kaniko/ssl/certs/image-builder-registry-ca.crt"
    /// Capabilities kaniko needs as root without privileged mode. FSETID keeps set-user/group-ID
    /// bits of installed files from being cleared.
    public static let capabilities = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETFCAP", "SETGID", "SETUID"]

    public static let managedByLabel = MetadataKeys.managedBy
    public static let managedByValue = MetadataKeys.managedByValue
    /// PrimeHub's label and annotation on a build, kept for tools that read them.
    public static let nameLabel = MetadataKeys.imageSpecName
    public static let hashAnnotation = MetadataKeys.imageSpecHash
    public static let imageSpecAnnotation = MetadataKeys.imageSpec
    public static let targetImageAnnotation = MetadataKeys.targetImage
    public static let hashImageLabel = MetadataKeys.specHashImageLabel
    /// Image labels recording the base image reference as written and the digest it resolved to.
    public static let baseImageLabel = MetadataKeys.baseImageLabel
    public static let baseDigestLabel = MetadataKeys.baseDigestLabel
    /// The Job annotation recording the base image digest a build started from.
    public static let baseDigestAnnotation = MetadataKeys.baseDigestAnnotation
    /// The Job annotation recording the `spec.updateTime` a build was started for (whole seconds).
    public static let updateTimeAnnotation = MetadataKeys.updateTimeAnnotation

    /// The target image of `imageSpec` under `destination`, checked to be a valid reference.
    public static func targetImage(name: String, hash: String, destination: PushDestination?) throws(PlanError) -> String {
        guard let destination else {
            throw PlanError(FieldPath("registry.pushRepo"), "no push destination is configured (registry.pushRepo or registry.pushRepoPrefix)")
        }
        let target = BuildNaming.targetImage(name: name, hash: hash, destination: destination)
        do {
            _ = try ImageReference(parsing: target)
        } catch {
            throw PlanError(FieldPath("metadata.name"), "gives the target image \(Quoting.displayed(target)), which is not valid: \(error.reason)")
        }
        return target
    }

    public static func plan(_ inputs: BuildInputs) throws(PlanError) -> BuildPlan {
        let imageSpec = inputs.imageSpec
        let config = inputs.config
        let identity: BuildIdentity
        if let given = inputs.identity { identity = given } else { identity = try BuildIdentity.of(imageSpec, config: config) }
        let (hash, target, jobName) = (identity.hash, identity.targetImage, identity.jobName)
        let context = BuildContextRenderer.render(imageSpec, user: inputs.baseImageUser, baseImageDigest: inputs.baseImageDigest)

        var metadata = ObjectMeta(name: jobName, namespace: imageSpec.imageSpec.metadata.namespace)
        metadata.labels = identity.labels
        metadata.annotations = identity.annotations
        if let owner = identity.owner { metadata.ownerReferences = [owner] }

        var data = context.allFiles
        if let bundle = config.registry.caBundle { data[caFile] = bundle }
        let configMap = ConfigMap(metadata: metadata, data: data, immutable: true)

        let needsSecret = config.registry.pushSecret != nil || imageSpec.spec.pullSecret != nil
        let secretName = needsSecret ? jobName : nil
        var secret: Secret?
        if let secretName, let credentials = inputs.credentials {
            var secretMetadata = metadata
            secretMetadata.name = secretName
            secret = Secret(metadata: secretMetadata, type: RegistryCredentials.secretType,
                            data: [RegistryCredentials.secretKey: credentials.dockerConfigJSON])
            secret?.immutable = true
        }

        let container = kanikoContainer(
            inputs: inputs, context: context, target: target, hash: hash, withCredentials: secretName != nil,
            fileNames: data.keys.sorted())
        var podSpec = PodSpec(containers: [container], volumes: volumes(configMap: jobName, keys: data.keys.sorted(), secret: secretName),
                              restartPolicy: "Never")
        let builder = config.builder
        podSpec.serviceAccountName = builder.serviceAccountName
        podSpec.automountServiceAccountToken = builder.serviceAccountName == nil ? false : nil
        podSpec.nodeSelector = builder.nodeSelector
        podSpec.tolerations = builder.tolerations
        podSpec.affinity = builder.affinity
        podSpec.priorityClassName = builder.priorityClassName

        let template = PodTemplateSpec(
            metadata: ObjectMeta(labels: identity.labels,
                                 annotations: [identity.source.hashAnnotation: hash, imageSpecAnnotation: identity.name]),
            spec: podSpec)
        var jobMetadata = metadata
        if let digest = inputs.baseImageDigest { jobMetadata.annotations?[baseDigestAnnotation] = digest }
        if let updateTime = imageSpec.spec.updateTime {
            jobMetadata.annotations?[updateTimeAnnotation] = KubeJSON.formatTimestamp(updateTime)
        }
        let job = Job(metadata: jobMetadata, spec: JobSpec(
            template: template, backoffLimit: builder.backoffLimit, activeDeadlineSeconds: builder.timeoutSeconds))

        return BuildPlan(identity: identity, context: context, configMap: configMap,
                         registrySecretName: secretName, registrySecret: secret, job: job)
    }

    static func kanikoContainer(inputs: BuildInputs, context: BuildContext, target: String, hash: String,
                                withCredentials: Bool, fileNames: [String]) -> Container {
        let config = inputs.config
        var args = [
            "--dockerfile=\(workspace)/\(BuildContext.dockerfileName)",
            "--context=dir://\(workspace)",
            "--destination=\(target)",
            "--digest-file=/dev/termination-log",
            "--snapshot-mode=redo",
            "--compressed-caching=false",
            "--ignore-path=/product_uuid",
            "--push-retry=3",
            "--log-format=text",
            "--label=\(hashImageLabel)=\(hash)",
            // The base as written: FROM names it by digest.
            "--label=\(baseImageLabel)=\(inputs.imageSpec.spec.baseImage)",
        ]
        if let digest = inputs.baseImageDigest { args.append("--label=\(baseDigestLabel)=\(digest)") }
        args += context.buildArgs.map { "--build-arg=\($0.name)=\($0.value)" }
        var registries = [target]
        if let cache = config.builder.cacheRepo {
            args += ["--cache=true", "--cache-repo=\(cache)"]
            registries.append(cache)
        }
        var hosts: [String] = []
        for reference in registries {
            // Docker Hub needs no per-registry flags.
            if let parsed = ImageReference.parse(reference), !parsed.isDockerHub, !hosts.contains(parsed.registry) {
                hosts.append(parsed.registry)
            }
        }
        for host in hosts {
            if config.registry.insecure {
                args += ["--insecure-registry=\(host)", "--skip-tls-verify-registry=\(host)"]
            }
            if config.registry.caBundle != nil {
                args.append("--registry-certificate=\(host)=\(caPath)")
            }
        }
        // Base-image registries on plain HTTP or unverified TLS.
        for host in config.registry.insecureRegistries where !(config.registry.insecure && hosts.contains(host)) {
            args += ["--insecure-registry=\(host)", "--skip-tls-verify-registry=\(host)"]
        }
        args += config.builder.extraArgs

        var container = Container(name: containerName, image: config.builder.image, args: args)
        var mounts = fileNames.filter { $0 != caFile }.map {
            VolumeMount(name: "context", mountPath: "\(workspace)/\($0)", subPath: $0, readOnly: true)
        }
        if config.registry.caBundle != nil {
            mounts.append(VolumeMount(name: "context", mountPath: caPath, subPath: caFile, readOnly: true))
        }
        if withCredentials {
            mounts.append(VolumeMount(name: "docker-config", mountPath: dockerConfigDirectory, readOnly: true))
        }
        container.volumeMounts = mounts
        // Keeps the NVIDIA runtime (default runtime on some GPU nodes) from mounting driver files
        // into the container, which breaks kaniko's root filesystem.
        container.env = [EnvVar(name: "NVIDIA_VISIBLE_DEVICES", value: "void")]
        container.resources = config.builder.resources
        container.securityContext = SecurityContext(
            privileged: false, runAsUser: 0, capabilities: Capabilities(add: capabilities, drop: ["ALL"]))
        container.terminationMessagePolicy = "FallbackToLogsOnError"
        return container
    }

    static func volumes(configMap: String, keys: [String], secret: String?) -> [Volume] {
        var volumes = [Volume(name: "context", configMap: ConfigMapVolumeSource(
            name: configMap, items: keys.map { KeyToPath(key: $0, path: $0) }))]
        if let secret {
            volumes.append(Volume(name: "docker-config", secret: SecretVolumeSource(
                secretName: secret, items: [KeyToPath(key: RegistryCredentials.secretKey, path: "config.json")])))
        }
        return volumes
    }
}
