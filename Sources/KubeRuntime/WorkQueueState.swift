import DequeModule

/// Per-key exponential backoff of a work queue: `base × 2^(failures−1)`, at most `maximum`
/// (client-go's defaults: 5 ms → 1000 s).
public struct ItemBackoff: Sendable, Hashable {
    public var base: Duration
    public var maximum: Duration

    public init(base: Duration = .milliseconds(5), maximum: Duration = .seconds(1000)) {
        self.base = base
        self.maximum = maximum
    }

    /// The delay after the `failures`-th consecutive failure (1 for the first).
    public func delay(afterFailures failures: Int) -> Duration {
        guard failures > 0 else { return .zero }
        // 2^63 overflows; anything past 2^40 × 5 ms is far beyond any sensible maximum anyway.
        let exponent = min(failures - 1, 40)
        let delay = base * (1 << exponent)
        return min(delay, maximum)
    }
}

/// The bookkeeping of a work queue, without I/O or waiting (client-go semantics):
/// - a key is queued at most once (`dirty`);
/// - a key added while it is processed is queued again when its processing is `done`, so it is
///   never processed concurrently;
/// - `add(after:)` keeps the earliest deadline per key;
/// - failures back off per key (`ItemBackoff`) until `forget`;
/// - `retryBackedOff` cuts every failure backoff short at once (the cause — the API server being
///   unreachable — is gone), and a key that was being processed then and fails anyway is retried
///   after `base` instead of its grown delay;
/// - after `shutDown`, adds are ignored and `pop` returns nothing.
public struct WorkQueueState<Key: Hashable & Sendable>: Sendable {
    public let backoff: ItemBackoff
    private var queue = Deque<Key>()
    private var dirty = Set<Key>()
    private var processing = Set<Key>()
    private var waiting: [Key: ContinuousClock.Instant] = [:]
    private var failureCounts: [Key: Int] = [:]
    private var queuedSince: [Key: ContinuousClock.Instant] = [:]
    private var processingSince: [Key: ContinuousClock.Instant] = [:]
    /// Waiting keys whose deadline is a failure backoff (`addRateLimited`).
    private var backingOff = Set<Key>()
    /// Keys in processing when `retryBackedOff` ran: their next failure waits `base` only.
    private var retrySoonOnFailure = Set<Key>()
    public private(set) var isShuttingDown = false

    public init(backoff: ItemBackoff = ItemBackoff()) {
        self.backoff = backoff
    }

    /// Keys ready to be processed.
    public var depth: Int { queue.count }
    /// Keys being processed.
    public var processingCount: Int { processing.count }
    /// Keys waiting for a deadline.
    public var waitingCount: Int { waiting.count }
    /// The earliest deadline of a waiting key.
    public var nextDeadline: ContinuousClock.Instant? { waiting.values.min() }
    /// The keys in the order they will be handed out.
    public var queuedKeys: [Key] { Array(queue) }

    /// The deadline of a waiting key.
    public func deadline(of key: Key) -> ContinuousClock.Instant? { waiting[key] }

    /// True when the key is queued or waiting to be queued again after its processing.
    public func isDirty(_ key: Key) -> Bool { dirty.contains(key) }
    public func isProcessing(_ key: Key) -> Bool { processing.contains(key) }

    /// Queues a key now. Returns true if it was not already queued (an "add" for metrics).
    @discardableResult
    public mutating func add(_ key: Key, at now: ContinuousClock.Instant) -> Bool {
        guard !isShuttingDown, !dirty.contains(key) else { return false }
        dirty.insert(key)
        queuedSince[key] = now
        // Being processed: `done` queues it again.
        if !processing.contains(key) { queue.append(key) }
        return true
    }

    /// Queues a key once `delay` has passed; an earlier deadline already set for it wins.
    /// Returns true when the key was queued at once (delay not positive).
    @discardableResult
    public mutating func add(_ key: Key, after delay: Duration, at now: ContinuousClock.Instant) -> Bool {
        guard !isShuttingDown else { return false }
        if delay <= .zero { return add(key, at: now) }
        let deadline = now + delay
        if let existing = waiting[key], existing <= deadline { return false }
        waiting[key] = deadline
        // The earlier deadline is no failure backoff any more.
        backingOff.remove(key)
        return false
    }

    /// Counts a failure of `key` and queues it after its backoff delay, which it returns.
    @discardableResult
    public mutating func addRateLimited(_ key: Key, at now: ContinuousClock.Instant) -> Duration {
        let failures = (failureCounts[key] ?? 0) + 1
        failureCounts[key] = failures
        let delay = retrySoonOnFailure.remove(key) != nil ? backoff.delay(afterFailures: 1)
            : backoff.delay(afterFailures: failures)
        guard !isShuttingDown else { return delay }
        if delay <= .zero {
            add(key, at: now)
        } else if waiting[key].map({ $0 > now + delay }) ?? true {
            waiting[key] = now + delay
            backingOff.insert(key)
        }
        return delay
    }

    /// Cuts every failure backoff short: each key waiting after `addRateLimited` is queued now, and
    /// each key being processed now is retried after `base` if this processing fails. Failure counts
    /// are kept (a key that keeps failing goes on backing off). For when what the failures were
    /// about is known to be over — the API server is reachable again. Returns the keys queued.
    @discardableResult
    public mutating func retryBackedOff(at now: ContinuousClock.Instant) -> [Key] {
        guard !isShuttingDown else { return [] }
        retrySoonOnFailure.formUnion(processing)
        var added: [Key] = []
        for key in backingOff.sorted(by: { (waiting[$0] ?? now) < (waiting[$1] ?? now) }) {
            waiting[key] = nil
            if add(key, at: now) { added.append(key) }
        }
        backingOff.removeAll()
        return added
    }

    /// Keys waiting out a failure backoff.
    public var backingOffCount: Int { backingOff.count }

    /// Clears the failures of `key` (after a success), so its next failure starts from `base`.
    public mutating func forget(_ key: Key) {
        failureCounts[key] = nil
        retrySoonOnFailure.remove(key)
    }

    /// Consecutive failures of `key` since it was last forgotten.
    public func failures(of key: Key) -> Int { failureCounts[key] ?? 0 }

    /// Moves every waiting key whose deadline has passed into the queue; returns the keys that
    /// were newly queued.
    @discardableResult
    public mutating func promoteDue(at now: ContinuousClock.Instant) -> [Key] {
        let due = waiting.filter { $0.value <= now }.sorted { $0.value < $1.value }
        var added: [Key] = []
        for (key, _) in due {
            waiting[key] = nil
            backingOff.remove(key)
            if add(key, at: now) { added.append(key) }
        }
        return added
    }

    /// Takes the next key to process: it moves to `processing` until `done`. Returns how long it
    /// was queued, too.
    public mutating func pop(at now: ContinuousClock.Instant) -> (key: Key, queuedFor: Duration)? {
        guard !isShuttingDown, let key = queue.popFirst() else { return nil }
        dirty.remove(key)
        processing.insert(key)
        processingSince[key] = now
        let queuedFor = queuedSince.removeValue(forKey: key).map { now - $0 } ?? .zero
        return (key, queuedFor)
    }

    /// Ends the processing of `key`. If it was added meanwhile, it is queued again (`requeued`).
    /// Returns how long it was processed, too.
    @discardableResult
    public mutating func done(_ key: Key, at now: ContinuousClock.Instant) -> (requeued: Bool, processedFor: Duration) {
        processing.remove(key)
        retrySoonOnFailure.remove(key)
        let processedFor = processingSince.removeValue(forKey: key).map { now - $0 } ?? .zero
        if dirty.contains(key), !isShuttingDown {
            queue.append(key)
            return (true, processedFor)
        }
        return (false, processedFor)
    }

    /// Stops the queue: adds are ignored, queued and waiting keys are dropped, `pop` returns nil.
    /// Keys being processed may still be marked `done`.
    public mutating func shutDown() {
        isShuttingDown = true
        queue.removeAll()
        dirty.removeAll()
        waiting.removeAll()
        backingOff.removeAll()
        retrySoonOnFailure.removeAll()
        queuedSince.removeAll()
    }
}
