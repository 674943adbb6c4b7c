import Foundation
import ImageBuilder
import KubeClient
import KubeRuntime
import KubeTypes
import Logging

/// Converges one Image of PrimeHub's image list that asks for a build (`spec.imageSpec.baseImage`,
/// the console's "Build Custom Image"): the same decision and shell as an ImageSpec, with the
/// Image's own status writer. Regular Images (no build request) are never touched.
///
/// The Image has no status subresource: the writer updates the whole object, conditional on the
/// resourceVersion the pass decided from; a conflict (someone else wrote the Image meanwhile)
/// means "decide again" from the newer object, so no field another writer set is lost.
public struct ImageReconciler: Reconciler {
    public let images: StoreSet<Image>
    let shell: BuildShell

    public var jobs: StoreSet<Job> { shell.jobs }

    public init(client: KubernetesClient, config: OperatorConfig, registry: any RegistryInspector,
                images: StoreSet<Image>, jobs: StoreSet<Job>, pods: StoreSet<Pod>, imageSpecJobs: StoreSet<ImageSpecJob>,
                events: EventRecorder?, stalledRetryInterval: Duration = .seconds(60),
                clock: @escaping @Sendable () -> Date = { Date() },
                logger: Logger = Logger(label: "image-builder.image-reconciler")) {
        self.images = images
        self.shell = BuildShell(client: client, config: config, registry: registry, jobs: jobs, pods: pods,
                                imageSpecJobs: imageSpecJobs, events: events, clock: clock,
                                policy: ReconcilePolicy(stalledRetryInterval: stalledRetryInterval), logger: logger)
    }

    public func reconcile(_ key: ObjectKey) async throws -> ReconcileResult {
        guard let image = images.get(key), image.metadata.deletionTimestamp == nil,
              let request = ImagePath.imageSpec(of: image)
        else {
            shell.forget(key)
            return .done
        }
        let shell = self.shell
        let config = shell.config
        let prepared = PreparedSpec.of(request, config: config, source: .image)
        let identity = prepared.identity
        return try await shell.reconcile(
            request, prepared: prepared, about: ObjectReference(to: image),
            currentVersion: {
                try await shell.client.get(Image.self, name: image.metadata.name ?? "", namespace: image.metadata.namespace)
                    .metadata.resourceVersion
            },
            writeStatus: { status in
                let updated = ImagePath.image(image, with: status, identity: identity, config: config)
                guard updated != image else { return nil }
                return try await shell.client.update(updated, options: WriteOptions(fieldManager: BuildShell.fieldManager))
                    .metadata.resourceVersion
            })
    }
}
