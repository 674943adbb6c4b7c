import KubeTestSupport
import Foundation
import KubeClient
import KubeTypes
import Logging
import Testing

@testable import KubeRuntime

@Suite("Lease math")
struct LeaseMathTests {
    let wall = Date(timeIntervalSince1970: 1_700_000_000)

    func spec(holder: String?, renewedAt: Date? = nil, duration: Int32 = 15, transitions: Int32 = 3) -> LeaseSpec {
        LeaseSpec(holderIdentity: holder, leaseDurationSeconds: duration, acquireTime: MicroTime(wall),
                  renewTime: MicroTime(renewedAt ?? wall), leaseTransitions: transitions)
    }

    @Test func aLeaseHeldByAnotherIsValidForItsDurationSinceItWasObservedToChange() {
        let clock = ManualClock()
        var lease = LeaseState()
        lease.observe(spec(holder: "a"), at: clock.now)
        #expect(lease.isHeldByOther(than: "b", at: clock.now, defaultDuration: .seconds(15)))
        clock.advance(by: .seconds(14))
        // Seen again unchanged: the clock does not restart.
        lease.observe(spec(holder: "a"), at: clock.now)
        #expect(lease.isHeldByOther(than: "b", at: clock.now, defaultDuration: .seconds(15)))
        clock.advance(by: .seconds(1))
        #expect(!lease.isHeldByOther(than: "b", at: clock.now, defaultDuration: .seconds(15)))
    }

    @Test func aRenewalRestartsTheLocalClock() {
        let clock = ManualClock()
        var lease = LeaseState()
        lease.observe(spec(holder: "a"), at: clock.now)
        clock.advance(by: .seconds(10))
        lease.observe(spec(holder: "a", renewedAt: wall + 10), at: clock.now)
        clock.advance(by: .seconds(10))
        #expect(lease.isHeldByOther(than: "b", at: clock.now, defaultDuration: .seconds(15)))
        clock.advance(by: .seconds(5))
        #expect(!lease.isHeldByOther(than: "b", at: clock.now, defaultDuration: .seconds(15)))
    }

    @Test func expiryIgnoresTheHoldersRenewTime() {
        // A renewTime an hour old (skewed clock) does not make a freshly observed lease expired.
        let clock = ManualClock()
        var lease = LeaseState()
        lease.observe(spec(holder: "a", renewedAt: wall - 3600), at: clock.now)
        #expect(lease.isHeldByOther(than: "b", at: clock.now, defaultDuration: .seconds(15)))
    }

    @Test func theLeaseDurationOfTheRecordWins() {
        let clock = ManualClock()
        var lease = LeaseState()
        lease.observe(spec(holder: "a", duration: 40), at: clock.now)
        clock.advance(by: .seconds(30))
        #expect(lease.isHeldByOther(than: "b", at: clock.now, defaultDuration: .seconds(15)))
    }

    @Test func noHolderOrOurselvesIsNotHeldByOther() {
        let clock = ManualClock()
        var lease = LeaseState()
        lease.observe(spec(holder: ""), at: clock.now)
        #expect(!lease.isHeldByOther(than: "b", at: clock.now, defaultDuration: .seconds(15)))
        lease.observe(spec(holder: nil), at: clock.now)
        #expect(!lease.isHeldByOther(than: "b", at: clock.now, defaultDuration: .seconds(15)))
        lease.observe(spec(holder: "b"), at: clock.now)
        #expect(!lease.isHeldByOther(than: "b", at: clock.now, defaultDuration: .seconds(15)))
    }

    @Test func takingOverCountsATransitionAndSetsAcquireTime() {
        var lease = LeaseState()
        lease.observe(spec(holder: "a", transitions: 3), at: ManualClock().now)
        let now = wall + 100
        let taken = lease.acquiring(as: "b", leaseDuration: .seconds(15), at: now)
        #expect(taken.holderIdentity == "b")
        #expect(taken.leaseTransitions == 4)
        #expect(taken.acquireTime == MicroTime(now))
        #expect(taken.renewTime == MicroTime(now))
        #expect(taken.leaseDurationSeconds == 15)
    }

    @Test func renewingKeepsAcquireTimeAndTransitions() {
        var lease = LeaseState()
        lease.observe(spec(holder: "b", transitions: 4), at: ManualClock().now)
        let now = wall + 100
        let renewed = lease.acquiring(as: "b", leaseDuration: .seconds(15), at: now)
        #expect(renewed.leaseTransitions == 4)
        #expect(renewed.acquireTime == MicroTime(wall))
        #expect(renewed.renewTime == MicroTime(now))
    }

    @Test func aNewLeaseStartsWithNoTransitions() {
        let lease = LeaseState()
        let created = lease.acquiring(as: "a", leaseDuration: .seconds(15), at: wall)
        #expect(created.leaseTransitions == 0)
        #expect(created.holderIdentity == "a")
    }

    @Test func releasingClearsTheHolder() {
        var lease = LeaseState()
        lease.observe(spec(holder: "b", transitions: 4), at: ManualClock().now)
        let released = lease.released(at: wall)
        #expect(released.holderIdentity == "")
        #expect(released.leaseDurationSeconds == 1)
        #expect(released.leaseTransitions == 4)
        // Another replica may take a released lease at once.
        var other = LeaseState()
        other.observe(released, at: ManualClock().now)
        #expect(!other.isHeldByOther(than: "c", at: ManualClock().now, defaultDuration: .seconds(15)))
    }

    @Test func defaultIdentityIsHostnameUnderscoreUUID() {
        let identity = LeaderElectionConfiguration.defaultIdentity()
        let parts = identity.split(separator: "_")
        #expect(parts.count >= 2)
        #expect(UUID(uuidString: String(parts.last!)) != nil)
        #expect(identity != LeaderElectionConfiguration.defaultIdentity())
    }
}

@Suite("Owner mapping")
struct OwnerMappingTests {
    let widgets = ResourceType(group: "test.example.com", version: "v1", plural: "widgets", kind: "Widget", namespaced: true)

    func metadata(_ references: [OwnerReference]) -> ObjectMeta {
        ObjectMeta(name: "child", namespace: "ns", ownerReferences: references)
    }

    @Test func theControllerOwnerOfTheRightKindIsEnqueued() {
        let meta = metadata([
            OwnerReference(apiVersion: "v1", kind: "ConfigMap", name: "other", uid: "1"),
            OwnerReference(apiVersion: "test.example.com/v1beta1", kind: "Widget", name: "w", uid: "2", controller: true),
        ])
        #expect(OwnerMapping.controllerOwnerKey(of: meta, owner: widgets) == ObjectKey(namespace: "ns", name: "w"))
    }

    @Test func nonControllerOwnersAndOtherKindsAreIgnored() {
        let notController = metadata([OwnerReference(apiVersion: "test.example.com/v1", kind: "Widget", name: "w", uid: "2")])
        #expect(OwnerMapping.controllerOwnerKey(of: notController, owner: widgets) == nil)
        let otherGroup = metadata([
            OwnerReference(apiVersion: "other.example.com/v1", kind: "Widget", name: "w", uid: "2", controller: true),
        ])
        #expect(OwnerMapping.controllerOwnerKey(of: otherGroup, owner: widgets) == nil)
        #expect(OwnerMapping.controllerOwnerKey(of: metadata([]), owner: widgets) == nil)
    }

    @Test func clusterScopedOwnersHaveNoNamespace() {
        let nodes = ResourceType(group: "", version: "v1", plural: "nodes", kind: "Node", namespaced: false)
        let meta = metadata([OwnerReference(apiVersion: "v1", kind: "Node", name: "n1", uid: "3", controller: true)])
        #expect(OwnerMapping.controllerOwnerKey(of: meta, owner: nodes) == ObjectKey(namespace: nil, name: "n1"))
    }
}

@Suite("JSON log lines")
struct JSONLogHandlerTests {
    @Test func aLineIsOneJSONObjectWithMetadata() throws {
        let lines = Shared<[String]>([])
        var handler = JSONLogHandler(label: "test", metadataProvider: nil) { line in lines.withLock { $0.append(line) } }
        handler.logLevel = .debug
        handler[metadataKey: "controller"] = "widgets"
        let logger = Logger(label: "test") { _ in handler }
        logger.info("reconciled \"w\"\n", metadata: ["key": "ns/w", "nested": ["a": "1", "b": ["x", "y"]]])
        logger.trace("hidden")
        let written = lines.value
        #expect(written.count == 1)
        let line = try #require(written.first)
        #expect(line.hasSuffix("}\n"))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["msg"] as? String == "reconciled \"w\"\n")
        #expect(object["level"] as? String == "info")
        #expect(object["logger"] as? String == "test")
        #expect(object["controller"] as? String == "widgets")
        #expect(object["key"] as? String == "ns/w")
        #expect((object["nested"] as? [String: Any])?["b"] as? [String] == ["x", "y"])
        #expect((object["ts"] as? String)?.hasSuffix("Z") == true)
    }
}
