import Foundation
import Synchronization

/// A client-side limit on API requests (watches and other streams are not counted): a token
/// bucket refilled at `requestsPerSecond`, holding up to `burst` tokens. A request that finds the
/// bucket empty waits for its token, so a runaway loop cannot flood the API server.
public struct RateLimit: Sendable, Hashable {
    public var requestsPerSecond: Double
    public var burst: Int

    public init(requestsPerSecond: Double, burst: Int) {
        self.requestsPerSecond = requestsPerSecond
        self.burst = max(burst, 1)
    }
}

/// The token bucket behind `RateLimit`. Reserving a token may take the count below zero; the
/// caller then sleeps until its token has been refilled.
final class TokenBucket: Sendable {
    private struct State {
        var tokens: Double
        var refilled: ContinuousClock.Instant
    }

    let limit: RateLimit
    private let state: Mutex<State>

    init(_ limit: RateLimit) {
        self.limit = limit
        self.state = Mutex(State(tokens: Double(limit.burst), refilled: .now))
    }

    /// How long the caller must wait for the token it reserves now.
    func reserve(at now: ContinuousClock.Instant = .now) -> Duration {
        state.withLock { state in
            let elapsed = now - state.refilled
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            if seconds > 0 {
                state.tokens = min(Double(limit.burst), state.tokens + seconds * limit.requestsPerSecond)
                state.refilled = now
            }
            state.tokens -= 1
            guard state.tokens < 0 else { return .zero }
            return .seconds(-state.tokens / limit.requestsPerSecond)
        }
    }

    /// Waits for a token.
    func acquire() async throws {
        let wait = reserve()
        if wait > .zero { try await Task.sleep(for: wait) }
    }
}
