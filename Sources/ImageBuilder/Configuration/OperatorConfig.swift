import KubeTypes

/// The operator's configuration (a YAML file). See `OperatorConfigLoader` for the keys.
public struct OperatorConfig: Sendable, Hashable {
    /// Namespaces to watch; empty for all.
    public var watchNamespaces: [String] = []
    public var registry = Registry()
    public var builder = Builder()
    /// Finished builds (Jobs and history records) kept per ImageSpec.
    public var historyLimit = 5
    public var baseImages = BaseImagePolicy()

    public init() {}

    public struct Registry: Sendable, Hashable {
        /// Where images go; nil when not configured (the operator needs it, `render` does not).
        public var push: PushDestination?
        /// A `kubernetes.io/dockerconfigjson` Secret that can push to `push` (and `cacheRepo`).
        public var pushSecret: String?
        /// The Secret written as `pullSecret` on published Images. The push secret is never
        /// written there unless it is named here.
        public var pullSecret: String?
        /// The push registry speaks plain HTTP or has a certificate that is not verified.
        public var insecure = false
        /// PEM certificates to trust for the registries.
        public var caBundle: String?
        /// Other registries (of base images) that speak plain HTTP or whose certificates are not
        /// verified, as `host[:port]`.
        public var insecureRegistries: [String] = []
        /// Every registry the build touches is insecure (PrimeHub's `customImage.insecureSkipVerify`,
        /// which its buildah build applies to every registry): buildah `--tls-verify=false`,
        /// kaniko `--insecure --skip-tls-verify --insecure-pull --skip-tls-verify-pull`.
        public var insecureEverywhere = false

        public init() {}
    }

    public struct Builder: Sendable, Hashable {
        /// The default kaniko executor: the osscontainertools fork (upstream kaniko was archived in
        /// June 2025), pinned by tag because no digest could be established offline (see README).
        public static let defaultKanikoImage = "docker.io/martizih/kaniko:v1.27.6"
        /// The default buildah image (Red Hat's, the one upstream publishes; PrimeHub's chart sets
        /// its own through `customImage.buildJob.image`).
        public static let defaultBuildahImage = "quay.io/buildah/stable:v1.43.4"
        /// The default Localhost seccomp profile, relative to the kubelet's seccomp root
        /// (`/var/lib/kubelet/seccomp`); `deploy/seccomp/buildah.json` is its content.
        public static let defaultSeccompProfile = "image-builder/buildah.json"

        /// Which builder runs the build; decides the builder container's image, command, mounts,
        /// volumes and security context. Default buildah.
        public var strategy = BuildStrategy.buildah
        /// The builder image; nil for the strategy's default (`defaultImage(for:)`). Pin it by digest.
        public var image: String?
        /// Extra builder flags, appended last (kaniko flags, or `buildah build` flags).
        public var extraArgs: [String] = []
        public var resources: ResourceRequirements?
        /// The build's disk. kaniko: the ephemeral-storage request and limit of the container.
        /// buildah: the `sizeLimit` of the emptyDir at `/var/lib/containers` (as PrimeHub does).
        public var ephemeralStorage: String?
        public var nodeSelector: [String: String]?
        public var tolerations: [Toleration]?
        public var affinity: JSONValue?
        public var serviceAccountName: String?
        public var priorityClassName: String?
        /// The Job's `activeDeadlineSeconds`.
        public var timeoutSeconds: Int64 = 3600
        public var backoffLimit: Int32 = 0
        /// Layer cache repository (kaniko `--cache-repo`; buildah `--layers --cache-from/--cache-to`).
        public var cacheRepo: String?
        /// How long a build Pod may wait for something that needs a person (an image it cannot
        /// pull, a missing secret, no node that fits) before the build is given up.
        public var pendingTimeoutSeconds: Int64 = 600
        /// buildah's storage driver: vfs (default, works everywhere) or overlay (faster, needs a
        /// kernel that allows overlay mounts in a user namespace).
        public var storageDriver = StorageDriver.vfs
        /// buildah's seccomp profile: a Localhost profile (default), or Unconfined for nodes
        /// without the profile. Ignored when `privileged`.
        public var seccompProfile = SeccompSetting.localhost(Builder.defaultSeccompProfile)
        /// buildah: run the builder privileged (the fallback for nodes where user namespaces are
        /// not available). Off by default.
        public var privileged = false
        /// buildah: build in an init container that never sees the push credentials, and push from
        /// the builder container (whose log then replays the build log once the build ends). Off:
        /// build and push in one container, with a live log, and the build can read the push
        /// credentials. Default on. kaniko always builds and pushes in one process.
        public var isolatePushCredentials = true
        /// With pip packages and a base image whose Python is externally managed (PEP 668): install
        /// with `--break-system-packages` (true) or fail early saying what to do (false, default).
        public var pipBreakSystemPackages = false

        public init() {}

        /// The image the builder runs: `image`, or the strategy's default.
        public var effectiveImage: String { image ?? Self.defaultImage(for: strategy) }

        /// The image a strategy runs when `builder.image` is not set.
        public static func defaultImage(for strategy: BuildStrategy) -> String {
            switch strategy {
            case .kaniko: return defaultKanikoImage
            case .buildah: return defaultBuildahImage
            }
        }

        /// `builder.ephemeralStorage` as the kaniko container's request and limit, merged into
        /// `resources` (an ephemeral-storage value already there wins).
        public var resourcesWithEphemeralStorage: ResourceRequirements? {
            guard let storage = ephemeralStorage else { return resources }
            var merged = resources ?? ResourceRequirements()
            for keyPath in [\ResourceRequirements.requests, \ResourceRequirements.limits] {
                var list = merged[keyPath: keyPath] ?? [:]
                list["ephemeral-storage"] = list["ephemeral-storage"] ?? storage
                merged[keyPath: keyPath] = list
            }
            return merged
        }
    }

    /// The builder that runs a build.
    public enum BuildStrategy: String, Sendable, Hashable, CaseIterable {
        /// kaniko's executor: no shell, builds in its own root filesystem, root with a few capabilities.
        case kaniko
        /// `buildah build --isolation=chroot`: root in a user namespace, three capabilities, a
        /// seccomp profile that allows `unshare` and `mount`.
        case buildah
    }

    /// buildah's storage driver (`buildah --storage-driver`).
    public enum StorageDriver: String, Sendable, Hashable, CaseIterable {
        case vfs, overlay
    }

    /// The seccomp profile of the buildah containers.
    public enum SeccompSetting: Sendable, Hashable {
        /// A Localhost profile, by its path under the kubelet's seccomp root.
        case localhost(String)
        /// No seccomp filter: for nodes where the profile cannot be installed.
        case unconfined
    }

    /// Rebuilding when a base image's tag moves to a new digest (off by default; an ImageSpec can
    /// opt in or out with the annotation `image-builder.primehub.io/rebuild-on-base-change`).
    public struct BaseImagePolicy: Sendable, Hashable {
        public static let annotation = MetadataKeys.rebuildOnBaseChange

        public var rebuildOnChange = false
        /// How often a built ImageSpec's base tag is resolved again.
        public var checkIntervalSeconds: Int64 = 86_400
        /// At most this many such rebuilds start per hour, across all ImageSpecs.
        public var maxRebuildsPerHour = 10

        public init() {}
    }
}

/// A problem with its position in the source text, when known.
public struct LocatedProblem: Sendable, Hashable, CustomStringConvertible {
    public var position: SourcePosition?
    public var problem: ValidationProblem

    public init(_ problem: ValidationProblem, at position: SourcePosition?) {
        self.problem = problem
        self.position = position
    }

    /// `LINE:COLUMN: FIELD: MESSAGE`.
    public var description: String {
        (position.map { "\($0): " } ?? "") + problem.description
    }

    /// `FILE:LINE:COLUMN: FIELD: MESSAGE`.
    public func line(file: String) -> String {
        (position.map { "\(file):\($0): " } ?? "\(file): ") + problem.description
    }
}

public struct ConfigFailure: Error, Sendable, Hashable, CustomStringConvertible {
    public var problems: [LocatedProblem]
    public var description: String { problems.map(\.description).joined(separator: "\n") }
}

/// Reads the configuration file. Keys (all optional):
///
/// ```yaml
/// watchNamespaces: [hub]            # default: all namespaces
/// registry:
///   pushRepo: REPO                  # one repository: REPO:<name>-<hash>
///   pushRepoPrefix: PREFIX          # or a repository per image: PREFIX/<name>:<hash>
///   pushSecret: NAME                # dockerconfigjson Secret with push access
///   pullSecret: NAME                # written as pullSecret on published Images
///   insecure: false                 # plain HTTP / unverified TLS for the push registry
///   caBundle: PEM                   # certificates to trust
///   insecureRegistries: [HOST:PORT] # base-image registries on plain HTTP / unverified TLS
/// builder:
///   strategy: buildah               # or kaniko
///   image: IMAGE                    # default: the strategy's; pin by digest
///   extraArgs: [--flag=value]
///   resources: {requests: {cpu: 500m, memory: 1Gi}, limits: {memory: 4Gi}}
///   nodeSelector: {}
///   tolerations: []
///   affinity: {}
///   serviceAccountName: NAME
///   priorityClassName: NAME
///   timeout: 1h                     # or seconds
///   backoffLimit: 0
///   cacheRepo: REPO
///   ephemeralStorage: 30Gi          # the build's disk: buildah emptyDir sizeLimit, kaniko request and limit
///   pendingTimeout: 10m             # give up a build whose Pod cannot start for this long
///   storageDriver: vfs              # buildah: vfs or overlay
///   seccompProfile: image-builder/buildah.json   # buildah: Localhost profile, or Unconfined
///   privileged: false               # buildah: the fallback without user namespaces
///   isolatePushCredentials: true    # buildah: build in an init container without push credentials
///   pipBreakSystemPackages: false   # pip into a PEP 668 externally managed Python
/// baseImages:
///   rebuildOnChange: false          # rebuild when a base tag moves to a new digest
///   checkInterval: 24h              # how often built ImageSpecs' base tags are resolved again
///   maxRebuildsPerHour: 10          # rate limit for those rebuilds, across all ImageSpecs
/// historyLimit: 5
/// customImage:                      # PrimeHub's keys, accepted as they are
///   pushRepo, pushRepoPrefix, pushSecretName, insecureSkipVerify,
///   buildJob: {image, resources, ephemeralStorage, nodeSelector, tolerations, affinity}
/// ```
///
/// A PrimeHub controller configuration carries over: its other top-level keys are ignored with a
/// warning. Where a native key and its PrimeHub twin are both set they must agree.
public enum OperatorConfigLoader {
    public struct Loaded: Sendable {
        public var config: OperatorConfig
        public var warnings: [String]
    }

    static let resources = Schema.object([
        "requests": .map(of: .intOrString(checks: [.quantity])),
        "limits": .map(of: .intOrString(checks: [.quantity])),
    ])
    static let toleration = Schema.object([
        "key": .string(), "operator": .string(enum: ["Exists", "Equal"]), "value": .string(),
        "effect": .string(enum: ["NoSchedule", "PreferNoSchedule", "NoExecute"]),
        "tolerationSeconds": .integer(),
    ])
    static let secretName = Schema.string(checks: [.dnsSubdomain])

    static let schema = Schema.object([
        "watchNamespaces": .array(of: .string(checks: [.dnsLabel])),
        "registry": .object([
            "pushRepo": .string(checks: [.repository]),
            "pushRepoPrefix": .string(checks: [.repositoryPrefix]),
            "pushSecret": secretName,
            "pullSecret": secretName,
            "insecure": .boolean(),
            "caBundle": .string(text: .anyButNUL),
            "insecureRegistries": .array(of: .string(checks: [.registryHost])),
        ]),
        "builder": .object([
            "strategy": .string(enum: OperatorConfig.BuildStrategy.allCases.map(\.rawValue)),
            "image": .string(checks: [.imageReference]),
            "extraArgs": .array(of: .string(checks: [.commandLineOption])),
            "resources": resources,
            "nodeSelector": .map(of: .string()),
            "tolerations": .array(of: toleration),
            "affinity": .freeform(),
            "serviceAccountName": secretName,
            "priorityClassName": secretName,
            "timeout": .intOrString(checks: [.duration]),
            "backoffLimit": .integer(minimum: 0),
            "cacheRepo": .string(checks: [.repository]),
            "ephemeralStorage": .intOrString(checks: [.quantity]),
            "pendingTimeout": .intOrString(checks: [.duration]),
            "storageDriver": .string(enum: OperatorConfig.StorageDriver.allCases.map(\.rawValue)),
            "seccompProfile": .string(),
            "privileged": .boolean(),
            "isolatePushCredentials": .boolean(),
            "pipBreakSystemPackages": .boolean(),
        ]),
        "baseImages": .object([
            "rebuildOnChange": .boolean(),
            "checkInterval": .intOrString(checks: [.duration]),
            "maxRebuildsPerHour": .integer(minimum: 1),
        ]),
        "historyLimit": .integer(minimum: 1),
        "customImage": Schema.object([
            "pushRepo": .string(),
            "pushRepoPrefix": .string(),
            "pushSecretName": .string(),
            "insecureSkipVerify": .boolean(),
            "buildJob": Schema.object([
                "image": .string(checks: [.imageReference]),
                "resources": resources,
                "ephemeralStorage": .intOrString(checks: [.quantity]),
                "nodeSelector": .map(of: .string()),
                "tolerations": .array(of: toleration),
                "affinity": .freeform(),
            ]).with { $0.preservesUnknownFields = true },
        ]).with { $0.preservesUnknownFields = true },
    ]).with { $0.preservesUnknownFields = true }

    /// Parses and checks a configuration; an empty text is the default configuration.
    public static func load(yaml text: String) -> Result<Loaded, ConfigFailure> {
        let stream = YAMLLoader.load(text)
        if let error = stream.error {
            return .failure(ConfigFailure(problems: [LocatedProblem(ValidationProblem(.root, error.message), at: error.position)]))
        }
        guard stream.documents.count <= 1 else {
            return .failure(ConfigFailure(problems: [LocatedProblem(
                ValidationProblem(.root, "the configuration is one YAML document, not \(stream.documents.count)"),
                at: stream.documents[1].start)]))
        }
        guard let document = stream.documents.first else { return .success(Loaded(config: OperatorConfig(), warnings: [])) }
        return load(document)
    }

    static func load(_ document: YAMLDocument) -> Result<Loaded, ConfigFailure> {
        let root = document.value
        var problems = schema.problems(in: root)
        var reader = Reader(root: root)
        var config = OperatorConfig()
        var warnings: [String] = []

        let known = Set(schema.properties.map(\.name))
        for key in (root.objectValue ?? [:]).keys.sorted() where !known.contains(key) {
            warnings.append("ignoring unknown top-level key \(Quoting.displayed(key))")
        }
        let knownPrimeHub: Set<String> = ["pushRepo", "pushRepoPrefix", "pushSecretName", "insecureSkipVerify", "buildJob"]
        for key in (root["customImage"]?.objectValue ?? [:]).keys.sorted() where !knownPrimeHub.contains(key) {
            warnings.append("ignoring customImage.\(key)")
        }
        guard problems.isEmpty else { return .failure(failure(problems, document)) }

        config.watchNamespaces = root["watchNamespaces"]?.arrayValue?.compactMap(\.stringValue) ?? []
        if let limit = root["historyLimit"]?.intValue { config.historyLimit = Int(limit) }

        // Registry.
        let repo = reader.pick("registry", "pushRepo", twin: "customImage", "pushRepo")
        let prefix = reader.pick("registry", "pushRepoPrefix", twin: "customImage", "pushRepoPrefix")
        let nativeBoth = root.value(at: "registry", "pushRepo") != nil && root.value(at: "registry", "pushRepoPrefix") != nil
        if nativeBoth {
            problems.append(ValidationProblem(FieldPath("registry.pushRepoPrefix"), "set either pushRepo or pushRepoPrefix, not both"))
        } else if let repo = repo?.stringValue {
            config.registry.push = .repository(repo)
            if prefix != nil { warnings.append("customImage.pushRepoPrefix is ignored because pushRepo is set (as PrimeHub does)") }
        } else if let prefix = prefix?.stringValue {
            config.registry.push = .prefix(prefix)
        }
        config.registry.pushSecret = reader.pick("registry", "pushSecret", twin: "customImage", "pushSecretName")?.stringValue
        config.registry.pullSecret = root.value(at: "registry", "pullSecret")?.stringValue
        if root["customImage"] != nil, config.registry.pullSecret == nil {
            // PrimeHub's configuration has no pull secret: it hands out the push secret.
            let push = config.registry.pushSecret.map { "the push secret \($0)" } ?? "the push secret"
            warnings.append("the carried-over configuration (customImage) has no registry.pullSecret: Images published from "
                + "ImageSpecs get no spec.pullSecret (users' pods cannot pull them from a private registry), and Images built "
                + "through \"Build Custom Image\" get \(push) as spec.pullSecret, as PrimeHub does (every user of the image "
                + "can push with it); set registry.pullSecret to a pull-only Secret")
        }
        config.registry.insecure = reader.pick("registry", "insecure", twin: "customImage", "insecureSkipVerify")?.boolValue ?? false
        config.registry.insecureEverywhere = root.value(at: "customImage", "insecureSkipVerify")?.boolValue ?? false
        config.registry.caBundle = root.value(at: "registry", "caBundle")?.stringValue
        config.registry.insecureRegistries = root.value(at: "registry", "insecureRegistries")?.arrayValue?.compactMap(\.stringValue) ?? []
        if let bundle = config.registry.caBundle, !bundle.contains("-----BEGIN CERTIFICATE-----") {
            problems.append(ValidationProblem(FieldPath("registry.caBundle"), "must hold PEM certificates (-----BEGIN CERTIFICATE-----)"))
        }

        // Builder.
        var builder = OperatorConfig.Builder()
        if let name = root.value(at: "builder", "strategy")?.stringValue, let strategy = OperatorConfig.BuildStrategy(rawValue: name) {
            builder.strategy = strategy
        }
        let primeHubImage = root.value(at: "customImage", "buildJob", "image").flatMap(Reader.nonEmpty)
        if builder.strategy == .buildah {
            // PrimeHub's build image is a buildah image: it carries over as the buildah strategy's.
            builder.image = reader.pick("builder", "image", twin: "customImage", "buildJob", "image")?.stringValue
        } else {
            builder.image = root.value(at: "builder", "image")?.stringValue
            if primeHubImage != nil {
                warnings.append("ignoring customImage.buildJob.image (PrimeHub's buildah image) because builder.strategy is kaniko; set builder.image for the kaniko executor")
            }
        }
        if !builder.effectiveImage.contains("@") {
            warnings.append("builder.image \(builder.effectiveImage) is not pinned by digest (image@sha256:…)")
        }
        builder.extraArgs = root.value(at: "builder", "extraArgs")?.arrayValue?.compactMap(\.stringValue) ?? []
        builder.resources = reader.pick("builder", "resources", twin: "customImage", "buildJob", "resources").flatMap(resourceRequirements)
        builder.ephemeralStorage = reader.pick("builder", "ephemeralStorage", twin: "customImage", "buildJob", "ephemeralStorage")?.scalarText
        if let driver = root.value(at: "builder", "storageDriver")?.stringValue, let value = OperatorConfig.StorageDriver(rawValue: driver) {
            builder.storageDriver = value
        }
        if let profile = root.value(at: "builder", "seccompProfile")?.stringValue {
            if profile == "Unconfined" {
                builder.seccompProfile = .unconfined
            } else if let reason = seccompProfileProblem(profile) {
                problems.append(ValidationProblem(FieldPath("builder.seccompProfile"), reason, value: profile))
            } else {
                builder.seccompProfile = .localhost(profile)
            }
        }
        if let privileged = root.value(at: "builder", "privileged")?.boolValue { builder.privileged = privileged }
        if let isolate = root.value(at: "builder", "isolatePushCredentials")?.boolValue { builder.isolatePushCredentials = isolate }
        if let allow = root.value(at: "builder", "pipBreakSystemPackages")?.boolValue { builder.pipBreakSystemPackages = allow }
        if builder.strategy == .kaniko {
            for key in ["storageDriver", "seccompProfile", "privileged", "isolatePushCredentials"] where root.value(at: "builder", key) != nil {
                warnings.append("builder.\(key) applies to the buildah strategy only; builder.strategy is kaniko")
            }
        }
        builder.nodeSelector = reader.pick("builder", "nodeSelector", twin: "customImage", "buildJob", "nodeSelector")?
            .objectValue?.compactMapValues(\.stringValue)
        builder.tolerations = try? reader.pick("builder", "tolerations", twin: "customImage", "buildJob", "tolerations")?
            .decode(as: [Toleration].self)
        builder.affinity = reader.pick("builder", "affinity", twin: "customImage", "buildJob", "affinity")
        builder.serviceAccountName = root.value(at: "builder", "serviceAccountName")?.stringValue
        builder.priorityClassName = root.value(at: "builder", "priorityClassName")?.stringValue
        if let seconds = positiveDuration(root.value(at: "builder", "timeout"), "builder.timeout", &problems) {
            builder.timeoutSeconds = seconds
        }
        if let limit = root.value(at: "builder", "backoffLimit")?.intValue { builder.backoffLimit = Int32(clamping: limit) }
        builder.cacheRepo = root.value(at: "builder", "cacheRepo")?.stringValue
        if let pending = positiveDuration(root.value(at: "builder", "pendingTimeout"), "builder.pendingTimeout", &problems) {
            builder.pendingTimeoutSeconds = pending
        }
        config.builder = builder

        if let rebuild = root.value(at: "baseImages", "rebuildOnChange")?.boolValue { config.baseImages.rebuildOnChange = rebuild }
        if let interval = positiveDuration(root.value(at: "baseImages", "checkInterval"), "baseImages.checkInterval", &problems) {
            config.baseImages.checkIntervalSeconds = interval
        }
        if let limit = root.value(at: "baseImages", "maxRebuildsPerHour")?.intValue { config.baseImages.maxRebuildsPerHour = Int(limit) }

        problems += reader.conflicts
        guard problems.isEmpty else { return .failure(failure(problems, document)) }
        return .success(Loaded(config: config, warnings: warnings))
    }

    /// Why `text` is not a Localhost seccomp profile path (relative to the kubelet's seccomp root:
    /// letters, digits, '.', '_', '-' and '/', no '..' segment, not absolute), or nil.
    static func seccompProfileProblem(_ text: String) -> String? {
        let allowed = text.utf8.allSatisfy { PackageGrammar.isAlnum($0) || "._-/".utf8.contains($0) }
        let segments = text.split(separator: "/", omittingEmptySubsequences: false)
        guard !text.isEmpty, allowed, !text.hasPrefix("/"), !segments.contains(where: { $0.isEmpty || $0 == ".." || $0 == "." }) else {
            return "a Localhost seccomp profile is a path relative to the kubelet's seccomp root (letters, digits, '.', '_', '-', '/'; no '..'), or Unconfined"
        }
        return nil
    }

    /// A duration key that must be longer than zero, in seconds.
    static func positiveDuration(_ value: JSONValue?, _ path: String, _ problems: inout [ValidationProblem]) -> Int64? {
        guard let text = value?.scalarText, let seconds = GoDuration.seconds(text) else { return nil }
        guard seconds > 0 else {
            problems.append(ValidationProblem(FieldPath(path), "must be longer than zero", value: text))
            return nil
        }
        return seconds
    }

    static func failure(_ problems: [ValidationProblem], _ document: YAMLDocument) -> ConfigFailure {
        ConfigFailure(problems: problems.map { LocatedProblem($0, at: document.position(of: $0.path)) })
    }

    static func resourceRequirements(_ value: JSONValue) -> ResourceRequirements? {
        func list(_ key: String) -> [String: String]? {
            value[key]?.objectValue?.compactMapValues(\.scalarText)
        }
        return ResourceRequirements(requests: list("requests"), limits: list("limits"))
    }

    /// Reads a native key and its PrimeHub twin, recording a conflict when both are set and differ.
    struct Reader {
        let root: JSONValue
        var conflicts: [ValidationProblem] = []

        mutating func pick(_ section: String, _ key: String, twin twinPath: String...) -> JSONValue? {
            let native = root.value(at: section, key).flatMap(Self.nonEmpty)
            let twin = twinPath.reduce(Optional(root)) { $0?[$1] }.flatMap(Self.nonEmpty)
            if let native, let twin, native != twin {
                conflicts.append(ValidationProblem(
                    FieldPath([.key(section), .key(key)]),
                    "disagrees with \(twinPath.joined(separator: ".")); set one of them"))
            }
            return native ?? twin
        }

        /// Empty strings and `null` count as not set (PrimeHub's values files leave keys empty).
        static func nonEmpty(_ value: JSONValue) -> JSONValue? {
            switch value {
            case .null: return nil
            case .string(let text) where text.isEmpty: return nil
            default: return value
            }
        }
    }
}
