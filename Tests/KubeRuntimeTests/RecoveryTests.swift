import CurlHTTP
import KubeClient
import KubeTestSupport
import KubeTypes
import Testing

@testable import KubeRuntime

/// How quickly the runtime comes back after the API server was unreachable: the watch's reconnect
/// delay is bounded, and the reconciles that failed meanwhile do not wait out their grown backoff.
@Suite("Recovery after an outage")
struct RecoveryTests {
    let clock = ManualClock()

    func watching(seed: UInt64 = 1) -> WatcherStateMachine {
        var machine = WatcherStateMachine(random: SeededRandom(seed: seed))
        _ = machine.nextAction()
        machine.listSucceeded(resourceVersion: "100", at: clock.now)
        _ = machine.nextAction()
        machine.watchStarted(at: clock.now)
        return machine
    }

    @Test func noAnswerFromTheServerIsClassifiedUnreachable() {
        let refused = TransportError(kind: .connectionRefused, curlCode: 7, url: "https://127.0.0.1:1/api", detail: "")
        let reset = TransportError(kind: .connectionClosed, curlCode: 56, url: "https://127.0.0.1:1/api", detail: "")
        let tls = TransportError(kind: .tlsVerificationFailed, curlCode: 60, url: "https://127.0.0.1:1/api", detail: "")
        #expect(WatchFailure(refused) == .unreachable(String(describing: refused)))
        #expect(WatchFailure(reset) == .unreachable(String(describing: reset)))
        // Trying again does not fix a certificate: the long backoff applies.
        #expect(WatchFailure(tls) == .other(String(describing: tls)))
        let serverError = APIError(code: 500, status: Status(message: "boom", reason: "InternalError", code: 500))
        #expect(WatchFailure(serverError) == .other(String(describing: serverError)))
        // What kube-apiserver answers while it starts: it is about to answer.
        let starting = APIError(code: 503, status: Status(message: "server is starting", reason: "ServiceUnavailable", code: 503))
        #expect(WatchFailure(starting) == .unreachable(String(describing: starting)))
    }

    @Test func reconnectDelayIsBoundedWhileTheServerIsUnreachable() {
        var machine = watching()
        var delays: [Duration] = []
        for _ in 0..<12 {
            machine.watchFailed(.unreachable("connection refused"), at: clock.now)
            guard case .wait(let delay) = machine.nextAction() else { Issue.record("expected a wait"); return }
            delays.append(delay)
            clock.advance(by: delay)
            guard case .watch(let from, _) = machine.nextAction() else { Issue.record("expected a watch"); return }
            #expect(from == "100")
        }
        #expect(delays.allSatisfy { $0 <= .seconds(2) }, "\(delays)")
        #expect(delays[0] < .seconds(1))
        // The same failures with an answer (5xx) go on growing to the long maximum.
        var answered = watching()
        var longest = Duration.zero
        for _ in 0..<12 {
            answered.watchFailed(.other("HTTP 500"), at: clock.now)
            guard case .wait(let delay) = answered.nextAction() else { Issue.record("expected a wait"); return }
            longest = max(longest, delay)
            _ = answered.nextAction()
        }
        #expect(longest > .seconds(20))
    }

    @Test func listsAfterUnreachableFailuresAreBoundedToo() {
        var machine = WatcherStateMachine(random: SeededRandom(seed: 9))
        for _ in 0..<10 {
            let action = machine.nextAction()
            #expect(action == .list(resourceVersion: nil, pageSize: 500))
            machine.listFailed(.unreachable("connection refused"), at: clock.now)
            guard case .wait(let delay) = machine.nextAction() else { Issue.record("expected a wait"); return }
            #expect(delay <= .seconds(2))
        }
    }

    @Test func successAfterFailuresIsReportedAsRecoveryOnce() {
        var machine = watching()
        #expect(!machine.isFailing)
        machine.watchFailed(.unreachable("refused"), at: clock.now)
        #expect(machine.isFailing)
        _ = machine.nextAction()
        _ = machine.nextAction()
        machine.watchFailed(.unreachable("refused"), at: clock.now)
        _ = machine.nextAction()
        _ = machine.nextAction()
        let recovered = machine.watchStarted(at: clock.now)
        #expect(recovered, "the first watch after failures is a recovery")
        machine.watchEnded(at: clock.now)
        _ = machine.nextAction()
        let routine = machine.watchStarted(at: clock.now)
        #expect(!routine, "a routine re-watch is not")

        // A failed list, then a successful one, is a recovery too.
        var listing = WatcherStateMachine(random: SeededRandom(seed: 2))
        _ = listing.nextAction()
        listing.listFailed(.other("HTTP 503"), at: clock.now)
        _ = listing.nextAction()
        _ = listing.nextAction()
        let listed = listing.listSucceeded(resourceVersion: "7", at: clock.now)
        #expect(listed)
    }

    @Test func aGoneWatchIsNoOutage() {
        var machine = watching()
        machine.watchFailed(.gone, at: clock.now)
        #expect(!machine.isFailing)
        let action = machine.nextAction()
        #expect(action == .list(resourceVersion: "100", pageSize: 500))
        let relisted = machine.listSucceeded(resourceVersion: "150", at: clock.now)
        #expect(!relisted)
    }

    // MARK: - Work queue

    /// Processes `key` and fails it `times` times in a row, each after its backoff; returns the last delay.
    @discardableResult
    func fail(_ key: String, times: Int, in queue: inout WorkQueueState<String>) -> Duration {
        queue.add(key, at: clock.now)
        var delay = Duration.zero
        for attempt in 0..<times {
            if attempt > 0 {
                clock.advance(by: delay)
                queue.promoteDue(at: clock.now)
            }
            _ = queue.pop(at: clock.now)
            delay = queue.addRateLimited(key, at: clock.now)
            queue.done(key, at: clock.now)
        }
        return delay
    }

    @Test func retryBackedOffQueuesFailedKeysNowAndLeavesOtherDeadlines() {
        let clock = self.clock
        var queue = WorkQueueState<String>()
        // "a" failed 12 times: it waits 10 s now.
        fail("a", times: 12, in: &queue)
        #expect(queue.deadline(of: "a") == clock.now + .milliseconds(5 * 2048))
        // "b" asked to be looked at again in a minute: that is no failure backoff.
        queue.add("b", after: .seconds(60), at: clock.now)
        #expect(queue.backingOffCount == 1)

        let retried = queue.retryBackedOff(at: clock.now)
        #expect(retried == ["a"])
        #expect(queue.queuedKeys == ["a"])
        #expect(queue.deadline(of: "b") == clock.now + .seconds(60))
        #expect(queue.backingOffCount == 0)
        // The count is kept: a key that goes on failing goes on backing off.
        #expect(queue.failures(of: "a") == 12)
        _ = queue.pop(at: clock.now)
        let next = queue.addRateLimited("a", at: clock.now)
        #expect(next == .milliseconds(5 * 4096))
    }

    @Test func aKeyInFlightDuringRecoveryThatFailsIsRetriedSoon() {
        let clock = self.clock
        var queue = WorkQueueState<String>()
        let last = fail("a", times: 10, in: &queue)
        clock.advance(by: last)
        queue.promoteDue(at: clock.now)
        _ = queue.pop(at: clock.now)
        // The server came back while "a" was being processed with a request sent before.
        queue.retryBackedOff(at: clock.now)
        let soon = queue.addRateLimited("a", at: clock.now)
        #expect(soon == .milliseconds(5))
        queue.done("a", at: clock.now)
        // Only that once.
        clock.advance(by: .seconds(1))
        queue.promoteDue(at: clock.now)
        _ = queue.pop(at: clock.now)
        let grown = queue.addRateLimited("a", at: clock.now)
        #expect(grown == .milliseconds(5 * 2048))
    }

    @Test func anEarlierPlainDeadlineEndsTheBackoffMark() {
        let clock = self.clock
        var queue = WorkQueueState<String>()
        for _ in 0..<8 { queue.addRateLimited("a", at: clock.now) }
        #expect(queue.backingOffCount == 1)
        queue.add("a", after: .milliseconds(1), at: clock.now)
        #expect(queue.backingOffCount == 0)
        let retried = queue.retryBackedOff(at: clock.now)
        #expect(retried.isEmpty)
        clock.advance(by: .milliseconds(1))
        let promoted = queue.promoteDue(at: clock.now)
        #expect(promoted == ["a"])
    }

    @Test func retryBackedOffHandsKeysToWaitingWorkers() async throws {
        let queue = WorkQueue<String>(name: "recovery-test", backoff: ItemBackoff(base: .seconds(100), maximum: .seconds(100)))
        queue.addRateLimited("a")
        #expect(queue.backingOffCount == 1)
        let key = try await withThrowingTaskGroup(of: String?.self) { group in
            group.addTask { await queue.get() }
            try await eventually(timeout: .seconds(30), "the worker waits in get()") { queue.waitingGetCount == 1 }
            let retried = queue.retryBackedOff()
            #expect(retried == 1)
            // A deadline for the worker: whichever ends first.
            group.addTask {
                try await Task.sleep(for: .seconds(30))
                return "timed out"
            }
            let first = try await group.next() ?? nil
            group.cancelAll()
            return first
        }
        #expect(key == "a", "the worker gets the retried key at once, not after its 100 s backoff")
        queue.done("a")
        queue.shutDown()
    }
}
