import KubeTypes

/// The ImageSpec's schema: the CRD's structural schema and the Swift validation in one description.
public enum ImageSpecSchema {
    public static let maxPackagesPerList = 200
    public static let maxEnv = 64
    public static let maxEnvNameLength = 256
    public static let maxEnvValueLength = 4096
    public static let maxBuildRecords = 100

    /// RE2 patterns for the CRD. Each accepts everything the Swift checks accept.
    ///
    /// The fields PrimeHub's own CRD declares (`baseImage`, `pullSecret`, the package lists) carry
    /// no grammar here: the API server validates the whole object on every write, `/status` and
    /// labels included, so a pattern would freeze every object PrimeHub accepted that the grammar
    /// refuses (`apt: [Curl]`) — the operator could never say why it does not build. Their items
    /// carry `singleLine` only, which refuses nothing PrimeHub's filter (`^[a-zA-Z0-9-_:=\.]+$`)
    /// would have let through. The full grammar is in the operator (status `InvalidSpec`) and in
    /// `image-builder validate`. Fields PrimeHub never had (`env`, `publish`) keep their patterns.
    public enum Patterns {
        public static let environmentName = "^[A-Za-z_][A-Za-z0-9_]*$"
        public static let dnsSubdomain = "^[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*$"
        public static let singleLine = "^[^\\p{Cc}\\p{Cf}\\p{Zl}\\p{Zp}]*$"
        public static let noNUL = "^[^\\x00]*$"
    }

    static func packageList(_ description: String, item: Schema, checks: [Schema.Check] = []) -> Schema {
        .array(of: item, maxItems: maxPackagesPerList, description, checks: checks)
    }

    static let secretName = Schema.string(maxLength: 253, checks: [.dnsSubdomain])

    static func singleLine(_ description: String, maxLength: Int) -> Schema {
        .string(description, maxLength: maxLength, pattern: Patterns.singleLine)
    }

    public static let packages = Schema.object(
        "Packages to install, each list in the order given; apt first, then conda, then pip.",
        [
            "apt": packageList(
                "Debian packages: name[:arch][=version|/release].",
                item: .string(maxLength: PackageGrammar.maxAptLength, pattern: Patterns.singleLine, checks: [.aptPackage])),
            "pip": packageList(
                "PEP 508 requirements (numpy>=1.17,<2; pkg[extra]; name @ https://…).",
                item: .string(maxLength: PackageGrammar.maxPipLength, pattern: Patterns.singleLine, checks: [.pipRequirement])),
            "conda": packageList(
                "Conda match specs (numpy, tensorflow=1.13*, conda-forge::numpy==1.17*); \"-c\", \"CHANNEL\" item pairs add channels.",
                item: .string(maxLength: PackageGrammar.maxCondaLength, pattern: Patterns.singleLine),
                checks: [.condaList]),
        ])

    public static let env = Schema.array(
        of: .object(required: ["name"], [
            "name": .string(maxLength: maxEnvNameLength, pattern: Patterns.environmentName, checks: [.envName]),
            "value": .string(maxLength: maxEnvValueLength, pattern: Patterns.noNUL, text: .anyButNUL),
        ]),
        maxItems: maxEnv,
        "Environment variables set in the image, in order. Changing them changes the image hash.",
        checks: [.uniqueKey("name")]
    ).with { $0.extensions = ["x-kubernetes-list-type": .string("map"), "x-kubernetes-list-map-keys": .array([.string("name")])] }

    public static let publish = Schema.object(
        "Publish the built image as an entry of PrimeHub's image list (an images.primehub.io object).",
        [
            "name": .string("Name of the Image object; the ImageSpec's name when empty.",
                            maxLength: 253, pattern: Patterns.dnsSubdomain, checks: [.dnsSubdomain]),
            "displayName": singleLine("Name shown to users.", maxLength: 256),
            "description": singleLine("Description shown to users.", maxLength: 2048),
            "type": .string("Instance types the image is for.", enum: ["cpu", "gpu", "both"]),
            "groupName": singleLine("Group the image belongs to; empty for a system image.", maxLength: 253),
        ])

    public static let spec = Schema.object(
        "What to build.", required: ["baseImage", "packages"],
        [
            "baseImage": .string("Image to build on: [registry/]path[:tag][@digest].", maxLength: 512,
                                 checks: [.imageReference]),
            "pullSecret": secretName.with { $0.description = "A kubernetes.io/dockerconfigjson Secret for pulling the base image." },
            "packages": packages,
            "updateTime": .string("Rebuild trigger: set to a newer time to build again.", format: "date-time", checks: [.dateTime]),
            "env": env,
            "cancel": .boolean("Stop the running build."),
            "publish": publish,
        ])

    static let time = Schema.string(format: "date-time", checks: [.dateTime])

    public static let condition = Schema.object(
        required: ["type", "status"],
        [
            "type": .string("Ready, Reconciling or Stalled.", maxLength: 316),
            "status": .string(enum: ["True", "False", "Unknown"]),
            "reason": .string(maxLength: 1024),
            "message": .string(maxLength: 32768, text: .anyButNUL),
            "observedGeneration": .integer(minimum: 0),
            "lastTransitionTime": time,
        ])

    public static let buildRecord = Schema.object(
        required: ["jobName", "hash", "phase"],
        [
            "jobName": .string(), "hash": .string(), "phase": .string(), "image": .string(), "digest": .string(),
            "startTime": time, "completionTime": time, "reason": .string(),
        ])

    public static let status = Schema.object(
        "What came of it.", required: ["phase", "jobName", "image"],
        [
            "phase": .string("Pending, Running, Succeeded, Failed or Cancelled."),
            "jobName": .string("The Job of the current build."),
            "image": .string("The image built for the current spec."),
            "observedGeneration": .integer(minimum: 0),
            "conditions": Schema.array(of: condition, maxItems: 16)
                .with { $0.extensions = ["x-kubernetes-list-type": .string("map"), "x-kubernetes-list-map-keys": .array([.string("type")])] },
            "digest": .string("Digest of image."),
            "baseImageDigest": .string("Digest the base image resolved to."),
            "startTime": time,
            "completionTime": time,
            "builds": .array(of: buildRecord, maxItems: maxBuildRecords, "Builds, newest first."),
        ])

    public static let metadata = Schema.object(required: ["name"], [
        "name": .string(checks: [.dnsSubdomain]),
        "namespace": .string(checks: [.dnsLabel]),
    ]).with {
        $0.preservesUnknownFields = true
        $0.opaqueInCRD = true
    }

    /// A whole ImageSpec document.
    public static let document = Schema.object(
        "ImageSpec: an image to build from a base image, packages and environment.",
        required: ["apiVersion", "kind", "metadata", "spec"],
        [
            "apiVersion": .string(enum: ["primehub.io/v1alpha1"]),
            "kind": .string(enum: ["ImageSpec"]),
            "metadata": metadata,
            "spec": spec,
            "status": status,
        ])
}
