import KubeClient
import KubeTypes

/// Why a list or watch request failed, in the terms the watcher acts on.
public enum WatchFailure: Sendable, Hashable {
    /// 410 Gone / Expired: the resourceVersion is too old (compacted); relist.
    case gone
    /// 429 Too Many Requests: wait (`Retry-After` when given), then try the same request again.
    case throttled(retryAfterSeconds: Int?)
    /// No answer — the server could not be reached or went away (connection refused, reset, timed
    /// out) — or 503 Service Unavailable, which a kube-apiserver answers while it starts. Back off,
    /// but never longer than `Configuration.reconnectMaximum`.
    case unreachable(String)
    /// Anything else (5xx, a broken stream…): back off, then try again.
    case other(String)

    /// Classifies an error thrown by `KubernetesClient`.
    public init(_ error: any Error) {
        if let api = error as? APIError {
            if api.isGone { self = .gone; return }
            if api.isTooManyRequests { self = .throttled(retryAfterSeconds: api.retryAfterSeconds); return }
            if api.code == 503 { self = .unreachable(String(describing: error)); return }
        }
        if error.isServerUnreachable { self = .unreachable(String(describing: error)); return }
        self = .other(String(describing: error))
    }

    /// Classifies the `Status` of a watch `ERROR` event.
    public init(status: Status) {
        let reason = status.reason ?? ""
        if status.code == 410 || reason == "Expired" || reason == "Gone" {
            self = .gone
        } else if status.code == 429 || reason == "TooManyRequests" {
            self = .throttled(retryAfterSeconds: status.details?.retryAfterSeconds)
        } else {
            self = .other("watch error event: \(status.message ?? reason) (code \(status.code.map(String.init) ?? "?"))")
        }
    }
}

/// The decisions of a list-then-watch loop, without I/O: the driver asks `nextAction`, performs
/// it, and reports what happened. Time comes in as arguments, so tests drive it with a manual clock.
///
/// - Lists are paged (`pageSize`); the first list reads the latest state (`resourceVersion` unset).
/// - A watch starts from the last resourceVersion seen (list, object or bookmark), asks for
///   bookmarks and a server timeout drawn from `watchTimeoutSeconds`.
/// - A watch that ends cleanly is started again at once from the last resourceVersion.
/// - 410 (HTTP or an `ERROR` event) relists at the last resourceVersion; if that list is itself
///   410, or the watch after it is 410 again without progress, the next list reads the latest state
///   (at once). The first relist after a healthy period is immediate; repeated 410s back off.
/// - 429 waits `Retry-After` (or backs off without it) and repeats the same request: no relist.
/// - Other failures back off (`Backoff.watcher`) and repeat the same request; when the server
///   could not be reached at all, the delay is at most `reconnectMaximum` (2 s): a connection
///   attempt to a server that is not there costs it nothing, and this bounds how long after the
///   server is back the watch is too (with 30 s, a 3 s outage could cost 12 s more).
/// - `listSucceeded` and `watchStarted` say when they end a run of failures (`recovered`), so
///   that the driver can tell others (a controller retries the reconciles that failed meanwhile).
public struct WatcherStateMachine: Sendable {
    public struct Configuration: Sendable, Hashable {
        /// Items per list page (`limit`).
        public var pageSize: Int
        /// The server-side watch timeout is drawn from this range, so watches of many clients do not
        /// all end at once.
        public var watchTimeoutSeconds: ClosedRange<Int>
        public var backoff: Backoff
        /// The longest wait after a failure that got no answer (`WatchFailure.unreachable`).
        public var reconnectMaximum: Duration

        public init(pageSize: Int = 500, watchTimeoutSeconds: ClosedRange<Int> = 300...600,
                    backoff: Backoff = .watcher, reconnectMaximum: Duration = .seconds(2)) {
            self.pageSize = pageSize
            self.watchTimeoutSeconds = watchTimeoutSeconds
            self.backoff = backoff
            self.reconnectMaximum = reconnectMaximum
        }
    }

    /// What the driver should do next.
    public enum Action: Sendable, Hashable {
        /// A paged list; nil reads the latest state, otherwise at least this version.
        case list(resourceVersion: String?, pageSize: Int)
        /// A watch from `resourceVersion` with bookmarks and this server timeout.
        case watch(resourceVersion: String, timeoutSeconds: Int)
        /// Sleep this long, then ask again.
        case wait(Duration)
    }

    private enum Step: Sendable, Hashable {
        case list(resourceVersion: String?)
        case watch
    }

    public let configuration: Configuration
    /// The resourceVersion to watch from: the last one seen in a list, an object or a bookmark.
    public private(set) var resourceVersion: String?
    /// True once a list has succeeded.
    public private(set) var hasListed = false
    /// True from a failed request (not a 410, which is part of keeping up) until a list succeeds
    /// or a watch is established.
    public private(set) var isFailing = false
    private var step: Step = .list(resourceVersion: nil)
    private var pendingDelay: Duration?
    private var backoff: Backoff
    private var random: SeededRandom
    /// The current watch began right after a list at a given resourceVersion and has seen nothing yet.
    private var watchingFromPinnedList = false
    private var lastListPinned = false

    public init(configuration: Configuration = Configuration(), random: SeededRandom = SeededRandom()) {
        self.configuration = configuration
        self.backoff = configuration.backoff
        self.random = random
    }

    /// The failures counted by the backoff since it was last reset.
    public var consecutiveFailures: Int { backoff.failures }

    /// What to do now. After a `.wait`, call again for the request itself.
    public mutating func nextAction() -> Action {
        if let delay = pendingDelay {
            pendingDelay = nil
            if delay > .zero { return .wait(delay) }
        }
        switch step {
        case .list(let resourceVersion):
            return .list(resourceVersion: resourceVersion, pageSize: configuration.pageSize)
        case .watch:
            let timeout = Int.random(in: configuration.watchTimeoutSeconds, using: &random)
            return .watch(resourceVersion: resourceVersion ?? "", timeoutSeconds: timeout)
        }
    }

    // MARK: - List outcomes

    /// The (complete, all pages) list succeeded at `resourceVersion`. Returns true when this ends a
    /// run of failures.
    @discardableResult
    public mutating func listSucceeded(resourceVersion: String, at now: ContinuousClock.Instant) -> Bool {
        defer { isFailing = false }
        if case .list(let requested) = step { lastListPinned = requested != nil } else { lastListPinned = false }
        self.resourceVersion = resourceVersion
        hasListed = true
        backoff.markHealthy(at: now)
        step = .watch
        return isFailing
    }

    public mutating func listFailed(_ failure: WatchFailure, at now: ContinuousClock.Instant) {
        if failure != .gone { isFailing = true }
        switch failure {
        case .gone:
            if case .list(let requested?) = step, !requested.isEmpty {
                // The version asked for is compacted: read the latest state instead, right away.
                step = .list(resourceVersion: nil)
            } else {
                pendingDelay = backoff.nextDelay(at: now, random: &random)
            }
        case .throttled(let seconds):
            pendingDelay = throttleDelay(seconds, at: now)
        case .unreachable:
            pendingDelay = reconnectDelay(at: now)
        case .other:
            pendingDelay = backoff.nextDelay(at: now, random: &random)
        }
    }

    // MARK: - Watch outcomes

    /// The watch request was answered with 200: the stream is open. Returns true when this ends a
    /// run of failures.
    @discardableResult
    public mutating func watchStarted(at now: ContinuousClock.Instant) -> Bool {
        defer { isFailing = false }
        watchingFromPinnedList = lastListPinned
        lastListPinned = false
        backoff.markHealthy(at: now)
        return isFailing
    }

    /// An object event (ADDED, MODIFIED, DELETED) carrying this resourceVersion.
    public mutating func receivedObject(resourceVersion: String?) {
        advance(to: resourceVersion)
    }

    /// A BOOKMARK: only the resourceVersion moves.
    public mutating func receivedBookmark(resourceVersion: String) {
        advance(to: resourceVersion)
    }

    /// An `ERROR` event: the stream is over; the status says what comes next.
    public mutating func receivedError(_ status: Status, at now: ContinuousClock.Instant) {
        watchFailed(WatchFailure(status: status), at: now)
    }

    /// The server closed the stream cleanly (its timeout): watch again from where we are.
    public mutating func watchEnded(at now: ContinuousClock.Instant) {
        watchingFromPinnedList = false
        step = .watch
    }

    /// The watch request failed, or the open stream broke (reset, dead connection timed out).
    public mutating func watchFailed(_ failure: WatchFailure, at now: ContinuousClock.Instant) {
        if failure != .gone { isFailing = true }
        switch failure {
        case .gone where watchingFromPinnedList:
            // The relist at our old version worked but that version is still too old to watch from
            // (the API server's watch cache starts later than etcd's history): read the latest
            // state, at once — this is the expected second step of a relist, not a new failure.
            step = .list(resourceVersion: nil)
        case .gone:
            // Relist at the version we had, at once after a healthy period, with backoff when 410s repeat.
            let firstFailure = backoff.healthySince.map { now - $0 >= backoff.resetAfter } ?? false
                || backoff.failures == 0
            let delay = backoff.nextDelay(at: now, random: &random)
            pendingDelay = firstFailure ? nil : delay
            step = .list(resourceVersion: resourceVersion)
        case .throttled(let seconds):
            pendingDelay = throttleDelay(seconds, at: now)
            step = .watch
        case .unreachable:
            pendingDelay = reconnectDelay(at: now)
            step = .watch
        case .other:
            pendingDelay = backoff.nextDelay(at: now, random: &random)
            step = .watch
        }
        watchingFromPinnedList = false
    }

    private mutating func advance(to resourceVersion: String?) {
        guard let resourceVersion, !resourceVersion.isEmpty else { return }
        self.resourceVersion = resourceVersion
        watchingFromPinnedList = false
    }

    private mutating func reconnectDelay(at now: ContinuousClock.Instant) -> Duration {
        min(backoff.nextDelay(at: now, random: &random), configuration.reconnectMaximum)
    }

    private mutating func throttleDelay(_ seconds: Int?, at now: ContinuousClock.Instant) -> Duration {
        if let seconds { return .seconds(max(seconds, 1)) }
        return backoff.nextDelay(at: now, random: &random)
    }
}
