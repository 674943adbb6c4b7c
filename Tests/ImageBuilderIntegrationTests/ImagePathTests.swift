import Foundation
import ImageBuilder
import ImageBuilderReconcilers
import KubeClient
import KubeTestSupport
import KubeTypes
import Testing

/// PrimeHub's "Build Custom Image": Images with `spec.imageSpec`, built by the operator as PrimeHub's
/// controller does it, against the real control plane (the test plays the kubelet).
@Suite("The Image path (Build Custom Image)", .serialized)
struct ImagePathTests {
    func image(_ world: OperatorFixture, _ name: String, apt: [String] = ["curl"], updateTime: Date? = nil) -> Image {
        Image(metadata: ObjectMeta(name: name, namespace: world.namespace), spec: Image.Spec(
            displayName: name, type: "both",
            imageSpec: Image.BuildRequest(baseImage: world.notebookBase, packages: Packages(apt: apt), updateTime: updateTime)))
    }

    func getImage(_ world: OperatorFixture, _ name: String) async throws -> Image {
        try await world.client.get(Image.self, name: name, namespace: world.namespace)
    }

    func waitForImage(_ world: OperatorFixture, _ name: String, _ what: String,
                      _ condition: @escaping @Sendable (Image) -> Bool) async throws -> Image {
        var last: Image?
        do {
            try await eventually("Image \(name): \(what)") {
                last = try await getImage(world, name)
                return last.map(condition) ?? false
            }
        } catch {
            Issue.record("last Image \(name): \(String(describing: last))")
            throw error
        }
        return last!
    }

    @Test(arguments: CRDSet.allCases)
    func buildsPublishesCancelsAndRebuildsAsPrimeHubDoes(_ crds: CRDSet) async throws {
        let world = try await OperatorFixture.make("imgpath", crds: crds)
        defer { Task { await world.stop() } }
        try await world.withOperator { _ in
            _ = try await world.client.create(image(world, "custom"))
            let hash = primeHubHash([world.notebookBase, "apt:[curl]"])
            let jobName = "image-custom-\(hash)"
            let target = "\(world.registry.host)/primehub/custom:\(hash)"

            // create: the build for the Image's hash; jobCondition names PrimeHub's record (the Image's name).
            let job = try await world.waitForJob(jobName)
            let owner = try #require(job.metadata.controllerReference)
            #expect(owner.kind == "Image" && owner.name == "custom")
            #expect(job.metadata.labels?["app"] == "primehub-image" && job.metadata.labels?["image.primehub.io/name"] == "custom")
            let pending = try await waitForImage(world, "custom", "pending") { $0.status?.jobCondition.phase == "Pending" }
            #expect(pending.status?.jobCondition.jobName == "custom")
            #expect((pending.spec.url ?? "").isEmpty)
            let record = try await world.client.get(ImageSpecJob.self, name: "custom", namespace: world.namespace)
            #expect(record.metadata.labels?["image.primehub.io/name"] == "custom" && record.metadata.labels?["app"] == "primehub-image")
            #expect(record.metadata.annotations?["image.primehub.io/hash"] == hash)
            #expect(record.spec.targetImage == target)

            // success: url, urlForGpu, jobCondition.image and the pull secret.
            try await world.startRunning(job)
            _ = try await waitForImage(world, "custom", "running") { $0.status?.jobCondition.phase == "Running" }
            try await eventually("ImageSpecJob custom names the running build pod") {
                let record = try? await world.client.get(ImageSpecJob.self, name: "custom", namespace: world.namespace)
                return record?.status?.podName == "\(jobName)-running"
            }
            try await world.finish(job, exitCode: 0, message: "sha256:" + String(repeating: "ab", count: 32))
            let built = try await waitForImage(world, "custom", "succeeded") { $0.status?.jobCondition.phase == "Succeeded" }
            #expect(built.spec.url == target && built.spec.urlForGpu == target)
            #expect(built.status?.jobCondition.image == target)
            #expect(built.spec.pullSecret == "registry-pull")
            #expect(built.spec.displayName == "custom" && built.spec.type == "both")

            // rebuild: a newer updateTime (whole seconds, as the console writes it) builds again under the same name.
            // As the console does it: a patch of the request only (the operator writes the Image too).
            let later = KubeJSON.formatTimestamp(Date().addingTimeInterval(5))
            _ = try await world.client.patch(Image.self, name: "custom", namespace: world.namespace, patch: .merge(
                ["spec": ["imageSpec": ["updateTime": .string(later), "cancel": false]]]))
            try await eventually("the build runs again in a new Job of the same name") {
                guard let again = try await world.job(jobName) else { return false }
                return again.metadata.uid != job.metadata.uid
            }
            _ = try await waitForImage(world, "custom", "rebuilding") { $0.status?.jobCondition.phase == "Pending" }
            // cancel of the rebuild before it ends: the Job goes, the phase is Cancelled, the last good url stays.
            _ = try await world.client.patch(Image.self, name: "custom", namespace: world.namespace, patch: .merge(
                ["spec": ["imageSpec": ["cancel": true]]]))
            let cancelled = try await waitForImage(world, "custom", "cancelled") { $0.status?.jobCondition.phase == "Cancelled" }
            #expect(cancelled.spec.url == target)
            try await eventually("the cancelled Job is deleted") { try await world.job(jobName) == nil }
        }
    }

    @Test(arguments: CRDSet.allCases)
    func failuresAndInvalidRequestsSayWhyAndRegularImagesAreNotTouched(_ crds: CRDSet) async throws {
        let world = try await OperatorFixture.make("imgfail", crds: crds)
        defer { Task { await world.stop() } }
        try await world.withOperator { _ in
            // A regular Image: never touched.
            let regular = try await world.client.create(Image(
                metadata: ObjectMeta(name: "plain", namespace: world.namespace),
                spec: Image.Spec(displayName: "plain", type: "cpu", url: "registry.example.com/plain:1")))
            // An invalid request: PrimeHub has nowhere to say why, so a Warning Event and Failed.
            _ = try await world.client.create(image(world, "bad", apt: ["curl; rm -rf /"]))
            let bad = try await waitForImage(world, "bad", "failed") { $0.status?.jobCondition.phase == "Failed" }
            #expect((bad.spec.url ?? "").isEmpty)
            let warning = try await world.waitForEvent(about: "bad", reason: "InvalidSpec")
            #expect(warning.type == "Warning" && warning.message?.contains("spec.packages.apt[0]") == true)
            #expect(try await world.job("image-bad-\(primeHubHash([world.notebookBase, "apt:[curl; rm -rf /]"]))") == nil)

            // A build that fails: Failed with the reason in an Event; no url.
            _ = try await world.client.create(image(world, "broken", apt: ["does-not-exist"]))
            let job = try await world.waitForJob("image-broken-\(primeHubHash([world.notebookBase, "apt:[does-not-exist]"]))")
            try await world.finish(job, exitCode: 1, message: "E: Unable to locate package does-not-exist\nerror building image: error building stage: failed to execute command: exit status 100")
            let broken = try await waitForImage(world, "broken", "failed") { $0.status?.jobCondition.phase == "Failed" }
            #expect((broken.spec.url ?? "").isEmpty)
            _ = try await world.waitForEvent(about: "broken", reason: "BuildStepFailed")

            let after = try await getImage(world, "plain")
            #expect(after.metadata.resourceVersion == regular.metadata.resourceVersion)
            #expect(after.status == nil)
        }
    }
}
