import KubeTestSupport
import Synchronization
import Testing

/// A clock the tests move by hand.
///
/// Its instants are `ContinuousClock`'s (it starts at the real now), so the pure state machines
/// take `now` as it is; and it is a `Clock`, so the runtime's shells (`WorkQueue`,
/// `LeaderElector`) take the clock itself. A task sleeping on it wakes only when the test advances
/// the clock to its deadline — never by real time passing. The test sees who sleeps until when
/// (`sleepers`), waits until the code under test has gone to sleep (`waitForSleepers`) and then
/// moves time on (`advance`), so nothing depends on timing.
final class ManualClock: Clock, Sendable {
    typealias Instant = ContinuousClock.Instant

    private struct Sleeper {
        var deadline: Instant
        var continuation: CheckedContinuation<Void, any Error>
    }

    /// A test waiting until the sleepers satisfy a condition.
    private struct Watch {
        var condition: @Sendable ([Instant]) -> Bool
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var now: Instant
        var sleepers: [UInt64: Sleeper] = [:]
        var watches: [UInt64: Watch] = [:]
        var nextID: UInt64 = 0

        var deadlines: [Instant] { sleepers.values.map(\.deadline).sorted() }

        /// Takes the watches whose conditions hold now.
        mutating func satisfiedWatches() -> [CheckedContinuation<Void, any Error>] {
            let deadlines = deadlines
            let satisfied = watches.filter { $0.value.condition(deadlines) }
            for id in satisfied.keys { watches[id] = nil }
            return satisfied.values.map(\.continuation)
        }
    }

    private let state: Mutex<State>

    init(now: Instant = .now) {
        state = Mutex(State(now: now))
    }

    var now: Instant { state.withLock { $0.now } }

    var minimumResolution: Duration { .nanoseconds(1) }

    /// Returns once the clock has been advanced to `deadline` (at once if it is there already);
    /// throws `CancellationError` when the task is cancelled first.
    func sleep(until deadline: Instant, tolerance: Duration? = nil) async throws {
        let id = makeID()
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let (outcome, watches) = state.withLock { state -> (Result<Void, any Error>?, [CheckedContinuation<Void, any Error>]) in
                    if Task.isCancelled { return (.failure(CancellationError()), []) }
                    if deadline <= state.now { return (.success(()), []) }
                    state.sleepers[id] = Sleeper(deadline: deadline, continuation: continuation)
                    return (nil, state.satisfiedWatches())
                }
                if let outcome { continuation.resume(with: outcome) }
                for watch in watches { watch.resume() }
            }
        } onCancel: {
            let (sleeper, watches) = state.withLock { state in
                (state.sleepers.removeValue(forKey: id), state.satisfiedWatches())
            }
            sleeper?.continuation.resume(throwing: CancellationError())
            for watch in watches { watch.resume() }
        }
    }

    /// Moves the clock forward by `duration` and wakes every sleeper whose deadline is reached.
    func advance(by duration: Duration) {
        precondition(duration >= .zero, "a clock does not go back")
        move { $0 + duration }
    }

    /// Moves the clock forward to `instant` and wakes every sleeper whose deadline is reached.
    func advance(to instant: Instant) {
        move { now in
            precondition(instant >= now, "a clock does not go back")
            return instant
        }
    }

    /// Moves the clock to the earliest deadline of a sleeper (waking it, and any other sleeping
    /// until then); returns that deadline, or nil (and stays) when nobody sleeps.
    @discardableResult
    func advanceToNextDeadline() -> Instant? {
        guard let next = sleepers.first else { return nil }
        move { max($0, next) }
        return next
    }

    private func move(_ to: (Instant) -> Instant) {
        let (woken, watches) = state.withLock { state in
            state.now = to(state.now)
            let now = state.now
            let due = state.sleepers.filter { $0.value.deadline <= now }.sorted { $0.value.deadline < $1.value.deadline }
            for (id, _) in due { state.sleepers[id] = nil }
            return (due.map(\.value.continuation), state.satisfiedWatches())
        }
        for sleeper in woken { sleeper.resume() }
        for watch in watches { watch.resume() }
    }

    /// The deadlines of the tasks sleeping on the clock now, earliest first.
    var sleepers: [Instant] { state.withLock { $0.deadlines } }

    /// Waits until at least `count` tasks sleep on the clock — the code under test has done what
    /// it does before its next timer — at most `timeout` of real time; past it records an issue
    /// naming `what` and throws `TimedOut`.
    func waitForSleepers(_ count: Int = 1, timeout: Duration = .seconds(30), _ what: String,
                         sourceLocation: SourceLocation = #_sourceLocation) async throws {
        try await waitUntil(timeout: timeout, what, sourceLocation: sourceLocation) { $0.count >= count }
    }

    /// Waits until the deadlines of the sleepers (earliest first) satisfy `condition`, at most
    /// `timeout` of real time; past it records an issue naming `what` and throws `TimedOut`.
    func waitUntil(timeout: Duration = .seconds(30), _ what: String, sourceLocation: SourceLocation = #_sourceLocation,
                   _ condition: @escaping @Sendable ([Instant]) -> Bool) async throws {
        try await withTimeout(timeout, "\(what) (sleepers: \(self.describe(self.sleepers)))", sourceLocation: sourceLocation) {
            try await self.watch(condition)
        }
    }

    /// The sleepers' deadlines relative to now, for messages.
    func describe(_ deadlines: [Instant]) -> String {
        let now = self.now
        return "[" + deadlines.map { "now+\($0 - now)" }.joined(separator: ", ") + "]"
    }

    private func watch(_ condition: @escaping @Sendable ([Instant]) -> Bool) async throws {
        let id = makeID()
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let outcome = state.withLock { state -> Result<Void, any Error>? in
                    if condition(state.deadlines) { return .success(()) }
                    if Task.isCancelled { return .failure(CancellationError()) }
                    state.watches[id] = Watch(condition: condition, continuation: continuation)
                    return nil
                }
                if let outcome { continuation.resume(with: outcome) }
            }
        } onCancel: {
            let watch = state.withLock { $0.watches.removeValue(forKey: id) }
            watch?.continuation.resume(throwing: CancellationError())
        }
    }

    private func makeID() -> UInt64 {
        state.withLock { state in
            defer { state.nextID += 1 }
            return state.nextID
        }
    }
}

/// A value shared between test tasks.
final class Shared<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>

    init(_ value: Value) { mutex = Mutex(value) }

    func withLock<Result>(_ body: (inout Value) -> Result) -> Result {
        mutex.withLock { body(&$0) }
    }

    var value: Value { mutex.withLock { $0 } }
}
