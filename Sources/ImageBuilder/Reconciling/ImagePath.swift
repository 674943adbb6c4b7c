import Foundation
import KubeTypes

/// PrimeHub's "Build Custom Image": an Image whose `spec.imageSpec.baseImage` is set is built by
/// the same decision as an ImageSpec. Pure: the Image's request seen as an ImageSpec, and the Image
/// as it must be once a status was decided.
///
/// The Image's status has room for PrimeHub's `jobCondition` only, so the decision's own state
/// (conditions, build history, digests) is kept in the annotation
/// `image-builder.primehub.io/build-state`. On success `spec.url`, `spec.urlForGpu` and
/// `jobCondition.image` become the built image, and `spec.pullSecret` the configured pull secret
/// (`registry.pullSecret`), or, when none is configured, the push secret as PrimeHub does it. A
/// failure or a cancel never clears the last good `url`.
public enum ImagePath {
    /// The build request of `image` seen as an ImageSpec (name, namespace, uid and
    /// resourceVersion of the Image); nil for a regular Image, which is never touched.
    ///
    /// The generation is left out: an Image has no status subresource, so each status write
    /// moves its generation, and rebuilds follow the hash and `updateTime` instead.
    public static func imageSpec(of image: Image) -> ImageSpec? {
        guard let spec = image.spec.imageSpec?.imageSpecSpec else { return nil }
        let source = image.metadata
        var metadata = ObjectMeta(name: source.name, namespace: source.namespace)
        metadata.uid = source.uid
        metadata.resourceVersion = source.resourceVersion
        metadata.creationTimestamp = source.creationTimestamp
        metadata.deletionTimestamp = source.deletionTimestamp
        metadata.annotations = source.annotations?.filter { $0.key != MetadataKeys.imageBuildState }
        metadata.labels = source.labels
        return ImageSpec(metadata: metadata, spec: spec, status: buildState(of: image))
    }

    /// The decision's state kept on the Image; nil before its first build (or when unreadable:
    /// the decision then starts from nothing, as after a lost status).
    public static func buildState(of image: Image) -> ImageSpecStatus? {
        BuildStateAnnotation.state(in: image.metadata.annotations)
    }

    /// `image` once `status` is decided for its build of `identity` (nil when the request is
    /// invalid): the build state annotation, `status.jobCondition`, and on success the URLs and
    /// pull secret. Every other field stays as it was.
    public static func image(_ image: Image, with status: ImageSpecStatus, identity: BuildIdentity?,
                             config: OperatorConfig) -> Image {
        var image = image
        var annotations = image.metadata.annotations ?? [:]
        annotations[MetadataKeys.imageBuildState] = BuildStateAnnotation.text(of: status)
        image.metadata.annotations = annotations
        let built = status.phase == BuildPhase.succeeded.rawValue && !status.image.isEmpty
        image.status = Image.Status(jobCondition: Image.JobCondition(
            phase: status.phase, jobName: identity?.recordName ?? (image.metadata.name ?? ""),
            image: built ? status.image : (image.status?.jobCondition.image ?? "")))
        if built {
            image.spec.url = status.image
            image.spec.urlForGpu = status.image
            if let secret = config.registry.pullSecret ?? config.registry.pushSecret { image.spec.pullSecret = secret }
        }
        return image
    }
}

/// The decision's state kept in the annotation `image-builder.primehub.io/build-state`: on Images
/// always, on ImageSpecs where the installed CRD prunes the status to PrimeHub's three fields.
public enum BuildStateAnnotation {
    /// The state in `annotations`; nil when there is none or it is unreadable (the decision then
    /// starts from nothing, as after a lost status).
    public static func state(in annotations: [String: String]?) -> ImageSpecStatus? {
        guard let text = annotations?[MetadataKeys.imageBuildState] else { return nil }
        return try? KubeJSON.decoder.decode(ImageSpecStatus.self, from: Data(text.utf8))
    }

    public static func text(of status: ImageSpecStatus) -> String? {
        (try? KubeJSON.encoder.encode(status)).map { String(decoding: $0, as: UTF8.self) }
    }

    /// `imageSpec` with the state the decision needs: its status, or, when the server pruned the
    /// status (no conditions), the state kept in the annotation.
    public static func restored(_ imageSpec: ImageSpec) -> ImageSpec {
        guard imageSpec.status?.conditions == nil, let kept = state(in: imageSpec.metadata.annotations) else { return imageSpec }
        var restored = imageSpec
        restored.status = kept
        return restored
    }

    /// Whether the server dropped the decision's state from a status it was sent (`written` is the
    /// object the write returned), so that the state must go into the annotation.
    public static func wasPruned(sent: ImageSpecStatus, written: ImageSpec) -> Bool {
        sent.conditions != nil && written.status?.conditions == nil
    }
}
