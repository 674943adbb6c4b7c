import KubeClient
import KubeTypes
import Logging
import Synchronization

/// Which objects of a kind a watcher follows.
public struct WatchScope: Sendable, Hashable {
    /// nil: every namespace (for namespaced kinds).
    public var namespace: String?
    /// e.g. `app.kubernetes.io/managed-by=image-builder`.
    public var labelSelector: String?
    /// e.g. `metadata.name=foo`.
    public var fieldSelector: String?

    public init(namespace: String? = nil, labelSelector: String? = nil, fieldSelector: String? = nil) {
        self.namespace = namespace
        self.labelSelector = labelSelector
        self.fieldSelector = fieldSelector
    }

    /// Every object of the kind, in every namespace.
    public static let all = WatchScope()
}

/// What a watcher has done so far, for logs and tests.
public struct WatcherStatistics: Sendable, Hashable {
    /// Complete lists (the first one and every relist).
    public var lists = 0
    /// Watch requests answered with a stream.
    public var watches = 0
    /// 410 Gone answers (HTTP or `ERROR` events).
    public var expired = 0
    /// Failed requests of any kind.
    public var failures = 0
}

/// Keeps a `Store` in step with the API server for one kind: list, then watch, following
/// `WatcherStateMachine`, and tells its handlers about every change.
///
/// Run it once (`run()`, until cancelled); controllers do this for the watchers they are given.
/// A silent dead connection is detected by the client's transfer timeout, which is the watch's
/// server timeout plus 30 s.
public final class Watcher<Object: KubeObject>: Sendable {
    public typealias Handler = @Sendable (StoreChange<Object>) -> Void

    public let client: KubernetesClient
    public let resource: ResourceType
    public let scope: WatchScope
    /// The cache this watcher fills.
    public let store: Store<Object>
    public let configuration: WatcherStateMachine.Configuration
    /// What the watcher decodes of each object (see `DecodingProfile`).
    public let decoding: DecodingProfile
    private let handlers = Mutex<[Handler]>([])
    private let recoveryHandlers = Mutex<[@Sendable () -> Void]>([])
    private let running = Mutex(false)
    private let counters = Mutex(WatcherStatistics())
    private let logger: Logger

    /// - Parameters:
    ///   - resource: where the kind lives; defaults to the type's own.
    ///   - decoding: what is decoded of each object; parts left out are never built (default:
    ///     everything but `managedFields`, which the default transform drops anyway).
    ///   - transform: applied to each object before it is cached (default: drop `managedFields`).
    public init(client: KubernetesClient, _ type: Object.Type = Object.self, resource: ResourceType = Object.resourceType,
                scope: WatchScope = .all, configuration: WatcherStateMachine.Configuration = .init(),
                decoding: DecodingProfile = .withoutManagedFields,
                transform: @escaping @Sendable (Object) -> Object = StoreTransforms.stripManagedFields,
                logger: Logger = Logger(label: "kube-runtime.watcher")) {
        self.client = client
        self.resource = resource
        self.scope = scope
        self.configuration = configuration
        self.decoding = decoding
        self.store = Store(transform: transform)
        var logger = logger
        logger[metadataKey: "resource"] = "\(resource)"
        if let namespace = scope.namespace { logger[metadataKey: "namespace"] = "\(namespace)" }
        self.logger = logger
    }

    /// True once the first list is in the store.
    public var hasSynced: Bool { store.hasSynced }

    /// Lists, watches and failures so far.
    public var statistics: WatcherStatistics { counters.withLock { $0 } }

    /// Adds a handler, called synchronously (keep it cheap: enqueue, don't work) for every change,
    /// in order. Add handlers before `run()` to see the first list.
    public func addHandler(_ handler: @escaping Handler) {
        handlers.withLock { $0.append(handler) }
    }

    /// Adds a handler called (synchronously; keep it cheap) each time a list succeeds or a watch is
    /// established after failed requests: the API server answers again. Controllers use it to
    /// retry at once the reconciles that failed meanwhile.
    public func addRecoveryHandler(_ handler: @escaping @Sendable () -> Void) {
        recoveryHandlers.withLock { $0.append(handler) }
    }

    /// Lists and watches until the task is cancelled. Never throws: failures are retried.
    public func run() async {
        let alreadyRunning = running.withLock { running in
            defer { running = true }
            return running
        }
        precondition(!alreadyRunning, "Watcher for \(resource) is already running")
        defer { running.withLock { $0 = false } }

        var machine = WatcherStateMachine(configuration: configuration)
        let clock = ContinuousClock()
        while !Task.isCancelled {
            switch machine.nextAction() {
            case .wait(let delay):
                logger.debug("waiting before the next request", metadata: ["delay": "\(delay)"])
                try? await Task.sleep(for: delay)

            case .list(let resourceVersion, let pageSize):
                let options = ListOptions(labelSelector: scope.labelSelector, fieldSelector: scope.fieldSelector,
                                          limit: pageSize, resourceVersion: resourceVersion, decoding: decoding)
                do {
                    let list = try await client.listAll(Object.self, resource: resource, namespace: scope.namespace,
                                                        options: options)
                    let changes = store.replace(with: list.items)
                    // The list's pages and the objects it replaced are free now: give their pages
                    // back, or the process keeps its peak for good.
                    HeapTrim.returnFreePages()
                    counters.withLock { $0.lists += 1 }
                    let recovered = machine.listSucceeded(resourceVersion: list.resourceVersion, at: clock.now)
                    logger.debug("listed", metadata: [
                        "objects": "\(list.items.count)", "changes": "\(changes.count)",
                        "resourceVersion": "\(list.resourceVersion)",
                    ])
                    notify(changes)
                    if recovered { notifyRecovery() }
                } catch {
                    if Task.isCancelled { return }
                    let failure = WatchFailure(error)
                    log(failure, during: "list")
                    machine.listFailed(failure, at: clock.now)
                }

            case .watch(let resourceVersion, let timeoutSeconds):
                let options = WatchOptions(resourceVersion: resourceVersion, allowBookmarks: true,
                                           timeoutSeconds: timeoutSeconds, labelSelector: scope.labelSelector,
                                           fieldSelector: scope.fieldSelector, decoding: decoding)
                do {
                    let stream = try await client.watch(Object.self, resource: resource, namespace: scope.namespace,
                                                        options: options)
                    let recovered = machine.watchStarted(at: clock.now)
                    counters.withLock { $0.watches += 1 }
                    if recovered { notifyRecovery() }
                    var endedWithError = false
                    events: for try await event in stream {
                        switch event {
                        case .added(let object), .modified(let object):
                            machine.receivedObject(resourceVersion: object.metadata.resourceVersion)
                            notify([store.apply(object)])
                        case .deleted(let object):
                            machine.receivedObject(resourceVersion: object.metadata.resourceVersion)
                            notify([store.remove(object)])
                        case .bookmark(let version):
                            machine.receivedBookmark(resourceVersion: version)
                        case .error(let status):
                            let failure = WatchFailure(status: status)
                            log(failure, during: "watch")
                            machine.receivedError(status, at: clock.now)
                            endedWithError = true
                            stream.cancel()
                            break events
                        }
                    }
                    if !endedWithError {
                        logger.trace("watch ended; watching again", metadata: ["resourceVersion": "\(machine.resourceVersion ?? "")"])
                        machine.watchEnded(at: clock.now)
                    }
                } catch {
                    if Task.isCancelled { return }
                    let failure = WatchFailure(error)
                    log(failure, during: "watch")
                    machine.watchFailed(failure, at: clock.now)
                }
            }
        }
    }

    private func notify(_ changes: [StoreChange<Object>]) {
        guard !changes.isEmpty else { return }
        let handlers = self.handlers.withLock { $0 }
        for change in changes {
            for handler in handlers { handler(change) }
        }
    }

    private func notifyRecovery() {
        logger.info("the API server answers again")
        for handler in recoveryHandlers.withLock({ $0 }) { handler() }
    }

    private func log(_ failure: WatchFailure, during request: String) {
        counters.withLock { counters in
            counters.failures += 1
            if failure == .gone { counters.expired += 1 }
        }
        switch failure {
        case .gone:
            logger.info("resourceVersion expired; relisting", metadata: ["request": "\(request)"])
        case .throttled(let seconds):
            logger.warning("throttled by the API server", metadata: [
                "request": "\(request)", "retryAfter": "\(seconds.map { "\($0)s" } ?? "unset")",
            ])
        case .unreachable(let description), .other(let description):
            logger.warning("\(request) failed; backing off", metadata: ["error": "\(description)"])
        }
    }
}
