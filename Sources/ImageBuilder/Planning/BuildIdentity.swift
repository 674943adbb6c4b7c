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

    public init(name: String, namespace: String?, hash: String, jobName: String, targetImage: String) {
        self.name = name
        self.namespace = namespace
        self.hash = hash
        self.jobName = jobName
        self.targetImage = targetImage
    }

    /// The identity of `spec`'s build under `config`; fails when no valid target image results.
    public static func of(_ spec: ValidImageSpec, config: OperatorConfig) throws(PlanError) -> BuildIdentity {
        let hash = SpecHash.compute(spec.spec)
        let target = try BuildPlanner.targetImage(name: spec.name, hash: hash, destination: config.registry.push)
        return BuildIdentity(name: spec.name, namespace: spec.imageSpec.metadata.namespace, hash: hash,
                             jobName: BuildNaming.jobName(imageSpecName: spec.name, hash: hash), targetImage: target)
    }

    /// Labels of everything a build creates. The name label is left out when the name is too long
    /// for a label value (names may have 253 characters, label values 63).
    public var labels: [String: String] {
        var labels = [BuildPlanner.managedByLabel: BuildPlanner.managedByValue, "app": "primehub-custom-image"]
        if name.count <= 63 { labels[BuildPlanner.nameLabel] = name }
        return labels
    }

    /// Annotations of everything a build creates.
    public var annotations: [String: String] {
        [BuildPlanner.hashAnnotation: hash, BuildPlanner.imageSpecAnnotation: name, BuildPlanner.targetImageAnnotation: targetImage]
    }
}
