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

    /// Drops `metadata.managedFields` and shares the strings cached objects repeat (label and
    /// annotation keys, owner API versions: `StringInterner.shared`). The values are unchanged.
    @Sendable public static func compact<Object: KubeObject>(_ object: Object) -> Object {
        var object = stripManagedFields(object)
        object.metadata = StringInterner.shared.intern(object.metadata)
        return object
    }

    /// Keeps what a controller watching its Jobs needs: metadata (`compact`), status, the spec's
    /// limits, and of the pod template only its spec's summary (`PodSpec.summary`: each (init)
    /// container's name and image, the restart policy, the node). Drops the template's metadata
    /// (the Job's own labels carry what it selects), the selector, commands, arguments,
    /// environment, volumes and the rest.
    @Sendable public static func summarizeJob(_ job: Job) -> Job {
        var job = compact(job)
        guard var spec = job.spec else { return job }
        spec.template = PodTemplateSpec(spec: spec.template.spec?.summary.withSharedImages())
        spec.selector = nil
        job.spec = spec
        return job
    }

    /// Keeps what a controller watching its build Pods reads: metadata (`compact`), the whole
    /// status, and of the spec only its summary (`PodSpec.summary`: each (init) container's name
    /// and image, the restart policy, the node). Drops commands, environment, volumes, mounts and
    /// security contexts.
    @Sendable public static func summarizePod(_ pod: Pod) -> Pod {
        var pod = compact(pod)
        pod.spec = pod.spec?.summary.withSharedImages()
        if let statuses = pod.status?.containerStatuses { pod.status?.containerStatuses = statuses.map(\.withSharedImages) }
        if let statuses = pod.status?.initContainerStatuses { pod.status?.initContainerStatuses = statuses.map(\.withSharedImages) }
        return pod
    }

    /// No transform.
    @Sendable public static func identity<Object: KubeObject>(_ object: Object) -> Object { object }
}

extension Container {
    /// The same container with its image shared (`StringInterner.shared`).
    var withSharedImage: Container {
        var container = self
        container.image = image.map(StringInterner.shared.intern)
        return container
    }
}

extension PodSpec {
    /// The same spec with its (init) containers' images shared (`StringInterner.shared`).
    func withSharedImages() -> PodSpec {
        var spec = self
        spec.containers = containers.map(\.withSharedImage)
        spec.initContainers = initContainers?.map(\.withSharedImage)
        return spec
    }
}

extension ContainerStatus {
    /// The same status with its image and image ID shared (`StringInterner.shared`).
    var withSharedImages: ContainerStatus {
        var status = self
        status.image = image.map(StringInterner.shared.intern)
        status.imageID = imageID.map(StringInterner.shared.intern)
        return status
    }
}
