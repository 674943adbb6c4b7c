import Foundation
import KubeTypes

/// Who a build is: the spec hash, the Job (and ConfigMap and Secret) name, the target image, and
/// the labels and annotations every object of the build carries. Computed once per reconcile
/// from the valid spec and the configuration; the planner and the decision both read it.
public struct BuildIdentity: Sendable, Hashable {
    /// The name of what is built (the ImageSpec's, or the Image's on PrimeHub's Image path).
    public var name: String
    public var namespace: String?
    /// PrimeHub's spec hash (8 hex digits).
    public var hash: String
    /// `<name>-<hash>`, cut to 63 characters when longer.
    public var jobName: String
    /// Where the image is pushed.
    public var targetImage: String
    /// What asked for the build.
    public var source: BuildSource
    /// The name of PrimeHub's record of the build (its ImageSpecJob): the Job's name on the
    /// ImageSpec path, the Image's name on the Image path (PrimeHub keeps one per Image).
    public var recordName: String
    /// The controller owner of everything the build creates.
    public var owner: OwnerReference?

    public init(name: String, namespace: String?, hash: String, jobName: String, targetImage: String,
                source: BuildSource = .imageSpec, recordName: String? = nil, owner: OwnerReference? = nil) {
        self.name = name
        self.namespace = namespace
        self.hash = hash
        self.jobName = jobName
        self.targetImage = targetImage
        self.source = source
        self.recordName = recordName ?? jobName
        self.owner = owner
    }

    /// The identity of `spec`'s build under `config`; fails when no valid target image results.
    /// On the Image path (`source: .image`), `spec` is the Image's build request seen as an
    /// ImageSpec (`ImagePath.imageSpec(of:)`); its Job is `image-<name>-<hash>`, so that it never
    /// meets the build of an ImageSpec of the same name.
    public static func of(_ spec: ValidImageSpec, config: OperatorConfig, source: BuildSource = .imageSpec) throws(PlanError) -> BuildIdentity {
        let hash = SpecHash.compute(spec.spec)
        let target = try BuildPlanner.targetImage(name: spec.name, hash: hash, destination: config.registry.push)
        let metadata = spec.imageSpec.metadata
        switch source {
        case .imageSpec:
            let owner = metadata.uid == nil ? nil : OwnerReference.controller(of: spec.imageSpec)
            return BuildIdentity(name: spec.name, namespace: metadata.namespace, hash: hash,
                                 jobName: BuildNaming.jobName(imageSpecName: spec.name, hash: hash), targetImage: target,
                                 source: .imageSpec, owner: owner)
        case .image:
            let owner = metadata.uid.map {
                OwnerReference(apiVersion: Image.resourceType.apiVersion, kind: Image.resourceType.kind, name: spec.name,
                               uid: $0, controller: true, blockOwnerDeletion: true)
            }
            return BuildIdentity(name: spec.name, namespace: metadata.namespace, hash: hash,
                                 jobName: BuildNaming.jobName(imageSpecName: "image-" + spec.name, hash: hash), targetImage: target,
                                 source: .image, recordName: spec.name, owner: owner)
        }
    }

    /// Labels of everything a build creates: PrimeHub's for its path. The name label is left out
    /// when the name is too long for a label value (names may have 253 characters, label values 63).
    public var labels: [String: String] {
        var labels = [MetadataKeys.managedBy: MetadataKeys.managedByValue, "app": source.appLabel]
        if name.count <= 63 { labels[source.nameLabel] = name }
        return labels
    }

    /// Annotations of everything a build creates.
    public var annotations: [String: String] {
        [source.hashAnnotation: hash, MetadataKeys.imageSpec: name, MetadataKeys.targetImage: targetImage]
    }

    /// The annotations of PrimeHub's record (its hash annotation).
    public var recordAnnotations: [String: String] { [source.hashAnnotation: hash] }
}

/// What asked for a build: an ImageSpec, or an Image's `spec.imageSpec` (PrimeHub's "Build Custom
/// Image"). PrimeHub labels the two differently.
public enum BuildSource: String, Sendable, Hashable {
    case imageSpec
    case image

    /// `app`: `primehub-custom-image` or `primehub-image`.
    public var appLabel: String { self == .imageSpec ? "primehub-custom-image" : "primehub-image" }
    public var nameLabel: String { self == .imageSpec ? MetadataKeys.imageSpecName : MetadataKeys.imageName }
    public var hashAnnotation: String { self == .imageSpec ? MetadataKeys.imageSpecHash : MetadataKeys.imageHash }
}
