import CoreMetrics
import KubeClient
import KubeTypes
import Logging
import ServiceLifecycle
import Synchronization

/// Runs a `Reconciler` over a work queue fed by watchers.
///
///     let widgets = Watcher(client: client, Widget.self)
///     let maps = Watcher(client: client, ConfigMap.self, scope: .init(labelSelector: "app=widgets"))
///     let controller = Controller(name: "widget", reconciler: reconciler, workers: 2)
///     controller.watch(widgets)                          // a Widget's key is enqueued
///     controller.owns(maps, owner: Widget.resourceType)  // a ConfigMap's controller owner is enqueued
///     try await controller.run()
///
/// `run()` starts the watchers (and the event recorder, if any), waits until every cache has
/// synced (and, with a leader elector, until this replica leads), then runs `workers` workers.
/// A key is never reconciled by two workers at once.
///
/// Stopping: `shutDown()` or a graceful shutdown of the surrounding ServiceGroup stops taking
/// work, lets in-flight reconciles finish, then stops the watches and sends pending events (for 5 s
/// at most); `run()` returns. Cancelling the task stops everything at once.
///
/// Metrics (dimension `controller`): `controller_runtime_reconcile_total{controller,result}`
/// (`success`, `requeue_after`, `error`), `controller_runtime_reconcile_errors_total`,
/// `controller_runtime_reconcile_time_seconds`, `controller_runtime_active_workers`,
/// `controller_runtime_max_concurrent_reconciles`, and the queue's `workqueue_*` (name = controller).
public final class Controller<R: Reconciler>: Service {
    public let name: String
    public let reconciler: R
    public let workers: Int
    /// The queue of keys to reconcile; other event sources may add to it.
    public let queue: WorkQueue<ObjectKey>
    private let leaderElector: LeaderElector?
    private let eventRecorder: EventRecorder?
    private let sources = Mutex<[any CacheSource]>([])
    private let stopRequested = OneShotSignal()
    /// Passes since the heap was last trimmed; see `work()`.
    private let passesSinceTrim = Mutex(0)
    /// After this many passes, a queue that runs empty trims the heap.
    static var passesBeforeTrim: Int { 256 }
    /// How long pending events may take to send when the controller stops.
    private let eventFlushTimeout = Duration.seconds(5)
    private let metrics: ControllerMetrics
    private let logger: Logger

    /// - Parameters:
    ///   - name: names the controller in logs and metrics (and the queue).
    ///   - workers: how many keys are reconciled concurrently.
    ///   - backoff: per-key backoff after errors.
    ///   - leaderElector: if given, workers start only once this replica leads.
    ///   - eventRecorder: if given, its sending loop runs as part of this controller.
    public init(name: String, reconciler: R, workers: Int = 1, backoff: ItemBackoff = ItemBackoff(),
                leaderElector: LeaderElector? = nil, eventRecorder: EventRecorder? = nil,
                logger: Logger = Logger(label: "kube-runtime.controller")) {
        precondition(workers > 0, "a controller needs at least one worker")
        self.name = name
        self.reconciler = reconciler
        self.workers = workers
        self.queue = WorkQueue(name: name, backoff: backoff)
        self.leaderElector = leaderElector
        self.eventRecorder = eventRecorder
        self.metrics = ControllerMetrics(controller: name)
        var logger = logger
        logger[metadataKey: "controller"] = "\(name)"
        self.logger = logger
    }

    // MARK: - Sources

    /// Reconciles the objects of `watcher` themselves: every change enqueues the object's key.
    public func watch<Object: KubeObject>(_ watcher: Watcher<Object>) {
        let queue = self.queue
        watcher.addHandler { change in queue.add(change.object.key) }
        addSource(watcher)
    }

    /// Reconciles the controller owner of the objects of `watcher`: every change of an object
    /// whose `ownerReferences` name an owner of kind `owner` with `controller: true` enqueues that
    /// owner (both owners, if an update changed it).
    public func owns<Object: KubeObject>(_ watcher: Watcher<Object>, owner: ResourceType) {
        watches(watcher) { object in
            OwnerMapping.controllerOwnerKey(of: object.metadata, owner: owner).map { [$0] } ?? []
        }
    }

    /// Reconciles whatever `map` derives from the objects of `watcher` (old and new state of an update).
    public func watches<Object: KubeObject>(_ watcher: Watcher<Object>,
                                            map: @escaping @Sendable (Object) -> [ObjectKey]) {
        let queue = self.queue
        watcher.addHandler { change in
            var keys = map(change.object)
            if let old = change.oldObject {
                for key in map(old) where !keys.contains(key) { keys.append(key) }
            }
            for key in keys { queue.add(key) }
        }
        addSource(watcher)
    }

    /// A source's watcher: when it recovers from failed requests, the keys that are backing off
    /// after failed reconciles are retried at once (`WorkQueue.retryBackedOff`) — they failed
    /// because the API server could not be reached, and their backoff grew the whole outage long.
    private func addSource<Object: KubeObject>(_ watcher: Watcher<Object>) {
        let isNew = sources.withLock { sources in
            if sources.contains(where: { $0 === watcher }) { return false }
            sources.append(watcher)
            return true
        }
        guard isNew else { return }
        let queue = self.queue
        let logger = self.logger
        watcher.addRecoveryHandler {
            let retried = queue.retryBackedOff()
            if retried > 0 { logger.info("API server reachable again; retrying failed reconciles now", metadata: ["keys": "\(retried)"]) }
        }
    }

    /// True when every watched cache has synced.
    public var hasSynced: Bool {
        sources.withLock { $0 }.allSatisfy(\.hasSynced)
    }

    // MARK: - Running

    /// Stops taking work; in-flight reconciles finish, then `run()` returns.
    public func shutDown() {
        stopRequested.fire()
        queue.shutDown()
    }

    public func run() async throws {
        let sources = self.sources.withLock { $0 }
        metrics.maxConcurrentReconciles.record(workers)
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { outer in
                if let eventRecorder { outer.addTask { await eventRecorder.run() } }
                await withTaskGroup(of: Void.self) { background in
                    for source in sources { background.addTask { await source.run() } }
                    background.addTask { await self.queue.runTimers() }

                    if await self.waitUntilReady(sources) {
                        logger.info("caches synced; starting workers", metadata: ["workers": "\(workers)"])
                        await withTaskGroup(of: Void.self) { workers in
                            for _ in 0..<self.workers { workers.addTask { await self.work() } }
                        }
                    }
                    queue.shutDown()
                    logger.info("workers stopped; stopping watches")
                    background.cancelAll()
                }
                // Send the events the last reconciles recorded, for a few seconds at most.
                if let eventRecorder {
                    eventRecorder.finish()
                    outer.addTask { try? await Task.sleep(for: self.eventFlushTimeout) }
                    await outer.next()
                    outer.cancelAll()
                }
            }
        } onGracefulShutdown: {
            self.shutDown()
        }
    }

    /// Waits for every cache to sync and, with leader election, for leadership. False when a
    /// stop came first.
    private func waitUntilReady(_ sources: [any CacheSource]) async -> Bool {
        let leaderElector = self.leaderElector
        let ready = await KubeRuntime.run({
            for source in sources { await source.waitUntilSynced() }
            if let leaderElector {
                return await leaderElector.waitUntilLeading()
            }
            return !Task.isCancelled
        }, until: stopRequested)
        return ready == true && !queue.isShuttingDown
    }

    private func work() async {
        while let key = await queue.get() {
            metrics.activeWorkers.increment()
            await reconcile(key)
            metrics.activeWorkers.decrement()
            queue.done(key)
            trimAfterBusyWork()
        }
    }

    /// After many passes (the first sync's, or a burst's), once the queue has run empty, the memory
    /// those passes freed goes back to the system (`HeapTrim`): at rest the process holds what it
    /// keeps, not its busiest moment.
    private func trimAfterBusyWork() {
        let due = passesSinceTrim.withLock { passes in
            passes += 1
            guard passes >= Self.passesBeforeTrim, queue.depth == 0, queue.processingCount == 0 else { return false }
            passes = 0
            return true
        }
        if due { HeapTrim.returnFreePages() }
    }

    private func reconcile(_ key: ObjectKey) async {
        let clock = ContinuousClock()
        let start = clock.now
        var logger = self.logger
        logger[metadataKey: "key"] = "\(key)"
        do {
            let result = try await reconciler.reconcile(key)
            queue.forget(key)
            switch result {
            case .done:
                metrics.count(.success)
            case .requeue(let delay):
                queue.add(key, after: delay)
                metrics.count(.requeueAfter)
            }
            logger.trace("reconciled", metadata: ["result": "\(result)"])
        } catch let error as TerminalError {
            queue.forget(key)
            metrics.count(.error)
            metrics.errors.increment()
            metrics.terminalErrors.increment()
            logger.error("reconcile failed permanently; not retrying", metadata: ["error": "\(error)"])
        } catch {
            if error is CancellationError && Task.isCancelled { return }
            queue.addRateLimited(key)
            metrics.count(.error)
            metrics.errors.increment()
            logger.warning("reconcile failed; retrying with backoff", metadata: [
                "error": "\(error)", "failures": "\(queue.failures(of: key))",
            ])
        }
        metrics.reconcileTime.recordNanoseconds((clock.now - start).nanoseconds)
    }
}

/// Something a controller runs and waits on before it starts working: a watcher and its cache.
public protocol CacheSource: AnyObject, Sendable {
    func run() async
    var hasSynced: Bool { get }
    func waitUntilSynced() async
}

extension Watcher: CacheSource {
    public func waitUntilSynced() async { await store.waitUntilSynced() }
}

/// Maps owned objects to their controller owner.
public enum OwnerMapping {
    /// The key of the owner of kind `owner` that controls an object with this metadata: its
    /// `ownerReferences` entry with `controller: true` whose group and kind match (any version).
    public static func controllerOwnerKey(of metadata: ObjectMeta, owner: ResourceType) -> ObjectKey? {
        guard let reference = metadata.controllerReference, reference.kind == owner.kind,
              group(of: reference.apiVersion) == owner.group
        else { return nil }
        // An owner is in the namespace of what it owns, or cluster-scoped.
        return ObjectKey(namespace: owner.namespaced ? metadata.namespace : nil, name: reference.name)
    }

    /// `apps` of `apps/v1`; "" of `v1`.
    static func group(of apiVersion: String) -> String {
        guard let slash = apiVersion.firstIndex(of: "/") else { return "" }
        return String(apiVersion[..<slash])
    }
}

struct ControllerMetrics: Sendable {
    enum Result: String { case success, requeueAfter = "requeue_after", error }

    let controller: String
    let errors: Counter
    let terminalErrors: Counter
    let reconcileTime: Timer
    let activeWorkers: Meter
    let maxConcurrentReconciles: Gauge
    private let results: [String: Counter]

    init(controller: String) {
        self.controller = controller
        let dimensions = [("controller", controller)]
        errors = Counter(label: "controller_runtime_reconcile_errors_total", dimensions: dimensions)
        terminalErrors = Counter(label: "controller_runtime_terminal_reconcile_errors_total", dimensions: dimensions)
        reconcileTime = Timer(label: "controller_runtime_reconcile_time_seconds", dimensions: dimensions)
        activeWorkers = Meter(label: "controller_runtime_active_workers", dimensions: dimensions)
        maxConcurrentReconciles = Gauge(label: "controller_runtime_max_concurrent_reconciles", dimensions: dimensions)
        var results: [String: Counter] = [:]
        for result in [Result.success, .requeueAfter, .error] {
            results[result.rawValue] = Counter(
                label: "controller_runtime_reconcile_total",
                dimensions: [("controller", controller), ("result", result.rawValue)])
        }
        self.results = results
    }

    func count(_ result: Result) {
        results[result.rawValue]?.increment()
    }
}
