import Synchronization
import Testing

/// A bounded wait ran out of time (the issue saying what it waited for is recorded already).
public struct TimedOut: Error, CustomStringConvertible, Sendable {
    public var what: String
    public var timeout: Duration
    public var description: String { "timed out after \(timeout) waiting for: \(what)" }
}

/// Waits for `body`, at most `timeout` (generous: the machine may be loaded).
///
/// Past the deadline it records an issue naming `what` (evaluated then, so it may describe the
/// state at the timeout), cancels `body` and throws `TimedOut` at
/// once — without waiting for `body` to notice, so a test can never hang here. Parent
/// cancellation cancels `body`. Errors of `body` are rethrown. (`recordsIssue: false` leaves the
/// issue to the caller, which catches `TimedOut`.)
///
///     let key = try await withTimeout(.seconds(10), "a worker takes the key") { await queue.get() }
public func withTimeout<T: Sendable>(_ timeout: Duration = .seconds(60), _ what: @autoclosure @escaping @Sendable () -> String,
                                     recordsIssue: Bool = true, sourceLocation: SourceLocation = #_sourceLocation,
                                     _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    let outcome = FirstOutcome<T>()
    let work = Task {
        do { outcome.resolve(.finished(.success(try await body()))) } catch { outcome.resolve(.finished(.failure(error))) }
    }
    let timer = Task {
        try? await Task.sleep(for: timeout)
        outcome.resolve(.timedOut)
    }
    defer { timer.cancel() }
    let first = await withTaskCancellationHandler {
        await outcome.value()
    } onCancel: {
        work.cancel()
    }
    switch first {
    case .finished(let result):
        return try result.get()
    case .timedOut:
        work.cancel()
        let error = TimedOut(what: what(), timeout: timeout)
        if recordsIssue { Issue.record("\(error)", sourceLocation: sourceLocation) }
        throw error
    }
}

/// Whichever of the body and the timer of `withTimeout` finished first.
private final class FirstOutcome<T: Sendable>: Sendable {
    enum Outcome: Sendable {
        case finished(Result<T, any Error>)
        case timedOut
    }

    private struct State {
        var outcome: Outcome?
        var waiter: CheckedContinuation<Outcome, Never>?
    }

    private let state = Mutex(State())

    func resolve(_ outcome: Outcome) {
        let waiter = state.withLock { state -> CheckedContinuation<Outcome, Never>? in
            guard state.outcome == nil else { return nil }
            state.outcome = outcome
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: outcome)
    }

    /// The first outcome (one caller only).
    func value() async -> Outcome {
        await withCheckedContinuation { continuation in
            let ready = state.withLock { state -> Outcome? in
                if let outcome = state.outcome { return outcome }
                state.waiter = continuation
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }
}

/// A one-shot gate a test controls: every `wait()`, present or future, returns once it is
/// `open()`. Work under test signals with it that it got somewhere, or waits on it until the test
/// lets it go on.
public final class Gate: Sendable {
    private struct State {
        var isOpen = false
        var waiters: [UInt64: CheckedContinuation<Void, any Error>] = [:]
        var nextID: UInt64 = 0
    }

    private let state = Mutex(State())

    public init() {}

    public var isOpen: Bool { state.withLock { $0.isOpen } }

    public func open() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, any Error>] in
            guard !state.isOpen else { return [] }
            state.isOpen = true
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns once the gate is open; throws `CancellationError` if the task is cancelled first.
    public func wait() async throws {
        let id = state.withLock { state in
            defer { state.nextID += 1 }
            return state.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let outcome = state.withLock { state -> Result<Void, any Error>? in
                    if state.isOpen { return .success(()) }
                    if Task.isCancelled { return .failure(CancellationError()) }
                    state.waiters[id] = continuation
                    return nil
                }
                if let outcome { continuation.resume(with: outcome) }
            }
        } onCancel: {
            let waiter = state.withLock { $0.waiters.removeValue(forKey: id) }
            waiter?.resume(throwing: CancellationError())
        }
    }

    /// Waits until the gate is open, at most `timeout`; past it records an issue naming `what`
    /// and throws `TimedOut`.
    public func wait(timeout: Duration = .seconds(30), _ what: String,
                     sourceLocation: SourceLocation = #_sourceLocation) async throws {
        try await withTimeout(timeout, what, sourceLocation: sourceLocation) { try await self.wait() }
    }
}
