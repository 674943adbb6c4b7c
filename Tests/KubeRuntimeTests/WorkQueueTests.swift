import KubeTestSupport
import Synchronization
import Testing

@testable import KubeRuntime

@Suite("Work queue state")
struct WorkQueueStateTests {
    @Test func aKeyIsQueuedAtMostOnce() {
        let clock = ManualClock()
        var queue = WorkQueueState<String>()
        let result1 = queue.add("a", at: clock.now)
        #expect(result1)
        let result2 = queue.add("a", at: clock.now)
        #expect(!result2)
        let result3 = queue.add("b", at: clock.now)
        #expect(result3)
        #expect(queue.depth == 2)
        let result4 = queue.pop(at: clock.now)
        #expect(result4?.key == "a")
        let result5 = queue.pop(at: clock.now)
        #expect(result5?.key == "b")
        let result6 = queue.pop(at: clock.now)
        #expect(result6 == nil)
    }

    @Test func reAddDuringProcessingIsProcessedAfterwardsNeverConcurrently() {
        let clock = ManualClock()
        var queue = WorkQueueState<String>()
        queue.add("a", at: clock.now)
        let result7 = queue.pop(at: clock.now)
        #expect(result7?.key == "a")
        #expect(queue.isProcessing("a"))
        // Added twice while processing: not handed out, queued once after done.
        let result8 = queue.add("a", at: clock.now)
        #expect(result8)
        let result9 = queue.add("a", at: clock.now)
        #expect(!result9)
        #expect(queue.depth == 0)
        let result10 = queue.pop(at: clock.now)
        #expect(result10 == nil)
        let done = queue.done("a", at: clock.now)
        #expect(done.requeued)
        #expect(queue.depth == 1)
        let result11 = queue.pop(at: clock.now)
        #expect(result11?.key == "a")
        let result12 = queue.done("a", at: clock.now)
        #expect(!result12.requeued)
        #expect(queue.depth == 0)
    }

    @Test func addAfterKeepsTheEarliestDeadline() {
        let clock = ManualClock()
        var queue = WorkQueueState<String>()
        let start = clock.now
        queue.add("a", after: .seconds(10), at: clock.now)
        queue.add("a", after: .seconds(30), at: clock.now)
        #expect(queue.deadline(of: "a") == start + .seconds(10))
        queue.add("a", after: .seconds(2), at: clock.now)
        #expect(queue.deadline(of: "a") == start + .seconds(2))
        #expect(queue.nextDeadline == start + .seconds(2))
        #expect(queue.depth == 0)
        clock.advance(by: .seconds(1))
        let result13 = queue.promoteDue(at: clock.now)
        #expect(result13.isEmpty)
        clock.advance(by: .seconds(1))
        let result14 = queue.promoteDue(at: clock.now)
        #expect(result14 == ["a"])
        #expect(queue.depth == 1)
        #expect(queue.waitingCount == 0)
    }

    @Test func addAfterOfAQueuedKeyDoesNotDuplicateIt() {
        let clock = ManualClock()
        var queue = WorkQueueState<String>()
        queue.add("a", at: clock.now)
        queue.add("a", after: .seconds(1), at: clock.now)
        clock.advance(by: .seconds(1))
        queue.promoteDue(at: clock.now)
        #expect(queue.queuedKeys == ["a"])
    }

    @Test func zeroDelayAddsAtOnce() {
        let clock = ManualClock()
        var queue = WorkQueueState<String>()
        let result15 = queue.add("a", after: .zero, at: clock.now)
        #expect(result15)
        #expect(queue.depth == 1)
    }

    @Test func failuresBackOffExponentiallyPerKeyUntilForgotten() {
        let clock = ManualClock()
        var queue = WorkQueueState<String>()
        var delays: [Duration] = []
        for _ in 0..<5 { delays.append(queue.addRateLimited("a", at: clock.now)) }
        #expect(delays == [.milliseconds(5), .milliseconds(10), .milliseconds(20), .milliseconds(40), .milliseconds(80)])
        #expect(queue.failures(of: "a") == 5)
        // Other keys have their own count.
        let result16 = queue.addRateLimited("b", at: clock.now)
        #expect(result16 == .milliseconds(5))
        queue.forget("a")
        #expect(queue.failures(of: "a") == 0)
        let result17 = queue.addRateLimited("a", at: clock.now)
        #expect(result17 == .milliseconds(5))
    }

    @Test func backoffIsCappedAt1000Seconds() {
        let backoff = ItemBackoff()
        #expect(backoff.delay(afterFailures: 1) == .milliseconds(5))
        #expect(backoff.delay(afterFailures: 18) == .milliseconds(655_360))
        #expect(backoff.delay(afterFailures: 19) == .seconds(1000))
        #expect(backoff.delay(afterFailures: 200) == .seconds(1000))
    }

    @Test func shutDownDropsQueuedKeysAndIgnoresAdds() {
        let clock = ManualClock()
        var queue = WorkQueueState<String>()
        queue.add("a", at: clock.now)
        queue.add("b", at: clock.now)
        _ = queue.pop(at: clock.now)
        queue.shutDown()
        let result18 = queue.add("c", at: clock.now)
        #expect(!result18)
        let result19 = queue.pop(at: clock.now)
        #expect(result19 == nil)
        // The key in flight can still finish.
        let result20 = queue.done("a", at: clock.now)
        #expect(!result20.requeued)
    }

    @Test func queueAndWorkDurationsAreMeasured() {
        let clock = ManualClock()
        var queue = WorkQueueState<String>()
        queue.add("a", at: clock.now)
        clock.advance(by: .milliseconds(300))
        let result21 = queue.pop(at: clock.now)
        #expect(result21?.queuedFor == .milliseconds(300))
        clock.advance(by: .seconds(2))
        let result22 = queue.done("a", at: clock.now)
        #expect(result22.processedFor == .seconds(2))
    }
}

@Suite("Work queue")
struct WorkQueueTests {
    @Test func workersNeverProcessAKeyConcurrently() async throws {
        let queue = WorkQueue<Int>(name: "test-concurrency")
        let inFlight = Shared<Set<Int>>([])
        let overlaps = Shared(0)
        let processed = Shared(0)
        let enough = Gate()
        try await withThrowingTaskGroup(of: Void.self) { group in
            // However this ends, the workers and the timer loop stop.
            defer { queue.shutDown() }
            group.addTask { await queue.runTimers() }
            for _ in 0..<4 {
                group.addTask {
                    while let key = await queue.get() {
                        let clash = inFlight.withLock { !$0.insert(key).inserted }
                        if clash { overlaps.withLock { $0 += 1 } }
                        await Task.yield()
                        // Re-adding while processing must not hand the key to another worker.
                        if processed.withLock({ $0 }) < 200 { queue.add(key) }
                        await Task.yield()
                        inFlight.withLock { _ = $0.remove(key) }
                        if processed.withLock({ (count: inout Int) -> Int in count += 1; return count }) >= 200 { enough.open() }
                        queue.done(key)
                    }
                }
            }
            for key in 0..<3 { queue.add(key) }
            try await enough.wait(timeout: .seconds(60), "200 keys processed by 4 workers")
        }
        #expect(overlaps.withLock { $0 } == 0)
        #expect(processed.withLock { $0 } >= 200)
    }

    /// The default clock is the real one: a delay takes real time.
    @Test func delayedAddsArriveAfterTheirDeadline() async throws {
        let queue = WorkQueue<String>(name: "test-delay")
        let clock = ContinuousClock()
        let start = clock.now
        let received = try await withThrowingTaskGroup(of: Void.self) { group in
            defer { queue.shutDown() }
            group.addTask { await queue.runTimers() }
            queue.add("late", after: .milliseconds(200))
            queue.add("late", after: .seconds(60))
            return try await withTimeout(.seconds(30), "the key added after 200 ms") {
                let key = await queue.get()
                if let key { queue.done(key) }
                return key
            }
        }
        #expect(received == "late")
        #expect(clock.now - start >= .milliseconds(200))
    }

    @Test func shutDownReleasesWaitingWorkersAndLetsInFlightWorkFinish() async throws {
        let queue = WorkQueue<String>(name: "test-shutdown")
        defer { queue.shutDown() }
        let started = Gate(), finish = Gate(), oneExited = Gate()
        let finished = Shared(false)
        let exited = Shared(0)
        // Two workers; whichever takes the key says so and holds it until the test lets it finish.
        let workers = (0..<2).map { _ in
            Task {
                var processed: [String] = []
                while let key = await queue.get() {
                    started.open()
                    try? await finish.wait()
                    finished.withLock { $0 = true }
                    processed.append(key)
                    queue.done(key)
                }
                exited.withLock { $0 += 1 }
                oneExited.open()
                return processed
            }
        }
        defer { for worker in workers { worker.cancel() } }
        try await eventually(timeout: .seconds(30), "both workers wait in get()") { queue.waitingGetCount == 2 }
        queue.add("a")
        try await started.wait(timeout: .seconds(30), "a worker takes the key")
        #expect(queue.processingCount == 1)
        #expect(queue.waitingGetCount == 1)

        // The waiting worker is released with nil; the one in flight is not interrupted.
        queue.shutDown()
        try await oneExited.wait(timeout: .seconds(30), "the waiting worker returns after shutDown()")
        #expect(exited.value == 1)
        #expect(!finished.value)
        #expect(queue.processingCount == 1)

        finish.open()
        let processed = try await withTimeout(.seconds(30), "the in-flight worker finishes after shutDown()") {
            var all: [[String]] = []
            for worker in workers { all.append(await worker.value) }
            return all
        }
        #expect(finished.withLock { $0 })
        #expect(processed.sorted { $0.count < $1.count } == [[], ["a"]])
        #expect(queue.processingCount == 0)
        #expect(try await withTimeout(.seconds(10), "get() after shutDown()") { await queue.get() } == nil)
    }

    @Test func cancelledGetReturnsNil() async throws {
        let queue = WorkQueue<String>(name: "test-cancel")
        defer { queue.shutDown() }
        let waiting = Task { await queue.get() }
        try await eventually(timeout: .seconds(30), "get() waits for a key") { queue.waitingGetCount == 1 }
        waiting.cancel()
        let result = try await withTimeout(.seconds(10), "the cancelled get() returns") { await waiting.value }
        #expect(result == nil)
        #expect(queue.waitingGetCount == 0)
        // A get() of a task cancelled already returns nil at once, even with a key queued.
        queue.add("a")
        let cancelled = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return await queue.get()
        }
        #expect(try await withTimeout(.seconds(10), "get() of a cancelled task") { await cancelled.value } == nil)
        #expect(queue.depth == 1)
    }
}

/// `WorkQueue` on a manual clock: delays and backoff pass only when the test moves time.
@Suite("Work queue on a manual clock")
struct WorkQueueClockTests {
    /// A queue on `clock` with its timer loop running for the duration of `body`.
    func withQueue<T: Sendable>(_ name: String, clock: ManualClock,
                                _ body: @Sendable (WorkQueue<String>) async throws -> T) async throws -> T {
        let queue = WorkQueue<String>(name: name, clock: clock)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            defer { queue.shutDown() }
            group.addTask { await queue.runTimers() }
            return try await body(queue)
        }
    }

    /// The next key, waiting at most a few seconds of real time.
    func next(_ queue: WorkQueue<String>, _ what: String) async throws -> String? {
        try await withTimeout(.seconds(30), what) { await queue.get() }
    }

    @Test func aDelayedKeyArrivesWhenTheClockReachesItsDeadline() async throws {
        let clock = ManualClock()
        let start = clock.now
        try await withQueue("clock-delay", clock: clock) { queue in
            queue.add("late", after: .milliseconds(200))
            // A later deadline for the same key does not postpone it.
            queue.add("late", after: .seconds(60))
            #expect(queue.waitingCount == 1)
            try await clock.waitUntil("the timer sleeps until the 200 ms deadline") { $0 == [start + .milliseconds(200)] }

            clock.advance(by: .milliseconds(199))
            #expect(queue.depth == 0 && queue.waitingCount == 1, "not due 1 ms before its deadline")

            clock.advance(by: .milliseconds(1))
            #expect(try await next(queue, "the key due at 200 ms") == "late")
            queue.done("late")
            #expect(clock.now - start == .milliseconds(200))
            #expect(queue.waitingCount == 0, "the 60 s deadline was dropped, not kept for later")
        }
    }

    @Test func theEarliestOfSeveralDeadlinesWinsAndTheRestFollow() async throws {
        let clock = ManualClock()
        let start = clock.now
        try await withQueue("clock-order", clock: clock) { queue in
            queue.add("c", after: .seconds(3))
            queue.add("a", after: .seconds(1))
            queue.add("b", after: .seconds(2))
            try await clock.waitUntil("the timer sleeps until the first deadline") { $0 == [start + .seconds(1)] }
            clock.advance(by: .seconds(2))
            // Both due keys, in deadline order.
            #expect(try await next(queue, "a, due at 1 s") == "a")
            #expect(try await next(queue, "b, due at 2 s") == "b")
            queue.done("a")
            queue.done("b")
            try await clock.waitUntil("the timer sleeps until c's deadline") { $0 == [start + .seconds(3)] }
            #expect(queue.depth == 0)
            clock.advance(by: .seconds(1))
            #expect(try await next(queue, "c, due at 3 s") == "c")
        }
    }

    @Test func failuresAreRetriedAfterTheirBackoffAndForgetResetsIt() async throws {
        let clock = ManualClock()
        try await withQueue("clock-backoff", clock: clock) { queue in
            queue.add("a")
            #expect(try await next(queue, "the first try") == "a")
            // Each failure doubles the delay: 5, 10, 20, 40 ms; the key is not handed out earlier.
            for (failure, expected) in [5, 10, 20, 40].map(Duration.milliseconds).enumerated() {
                let failedAt = clock.now
                queue.addRateLimited("a")
                queue.done("a")
                #expect(queue.failures(of: "a") == failure + 1)
                try await clock.waitUntil("the timer sleeps until the retry after \(expected)") { $0 == [failedAt + expected] }
                clock.advance(by: expected - .milliseconds(1))
                #expect(queue.depth == 0 && queue.waitingCount == 1, "retry \(failure + 1) is not due before \(expected)")
                clock.advance(by: .milliseconds(1))
                #expect(try await next(queue, "retry \(failure + 1) after \(expected)") == "a")
                #expect(clock.now - failedAt == expected)
            }
            // A success forgets the failures: the next failure starts again at 5 ms.
            queue.forget("a")
            let failedAt = clock.now
            queue.addRateLimited("a")
            queue.done("a")
            try await clock.waitUntil("the timer sleeps until the retry after 5 ms") { $0 == [failedAt + .milliseconds(5)] }
            clock.advance(by: .milliseconds(5))
            #expect(try await next(queue, "the retry after forget") == "a")
            queue.done("a")
        }
    }

    @Test func aKeyAddedWhileItsRetryWaitsIsProcessedAtOnceAndTheRetryStillComes() async throws {
        let clock = ManualClock()
        let start = clock.now
        try await withQueue("clock-readd", clock: clock) { queue in
            queue.add("a")
            #expect(try await next(queue, "the first try") == "a")
            queue.addRateLimited("a")
            queue.done("a")
            #expect(queue.waitingCount == 1)
            // A new event for the key does not wait for the backoff…
            queue.add("a")
            #expect(try await next(queue, "the key added again") == "a")
            #expect(clock.now == start)
            queue.done("a")
            // …and the pending retry still comes when it is due, once.
            try await clock.waitUntil("the timer sleeps until the 5 ms retry") { $0 == [start + .milliseconds(5)] }
            clock.advance(by: .milliseconds(5))
            #expect(try await next(queue, "the retry after 5 ms") == "a")
            queue.done("a")
            #expect(queue.depth == 0 && queue.waitingCount == 0)
        }
    }

    @Test func shutDownStopsTheTimerSleepingOnTheClock() async throws {
        let clock = ManualClock()
        let queue = WorkQueue<String>(name: "clock-shutdown", clock: clock)
        let timers = Task { await queue.runTimers() }
        defer { timers.cancel() }
        queue.add("a", after: .seconds(30))
        try await clock.waitForSleepers(1, "the timer sleeps until the 30 s deadline")
        queue.shutDown()
        try await withTimeout(.seconds(30), "runTimers() returns after shutDown()") { await timers.value }
        #expect(clock.sleepers.isEmpty, "the timer's sleep is cancelled")
        #expect(queue.waitingCount == 0)
    }

    @Test func aDelayIsMeasuredFromTheClocksNowWhenTheKeyIsAdded() async throws {
        let clock = ManualClock()
        let due = clock.now + .seconds(5)
        let queue = WorkQueue<String>(name: "clock-now", clock: clock)
        defer { queue.shutDown() }
        queue.add("a", after: .seconds(5))
        // Time passes before the timer loop even starts: it sleeps only for the rest.
        clock.advance(by: .seconds(4))
        let timers = Task { await queue.runTimers() }
        defer { timers.cancel() }
        try await clock.waitUntil("the timer sleeps until 5 s after the add") { $0 == [due] }
        clock.advance(by: .seconds(1))
        #expect(try await withTimeout(.seconds(30), "the key due at 5 s") { await queue.get() } == "a")
    }
}
