import Foundation

/// Exponential backoff with jitter that resets after a healthy period: the delays of a watcher
/// reconnecting (0.8 s, 1.6 s, 3.2 s … up to 30 s by default, each ±20 %).
public struct Backoff: Sendable, Hashable {
    /// The first delay.
    public var initial: Duration
    /// No delay is longer than this (jitter included).
    public var maximum: Duration
    /// Each failure multiplies the delay by this.
    public var factor: Double
    /// Each delay is scaled by a random factor in `1 ± jitter`.
    public var jitter: Double
    /// A failure after this long of uninterrupted health starts again from `initial`.
    public var resetAfter: Duration

    /// Failures since the last reset.
    public private(set) var failures = 0
    /// When the current healthy period began (nil while failing).
    public private(set) var healthySince: ContinuousClock.Instant?

    public init(initial: Duration = .milliseconds(800), maximum: Duration = .seconds(30), factor: Double = 2,
                jitter: Double = 0.2, resetAfter: Duration = .seconds(120)) {
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self.jitter = jitter
        self.resetAfter = resetAfter
    }

    /// The defaults of a watcher: 0.8 s → 30 s, ×2, ±20 %, reset after 2 minutes of health.
    public static let watcher = Backoff()

    /// Records that things work (a list succeeded, a watch was established). The first call after
    /// a failure starts the healthy period.
    public mutating func markHealthy(at now: ContinuousClock.Instant) {
        if healthySince == nil { healthySince = now }
    }

    /// Records a failure and returns how long to wait before trying again.
    public mutating func nextDelay(at now: ContinuousClock.Instant, random: inout some RandomNumberGenerator) -> Duration {
        if let healthySince, now - healthySince >= resetAfter { failures = 0 }
        healthySince = nil
        let base = initial * pow(factor, Double(failures))
        failures += 1
        let scaled = min(base, maximum) * (1 + jitter * Double.random(in: -1...1, using: &random))
        return min(max(scaled, .zero), maximum)
    }

    /// Forgets all failures.
    public mutating func reset() {
        failures = 0
        healthySince = nil
    }
}

/// A small seedable random number generator (SplitMix64): deterministic in tests, seeded from the
/// system generator otherwise.
public struct SeededRandom: RandomNumberGenerator, Sendable, Hashable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public init() {
        var system = SystemRandomNumberGenerator()
        state = system.next()
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension Duration {
    /// The duration in seconds, as a floating-point number.
    var seconds: Double {
        let (whole, attoseconds) = components
        return Double(whole) + Double(attoseconds) / 1e18
    }
}
