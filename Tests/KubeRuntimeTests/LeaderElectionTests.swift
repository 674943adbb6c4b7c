import KubeTestSupport
import Foundation
import KubeClient
import KubeRuntime
import KubeTypes
import TestHarness
import Testing

@Suite("Leader election against a real kube-apiserver")
struct LeaderElectionTests {
    func electors(_ client: KubernetesClient, release: Bool) -> (LeaderElector, LeaderElector, String) {
        let lease = "lease-\(UUID().uuidString.prefix(8).lowercased())"
        func make(_ name: String) -> LeaderElector {
            LeaderElector(client: client, configuration: LeaderElectionConfiguration(
                leaseName: lease, namespace: "default", identity: "\(name)_\(lease)", releaseOnShutdown: release))
        }
        return (make("a"), make("b"), lease)
    }

    /// Runs both electors; `body` gets (leader, follower) once one leads and checks for a few
    /// seconds that exactly one does, with the Lease naming it.
    func withTwoElectors(release: Bool,
                         _ body: @escaping @Sendable (LeaderElector, LeaderElector, KubernetesClient, String) async throws -> Void)
        async throws
    {
        let cp = try await ControlPlane.shared()
        let client = try cp.client()
        let (a, b, lease) = electors(client, release: release)
        try await whileRunning([{ try await a.run() }, { try await b.run() }]) {
            try await eventually("one elector leads") { a.isLeader || b.isLeader }
            let clock = ContinuousClock()
            let until = clock.now + .seconds(5)
            while clock.now < until {
                #expect(!(a.isLeader && b.isLeader), "both lead at once")
                try await Task.sleep(for: .milliseconds(100))
            }
            let (leader, follower) = a.isLeader ? (a, b) : (b, a)
            #expect(leader.isLeader && !follower.isLeader)
            let held = try await client.get(Lease.self, name: lease, namespace: "default")
            #expect(held.spec?.holderIdentity == leader.identity)
            #expect(held.spec?.leaseDurationSeconds == 15)
            #expect(follower.observedHolder == leader.identity)
            try await body(leader, follower, client, lease)
        }
    }

    /// Stops the leader and returns how long the follower took to lead, and the Lease before and after.
    func handOver(from leader: LeaderElector, to follower: LeaderElector, _ client: KubernetesClient, _ lease: String)
        async throws -> (takeover: Duration, before: Lease, after: Lease)
    {
        let before = try await client.get(Lease.self, name: lease, namespace: "default")
        leader.shutDown()
        let stopped = ContinuousClock.now
        try await eventually("the follower takes over") { follower.isLeader }
        let takeover = ContinuousClock.now - stopped
        let after = try await client.get(Lease.self, name: lease, namespace: "default")
        #expect(after.spec?.holderIdentity == follower.identity)
        #expect(after.spec?.leaseTransitions == (before.spec?.leaseTransitions ?? 0) + 1)
        #expect(!leader.isLeader)
        return (takeover, before, after)
    }

    @Test func exactlyOneLeadsAndTheOtherTakesOverAfterTheLeaseExpires() async throws {
        // The leader stops renewing without releasing (as if it crashed).
        try await withTwoElectors(release: false) { leader, follower, client, lease in
            let result = try await handOver(from: leader, to: follower, client, lease)
            // Expiry is lease duration (15 s) after the follower last saw a renewal, then up to one
            // retry period (2 s, jittered up to 4.4 s); allow for a loaded machine.
            #expect(result.takeover < .seconds(35), "took \(result.takeover)")
            #expect(result.after.spec?.acquireTime != result.before.spec?.acquireTime)
        }
    }

    @Test func aCleanReleaseHandsOverFasterThanTheLeaseDuration() async throws {
        try await withTwoElectors(release: true) { leader, follower, client, lease in
            let result = try await handOver(from: leader, to: follower, client, lease)
            #expect(result.takeover < .seconds(15), "a released lease should not wait for expiry; took \(result.takeover)")
        }
    }

    @Test func aLeaderWhoseLeaseIsTakenStopsAndThrows() async throws {
        let cp = try await ControlPlane.shared()
        let client = try cp.client()
        let lease = "taken-\(UUID().uuidString.prefix(8).lowercased())"
        let elector = LeaderElector(client: client, configuration: LeaderElectionConfiguration(leaseName: lease, namespace: "default"))
        let running = Task { try await elector.run() }
        defer { running.cancel() }
        try await eventually("the elector leads") { elector.isLeader }
        // Someone else writes the lease as theirs: from now on it is validly held by another,
        // renewals fail, and after the renew deadline the elector gives up.
        _ = try await client.modify(Lease.self, name: lease, namespace: "default") { lease in
            lease.spec?.holderIdentity = "intruder"
            lease.spec?.renewTime = MicroTime(Date())
        }
        do {
            // The renew deadline is 10 s after the next renewal (2 s); allow for a loaded machine.
            try await withTimeout(.seconds(60), "run() throws LeadershipLost after the renew deadline") {
                try await running.value
            }
            Issue.record("run() should throw when leadership is lost")
        } catch let error as LeadershipLost {
            #expect(error.identity == elector.identity)
        }
        #expect(!elector.isLeader)
    }

    @Test func managerShutsDownGracefully() async throws {
        let registry = MetricsBootstrap.prometheus()
        let cp = try await ControlPlane.shared()
        try await Widget.install(on: cp)
        let client = try cp.client()
        let namespace = try await cp.makeNamespace("shutdown")
        _ = try await client.create(Widget(name: "slow", namespace: namespace, size: 1))
        let lease = "manager-\(namespace)"
        let elector = LeaderElector(client: client, configuration: LeaderElectionConfiguration(leaseName: lease, namespace: namespace))
        let started = Shared(false), finished = Shared(false)
        let widgets = Watcher(client: client, Widget.self, scope: WatchScope(namespace: namespace))
        let recorder = EventRecorder(client: client, component: "shutdown-test")
        let reconciler = ReconcilerFunction { key in
            started.withLock { $0 = true }
            try await Task.sleep(for: .seconds(3))
            finished.withLock { $0 = true }
            if let widget = widgets.store.get(key) {
                recorder.record(widget, .normal, reason: "Finished", message: "finished during shutdown")
            }
            return .done
        }
        let controller = Controller(name: "shutdown-\(namespace)", reconciler: reconciler, leaderElector: elector,
                                    eventRecorder: recorder)
        controller.watch(widgets)
        let probes = ProbeServer(host: "127.0.0.1", port: 0, registry: registry)
        let manager = ControllerManager(leaderElector: elector, probeServer: probes)
        manager.add(controller)

        let running = Task { try await manager.run(signals: []) }
        defer { running.cancel() }
        try await eventually("the reconcile starts once leading") { started.value }
        #expect(elector.isLeader)
        let port = try #require(probes.boundPort)
        let metrics = try await httpGet("http://127.0.0.1:\(port)/metrics").body
        #expect(metrics.contains("leader_election_master_status{name=\"\(lease)\"} 1"))
        #expect(try await httpGet("http://127.0.0.1:\(port)/readyz").status == 200)
        #expect(try await httpGet("http://127.0.0.1:\(port)/healthz?verbose").body.contains("[+]leader-election ok"))
        // SIGTERM would do the same: the in-flight reconcile finishes, then everything stops.
        manager.shutDown()
        try await withTimeout(.seconds(60), "the manager stops after shutDown() (the reconcile takes 3 s)") {
            try await running.value
        }
        #expect(finished.value, "the in-flight reconcile finished")
        #expect(try await events(client, namespace).contains { $0.reason == "Finished" },
                "events recorded by the last reconcile are sent before the controller stops")
        #expect(!elector.isLeader)
        let released = try await client.get(Lease.self, name: lease, namespace: namespace)
        #expect(released.spec?.holderIdentity == "", "the lease is released on shutdown")
        #expect(registry.emitToString().contains("leader_election_master_status{name=\"\(lease)\"} 0"))
    }
}

/// `LeaderElector` on a manual clock against a real kube-apiserver: retries, renewals, the renew
/// deadline and the expiry of another's lease happen when the test moves time — in moments of
/// real time, and without depending on how long a request takes.
@Suite("Leader election on a manual clock")
struct LeaderElectionClockTests {
    let retryPeriod = Duration.seconds(2)
    let renewDeadline = Duration.seconds(10)
    let leaseDuration = Duration.seconds(15)

    func elector(_ client: KubernetesClient, _ name: String, lease: String, clock: ManualClock,
                 release: Bool = true) -> LeaderElector {
        LeaderElector(client: client,
                      configuration: LeaderElectionConfiguration(
                          leaseName: lease, namespace: "default", identity: "\(name)_\(lease)",
                          leaseDuration: leaseDuration, renewDeadline: renewDeadline, retryPeriod: retryPeriod,
                          releaseOnShutdown: release),
                      clock: clock)
    }

    func leaseName(_ prefix: String) -> String { "\(prefix)-\(UUID().uuidString.prefix(8).lowercased())" }

    /// Starts `elector` and waits until it leads (its first attempt, on a free lease).
    func lead(_ elector: LeaderElector) async throws -> Task<Void, any Error> {
        let running = Task { try await elector.run() }
        let leading = try await withTimeout(.seconds(60), "\(elector.identity) acquires the free lease") {
            await elector.waitUntilLeading()
        }
        #expect(leading)
        return running
    }

    @Test func theLeaderRenewsEveryRetryPeriodOfItsClockAndOnlyThen() async throws {
        let client = try await ControlPlane.shared().client()
        let lease = leaseName("clock-renew")
        let clock = ManualClock()
        let start = clock.now
        let elector = elector(client, "a", lease: lease, clock: clock)
        let running = try await lead(elector)
        defer { running.cancel() }
        let retryPeriod = self.retryPeriod
        try await clock.waitUntil("the leader sleeps one retry period") { $0 == [start + retryPeriod] }
        var version = try await client.get(Lease.self, name: lease, namespace: "default").metadata.resourceVersion
        let requestsBefore = elector.requestsMade
        for renewal in 1...3 {
            clock.advance(by: retryPeriod)
            let next = start + retryPeriod * (renewal + 1)
            try await clock.waitUntil("renewal \(renewal) is done and the leader sleeps until the next") { $0 == [next] }
            let current = try await client.get(Lease.self, name: lease, namespace: "default")
            #expect(current.metadata.resourceVersion != version, "renewal \(renewal) wrote the lease")
            #expect(current.spec?.holderIdentity == elector.identity)
            #expect(current.spec?.leaseTransitions == 0)
            #expect(elector.isLeader)
            #expect(elector.isHealthy(tolerance: .zero))
            #expect(elector.requestsMade == requestsBefore + renewal, "renewal \(renewal) was one conditional update, without a read")
            version = current.metadata.resourceVersion
        }
        // While the clock stands still, nothing is written, however long it takes in real time.
        let unchanged = try await client.get(Lease.self, name: lease, namespace: "default")
        #expect(unchanged.metadata.resourceVersion == version)

        elector.shutDown()
        try await withTimeout(.seconds(60), "run() returns after shutDown()") { try await running.value }
        #expect(!elector.isLeader)
        #expect(clock.sleepers.isEmpty)
        let released = try await client.get(Lease.self, name: lease, namespace: "default")
        #expect(released.spec?.holderIdentity == "")
    }

    /// A leader "a" on a manual clock that took a free lease and stopped without releasing it (as
    /// if it crashed); the clock has not moved since. Returns the lease as it left it.
    func crashedLeader(_ client: KubernetesClient, lease: String, clock: ManualClock) async throws -> (LeaderElector, Lease) {
        let leader = elector(client, "a", lease: lease, clock: clock, release: false)
        let leaderRun = try await lead(leader)
        defer { leaderRun.cancel() }
        try await clock.waitForSleepers(1, "the leader sleeps before its first renewal")
        leader.shutDown()
        try await withTimeout(.seconds(60), "the leader stops") { try await leaderRun.value }
        #expect(!leader.isLeader)
        #expect(clock.sleepers.isEmpty)
        let before = try await client.get(Lease.self, name: lease, namespace: "default")
        #expect(before.spec?.holderIdentity == leader.identity)
        return (leader, before)
    }

    @Test func aFollowerTakesOverExactlyWhenTheLeaseExpiresOnItsClock() async throws {
        let client = try await ControlPlane.shared().client()
        let lease = leaseName("clock-expiry")
        let clock = ManualClock()
        let start = clock.now
        let (leader, before) = try await crashedLeader(client, lease: lease, clock: clock)

        // The follower sees the lease at `start`: held by the leader until `start` + 15 s by the
        // follower's clock, whatever the record's renewTime says; it retries every 2 s to 4.4 s.
        let follower = elector(client, "b", lease: lease, clock: clock)
        let followerRun = Task { try await follower.run() }
        defer { follower.shutDown(); followerRun.cancel() }
        let expiry = start + leaseDuration
        var attempts = 0
        while true {
            try await clock.waitForSleepers(1, "the follower sleeps after attempt \(attempts + 1)")
            attempts += 1
            if follower.isLeader { break }
            guard clock.now < expiry else {
                Issue.record("the lease expired \(clock.now - expiry) ago, but attempt \(attempts) did not take it")
                return
            }
            #expect(follower.observedHolder == leader.identity)
            let wait = try #require(clock.sleepers.first) - clock.now
            #expect(wait >= retryPeriod && wait < retryPeriod * 2.2, "a retry waits the retry period plus jitter, not \(wait)")
            guard attempts < 20 else {
                Issue.record("the follower did not take over after \(attempts) attempts")
                return
            }
            clock.advanceToNextDeadline()
        }
        #expect(clock.now >= expiry, "the follower took over \(expiry - clock.now) before the lease expired")
        #expect(attempts > 1)
        let after = try await client.get(Lease.self, name: lease, namespace: "default")
        #expect(after.spec?.holderIdentity == follower.identity)
        #expect(after.spec?.leaseTransitions == (before.spec?.leaseTransitions ?? 0) + 1)
        #expect(after.spec?.acquireTime != before.spec?.acquireTime)
        #expect(follower.observedHolder == follower.identity)
        #expect(!leader.isLeader)
    }

    /// A leader that crashed and came back with the same identity (a restarted container keeps
    /// its Pod's name) takes its own unexpired lease on the first attempt, with no wait for expiry
    /// and no new transition.
    @Test func aRestartedLeaderWithTheSameIdentityTakesItsLeaseAtOnce() async throws {
        let client = try await ControlPlane.shared().client()
        let lease = leaseName("clock-restart")
        let clock = ManualClock()
        let (_, before) = try await crashedLeader(client, lease: lease, clock: clock)

        // The clock stands still: the lease is far from expired, yet the same identity takes it.
        let restarted = elector(client, "a", lease: lease, clock: clock)
        let restartedRun = try await lead(restarted)
        defer { restarted.shutDown(); restartedRun.cancel() }
        let after = try await client.get(Lease.self, name: lease, namespace: "default")
        #expect(after.spec?.holderIdentity == restarted.identity)
        #expect(after.spec?.leaseTransitions == before.spec?.leaseTransitions)
        #expect(after.metadata.resourceVersion != before.metadata.resourceVersion)
    }

    @Test func aLeaderThatCannotRenewKeepsLeadingUntilTheRenewDeadlineOfItsClockThenThrows() async throws {
        let client = try await ControlPlane.shared().client()
        let lease = leaseName("clock-deadline")
        let clock = ManualClock()
        let start = clock.now
        let elector = elector(client, "a", lease: lease, clock: clock)
        let running = try await lead(elector)
        defer { running.cancel() }
        let retryPeriod = self.retryPeriod
        try await clock.waitUntil("the leader sleeps before its first renewal") { $0 == [start + retryPeriod] }
        // Someone else writes the lease as theirs: from now on every renewal fails.
        _ = try await client.modify(Lease.self, name: lease, namespace: "default") { lease in
            lease.spec?.holderIdentity = "intruder"
            lease.spec?.renewTime = MicroTime(Date())
        }
        clock.advance(by: retryPeriod)
        // The renewal that starts now must succeed within the renew deadline.
        let deadline = clock.now + renewDeadline
        var attempts = 0
        while clock.now < deadline {
            // One sleeper is the renew deadline, the other the wait before the next attempt.
            try await clock.waitForSleepers(2, "the renewal at \(clock.now - start) fails and waits to retry")
            attempts += 1
            #expect(elector.isLeader, "still leading \(deadline - clock.now) before the renew deadline")
            #expect(clock.sleepers.last == deadline)
            guard attempts < 20 else {
                Issue.record("no renew deadline after \(attempts) attempts")
                return
            }
            clock.advanceToNextDeadline()
        }
        do {
            try await withTimeout(.seconds(60), "run() throws LeadershipLost at the renew deadline") {
                try await running.value
            }
            Issue.record("run() should throw when leadership is lost")
        } catch let error as LeadershipLost {
            #expect(error.identity == elector.identity)
        }
        #expect(clock.now == deadline, "gave up at \(clock.now - start), not at the renew deadline")
        #expect(attempts == 5, "renewals every 2 s within the 10 s deadline")
        #expect(!elector.isLeader)
        let taken = try await client.get(Lease.self, name: lease, namespace: "default")
        #expect(taken.spec?.holderIdentity == "intruder", "a leader that lost the lease does not release it")
    }
}
