import KubeTestSupport
import KubeClient
import KubeTypes
import Testing

@testable import KubeRuntime

@Suite("Watcher state machine")
struct WatcherStateMachineTests {
    let clock = ManualClock()

    /// A machine that has listed at `resourceVersion` and has a watch open.
    func watching(at resourceVersion: String = "100", seed: UInt64 = 1) -> WatcherStateMachine {
        var machine = WatcherStateMachine(random: SeededRandom(seed: seed))
        #expect(machine.nextAction() == .list(resourceVersion: nil, pageSize: 500))
        machine.listSucceeded(resourceVersion: resourceVersion, at: clock.now)
        guard case .watch(let from, _) = machine.nextAction() else {
            Issue.record("expected a watch")
            return machine
        }
        #expect(from == resourceVersion)
        machine.watchStarted(at: clock.now)
        return machine
    }

    func status(code: Int, reason: String, retryAfter: Int? = nil) -> Status {
        Status(message: reason, reason: reason, details: retryAfter.map { StatusDetails(retryAfterSeconds: $0) }, code: code)
    }

    @Test func firstListIsPagedAndReadsTheLatestState() {
        var machine = WatcherStateMachine()
        #expect(machine.nextAction() == .list(resourceVersion: nil, pageSize: 500))
        #expect(!machine.hasListed)
    }

    @Test func watchFollowsTheListWithARandomTimeoutInRange() {
        var timeouts = Set<Int>()
        for seed in 0..<50 {
            var machine = WatcherStateMachine(random: SeededRandom(seed: UInt64(seed)))
            _ = machine.nextAction()
            machine.listSucceeded(resourceVersion: "7", at: clock.now)
            #expect(machine.hasListed)
            guard case .watch(let from, let timeout) = machine.nextAction() else {
                Issue.record("expected a watch")
                continue
            }
            #expect(from == "7")
            #expect((300...600).contains(timeout))
            timeouts.insert(timeout)
        }
        #expect(timeouts.count > 10, "timeouts should vary: \(timeouts)")
    }

    @Test func cleanEndWatchesAgainFromTheLastVersionWithoutDelay() {
        var machine = watching(at: "100")
        machine.receivedObject(resourceVersion: "105")
        machine.watchEnded(at: clock.now)
        guard case .watch(let from, _) = machine.nextAction() else {
            Issue.record("expected a watch, not a list or a wait")
            return
        }
        #expect(from == "105")
    }

    @Test func bookmarkOnlyAdvancesTheResourceVersion() {
        var machine = watching(at: "100")
        machine.receivedBookmark(resourceVersion: "250")
        #expect(machine.resourceVersion == "250")
        machine.watchEnded(at: clock.now)
        guard case .watch(let from, _) = machine.nextAction() else {
            Issue.record("expected a watch")
            return
        }
        #expect(from == "250")
    }

    @Test func goneAsHTTPStatusRelistsAtTheLastVersionAtOnce() {
        var machine = watching(at: "100")
        machine.receivedObject(resourceVersion: "120")
        machine.watchFailed(.gone, at: clock.now)
        #expect(machine.nextAction() == .list(resourceVersion: "120", pageSize: 500))
    }

    @Test func goneAsErrorEventRelists() {
        var machine = watching(at: "100")
        machine.receivedError(status(code: 410, reason: "Expired"), at: clock.now)
        #expect(machine.nextAction() == .list(resourceVersion: "100", pageSize: 500))
        // reason alone (no code) counts too
        var other = watching(at: "300")
        other.receivedError(Status(message: "too old", reason: "Gone"), at: clock.now)
        #expect(other.nextAction() == .list(resourceVersion: "300", pageSize: 500))
    }

    @Test func goneFromAPIErrorIsClassified() {
        let error = APIError(code: 410, status: status(code: 410, reason: "Expired"))
        #expect(WatchFailure(error) == .gone)
        let throttled = APIError(code: 429, status: status(code: 429, reason: "TooManyRequests"), retryAfterSeconds: 3)
        #expect(WatchFailure(throttled) == .throttled(retryAfterSeconds: 3))
        #expect(WatchFailure(APIError(code: 500, status: status(code: 500, reason: "InternalError"))) != .gone)
    }

    @Test func listGoneAtAVersionFallsBackToTheLatestState() {
        var machine = watching(at: "100")
        machine.watchFailed(.gone, at: clock.now)
        #expect(machine.nextAction() == .list(resourceVersion: "100", pageSize: 500))
        machine.listFailed(.gone, at: clock.now)
        #expect(machine.nextAction() == .list(resourceVersion: nil, pageSize: 500))
    }

    @Test func watchGoneAgainWithoutProgressAfterAPinnedRelistReadsTheLatestState() {
        var machine = watching(at: "100")
        machine.watchFailed(.gone, at: clock.now)
        #expect(machine.nextAction() == .list(resourceVersion: "100", pageSize: 500))
        machine.listSucceeded(resourceVersion: "100", at: clock.now)
        _ = machine.nextAction()
        machine.watchStarted(at: clock.now)
        machine.watchFailed(.gone, at: clock.now)
        // The version is too old to watch from: read the latest state, at once.
        #expect(machine.nextAction() == .list(resourceVersion: nil, pageSize: 500))
        // If even that leads to a 410 without progress, back off.
        machine.listSucceeded(resourceVersion: "300", at: clock.now)
        _ = machine.nextAction()
        machine.watchStarted(at: clock.now)
        machine.watchFailed(.gone, at: clock.now)
        guard case .wait = machine.nextAction() else {
            Issue.record("repeated 410s must back off")
            return
        }
        #expect(machine.nextAction() == .list(resourceVersion: "300", pageSize: 500))
    }

    @Test func throttledWaitsRetryAfterAndRepeatsTheWatchWithoutRelisting() {
        var machine = watching(at: "100")
        machine.watchFailed(.throttled(retryAfterSeconds: 7), at: clock.now)
        #expect(machine.nextAction() == .wait(.seconds(7)))
        guard case .watch(let from, _) = machine.nextAction() else {
            Issue.record("expected the same watch again")
            return
        }
        #expect(from == "100")
        // As an ERROR event too.
        machine.watchStarted(at: clock.now)
        machine.receivedError(status(code: 429, reason: "TooManyRequests", retryAfter: 4), at: clock.now)
        #expect(machine.nextAction() == .wait(.seconds(4)))
        if case .list = machine.nextAction() { Issue.record("429 must not relist") }
    }

    @Test func throttledListRepeatsTheList() {
        var machine = WatcherStateMachine()
        _ = machine.nextAction()
        machine.listFailed(.throttled(retryAfterSeconds: 2), at: clock.now)
        #expect(machine.nextAction() == .wait(.seconds(2)))
        #expect(machine.nextAction() == .list(resourceVersion: nil, pageSize: 500))
    }

    @Test func failuresBackOffExponentiallyWithJitterUpToTheCap() {
        let clock = self.clock
        var machine = watching(at: "100", seed: 42)
        var delays: [Duration] = []
        for _ in 0..<10 {
            machine.watchFailed(.other("connection refused"), at: clock.now)
            guard case .wait(let delay) = machine.nextAction() else {
                Issue.record("expected a wait")
                return
            }
            delays.append(delay)
            clock.advance(by: delay)
            guard case .watch(let from, _) = machine.nextAction() else {
                Issue.record("expected a watch after the wait")
                return
            }
            #expect(from == "100")
        }
        // base 0.8 s × 2^n, ±20 %, never above 30 s.
        for (index, delay) in delays.enumerated() {
            let base = min(0.8 * Double(1 << index), 30)
            #expect(delay.seconds >= base * 0.8 - 1e-9 && delay.seconds <= min(base * 1.2, 30) + 1e-9,
                    "delay \(index): \(delay)")
        }
        #expect(delays.last! <= .seconds(30))
        #expect(delays[3] > delays[0])
    }

    @Test func backoffResetsAfterAHealthyPeriod() {
        let clock = self.clock
        var machine = watching(at: "100", seed: 3)
        for _ in 0..<6 {
            machine.watchFailed(.other("reset"), at: clock.now)
            _ = machine.nextAction()
            _ = machine.nextAction()
        }
        #expect(machine.consecutiveFailures == 6)
        // A watch that stays up for a short while does not reset the backoff…
        machine.watchStarted(at: clock.now)
        clock.advance(by: .seconds(10))
        machine.watchFailed(.other("reset"), at: clock.now)
        guard case .wait(let long) = machine.nextAction() else { Issue.record("expected a wait"); return }
        #expect(long >= .seconds(24))
        _ = machine.nextAction()
        // …one that stays up for over two minutes does.
        machine.watchStarted(at: clock.now)
        clock.advance(by: .seconds(121))
        machine.watchFailed(.other("reset"), at: clock.now)
        guard case .wait(let short) = machine.nextAction() else { Issue.record("expected a wait"); return }
        #expect(short <= .milliseconds(960))
        #expect(machine.consecutiveFailures == 1)
    }

    @Test func cleanEndsAreNotFailures() {
        var machine = watching(at: "1")
        for version in 2..<20 {
            machine.receivedObject(resourceVersion: "\(version)")
            machine.watchEnded(at: clock.now)
            guard case .watch = machine.nextAction() else { Issue.record("expected a watch"); return }
            machine.watchStarted(at: clock.now)
        }
        #expect(machine.consecutiveFailures == 0)
    }

    @Test func goneAfterAHealthyPeriodIsImmediateButRepeatedGoneBacksOff() {
        var machine = watching(at: "100")
        machine.watchFailed(.gone, at: clock.now)
        #expect(machine.nextAction() == .list(resourceVersion: "100", pageSize: 500))
        machine.listSucceeded(resourceVersion: "200", at: clock.now)
        _ = machine.nextAction()
        machine.watchStarted(at: clock.now)
        machine.receivedObject(resourceVersion: "201")
        machine.watchFailed(.gone, at: clock.now)
        guard case .wait = machine.nextAction() else {
            Issue.record("a second 410 soon after the first should back off")
            return
        }
        #expect(machine.nextAction() == .list(resourceVersion: "201", pageSize: 500))
    }

    @Test func otherErrorEventsBackOffAndRewatch() {
        var machine = watching(at: "100")
        machine.receivedError(status(code: 500, reason: "InternalError"), at: clock.now)
        guard case .wait = machine.nextAction() else { Issue.record("expected a wait"); return }
        guard case .watch(let from, _) = machine.nextAction() else { Issue.record("expected a watch"); return }
        #expect(from == "100")
    }

    @Test func listFailuresBackOffAndRetryTheList() {
        var machine = WatcherStateMachine(random: SeededRandom(seed: 9))
        _ = machine.nextAction()
        machine.listFailed(.other("connection refused"), at: clock.now)
        guard case .wait(let delay) = machine.nextAction() else { Issue.record("expected a wait"); return }
        #expect(delay >= .milliseconds(640) && delay <= .milliseconds(960))
        #expect(machine.nextAction() == .list(resourceVersion: nil, pageSize: 500))
    }
}
