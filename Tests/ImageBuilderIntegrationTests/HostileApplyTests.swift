import Foundation
import ImageBuilder
import KubeClient
import KubeTestSupport
import KubeTypes
import TestHarness
import Testing

/// `examples/hostile/` through the real path: `kubectl apply` of every file to a real apiserver
/// with the operator running, once with the project's CRDs and once with PrimeHub's own, more
/// permissive ones. The operator must not crash, must create no Job for anything invalid, and
/// must give every ImageSpec the apiserver accepted a condition naming the field at fault.
@Suite("The hostile corpus applied with kubectl", .serialized)
struct HostileApplyTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    enum CRDs: String, Sendable {
        case project, primeHub
    }

    @Test func withTheProjectsCRDs() async throws {
        try await appliedCorpusStallsWithTheFieldAndStartsNoInvalidBuild(crds: .project)
    }

    @Test func withPrimeHubsCRDs() async throws {
        try await appliedCorpusStallsWithTheFieldAndStartsNoInvalidBuild(crds: .primeHub)
    }

    func appliedCorpusStallsWithTheFieldAndStartsNoInvalidBuild(crds: CRDs) async throws {
        guard crds == .primeHub else {
            // The shared control plane has the project's CRDs.
            return try await run(crds, in: try await OperatorFixture.make("hostile"))
        }
        // A control plane of its own for PrimeHub's CRDs.
        let controlPlane = try await ControlPlane.start()
        do {
            try await controlPlane.kubectl(["apply", "-f", CRDSet.primeHubCRDs])
            try await CRDInstallation.waitUntilServed(on: controlPlane)
            try await run(crds, in: try await OperatorFixture.make("hostile", on: controlPlane))
        } catch {
            await controlPlane.stop()
            throw error
        }
        await controlPlane.stop()
    }

    func run(_ crds: CRDs, in world: OperatorFixture) async throws {
        defer { Task { await world.stop() } }
        let controlPlane = world.controlPlane
        let admin = world.client

        // Every file, one kubectl apply each, as a GitOps tool would; what the apiserver refuses stays
        // out. Into the test's namespace, and on a base image the test registry has (so that what is
        // valid can build): the hostile parts are left as they are.
        let hostile = Self.repository.appendingPathComponent("examples/hostile")
        let files = try FileManager.default.contentsOfDirectory(atPath: hostile.path).filter { $0.hasSuffix(".yaml") }.sorted()
        #expect(files.count >= 15)
        var refused: [String] = []
        for file in files {
            let text = try String(contentsOf: hostile.appendingPathComponent(file), encoding: .utf8)
                .replacingOccurrences(of: "namespace: hub", with: "namespace: \(world.namespace)")
                .replacingOccurrences(of: "baseImage: ubuntu:22.04", with: "baseImage: \(world.plainBase)")
            // --validate=false: the apiserver's schema decides (as with server-side apply in GitOps
            // tools), not kubectl's client-side check, which refuses fields PrimeHub's CRD lacks.
            let result = try await controlPlane.kubectlResult(["apply", "--validate=false", "-n", world.namespace, "-f", "-"],
                                                              input: text)
            if !result.succeeded { refused.append(file) }
        }
        // What the apiserver stored, judged by the operator's own validation.
        let stored = try await admin.list(JSONValue.self, resource: ImageSpec.resourceType, namespace: world.namespace).items
        var invalidNames: [String] = [], validNames: Set<String> = []
        for object in stored {
            let name = object.value(at: "metadata", "name")?.stringValue ?? ""
            // As the operator reads it: decoded, then validated (members the model does not know are not judged).
            let judged = (try? object.decode(as: ImageSpec.self)).map { ImageSpecValidator.validate($0) }
            if case .success = judged { validNames.insert(name) } else { invalidNames.append(name) }
        }
        let invalid = invalidNames.sorted(), valid = validNames
        print("hostile corpus, \(crds) CRDs: \(stored.count) ImageSpecs stored (\(invalid.count) invalid: \(invalid.sorted())), "
              + "\(refused.count) of \(files.count) files refused in part or whole: \(refused)")
        #expect(valid.contains("inert-env-values"))
        if crds == .primeHub { #expect(invalid.count >= 8, "PrimeHub's schema let through only \(invalid)") }

        try await world.withOperator { _ in
            func namesTheField(_ message: String, _ name: String) {
                #expect(message.contains("spec.") || message.contains("metadata."), "\(name) names no field: \(message)")
                #expect(!message.unicodeScalars.contains { $0.value < 0x20 && $0 != "\n" }, "\(name): raw control characters")
            }
            for name in invalid {
                // With PrimeHub's CRDs the apiserver prunes the status to phase, jobName and image;
                // the operator keeps the conditions in the build-state annotation (`world.get`
                // restores them), so both say the same.
                let stalled = try await world.waitFor(name, "stalled") { $0.isTrue(Condition.stalled) }
                let condition = try #require(stalled.condition(Condition.stalled))
                #expect(condition.reason == "InvalidSpec", "\(name): \(condition)")
                namesTheField(condition.message ?? "", name)
                #expect(stalled.status?.phase == "Failed")
                let event = try await world.waitForEvent(about: name, reason: "InvalidSpec")
                #expect(event.type == "Warning")
                namesTheField(event.message ?? "", name)
            }
            // Valid ones go on: a build, or a base image that cannot be reached from here (docker.io).
            for name in valid {
                let decided = try await world.waitFor(name, "decided") {
                    crds == .project ? $0.status?.conditions?[Condition.ready] != nil : !($0.status?.phase ?? "").isEmpty
                }
                #expect(decided.condition(Condition.ready)?.reason != "InvalidSpec", "\(name)")
                #expect(try await world.events(about: name).allSatisfy { $0.reason != "InvalidSpec" }, "\(name)")
            }
            // Nothing invalid was built: every Job belongs to a valid ImageSpec.
            let jobs = try await world.client.list(Job.self, namespace: world.namespace).items
            for job in jobs {
                let owner = job.metadata.controllerReference?.name ?? ""
                #expect(valid.contains(owner), "Job \(job.metadata.name ?? "") for \(owner)")
            }
            #expect(jobs.contains { $0.metadata.controllerReference?.name == "inert-env-values" })
            // The operator runs in this process: a crash would end the test; an error ends withOperator.
        }
    }
}
