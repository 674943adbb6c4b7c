import Foundation
import Synchronization

/// Answers remembered for a bounded time, with one load in flight per key: callers that ask for
/// a key while its load runs wait for that load and share its answer (or its error). Only
/// answers are kept; a failed load is not remembered, so the next caller asks again.
///
/// `now` is injectable so tests can move time; entries older than `timeToLive` are never served.
public final class RegistryFactCache<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    /// How often the cache answered from memory, how often it loaded, and how many callers waited
    /// for another caller's load.
    public struct Statistics: Sendable, Hashable {
        public var hits = 0
        public var loads = 0
        public var joined = 0

        public init(hits: Int = 0, loads: Int = 0, joined: Int = 0) {
            self.hits = hits
            self.loads = loads
            self.joined = joined
        }
    }

    private struct Entry {
        var value: Value
        var storedAt: Date
    }

    private struct State {
        var entries: [Key: Entry] = [:]
        var inFlight: [Key: [CheckedContinuation<Value, any Error>]] = [:]
        var statistics = Statistics()
    }

    /// How long an answer is served.
    public let timeToLive: TimeInterval
    /// At most this many answers are kept; expired ones are dropped first, then the oldest.
    public let capacity: Int
    private let now: @Sendable () -> Date
    private let state = Mutex(State())

    public init(timeToLive: TimeInterval, capacity: Int = 4096, now: @escaping @Sendable () -> Date = { Date() }) {
        self.timeToLive = timeToLive
        self.capacity = max(capacity, 1)
        self.now = now
    }

    public var statistics: Statistics { state.withLock { $0.statistics } }

    /// Callers waiting for the load of `key` now (for tests).
    public func waiting(for key: Key) -> Int { state.withLock { $0.inFlight[key]?.count ?? 0 } }

    /// Forgets `key`'s answer (the next caller loads it again).
    public func invalidate(_ key: Key) { state.withLock { _ = $0.entries.removeValue(forKey: key) } }

    /// Forgets every answer whose key matches `predicate`.
    public func invalidate(where predicate: (Key) -> Bool) {
        state.withLock { state in state.entries = state.entries.filter { !predicate($0.key) } }
    }

    /// The remembered answer for `key`, or the answer of the load in flight for it, or the answer
    /// of `load`, which this caller then runs for everyone asking meanwhile.
    public func value(for key: Key, load: @Sendable () async throws -> Value) async throws -> Value {
        while true {
            let role: Role = state.withLock { state in
                if let entry = state.entries[key], fresh(entry) {
                    state.statistics.hits += 1
                    return .cached(entry.value)
                }
                if state.inFlight[key] != nil { return .follower }
                state.inFlight[key] = []
                state.statistics.loads += 1
                return .leader
            }
            switch role {
            case .cached(let value):
                return value
            case .leader:
                let result: Result<Value, any Error>
                do { result = .success(try await load()) } catch { result = .failure(error) }
                let waiters = state.withLock { state in
                    if case .success(let value) = result { store(value, for: key, in: &state) }
                    return state.inFlight.removeValue(forKey: key) ?? []
                }
                for waiter in waiters { waiter.resume(with: result) }
                return try result.get()
            case .follower:
                do {
                    return try await withCheckedThrowingContinuation { continuation in
                        let immediate: Result<Value, any Error>? = state.withLock { state in
                            if state.inFlight[key] != nil {
                                state.inFlight[key]!.append(continuation)
                                state.statistics.joined += 1
                                return nil
                            }
                            if let entry = state.entries[key], fresh(entry) { return .success(entry.value) }
                            return .failure(LoadEnded())
                        }
                        if let immediate { continuation.resume(with: immediate) }
                    }
                } catch is LoadEnded {
                    continue  // the load ended (without an answer) before this caller joined it
                } catch is CancellationError where !Task.isCancelled {
                    continue  // the leader was cancelled, this caller was not: load again
                }
            }
        }
    }

    private func fresh(_ entry: Entry) -> Bool {
        let age = now().timeIntervalSince(entry.storedAt)
        return age >= 0 && age < timeToLive
    }

    private func store(_ value: Value, for key: Key, in state: inout State) {
        if state.entries.count >= capacity, state.entries[key] == nil {
            state.entries = state.entries.filter { fresh($0.value) }
            if state.entries.count >= capacity,
               let oldest = state.entries.min(by: { $0.value.storedAt < $1.value.storedAt })?.key
            {
                state.entries.removeValue(forKey: oldest)
            }
        }
        state.entries[key] = Entry(value: value, storedAt: now())
    }

    private struct LoadEnded: Error {}

    /// What a caller does: take the remembered answer, load it, or wait for the load in flight.
    private enum Role { case cached(Value), leader, follower }
}
