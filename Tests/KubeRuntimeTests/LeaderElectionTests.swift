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
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await elector.run() }
            try await eventually("the elector leads") { elector.isLeader }
            // Someone else writes the lease as theirs: from now on it is validly held by another,
            // renewals fail, and after the renew deadline the elector gives up.
            _ = try await client.modify(Lease.self, name: lease, namespace: "default") { lease in
                lease.spec?.holderIdentity = "intruder"
                lease.spec?.renewTime = MicroTime(Date())
            }
            do {
                try await group.next()
                Issue.record("run() should throw when leadership is lost")
            } catch let error as LeadershipLost {
                #expect(error.identity == elector.identity)
            }
            #expect(!elector.isLeader)
        }
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

        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await manager.run(signals: []) }
            try await eventually("the reconcile starts once leading") { started.value }
            #expect(elector.isLeader)
            let port = try #require(probes.boundPort)
            let metrics = try await httpGet("http://127.0.0.1:\(port)/metrics").body
            #expect(metrics.contains("leader_election_master_status{name=\"\(lease)\"} 1"))
            #expect(try await httpGet("http://127.0.0.1:\(port)/readyz").status == 200)
            #expect(try await httpGet("http://127.0.0.1:\(port)/healthz?verbose").body.contains("[+]leader-election ok"))
            // SIGTERM would do the same: the in-flight reconcile finishes, then everything stops.
            manager.shutDown()
            try await group.waitForAll()
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
