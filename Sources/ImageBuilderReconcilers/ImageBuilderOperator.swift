import Foundation
import ImageBuilder
import KubeClient
import KubeRuntime
import KubeTypes
import Logging
import RegistryClient
import RegistryTypes
import UnixSignals

/// The operator assembled: watchers for ImageSpecs and their build Jobs and Pods (per watched
/// namespace), the ImageSpec controller, and optionally leader election and the probe endpoint.
public struct ImageBuilderOperator: Sendable {
    public struct Options: Sendable {
        /// Namespaces to watch; empty for all (overrides the configuration's `watchNamespaces`
        /// when set).
        public var namespaces: [String]
        public var workers: Int
        /// Lease name and namespace; nil runs without leader election (one replica only).
        public var leaderElection: LeaderElectionConfiguration?
        /// Where `/healthz`, `/readyz` and `/metrics` listen; nil for no endpoint.
        public var probeHost: String
        public var probePort: Int?
        /// The platform picked from multi-platform base images.
        public var platform: Platform
        /// How soon an ImageSpec stalled on something outside it (a missing secret, a base image
        /// not found or refused) is looked at again, so that fixing that thing heals it.
        public var stalledRetryInterval: Duration

        public init(namespaces: [String] = [], workers: Int = 16, leaderElection: LeaderElectionConfiguration? = nil,
                    probeHost: String = "0.0.0.0", probePort: Int? = 8080, platform: Platform = .linuxAMD64,
                    stalledRetryInterval: Duration = .seconds(60)) {
            self.namespaces = namespaces
            self.workers = workers
            self.leaderElection = leaderElection
            self.probeHost = probeHost
            self.probePort = probePort
            self.platform = platform
            self.stalledRetryInterval = stalledRetryInterval
        }
    }

    public let controller: Controller<ImageSpecReconciler>
    /// The Image path: Images that ask for a build (PrimeHub's "Build Custom Image").
    public let imageController: Controller<ImageReconciler>
    public let manager: ControllerManager
    public let reconciler: ImageSpecReconciler
    public let leaderElector: LeaderElector?
    public let probeServer: ProbeServer?

    /// Builds the operator. `registry` defaults to the live registry client configured from
    /// `config.registry` (insecure flag and CA bundle apply to the push registry).
    public init(client: KubernetesClient, config: OperatorConfig, options: Options,
                registry: (any RegistryInspector)? = nil, logger: Logger = Logger(label: "image-builder")) {
        let namespaces: [String?] = {
            let list = options.namespaces.isEmpty ? config.watchNamespaces : options.namespaces
            return list.isEmpty ? [nil] : list.map { $0 }
        }()
        let specWatchers = namespaces.map {
            Watcher(client: client, ImageSpec.self, scope: WatchScope(namespace: $0), decoding: CacheDecoding.imageSpecs,
                    transform: StoreTransforms.compact)
        }
        let imageWatchers = namespaces.map {
            Watcher(client: client, Image.self, scope: WatchScope(namespace: $0), decoding: CacheDecoding.images,
                    transform: StoreTransforms.compact)
        }
        // Each path watches its own builds (PrimeHub's `app` label tells them apart).
        let specBuilds = BuildWatchers(client: client, namespaces: namespaces, source: .imageSpec)
        let imageBuilds = BuildWatchers(client: client, namespaces: namespaces, source: .image)

        let pushPrefix: String? = if case .prefix(let prefix) = config.registry.push { prefix } else { nil }
        let inspector = registry ?? LiveRegistryInspector(client: Self.registryClient(config: config, platform: options.platform),
                                                          pushPrefix: pushPrefix)
        let events = EventRecorder(client: client, component: "image-builder")
        let reconciler = ImageSpecReconciler(
            client: client, config: config, registry: inspector, imageSpecs: StoreSet(specWatchers.map(\.store)),
            jobs: specBuilds.jobStores, pods: specBuilds.podStores, imageSpecJobs: specBuilds.recordStores, events: events,
            stalledRetryInterval: options.stalledRetryInterval, logger: logger)
        let imageReconciler = ImageReconciler(
            client: client, config: config, registry: inspector, images: StoreSet(imageWatchers.map(\.store)),
            jobs: imageBuilds.jobStores, pods: imageBuilds.podStores, imageSpecJobs: imageBuilds.recordStores, events: events,
            stalledRetryInterval: options.stalledRetryInterval, logger: logger)

        let elector = options.leaderElection.map { LeaderElector(client: client, configuration: $0) }
        let controller = Controller(name: "imagespec", reconciler: reconciler, workers: max(options.workers, 1),
                                    leaderElector: elector, eventRecorder: events, logger: logger)
        for watcher in specWatchers { controller.watch(watcher) }
        specBuilds.feed(controller, owner: ImageSpec.resourceType)
        // One event recorder, run (and flushed at shutdown) by the ImageSpec controller.
        let imageController = Controller(name: "image", reconciler: imageReconciler, workers: max(options.workers, 1),
                                         leaderElector: elector, eventRecorder: nil, logger: logger)
        for watcher in imageWatchers { imageController.watch(watcher) }
        imageBuilds.feed(imageController, owner: Image.resourceType)
        let probes = options.probePort.map { ProbeServer(host: options.probeHost, port: $0) }
        let manager = ControllerManager(leaderElector: elector, probeServer: probes)
        manager.add(controller)
        manager.add(imageController)

        self.controller = controller
        self.imageController = imageController
        self.manager = manager
        self.reconciler = reconciler
        self.leaderElector = elector
        self.probeServer = probes
    }

    /// Runs until one of `signals` (graceful: in-flight reconciles finish, the lease is released)
    /// or `shutDown()`. Throws `LeadershipLost` when another replica takes over.
    public func run(signals: [UnixSignal] = [.sigterm, .sigint]) async throws {
        try await manager.run(signals: signals)
    }

    /// Stops gracefully, as SIGTERM would.
    public func shutDown() {
        manager.shutDown()
    }

    /// The registry client for the configuration: the push registry's insecure flag and CA bundle,
    /// the insecure base-image registries, and with PrimeHub's `customImage.insecureSkipVerify`
    /// every registry insecure.
    public static func registryClient(config: OperatorConfig, platform: Platform) -> RegistryClient {
        var registries: [String: RegistryOptions] = [:]
        var hosts: [String] = []
        switch config.registry.push {
        case .repository(let repository): hosts.append(repository)
        case .prefix(let prefix): hosts.append(prefix + "/x")
        case nil: break
        }
        if let cache = config.builder.cacheRepo { hosts.append(cache) }
        for host in config.registry.insecureRegistries {
            registries[host] = RegistryOptions(insecure: true)
        }
        for reference in hosts {
            guard let host = ImageReference.parse(reference)?.registry else { continue }
            registries[host] = RegistryOptions(insecure: config.registry.insecure || config.registry.insecureRegistries.contains(host),
                                               caData: config.registry.caBundle.map { Data($0.utf8) })
        }
        var configuration = RegistryClient.Configuration(registries: registries, defaultPlatform: platform)
        if config.registry.insecureEverywhere {
            // PrimeHub's `insecureSkipVerify`: the operator's own checks of base images and targets
            // skip verification wherever the build does.
            configuration.otherRegistries = RegistryOptions(insecure: true, caData: config.registry.caBundle.map { Data($0.utf8) })
            for host in registries.keys { registries[host]?.insecure = true }
            configuration.registries = registries
        }
        return RegistryClient(configuration: configuration)
    }
}

/// The watches of one build path's objects (Jobs, their Pods, PrimeHub's records), selected by the
/// path's `app` label, and how their changes reach the path's controller.
struct BuildWatchers {
    let jobs: [Watcher<Job>]
    let pods: [Watcher<Pod>]
    let records: [Watcher<ImageSpecJob>]

    init(client: KubernetesClient, namespaces: [String?], source: BuildSource) {
        let selector = "\(MetadataKeys.managedBy)=\(MetadataKeys.managedByValue),app=\(source.appLabel)"
        jobs = namespaces.map {
            Watcher(client: client, Job.self, scope: WatchScope(namespace: $0, labelSelector: selector),
                    decoding: CacheDecoding.builds, transform: StoreTransforms.summarizeJob)
        }
        pods = namespaces.map {
            Watcher(client: client, Pod.self, scope: WatchScope(namespace: $0, labelSelector: selector),
                    decoding: CacheDecoding.builds, transform: StoreTransforms.summarizePod)
        }
        // PrimeHub's own records (from before the cutover, or from its builder still running) carry
        // the `app` label only: they are watched too, for adoption and to see another controller.
        records = namespaces.map {
            Watcher(client: client, ImageSpecJob.self, scope: WatchScope(namespace: $0, labelSelector: "app=\(source.appLabel)"),
                    decoding: CacheDecoding.records, transform: StoreTransforms.compact)
        }
    }

    var jobStores: StoreSet<Job> { StoreSet(jobs.map(\.store)) }
    var podStores: StoreSet<Pod> { StoreSet(pods.map(\.store)) }
    var recordStores: StoreSet<ImageSpecJob> { StoreSet(records.map(\.store)) }

    /// Jobs and records enqueue their controller owner (of kind `owner`). A build Pod names what it
    /// builds in an annotation (from the Job's pod template, in the owner's namespace); Pods of
    /// older builds are traced through their Job.
    func feed<R: Reconciler>(_ controller: Controller<R>, owner: ResourceType) {
        for watcher in jobs { controller.owns(watcher, owner: owner) }
        for watcher in records { controller.owns(watcher, owner: owner) }
        let jobs = jobStores
        for watcher in pods {
            controller.watches(watcher) { pod in
                if let name = pod.metadata.annotations?[MetadataKeys.imageSpec] {
                    return [ObjectKey(namespace: pod.metadata.namespace, name: name)]
                }
                guard let job = pod.metadata.controllerReference.flatMap({ owner in
                          owner.kind == "Job" ? jobs.get(name: owner.name, namespace: pod.metadata.namespace) : nil
                      }),
                      let key = OwnerMapping.controllerOwnerKey(of: job.metadata, owner: owner)
                else { return [] }
                return [key]
            }
        }
    }
}

/// What the operator's caches decode of each kind: only what it reads, by how it writes them.
public enum CacheDecoding {
    /// ImageSpecs are written by patches only (status, labels): the model's fields.
    public static let imageSpecs = DecodingProfile.modelOnly
    /// Images are written back whole (`update`): their unknown fields are kept.
    public static let images = DecodingProfile.withoutManagedFields
    /// Build Jobs and Pods are followed by their metadata and status: pod specs as summaries.
    public static let builds = DecodingProfile.summary
    /// PrimeHub's records are read from the cache and written by status patches, or updated after
    /// a fresh read: the model's fields.
    public static let records = DecodingProfile.modelOnly
}
