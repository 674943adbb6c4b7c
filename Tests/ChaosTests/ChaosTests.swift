import ChaosSupport
import Foundation
import Testing

/// Issue 13 §1: a burst of ImageSpecs, a fault in the middle of it, and then every ImageSpec must
/// have exactly one build Job and a status true to it (pending, then — once the test has played the
/// kubelet — succeeded and ready). Each scenario prints its figures (`chaos: …`). The operator is
/// the built `image-builder` executable, run as a process. The burst has
/// `IMAGE_BUILDER_CHAOS_SPECS` ImageSpecs (200 by default); `swift run -c release chaos-benchmark`
/// runs the same scenarios at larger sizes.
@Suite("Chaos at burst scale", .serialized)
struct ChaosTests {
    static let specs = ProcessInfo.processInfo.environment["IMAGE_BUILDER_CHAOS_SPECS"].flatMap { Int($0) } ?? 200

    static let executable: String? = {
        let directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        return [directory, directory.deletingLastPathComponent(), Bundle.main.bundleURL, Bundle.main.bundleURL.deletingLastPathComponent()]
            .map { $0.appendingPathComponent("image-builder").path }
            .first { FileManager.default.isExecutableFile(atPath: $0) }
    }()

    /// One world for the scenarios that keep the watch cache on; they run one after the other.
    static let shared = SharedWorld()

    func run(_ fault: ChaosFault) async throws {
        let executable = try #require(Self.executable, "the image-builder executable is not beside the tests; run swift build first")
        let world: ChaosWorld
        if fault.needsWatchCacheOff {
            world = try await ChaosWorld.start(operatorExecutable: executable, watchCache: false)
        } else {
            world = try await Self.shared.world(executable)
        }
        let report: ChaosReport
        do {
            report = try await world.run(fault, options: ChaosOptions(specs: Self.specs))
        } catch {
            if fault.needsWatchCacheOff { await world.stop() }
            throw error
        }
        if fault.needsWatchCacheOff { await world.stop() }
        print("chaos: \(report)")
        #expect(report.problems.isEmpty, "\(report)")
        #expect(report.buildsPerSpec == 1...1, "builds per spec \(report.buildsPerSpec)")
        #expect(report.settledAfterCompletion != nil)
        // No hot loop: 3 s after convergence, at most one reconcile per ImageSpec in the next 3 s (a
        // requeue to look at a pending build again), not a stream of them.
        #expect(report.quietReconciles <= report.specs, "\(report.quietReconciles) reconciles 3–6 s after convergence")
        if fault != .labelRewriter {
            #expect(report.reconcilesPerSpec <= 40, "\(report.reconcilesPerSpec) reconciles per spec")
        }
    }

    @Test func noFault() async throws { try await run(.none) }
    @Test func apiServerSIGKILLedMidBurst() async throws { try await run(.apiServerKill) }
    @Test func etcdCompactedMidBurst() async throws { try await run(.etcdCompaction) }
    @Test func leaderSIGKILLedMidBurst() async throws { try await run(.leaderKill) }
    @Test func operatorSIGKILLedMidBurst() async throws { try await run(.operatorKill) }
    @Test func labelsRewrittenDuringTheBurst() async throws { try await run(.labelRewriter) }
    @Test func apiAnswers429Then500() async throws { try await run(.apiErrors) }
    @Test func apiAnswersTruncatedOversizedAndSlow() async throws { try await run(.badResponses) }
    @Test func registryDownThenSlow() async throws { try await run(.registryOutage) }
}

/// Starts the shared world on first use (the suite is serialized: one caller at a time).
actor SharedWorld {
    private var started: ChaosWorld?

    func world(_ executable: String) async throws -> ChaosWorld {
        if let started { return started }
        let world = try await ChaosWorld.start(operatorExecutable: executable)
        started = world
        return world
    }
}
