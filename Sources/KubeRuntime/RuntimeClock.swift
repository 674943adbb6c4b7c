/// The time of a runtime shell (`WorkQueue`, `LeaderElector`): "now" as the pure state machines
/// take it (`ContinuousClock.Instant`), and sleeping until such an instant.
///
/// Made from any `Clock` that measures in `Duration`: `ContinuousClock` by default, a manual clock
/// in tests. The instants of another clock are translated by their offset from the moment the
/// `RuntimeClock` was made, so the state machines see one consistent monotonic timeline; a clock
/// whose instants are `ContinuousClock.Instant` already (`ContinuousClock`, a test clock built on
/// its instants) is used as it is.
struct RuntimeClock: Sendable {
    private let currentInstant: @Sendable () -> ContinuousClock.Instant
    private let sleepUntil: @Sendable (ContinuousClock.Instant) async throws -> Void

    init<C: Clock<Duration>>(_ clock: C) {
        let origin = clock.now
        // Same instants: `base + origin.duration(to: x)` is `x` exactly. Another timeline: its
        // origin is anchored at the continuous clock's now.
        let base = (origin as? ContinuousClock.Instant) ?? ContinuousClock.now
        currentInstant = { base + origin.duration(to: clock.now) }
        sleepUntil = { deadline in
            try await clock.sleep(until: origin.advanced(by: base.duration(to: deadline)), tolerance: nil)
        }
    }

    /// The real monotonic clock.
    static let continuous = RuntimeClock(ContinuousClock())

    var now: ContinuousClock.Instant { currentInstant() }

    /// Sleeps until `deadline` (at once if it has passed); throws `CancellationError` when the task
    /// is cancelled.
    func sleep(until deadline: ContinuousClock.Instant) async throws {
        try await sleepUntil(deadline)
    }

    func sleep(for duration: Duration) async throws {
        try await sleepUntil(now + duration)
    }
}
