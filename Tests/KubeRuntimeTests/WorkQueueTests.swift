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
        var clock = ManualClock()
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
        var clock = ManualClock()
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
        var clock = ManualClock()
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
    @Test func workersNeverProcessAKeyConcurrently() async {
        let queue = WorkQueue<Int>(name: "test-concurrency")
        let inFlight = Shared<Set<Int>>([])
        let overlaps = Shared(0)
        let processed = Shared(0)
        await withTaskGroup(of: Void.self) { group in
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
                        processed.withLock { $0 += 1 }
                        queue.done(key)
                    }
                }
            }
            for key in 0..<3 { queue.add(key) }
            while processed.withLock({ $0 }) < 200 { try? await Task.sleep(for: .milliseconds(5)) }
            queue.shutDown()
        }
        #expect(overlaps.withLock { $0 } == 0)
        #expect(processed.withLock { $0 } >= 200)
    }

    @Test func delayedAddsArriveAfterTheirDeadline() async {
        let queue = WorkQueue<String>(name: "test-delay")
        let clock = ContinuousClock()
        let start = clock.now
        let received = await withTaskGroup(of: String?.self) { group in
            group.addTask { await queue.runTimers(); return nil }
            group.addTask {
                let key = await queue.get()
                if let key { queue.done(key) }
                return key
            }
            queue.add("late", after: .milliseconds(200))
            queue.add("late", after: .seconds(60))
            let first = await group.next() ?? nil
            queue.shutDown()
            return first
        }
        #expect(received == "late")
        #expect(clock.now - start >= .milliseconds(200))
    }

    @Test func shutDownReleasesWaitingWorkersAndLetsInFlightWorkFinish() async {
        let queue = WorkQueue<String>(name: "test-shutdown")
        let finished = Shared(false)
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                guard let key = await queue.get() else { return }
                // In flight when the queue shuts down: finishes normally.
                try? await Task.sleep(for: .milliseconds(100))
                finished.withLock { $0 = true }
                queue.done(key)
            }
            group.addTask {
                // Waiting when the queue shuts down: released with nil.
                while let key = await queue.get() { queue.done(key) }
            }
            queue.add("a")
            while queue.processingCount == 0 { await Task.yield() }
            queue.shutDown()
            await group.waitForAll()
        }
        #expect(finished.withLock { $0 })
        #expect(await queue.get() == nil)
    }

    @Test func cancelledGetReturnsNil() async {
        let queue = WorkQueue<String>(name: "test-cancel")
        let result = await withTaskGroup(of: String?.self) { group in
            group.addTask { await queue.get() }
            try? await Task.sleep(for: .milliseconds(20))
            group.cancelAll()
            return await group.next() ?? "unexpected"
        }
        #expect(result == nil)
    }
}
