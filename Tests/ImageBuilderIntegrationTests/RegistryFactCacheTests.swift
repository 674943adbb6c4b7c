import Foundation
import ImageBuilderReconcilers
import KubeTestSupport
import RegistryClient
import RegistryTestSupport
import RegistryTypes
import Synchronization
import TestHarness
import Testing

/// A wall clock that only moves when told.
final class ManualDate: Sendable {
    private let date = Mutex(Date(timeIntervalSince1970: 1_800_000_000))
    var now: Date { date.withLock { $0 } }
    func advance(by seconds: TimeInterval) { date.withLock { $0 += seconds } }
}

struct Failure: Error, Equatable {}

@Suite("Registry fact cache")
struct RegistryFactCacheTests {
    @Test func answersAreServedUntilTheyExpire() async throws {
        let clock = ManualDate()
        let cache = RegistryFactCache<String, Int>(timeToLive: 30, now: { clock.now })
        let loads = Mutex(0)
        func value() async throws -> Int {
            try await cache.value(for: "key") { loads.withLock { $0 += 1; return $0 } }
        }
        #expect(try await value() == 1)
        clock.advance(by: 29)
        #expect(try await value() == 1)
        clock.advance(by: 1)
        #expect(try await value() == 2, "an answer as old as the TTL is not served")
        #expect(cache.statistics == .init(hits: 1, loads: 2, joined: 0))
    }

    @Test func failuresAreNotRemembered() async throws {
        let cache = RegistryFactCache<String, Int>(timeToLive: 30)
        await #expect(throws: Failure.self) { try await cache.value(for: "key") { throw Failure() } }
        #expect(try await cache.value(for: "key") { 7 } == 7)
        #expect(cache.statistics.loads == 2)
    }

    @Test func concurrentCallersWaitForTheLoadInFlight() async throws {
        let cache = RegistryFactCache<String, Int>(timeToLive: 30)
        let gate = Gate()
        let followers = 9
        let results = try await withThrowingTaskGroup(of: Int.self) { group in
            group.addTask { try await cache.value(for: "key") { try await gate.wait(); return 42 } }
            // The leader is in its load once it is counted; then the followers come.
            try await eventually("the leader loads") { cache.statistics.loads == 1 }
            for _ in 0..<followers {
                group.addTask { try await cache.value(for: "key") { Issue.record("a second load"); return 0 } }
            }
            try await eventually("every follower waits for the leader") { cache.waiting(for: "key") == followers }
            gate.open()
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(results == Array(repeating: 42, count: followers + 1))
        #expect(cache.statistics == .init(hits: 0, loads: 1, joined: followers))
    }

    @Test func waitersShareTheLoadsFailure() async throws {
        let cache = RegistryFactCache<String, Int>(timeToLive: 30)
        let gate = Gate()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                await #expect(throws: Failure.self) { try await cache.value(for: "key") { try await gate.wait(); throw Failure() } }
            }
            try await eventually("the leader loads") { cache.statistics.loads == 1 }
            group.addTask {
                await #expect(throws: Failure.self) { try await cache.value(for: "key") { 1 } }
            }
            try await eventually("the follower waits") { cache.waiting(for: "key") == 1 }
            gate.open()
            try await group.waitForAll()
        }
        #expect(cache.statistics.loads == 1, "the follower got the leader's answer, it did not load")
    }

    // MARK: - On a real registry

    @Test func aMovedTagIsNoticedOnceTheAnswerExpires() async throws {
        try await LocalRegistry.withRegistry { registry in
            let pusher = ImagePusher(registry: registry)
            let first = try await pusher.pushImage("team/base", tag: "latest", user: "1000", env: [])
            let clock = ManualDate()
            let inspector = LiveRegistryInspector(client: client(for: registry), baseImageTTL: 30, now: { clock.now })
            let reference = "\(registry.host)/team/base:latest"
            #expect(try await inspector.inspectBaseImage(reference, credentials: nil).digest == first.description)

            let moved = try await pusher.pushImage("team/base", tag: "latest", user: "2000", env: [])
            #expect(moved != first)
            let cached = try await inspector.inspectBaseImage(reference, credentials: nil)
            #expect(cached.digest == first.description, "within the TTL the remembered answer is served")
            clock.advance(by: 30)
            let fresh = try await inspector.inspectBaseImage(reference, credentials: nil)
            #expect(fresh.digest == moved.description)
            #expect(fresh.user == "2000")
            #expect(inspector.baseImages.statistics.loads == 2)
        }
    }

    @Test func aBurstOverOneBaseImageMakesOneResolution() async throws {
        try await LocalRegistry.withRegistry { registry in
            _ = try await ImagePusher(registry: registry).pushImage("team/base", tag: "latest", user: "1000", env: [])
            let inspector = LiveRegistryInspector(client: client(for: registry))
            let reference = "\(registry.host)/team/base:latest"
            let digests = try await withThrowingTaskGroup(of: String.self) { group in
                for _ in 0..<50 { group.addTask { try await inspector.inspectBaseImage(reference, credentials: nil).digest } }
                return try await group.reduce(into: Set<String>()) { $0.insert($1) }
            }
            #expect(digests.count == 1)
            #expect(inspector.baseImages.statistics.loads == 1)
        }
    }

    @Test func changedCredentialsAskTheRegistryAgain() async throws {
        try await LocalRegistry.withRegistry(auth: .htpasswd(username: "builder", password: "right")) { registry in
            _ = try await ImagePusher(registry: registry).pushImage("team/base", tag: "latest", user: "1000", env: [])
            let inspector = LiveRegistryInspector(client: client(for: registry))
            let reference = "\(registry.host)/team/base:latest"
            func config(_ password: String) throws -> DockerConfig {
                try DockerConfig(json: Data(#"{"auths":{"\#(registry.host)":{"username":"builder","password":"\#(password)"}}}"#.utf8))
            }
            _ = try await inspector.inspectBaseImage(reference, credentials: try config("right"))
            await #expect(throws: RegistryError.self, "a changed secret is not answered from the cache") {
                try await inspector.inspectBaseImage(reference, credentials: try config("wrong"))
            }
            _ = try await inspector.inspectBaseImage(reference, credentials: try config("right"))
            #expect(inspector.baseImages.statistics == .init(hits: 1, loads: 2, joined: 0))

            // Push access: remembered per credential.
            let right = try config("right").credential(forRegistry: registry.host)
            try await inspector.checkPushAccess(to: "\(registry.host)/team/app", credential: right)
            try await inspector.checkPushAccess(to: "\(registry.host)/team/app", credential: right)
            #expect(inspector.pushChecks.statistics.loads == 1)
            let wrong = try config("wrong").credential(forRegistry: registry.host)
            await #expect(throws: RegistryError.self) {
                try await inspector.checkPushAccess(to: "\(registry.host)/team/app", credential: wrong)
            }
            #expect(inspector.pushChecks.statistics.loads == 2)
        }
    }
    // MARK: - Push checks per prefix

    @Test func repositoriesBelowThePushPrefixShareOneCheck() throws {
        let inspector = LiveRegistryInspector(client: RegistryClient(), pushPrefix: "registry.example:5000/team")
        func key(_ text: String) throws -> LiveRegistryInspector.PushCheckKey.Scope {
            inspector.pushCheckKey(for: try ImageReference(parsing: text), credential: nil).scope
        }
        #expect(try key("registry.example:5000/team/a:1") == .prefix("registry.example:5000/team"))
        #expect(try key("registry.example:5000/team/b:2") == .prefix("registry.example:5000/team"))
        #expect(try key("registry.example:5000/team/deep/c:1") == .repository("registry.example:5000/team/deep/c"),
                "only repositories directly below the prefix are the prefix's")
        #expect(try key("registry.example:5000/teamx/a:1") == .repository("registry.example:5000/teamx/a"))
        #expect(try key("other.example/team/a") == .repository("other.example/team/a"))
        // Docker Hub's defaults normalise the prefix and its repositories alike.
        let hub = LiveRegistryInspector(client: RegistryClient(), pushPrefix: "team")
        #expect(hub.pushCheckKey(for: try ImageReference(parsing: "team/a:1"), credential: nil).scope
                == .prefix("docker.io/team"))
    }

    @Test func aBurstBelowOnePrefixMakesOnePushCheckUntilItExpires() async throws {
        try await LocalRegistry.withRegistry(auth: .htpasswd(username: "builder", password: "right")) { registry in
            let clock = ManualDate()
            let inspector = LiveRegistryInspector(client: client(for: registry), pushCheckTTL: 600,
                                                  pushPrefix: "\(registry.host)/bench", now: { clock.now })
            let right = try DockerConfig(json: Data(#"{"auths":{"\#(registry.host)":{"username":"builder","password":"right"}}}"#.utf8))
                .credential(forRegistry: registry.host)
            let before = registry.requestsServed
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<40 {
                    group.addTask { try await inspector.checkPushAccess(to: "\(registry.host)/bench/spec-\(index):abc", credential: right) }
                }
                try await group.waitForAll()
            }
            #expect(inspector.pushChecks.statistics.loads == 1, "40 repositories below one prefix, one check")
            let burst = registry.requestsServed - before
            #expect(burst > 0 && burst <= 4, "one check's round trips (ping, probe, cancel), not one per repository: \(burst)")

            // A repository outside the prefix is its own check.
            try await inspector.checkPushAccess(to: "\(registry.host)/elsewhere/app", credential: right)
            #expect(inspector.pushChecks.statistics.loads == 2)

            // Expiry: the prefix is asked again once its answer is as old as the TTL.
            clock.advance(by: 599)
            try await inspector.checkPushAccess(to: "\(registry.host)/bench/late", credential: right)
            #expect(inspector.pushChecks.statistics.loads == 2)
            clock.advance(by: 1)
            try await inspector.checkPushAccess(to: "\(registry.host)/bench/late", credential: right)
            #expect(inspector.pushChecks.statistics.loads == 3)
            try await inspector.checkPushAccess(to: "\(registry.host)/elsewhere/app", credential: right)
            #expect(inspector.pushChecks.statistics.loads == 4, "the other repository's answer expired too")

            // A refused push under the prefix forgets the answer, with every credential.
            inspector.forgetPushAccess(to: "\(registry.host)/bench/spec-3:abc")
            try await inspector.checkPushAccess(to: "\(registry.host)/bench/spec-4", credential: right)
            #expect(inspector.pushChecks.statistics.loads == 5)
            try await inspector.checkPushAccess(to: "\(registry.host)/elsewhere/app", credential: right)
            #expect(inspector.pushChecks.statistics.loads == 5, "another repository's answer is kept")

            // Another credential is another key: a wrong password is refused, not served the prefix's grant.
            let wrong = try DockerConfig(json: Data(#"{"auths":{"\#(registry.host)":{"username":"builder","password":"wrong"}}}"#.utf8))
                .credential(forRegistry: registry.host)
            await #expect(throws: RegistryError.self) {
                try await inspector.checkPushAccess(to: "\(registry.host)/bench/spec-5", credential: wrong)
            }
        }
    }
}
