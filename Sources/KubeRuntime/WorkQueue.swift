import CoreMetrics
import DequeModule
import Synchronization

/// A rate-limited, delaying work queue with client-go semantics (see `WorkQueueState`), for
/// several concurrent workers:
///
///     while let key = await queue.get() {
///         defer { queue.done(key) }
///         …
///     }
///
/// Delayed adds (`add(_:after:)`, `addRateLimited`) are moved into the queue by `runTimers()`,
/// which must run (in the same task group as the workers) for them to happen.
///
/// Time comes from `clock` (`ContinuousClock` by default): deadlines, backoff delays and the
/// durations in the metrics are measured on it, and `runTimers()` sleeps on it — so tests drive
/// the queue with a manual clock.
///
/// Metrics, with dimension `name`: `workqueue_depth`, `workqueue_adds_total`,
/// `workqueue_queue_duration_seconds`, `workqueue_work_duration_seconds`, `workqueue_retries_total`.
public final class WorkQueue<Key: Hashable & Sendable>: Sendable {
    private struct Waiter {
        var id: UInt64
        var continuation: CheckedContinuation<Key?, Never>
    }

    private struct State {
        var core: WorkQueueState<Key>
        var waiters = Deque<Waiter>()
        var nextWaiterID: UInt64 = 0
        /// Bumped whenever the timer loop should look again (new deadline, shutdown).
        var timerGeneration: UInt64 = 0
        var timerWaiter: CheckedContinuation<Void, Never>?
    }

    /// Identifies the queue in metrics and logs.
    public let name: String
    private let state: Mutex<State>
    /// Read with the lock held, so the core sees time move forward only.
    private let clock: RuntimeClock
    private let metrics: QueueMetrics

    /// - Parameters:
    ///   - name: names the queue in metrics.
    ///   - backoff: the per-key delays of `addRateLimited`.
    ///   - clock: the time of deadlines, backoff and metrics; `runTimers()` sleeps on it.
    public init(name: String, backoff: ItemBackoff = ItemBackoff(), clock: some Clock<Duration> = ContinuousClock()) {
        self.name = name
        self.state = Mutex(State(core: WorkQueueState(backoff: backoff)))
        self.clock = RuntimeClock(clock)
        self.metrics = QueueMetrics(name: name)
    }

    // MARK: - Adding

    /// Queues a key (at most once; see `WorkQueueState.add`).
    public func add(_ key: Key) {
        let handoff = state.withLock { state -> Handoff? in
            let now = clock.now
            if state.core.add(key, at: now) { metrics.adds.increment() }
            return Self.handOff(&state, metrics: metrics, now: now)
        }
        handoff?.resume()
    }

    /// Queues a key after `delay`, keeping the earliest deadline if it is already waiting.
    public func add(_ key: Key, after delay: Duration) {
        guard delay > .zero else { return add(key) }
        let wake = state.withLock { state in
            state.core.add(key, after: delay, at: clock.now)
            return Self.wakeTimer(&state)
        }
        wake?.resume()
    }

    /// Counts a failure of `key` and queues it after its backoff (5 ms, 10 ms, … 1000 s).
    public func addRateLimited(_ key: Key) {
        metrics.retries.increment()
        let wake = state.withLock { state in
            state.core.addRateLimited(key, at: clock.now)
            return Self.wakeTimer(&state)
        }
        wake?.resume()
    }

    /// Cuts every failure backoff short (see `WorkQueueState.retryBackedOff`): keys waiting after
    /// `addRateLimited` are queued now. Controllers call it when a watch recovers from a failure,
    /// since reconciles that failed while the API server was unreachable should not wait out
    /// backoffs that grew during the outage. Returns how many keys were queued.
    @discardableResult
    public func retryBackedOff() -> Int {
        let (count, handoffs, wake) = state.withLock { state in
            let now = clock.now
            let added = state.core.retryBackedOff(at: now)
            metrics.adds.increment(by: added.count)
            var handoffs: [Handoff] = []
            while let handoff = Self.handOff(&state, metrics: metrics, now: now) { handoffs.append(handoff) }
            return (added.count, handoffs, Self.wakeTimer(&state))
        }
        for handoff in handoffs { handoff.resume() }
        wake?.resume()
        return count
    }

    /// Keys waiting out a failure backoff.
    public var backingOffCount: Int { state.withLock { $0.core.backingOffCount } }

    /// Forgets the failures of `key` (call after it was processed successfully).
    public func forget(_ key: Key) {
        state.withLock { $0.core.forget(key) }
    }

    /// Consecutive failures of `key`.
    public func failures(of key: Key) -> Int {
        state.withLock { $0.core.failures(of: key) }
    }

    // MARK: - Processing

    /// The next key to process, waiting for one if needed. nil once the queue is shut down (or
    /// the calling task is cancelled). Every key returned must be passed to `done`.
    public func get() async -> Key? {
        let id = state.withLock { state in
            defer { state.nextWaiterID += 1 }
            return state.nextWaiterID
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Key?, Never>) in
                let immediate = state.withLock { state -> Key?? in
                    if state.core.isShuttingDown || Task.isCancelled { return .some(nil) }
                    if let popped = state.core.pop(at: clock.now) {
                        metrics.popped(queuedFor: popped.queuedFor, depth: state.core.depth)
                        return .some(popped.key)
                    }
                    state.waiters.append(Waiter(id: id, continuation: continuation))
                    return .none
                }
                if let immediate { continuation.resume(returning: immediate) }
            }
        } onCancel: {
            let waiter = state.withLock { state -> Waiter? in
                guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return state.waiters.remove(at: index)
            }
            waiter?.continuation.resume(returning: nil)
        }
    }

    /// Marks the processing of `key` as finished; if it was added meanwhile, it is queued again.
    public func done(_ key: Key) {
        let handoff = state.withLock { state -> Handoff? in
            let now = clock.now
            let (_, processedFor) = state.core.done(key, at: now)
            metrics.workDuration.recordNanoseconds(processedFor.nanoseconds)
            return Self.handOff(&state, metrics: metrics, now: now)
        }
        handoff?.resume()
    }

    /// Stops the queue: waiting `get` calls return nil, queued keys are dropped, adds are
    /// ignored. Keys being processed finish normally (`done`).
    public func shutDown() {
        let (waiters, wake) = state.withLock { state in
            state.core.shutDown()
            defer { state.waiters.removeAll() }
            metrics.depth.record(0)
            return (Array(state.waiters), Self.wakeTimer(&state))
        }
        for waiter in waiters { waiter.continuation.resume(returning: nil) }
        wake?.resume()
    }

    public var isShuttingDown: Bool { state.withLock { $0.core.isShuttingDown } }
    /// Keys ready to be processed.
    public var depth: Int { state.withLock { $0.core.depth } }
    /// Keys being processed now.
    public var processingCount: Int { state.withLock { $0.core.processingCount } }
    /// Keys waiting for a deadline.
    public var waitingCount: Int { state.withLock { $0.core.waitingCount } }
    /// `get` calls waiting for a key (idle workers).
    var waitingGetCount: Int { state.withLock { $0.waiters.count } }

    // MARK: - Timers

    /// Moves delayed keys into the queue when their deadlines pass (on the queue's clock). Runs
    /// until the queue is shut down or the task is cancelled.
    public func runTimers() async {
        while !Task.isCancelled {
            let (deadline, generation, shuttingDown, handoffs) = state.withLock { state in
                let now = clock.now
                let promoted = state.core.promoteDue(at: now)
                metrics.adds.increment(by: promoted.count)
                var handoffs: [Handoff] = []
                while let handoff = Self.handOff(&state, metrics: metrics, now: now) { handoffs.append(handoff) }
                return (state.core.nextDeadline, state.timerGeneration, state.core.isShuttingDown, handoffs)
            }
            for handoff in handoffs { handoff.resume() }
            if shuttingDown { return }
            await withTaskGroup(of: Void.self) { group in
                if let deadline {
                    group.addTask { try? await self.clock.sleep(until: deadline) }
                }
                group.addTask { await self.waitForTimerWake(after: generation) }
                await group.next()
                group.cancelAll()
            }
        }
    }

    private func waitForTimerWake(after generation: UInt64) async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = state.withLock { state -> Bool in
                    if state.timerGeneration != generation || Task.isCancelled { return true }
                    state.timerWaiter = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { state in
                defer { state.timerWaiter = nil }
                return state.timerWaiter
            }
            waiter?.resume()
        }
    }

    // MARK: - Helpers (called with the lock held; the returned resumptions run after it)

    private struct Handoff {
        var continuation: CheckedContinuation<Key?, Never>
        var key: Key
        func resume() { continuation.resume(returning: key) }
    }

    /// Gives the next queued key to the longest-waiting `get`, if both exist.
    private static func handOff(_ state: inout State, metrics: QueueMetrics, now: ContinuousClock.Instant) -> Handoff? {
        defer { metrics.depth.record(state.core.depth) }
        guard !state.waiters.isEmpty, let popped = state.core.pop(at: now) else { return nil }
        let waiter = state.waiters.removeFirst()
        metrics.popped(queuedFor: popped.queuedFor, depth: state.core.depth)
        return Handoff(continuation: waiter.continuation, key: popped.key)
    }

    private struct TimerWake {
        var continuation: CheckedContinuation<Void, Never>
        func resume() { continuation.resume() }
    }

    private static func wakeTimer(_ state: inout State) -> TimerWake? {
        state.timerGeneration &+= 1
        defer { state.timerWaiter = nil }
        return state.timerWaiter.map(TimerWake.init)
    }
}

/// The metric handles of one queue.
struct QueueMetrics: Sendable {
    let depth: Gauge
    let adds: Counter
    let queueDuration: Timer
    let workDuration: Timer
    let retries: Counter

    init(name: String) {
        let dimensions = [("name", name)]
        depth = Gauge(label: "workqueue_depth", dimensions: dimensions)
        adds = Counter(label: "workqueue_adds_total", dimensions: dimensions)
        queueDuration = Timer(label: "workqueue_queue_duration_seconds", dimensions: dimensions)
        workDuration = Timer(label: "workqueue_work_duration_seconds", dimensions: dimensions)
        retries = Counter(label: "workqueue_retries_total", dimensions: dimensions)
    }

    func popped(queuedFor: Duration, depth: Int) {
        queueDuration.recordNanoseconds(queuedFor.nanoseconds)
        self.depth.record(depth)
    }
}

extension Duration {
    /// Whole nanoseconds (saturating).
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (product, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        return product.addingReportingOverflow(attoseconds / 1_000_000_000).partialValue
    }
}
