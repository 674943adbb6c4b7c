import KubeClient
import KubeTypes

/// Transforms applied to objects before they are cached, to keep memory small.
public enum StoreTransforms {
    /// Drops `metadata.managedFields` (server-side apply bookkeeping, often the largest part).
    @Sendable public static func stripManagedFields<Object: KubeObject>(_ object: Object) -> Object {
        guard object.metadata.managedFields != nil else { return object }
        var object = object
        object.metadata.managedFields = nil
        return object
    }

    /// Keeps what a controller watching its Jobs needs: metadata (without managedFields), status,
    /// the spec's limits, and of the pod template only its spec's summary (`PodSpec.summary`: each
    /// (init) container's name and image, the restart policy, the node). Drops the template's metadata (the Job's
    /// own labels carry what it selects), the selector, commands, arguments, environment, volumes
    /// and the rest.
    @Sendable public static func summarizeJob(_ job: Job) -> Job {
        var job = stripManagedFields(job)
        guard var spec = job.spec else { return job }
        spec.template = PodTemplateSpec(spec: spec.template.spec?.summary)
        spec.selector = nil
        job.spec = spec
        return job
    }

    /// Keeps what a controller watching its build Pods reads: metadata (without managedFields),
    /// the whole status, and of the spec only each (init) container's name and image, the restart
    /// policy and the node. Drops commands, environment, volumes, mounts and security contexts.
    @Sendable public static func summarizePod(_ pod: Pod) -> Pod {
        var pod = stripManagedFields(pod)
        pod.spec = pod.spec?.summary
        return pod
    }

    /// No transform.
    @Sendable public static func identity<Object: KubeObject>(_ object: Object) -> Object { object }
}
