import KubeTypes

/// The entry in PrimeHub's image list (`images.primehub.io`) for a successful build of an
/// ImageSpec with `spec.publish`.
public enum ImagePublisher {
    /// Annotation naming the ImageSpec (`namespace/name`) an Image is published from.
    public static let sourceAnnotation = MetadataKeys.imageSpec

    /// The Image object's name: `publish.name`, or the ImageSpec's name.
    public static func imageName(of spec: ValidImageSpec) -> String? {
        guard let publish = spec.spec.publish else { return nil }
        return publish.name ?? spec.name
    }

    /// Whether `image` was published from `spec` (so it may be updated from it).
    public static func isPublished(_ image: Image, from spec: ValidImageSpec) -> Bool {
        image.metadata.annotations?[sourceAnnotation] == spec.imageSpec.key.description
    }

    /// `existing` (or a new Image) pointing at `builtImage`. Fields of `publish` that are set
    /// replace the Image's; `url` and `urlForGpu` become the built image; `pullSecret` becomes the
    /// configured pull secret (the push secret is never written unless configured as the pull
    /// secret); members this model does not know are kept. Nil when the spec does not publish.
    public static func publish(_ spec: ValidImageSpec, builtImage: String, jobName: String, config: OperatorConfig,
                               existing: Image?) -> Image? {
        guard let publish = spec.spec.publish, let name = imageName(of: spec) else { return nil }
        var image = existing ?? Image(metadata: ObjectMeta(name: name, namespace: spec.imageSpec.metadata.namespace))
        var annotations = image.metadata.annotations ?? [:]
        annotations[sourceAnnotation] = spec.imageSpec.key.description
        image.metadata.annotations = annotations
        var labels = image.metadata.labels ?? [:]
        labels[BuildPlanner.managedByLabel] = BuildPlanner.managedByValue
        image.metadata.labels = labels

        image.spec.displayName = publish.displayName ?? image.spec.displayName ?? name
        image.spec.description = publish.description ?? image.spec.description
        image.spec.type = publish.type ?? image.spec.type ?? "both"
        image.spec.groupName = publish.groupName ?? image.spec.groupName
        image.spec.url = builtImage
        image.spec.urlForGpu = builtImage
        image.spec.pullSecret = config.registry.pullSecret
        image.status = Image.Status(jobCondition: Image.JobCondition(
            phase: BuildPhase.succeeded.rawValue, jobName: jobName, image: builtImage))
        return image
    }
}
