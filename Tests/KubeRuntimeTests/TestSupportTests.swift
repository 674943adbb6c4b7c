import KubeRuntime
import KubeTestSupport
import Testing

/// The waiting helpers themselves: a timeout says what it waited for and never hangs, and the
/// manual clock wakes sleepers only when moved.
@Suite("Test clocks and timeouts")
struct TestSupportTests {
    @Test func aTimeoutSaysWhatItWaitedForWithoutWaitingForTheBody() async throws {
        // A body that ignores cancellation: the timeout must not wait for it.
        let parked = Shared<CheckedContinuation<Void, Never>?>(nil)
        let started = ContinuousClock.now
        var thrown: (any Error)?
        do {
            try await withTimeout(.milliseconds(50), "a continuation nobody resumes", recordsIssue: false) {
                await withCheckedContinuation { continuation in parked.withLock { $0 = continuation } }
            }
        } catch {
            thrown = error
        }
        #expect(ContinuousClock.now - started < .seconds(10))
        let timedOut = try #require(thrown as? TimedOut)
        #expect(timedOut.what == "a continuation nobody resumes")
        #expect("\(timedOut)" == "timed out after 0.05 seconds waiting for: a continuation nobody resumes")
        try await eventually(timeout: .seconds(30), "the body parks") { parked.value != nil }
        parked.value?.resume()
    }

    @Test func aTimeoutPassesOnTheBodysResultAndErrors() async throws {
        #expect(try await withTimeout(.seconds(30), "a value") { 42 } == 42)
        struct Failure: Error {}
        await #expect(throws: Failure.self) {
            try await withTimeout(.seconds(30), "a failure") { throw Failure() }
        }
    }

    @Test func aGateReleasesPresentAndFutureWaiters() async throws {
        let gate = Gate()
        let waiter = Task { try await gate.wait() }
        #expect(!gate.isOpen)
        gate.open()
        try await withTimeout(.seconds(30), "the waiter passes the open gate") { try await waiter.value }
        try await gate.wait(timeout: .seconds(30), "a later wait passes at once")
        // A cancelled wait throws instead of waiting.
        let closed = Gate()
        let cancelled = Task { try await closed.wait() }
        cancelled.cancel()
        await #expect(throws: CancellationError.self) {
            try await withTimeout(.seconds(30), "the cancelled wait") { try await cancelled.value }
        }
    }

    @Test func sleepersWakeOnlyWhenTheClockReachesTheirDeadlines() async throws {
        let clock = ManualClock()
        let start = clock.now
        let woken = Shared<[Int]>([])
        let sleepers = [3, 1, 2].map { seconds in
            Task {
                try await clock.sleep(until: start + .seconds(seconds))
                woken.withLock { $0.append(seconds) }
            }
        }
        try await clock.waitForSleepers(3, "three tasks sleep")
        #expect(clock.sleepers == [1, 2, 3].map { start + .seconds($0) })
        clock.advance(by: .milliseconds(999))
        #expect(clock.sleepers.count == 3, "nobody is due yet")
        #expect(clock.advanceToNextDeadline() == start + .seconds(1))
        try await withTimeout(.seconds(30), "the 1 s sleeper wakes") { try await sleepers[1].value }
        clock.advance(to: start + .seconds(3))
        for sleeper in sleepers {
            try await withTimeout(.seconds(30), "every sleeper wakes") { try await sleeper.value }
        }
        #expect(woken.value.sorted() == [1, 2, 3])
        #expect(clock.sleepers.isEmpty)
        // A deadline already reached does not sleep at all.
        try await withTimeout(.seconds(30), "a sleep until the past returns") { try await clock.sleep(until: start) }
    }

    @Test func aCancelledSleepThrowsAndLeavesTheClock() async throws {
        let clock = ManualClock()
        let sleeper = Task { try await clock.sleep(until: clock.now + .seconds(60)) }
        try await clock.waitForSleepers(1, "the task sleeps")
        sleeper.cancel()
        await #expect(throws: CancellationError.self) {
            try await withTimeout(.seconds(30), "the cancelled sleep") { try await sleeper.value }
        }
        #expect(clock.sleepers.isEmpty)
    }

    @Test func anotherClocksTimelineIsTranslated() async throws {
        // The shells accept any Clock<Duration>; a SuspendingClock works as the default does.
        let queue = WorkQueue<String>(name: "suspending", clock: SuspendingClock())
        defer { queue.shutDown() }
        let timers = Task { await queue.runTimers() }
        defer { timers.cancel() }
        let start = ContinuousClock.now
        queue.add("a", after: .milliseconds(50))
        #expect(try await withTimeout(.seconds(30), "the key due after 50 ms") { await queue.get() } == "a")
        #expect(ContinuousClock.now - start >= .milliseconds(50))
    }
}
