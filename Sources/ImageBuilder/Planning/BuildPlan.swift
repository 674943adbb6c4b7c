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
/// registry credentials, and a builder Job (kaniko or buildah), all named `jobName` and owned by
/// the ImageSpec.
public struct BuildPlan: Sendable, Hashable {
    public var identity: BuildIdentity
    public var hash: String { identity.hash }
    public var targetImage: String { identity.targetImage }
    public var jobName: String { identity.jobName }
    /// The strategy the Job runs.
    public var strategy: OperatorConfig.BuildStrategy
    public var context: BuildContext
    public var configMap: ConfigMap
    /// The Secret the Job mounts as the builder's docker config; nil when no secret is involved.
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
    /// The builder container's name, for finding its terminated state and its log. It is the Pod's
    /// only container, so a log request that names no container (PrimeHub's console) gets it.
    public static let containerName = "build"
    /// buildah's build step when push credentials are isolated: an init container that builds
    /// into the Pod's shared storage and never sees the push secret.
    public static let buildStepContainerName = "build-image"
    public static let workspace = "/workspace"
    public static let dockerConfigDirectory = "/kaniko/.docker"
    public static let caFile = "registry-ca.crt"
    public static let caPath = "/kaniko/ssl/certs/image-builder-registry-ca.crt"
    /// Capabilities kaniko needs as root without privileged mode. FSETID keeps set-user/group-ID
    /// bits of installed files from being cleared.
    public static let capabilities = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETFCAP", "SETGID", "SETUID"]
    /// Capabilities buildah needs as root to map its user namespace (writing `uid_map` for uid 0
    /// needs SETFCAP); inside that namespace it has the rest. Dropping any of the three fails.
    public static let buildahCapabilities = ["SETFCAP", "SETGID", "SETUID"]
    /// The Secret key holding a buildah build step's pull-only docker config.
    public static let buildAuthKey = "build-auth.json"
    /// The registries.conf a buildah build reads (short names resolve on Docker Hub only, as with
    /// kaniko; insecure registries are marked per registry).
    public static let registriesConfFile = "registries.conf"
    /// Where buildah's files live in the builder containers.
    public static let buildahConfigDirectory = "/etc/image-builder"
    public static let buildahStorage = "/var/lib/containers"
    /// The build step's log and exit status, beside buildah's storage, for the push step.
    public static let buildahStateDirectory = "/var/lib/containers/image-builder"

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
    /// The line the push step prints before pushing; BuildAssessment reads a failure after it as
    /// a failed push.
    public static let pushMarker = "image-builder: pushing "
    /// The line the push step prints when the build step was killed (SIGKILL: the memory limit,
    /// as a rule); BuildAssessment reads it as OutOfMemory.
    public static let killedMarker = "image-builder: the build was killed"

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
        let builder = config.builder
        let identity: BuildIdentity
        if let given = inputs.identity { identity = given } else { identity = try BuildIdentity.of(imageSpec, config: config) }
        let jobName = identity.jobName
        let context = BuildContextRenderer.render(
            imageSpec, user: inputs.baseImageUser, baseImageDigest: inputs.baseImageDigest,
            options: RenderOptions(pipBreakSystemPackages: builder.pipBreakSystemPackages))

        var metadata = ObjectMeta(name: jobName, namespace: imageSpec.imageSpec.metadata.namespace)
        metadata.labels = identity.labels
        metadata.annotations = identity.annotations
        if let owner = identity.owner { metadata.ownerReferences = [owner] }

        var data = context.allFiles
        if let bundle = config.registry.caBundle { data[caFile] = bundle }
        if builder.strategy == .buildah { data[registriesConfFile] = registriesConf(config) }
        let configMap = ConfigMap(metadata: metadata, data: data, immutable: true)

        let needsSecret = config.registry.pushSecret != nil || imageSpec.spec.pullSecret != nil
        let secretName = needsSecret ? jobName : nil
        var secret: Secret?
        if let secretName, let credentials = inputs.credentials {
            var secretMetadata = metadata
            secretMetadata.name = secretName
            var secretData = [RegistryCredentials.secretKey: credentials.dockerConfigJSON]
            if builder.strategy == .buildah {
                let cacheRegistry = builder.cacheRepo.flatMap(ImageReference.parse)?.registry
                secretData[buildAuthKey] = credentials.buildStepConfig(cacheRegistry: cacheRegistry).jsonData
            }
            secret = Secret(metadata: secretMetadata, type: RegistryCredentials.secretType, data: secretData)
            secret?.immutable = true
        }

        let build = BuildStep(inputs: inputs, context: context, target: identity.targetImage, hash: identity.hash,
                              jobName: jobName, secret: secretName, contextFiles: data.keys.sorted())
        let pod = builder.strategy == .kaniko ? build.kanikoPod() : build.buildahPod()
        var podSpec = PodSpec(containers: pod.containers, volumes: pod.volumes, restartPolicy: "Never")
        podSpec.initContainers = pod.initContainers.isEmpty ? nil : pod.initContainers
        podSpec.serviceAccountName = builder.serviceAccountName
        podSpec.automountServiceAccountToken = builder.serviceAccountName == nil ? false : nil
        podSpec.nodeSelector = builder.nodeSelector
        podSpec.tolerations = builder.tolerations
        podSpec.affinity = builder.affinity
        podSpec.priorityClassName = builder.priorityClassName

        let template = PodTemplateSpec(
            metadata: ObjectMeta(labels: identity.labels,
                                 annotations: [identity.source.hashAnnotation: identity.hash, imageSpecAnnotation: identity.name]),
            spec: podSpec)
        var jobMetadata = metadata
        if let digest = inputs.baseImageDigest { jobMetadata.annotations?[baseDigestAnnotation] = digest }
        if let updateTime = imageSpec.spec.updateTime {
            jobMetadata.annotations?[updateTimeAnnotation] = KubeJSON.formatTimestamp(updateTime)
        }
        let job = Job(metadata: jobMetadata, spec: JobSpec(
            template: template, backoffLimit: builder.backoffLimit, activeDeadlineSeconds: builder.timeoutSeconds))

        return BuildPlan(identity: identity, strategy: builder.strategy, context: context, configMap: configMap,
                         registrySecretName: secretName, registrySecret: secret, job: job)
    }

    /// The registries.conf of a buildah build: short names on Docker Hub only (as kaniko and
    /// Docker resolve them, and never a prompt), and the insecure registries.
    static func registriesConf(_ config: OperatorConfig) -> String {
        var text = """
            # Generated by image-builder: short names resolve on Docker Hub only, as with kaniko and Docker.
            unqualified-search-registries = ["docker.io"]
            short-name-mode = "permissive"

            """
        var insecure = config.registry.insecureRegistries
        if config.registry.insecure {
            for reference in [config.registry.push.map { BuildNaming.targetImage(name: "x", hash: "0", destination: $0) }, config.builder.cacheRepo] {
                if let host = reference.flatMap(ImageReference.parse), !host.isDockerHub, !insecure.contains(host.registry) {
                    insecure.append(host.registry)
                }
            }
        }
        for host in insecure {
            // Hosts are checked to be host[:port] (letters, digits, '.', '-', ':', brackets).
            text += "\n[[registry]]\nlocation = \(Quoting.json(host))\ninsecure = true\n"
        }
        return text
    }
}

/// What a strategy gives the Pod.
struct BuilderPod {
    var initContainers: [Container] = []
    var containers: [Container]
    var volumes: [Volume]
}

/// The parts of one build the strategies share, and the two strategies' containers.
struct BuildStep {
    let inputs: BuildInputs
    let context: BuildContext
    let target: String
    let hash: String
    let jobName: String
    /// The registry Secret's name, when the build has one.
    let secret: String?
    /// The keys of the context ConfigMap.
    let contextFiles: [String]

    var config: OperatorConfig { inputs.config }
    var builder: OperatorConfig.Builder { inputs.config.builder }

    /// `--label=…` for the spec hash and the base image (as written, and its digest).
    var labelArgs: [String] {
        var labels = [
            "--label=\(BuildPlanner.hashImageLabel)=\(hash)",
            // The base as written: FROM names it by digest.
            "--label=\(BuildPlanner.baseImageLabel)=\(inputs.imageSpec.spec.baseImage)",
        ]
        if let digest = inputs.baseImageDigest { labels.append("--label=\(BuildPlanner.baseDigestLabel)=\(digest)") }
        return labels
    }

    var buildArgArgs: [String] { context.buildArgs.map { "--build-arg=\($0.name)=\($0.value)" } }

    /// The registries of the target and the cache, Docker Hub left out (it needs no flags).
    var pushHosts: [String] {
        var hosts: [String] = []
        for reference in [target] + (builder.cacheRepo.map { [$0] } ?? []) {
            if let parsed = ImageReference.parse(reference), !parsed.isDockerHub, !hosts.contains(parsed.registry) {
                hosts.append(parsed.registry)
            }
        }
        return hosts
    }

    /// Mounts of the context files (the Dockerfile and what lies beside it) into the workspace.
    func contextMounts(except excluded: Set<String>) -> [VolumeMount] {
        contextFiles.filter { !excluded.contains($0) }.map {
            VolumeMount(name: "context", mountPath: "\(BuildPlanner.workspace)/\($0)", subPath: $0, readOnly: true)
        }
    }

    /// The context ConfigMap, named as the Job.
    var contextVolume: Volume {
        Volume(name: "context", configMap: ConfigMapVolumeSource(
            name: jobName, items: contextFiles.map { KeyToPath(key: $0, path: $0) }))
    }

    // MARK: kaniko

    func kanikoPod() -> BuilderPod {
        var args = [
            "--dockerfile=\(BuildPlanner.workspace)/\(BuildContext.dockerfileName)",
            "--context=dir://\(BuildPlanner.workspace)",
            "--destination=\(target)",
            // kaniko writes the digest before it pushes: only an exit code of 0 makes it a result.
            "--digest-file=/dev/termination-log",
            "--snapshot-mode=redo",
            "--compressed-caching=false",
            "--ignore-path=/product_uuid",
            "--push-retry=3",
            "--log-format=text",
        ]
        args += labelArgs
        args += buildArgArgs
        if let cache = builder.cacheRepo {
            args += ["--cache=true", "--cache-repo=\(cache)"]
        }
        let hosts = pushHosts
        for host in hosts {
            if config.registry.insecure {
                args += ["--insecure-registry=\(host)", "--skip-tls-verify-registry=\(host)"]
            }
            if config.registry.caBundle != nil {
                args.append("--registry-certificate=\(host)=\(BuildPlanner.caPath)")
            }
        }
        // Base-image registries on plain HTTP or unverified TLS.
        for host in config.registry.insecureRegistries where !(config.registry.insecure && hosts.contains(host)) {
            args += ["--insecure-registry=\(host)", "--skip-tls-verify-registry=\(host)"]
        }
        if config.registry.insecureEverywhere {
            args += ["--insecure", "--skip-tls-verify", "--insecure-pull", "--skip-tls-verify-pull"]
        }
        args += builder.extraArgs

        var container = Container(name: BuildPlanner.containerName, image: builder.effectiveImage, args: args)
        var mounts = contextMounts(except: [BuildPlanner.caFile])
        if config.registry.caBundle != nil {
            mounts.append(VolumeMount(name: "context", mountPath: BuildPlanner.caPath, subPath: BuildPlanner.caFile, readOnly: true))
        }
        var volumes = [contextVolume]
        if let secret {
            mounts.append(VolumeMount(name: "docker-config", mountPath: BuildPlanner.dockerConfigDirectory, readOnly: true))
            volumes.append(Volume(name: "docker-config", secret: SecretVolumeSource(
                secretName: secret, items: [KeyToPath(key: RegistryCredentials.secretKey, path: "config.json")])))
        }
        container.volumeMounts = mounts
        // Keeps the NVIDIA runtime (default runtime on some GPU nodes) from mounting driver files
        // into the container, which breaks kaniko's root filesystem.
        container.env = [EnvVar(name: "NVIDIA_VISIBLE_DEVICES", value: "void")]
        container.resources = builder.resourcesWithEphemeralStorage
        container.securityContext = SecurityContext(
            privileged: false, runAsUser: 0, capabilities: Capabilities(add: BuildPlanner.capabilities, drop: ["ALL"]))
        container.terminationMessagePolicy = "FallbackToLogsOnError"
        return BuilderPod(containers: [container], volumes: volumes)
    }

    // MARK: buildah

    static let buildAuthDirectory = "\(BuildPlanner.buildahConfigDirectory)/build-auth"
    static let pushAuthDirectory = "\(BuildPlanner.buildahConfigDirectory)/push-auth"
    static let certDirectory = "\(BuildPlanner.buildahConfigDirectory)/certs"

    /// The build step's script: runs `buildah "$@"`, keeps its log and exit status for the push
    /// step, and always exits 0 so the builder container runs and reports (a failed init container
    /// would leave the Pod without the one log PrimeHub's console reads). Constant text: every
    /// value is an argument.
    static let buildScript = """
        state=\(BuildPlanner.buildahStateDirectory)
        mkdir -p "$state" && rm -f "$state/build.log" "$state/build-status"
        { buildah "$@"; echo "$?" > "$state/build-status"; } 2>&1 | tee "$state/build.log"
        exit 0
        """

    /// The push step's script: replays the build log, stops when the build failed, else pushes
    /// `$1` with the arguments after it. Constant text.
    static let pushScript = """
        state=\(BuildPlanner.buildahStateDirectory)
        cat "$state/build.log" 2>/dev/null
        status=$(cat "$state/build-status" 2>/dev/null)
        case "$status" in
        0) ;;
        137) echo "\(BuildPlanner.killedMarker) (exit status 137), most likely for lack of memory; nothing was pushed" >&2; exit 137 ;;
        *) echo "image-builder: the build failed (exit status ${status:-unknown}); nothing was pushed" >&2; exit 1 ;;
        esac
        target=$1
        shift
        echo "\(BuildPlanner.pushMarker)$target"
        exec buildah "$@" "$target" "docker://$target"
        """

    /// Build and push in one container: `$1` is the target, the rest the `buildah` build
    /// arguments; the push flags are constants of the configuration (no spec value). Constant text.
    func combinedScript(pushFlags: [String]) -> String {
        let flags = pushFlags.map { "'" + $0 + "'" }.joined(separator: " ")
        return """
            target=$1
            shift
            buildah "$@" || exit $?
            echo "\(BuildPlanner.pushMarker)$target"
            exec buildah \(flags) "$target" "docker://$target"
            """
    }

    var storageFlag: String { "--storage-driver=\(builder.storageDriver.rawValue)" }

    /// `buildah` arguments of the build: global flags, `build`, its flags, the context directory.
    var buildahBuildArgs: [String] {
        var args = [
            storageFlag, "build",
            "--isolation=chroot",
            "--file=\(BuildPlanner.workspace)/\(BuildContext.dockerfileName)",
            "--tag=\(target)",
            "--format=docker",
            "--retry=3",
        ]
        if secret != nil {
            let file = builder.isolatePushCredentials ? "\(Self.buildAuthDirectory)/auth.json" : "\(Self.pushAuthDirectory)/auth.json"
            args.append("--authfile=\(file)")
        }
        if config.registry.caBundle != nil { args.append("--cert-dir=\(Self.certDirectory)") }
        if config.registry.insecureEverywhere { args.append("--tls-verify=false") }
        args += labelArgs
        args += buildArgArgs
        if let cache = builder.cacheRepo {
            args += ["--layers", "--cache-from=\(cache)", "--cache-to=\(cache)"]
        }
        args += builder.extraArgs
        args.append(BuildPlanner.workspace)
        return args
    }

    /// `buildah` arguments of the push, before the image and its destination. The digest is
    /// written only after the push succeeded.
    var buildahPushFlags: [String] {
        var args = [storageFlag, "push", "--digestfile=/dev/termination-log", "--retry=3"]
        if secret != nil { args.append("--authfile=\(Self.pushAuthDirectory)/auth.json") }
        if config.registry.caBundle != nil { args.append("--cert-dir=\(Self.certDirectory)") }
        if config.registry.insecureEverywhere { args.append("--tls-verify=false") }
        return args
    }

    /// The narrowest security context buildah runs with in a Pod: root, three capabilities, a
    /// seccomp profile that adds `unshare`, `mount` and `umount2` to the runtime's default, no
    /// privilege escalation, a read-only root filesystem. `privileged` is the fallback.
    var buildahSecurityContext: SecurityContext {
        if builder.privileged {
            var context = SecurityContext(privileged: true, runAsUser: 0)
            context.readOnlyRootFilesystem = true
            return context
        }
        var context = SecurityContext(privileged: false, allowPrivilegeEscalation: false, runAsUser: 0,
                                      capabilities: Capabilities(add: BuildPlanner.buildahCapabilities, drop: ["ALL"]))
        context.readOnlyRootFilesystem = true
        switch builder.seccompProfile {
        case .localhost(let profile): context.seccompProfile = SeccompProfile(type: "Localhost", localhostProfile: profile)
        case .unconfined: context.seccompProfile = SeccompProfile(type: "Unconfined")
        }
        return context
    }

    func buildahPod() -> BuilderPod {
        var volumes = [contextVolume]
        var common = contextMounts(except: [BuildPlanner.caFile, BuildPlanner.registriesConfFile])
        common.append(VolumeMount(name: "context", mountPath: "\(BuildPlanner.buildahConfigDirectory)/\(BuildPlanner.registriesConfFile)",
                                  subPath: BuildPlanner.registriesConfFile, readOnly: true))
        if config.registry.caBundle != nil {
            common.append(VolumeMount(name: "context", mountPath: "\(Self.certDirectory)/ca.crt", subPath: BuildPlanner.caFile, readOnly: true))
        }
        common += [
            VolumeMount(name: "storage", mountPath: BuildPlanner.buildahStorage),
            VolumeMount(name: "var-tmp", mountPath: "/var/tmp"),
            VolumeMount(name: "run", mountPath: "/run"),
        ]
        // The build's disk is the storage emptyDir, bounded by sizeLimit (as PrimeHub does)
        // rather than requested from the scheduler.
        volumes += [
            Volume(name: "storage", emptyDir: EmptyDirVolumeSource(sizeLimit: builder.ephemeralStorage)),
            Volume(name: "var-tmp", emptyDir: EmptyDirVolumeSource()),
            Volume(name: "run", emptyDir: EmptyDirVolumeSource(medium: "Memory")),
        ]
        let pushAuth = VolumeMount(name: "push-auth", mountPath: Self.pushAuthDirectory, readOnly: true)
        let buildAuth = VolumeMount(name: "build-auth", mountPath: Self.buildAuthDirectory, readOnly: true)
        if let secret {
            volumes.append(Volume(name: "push-auth", secret: SecretVolumeSource(
                secretName: secret, items: [KeyToPath(key: RegistryCredentials.secretKey, path: "auth.json")])))
            if builder.isolatePushCredentials {
                volumes.append(Volume(name: "build-auth", secret: SecretVolumeSource(
                    secretName: secret, items: [KeyToPath(key: BuildPlanner.buildAuthKey, path: "auth.json")])))
            }
        }

        func container(_ name: String, command: [String], args: [String], mounts: [VolumeMount]) -> Container {
            var container = Container(name: name, image: builder.effectiveImage, command: command, args: args)
            container.volumeMounts = mounts
            container.env = [
                EnvVar(name: "CONTAINERS_REGISTRIES_CONF", value: "\(BuildPlanner.buildahConfigDirectory)/\(BuildPlanner.registriesConfFile)"),
                EnvVar(name: "NVIDIA_VISIBLE_DEVICES", value: "void"),
            ]
            container.resources = builder.resources
            container.securityContext = buildahSecurityContext
            container.terminationMessagePolicy = "FallbackToLogsOnError"
            return container
        }

        if builder.isolatePushCredentials {
            let build = container(BuildPlanner.buildStepContainerName, command: ["/bin/sh", "-c", Self.buildScript, "image-builder-build"],
                                  args: buildahBuildArgs, mounts: common + (secret == nil ? [] : [buildAuth]))
            let push = container(BuildPlanner.containerName, command: ["/bin/sh", "-c", Self.pushScript, "image-builder-push"],
                                 args: [target] + buildahPushFlags, mounts: common + (secret == nil ? [] : [pushAuth]))
            return BuilderPod(initContainers: [build], containers: [push], volumes: volumes)
        }
        let combined = container(BuildPlanner.containerName,
                                 command: ["/bin/sh", "-c", combinedScript(pushFlags: buildahPushFlags), "image-builder"],
                                 args: [target] + buildahBuildArgs, mounts: common + (secret == nil ? [] : [pushAuth]))
        return BuilderPod(containers: [combined], volumes: volumes)
    }
}
