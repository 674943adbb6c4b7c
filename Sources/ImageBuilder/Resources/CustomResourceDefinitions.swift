import KubeTypes

/// The CustomResourceDefinitions of `crds/`, built from the same schemas that validate in Swift.
/// They are `apiextensions.k8s.io/v1` and use nothing newer than Kubernetes 1.20.
public enum CustomResourceDefinitions {
    /// File name (in `crds/`) and definition.
    public static var all: [(file: String, definition: JSONValue)] {
        [("primehub.io_imagespecs.yaml", imageSpecs), ("primehub.io_images.yaml", images),
         ("primehub.io_imagespecjobs.yaml", imageSpecJobs)]
    }

    /// `imagespecs.primehub.io`: PrimeHub's schema plus env, cancel, publish and the richer status,
    /// with real validation.
    public static var imageSpecs: JSONValue {
        definition(
            plural: "imagespecs", kind: "ImageSpec", shortNames: ["ispec"],
            schema: ImageSpecSchema.spec, status: ImageSpecSchema.status,
            description: "ImageSpec: an image to build from a base image, packages and environment variables.",
            columns: [
                column("Status", ".status.phase", "Phase of the current build"),
                column("Reason", #".status.conditions[?(@.type=="Ready")].reason"#, "Why the ImageSpec is where it is"),
                column("Image", ".status.image", "The last image built successfully"),
                column("Age", ".metadata.creationTimestamp", nil, type: "date"),
            ],
            statusSubresource: true)
    }

    /// `images.primehub.io`, as PrimeHub defines it (no status subresource).
    public static var images: JSONValue {
        definition(
            plural: "images", kind: "Image", shortNames: [],
            schema: PrimeHubSchemas.imageSpec, status: PrimeHubSchemas.imageStatus,
            description: "Image: an entry of PrimeHub's image list.",
            columns: [
                column("Type", ".spec.type", "type of current image"),
                column("Group", ".spec.groupName", "group of current image"),
                column("Status", ".status.jobCondition.phase", "phase of current image"),
                column("Age", ".metadata.creationTimestamp", nil, type: "date"),
            ],
            statusSubresource: false)
    }

    /// `imagespecjobs.primehub.io`, as PrimeHub defines it.
    public static var imageSpecJobs: JSONValue {
        definition(
            plural: "imagespecjobs", kind: "ImageSpecJob", shortNames: [],
            schema: PrimeHubSchemas.imageSpecJobSpec, status: PrimeHubSchemas.imageSpecJobStatus,
            description: "ImageSpecJob: PrimeHub's record of one build.",
            columns: [
                column("Status", ".status.phase", "status of current job"),
                column("Age", ".metadata.creationTimestamp", nil, type: "date"),
            ],
            statusSubresource: true)
    }

    static func column(_ name: String, _ path: String, _ description: String?, type: String = "string") -> JSONValue {
        var out: [String: JSONValue] = ["name": .string(name), "jsonPath": .string(path), "type": .string(type)]
        if let description { out["description"] = .string(description) }
        return .object(out)
    }

    static func definition(plural: String, kind: String, shortNames: [String], schema: Schema, status: Schema,
                           description: String, columns: [JSONValue], statusSubresource: Bool) -> JSONValue {
        let group = ImageSpec.resourceType.group
        let root = Schema.object(description, [
            "apiVersion": .string("APIVersion of this representation of an object."),
            "kind": .string("Kind of the REST resource this object represents."),
            "metadata": Schema(kind: .object),
            "spec": schema,
            "status": status,
        ])
        var names: [String: JSONValue] = [
            "kind": .string(kind), "listKind": .string(kind + "List"),
            "plural": .string(plural), "singular": .string(kind.lowercased()),
        ]
        if !shortNames.isEmpty { names["shortNames"] = .array(shortNames.map(JSONValue.string)) }
        return .object([
            "apiVersion": .string("apiextensions.k8s.io/v1"),
            "kind": .string("CustomResourceDefinition"),
            "metadata": .object(["name": .string("\(plural).\(group)")]),
            "spec": .object([
                "group": .string(group),
                "names": .object(names),
                "scope": .string("Namespaced"),
                "versions": .array([.object([
                    "name": .string("v1alpha1"),
                    "served": .bool(true),
                    "storage": .bool(true),
                    "additionalPrinterColumns": .array(columns),
                    "schema": .object(["openAPIV3Schema": root.openAPIV3]),
                    "subresources": .object(statusSubresource ? ["status": .object([:])] : [:]),
                ])]),
            ]),
        ])
    }
}

/// PrimeHub's own schemas for the kinds the operator shares with it, unchanged in what they accept.
public enum PrimeHubSchemas {
    static let packages = Schema.object([
        "apt": .array(of: .string()), "pip": .array(of: .string()), "conda": .array(of: .string()),
    ])

    public static let imageSpec = Schema.object("The image list entry.", [
        "displayName": .string(), "description": .string(), "type": .string(), "url": .string(),
        "urlForGpu": .string(), "pullSecret": .string(), "groupName": .string(),
        "imageSpec": Schema.object("A build request.", required: ["baseImage"], [
            "baseImage": .string(), "pullSecret": .string(), "packages": packages,
            "updateTime": .string(format: "date-time"), "cancel": .boolean(),
        ]),
    ])

    public static let imageStatus = Schema.object(required: ["jobCondition"], [
        "jobCondition": Schema.object(required: ["image", "jobName", "phase"], [
            "phase": .string(), "jobName": .string(), "image": .string(),
        ]),
    ])

    public static let imageSpecJobSpec = Schema.object(
        required: ["baseImage", "packages", "pushSecret", "targetImage"],
        [
            "baseImage": .string(), "packages": packages, "pullSecret": .string(), "pushSecret": .string(),
            "repoPrefix": .string(), "targetImage": .string(), "updateTime": .string(format: "date-time"),
        ])

    public static let imageSpecJobStatus = Schema.object(required: ["phase", "podName"], [
        "phase": .string(), "podName": .string(),
        "startTime": .string(format: "date-time"), "finishTime": .string(format: "date-time"),
    ])
}
