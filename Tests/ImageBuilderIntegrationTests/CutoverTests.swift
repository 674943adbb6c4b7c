import Foundation
import ImageBuilder
import ImageBuilderReconcilers
import KubeClient
import KubeTestSupport
import KubeTypes
import RegistryClient
import RegistryTestSupport
import TestHarness
import Testing

/// Replacing PrimeHub's builder on a cluster that ran it: build records, adoption of what PrimeHub
/// built, the fractional `updateTime`, each under the project's CRDs and under PrimeHub's own; and
/// objects PrimeHub accepted once the project's CRDs replace PrimeHub's. Real control plane; the
/// test plays the kubelet.
@Suite("Cutover from PrimeHub's builder", .serialized)
struct CutoverTests {
    static let digest = "sha256:" + String(repeating: "cd", count: 32)

    func hash(_ world: OperatorFixture, apt: [String]) -> String {
        primeHubHash([world.notebookBase, "apt:[\(apt.joined(separator: ","))]"])
    }

    func record(_ name: String, in world: OperatorFixture) async throws -> ImageSpecJob? {
        try? await world.client.get(ImageSpecJob.self, name: name, namespace: world.namespace)
    }

    @Test(arguments: CRDSet.allCases)
    func imageSpecRecordsFollowTheBuildAndNameItsPod(_ crds: CRDSet) async throws {
        let world = try await OperatorFixture.make("cutrec", crds: crds)
        defer { Task { await world.stop() } }
        try await world.withOperator { _ in
            _ = try await world.create(world.imageSpec("records", pip: nil))
            let jobName = "records-\(hash(world, apt: ["curl"]))"
            let job = try await world.waitForJob(jobName)
            try await eventually("ImageSpecJob \(jobName) is Pending") {
                try await record(jobName, in: world)?.status?.phase == "Pending"
            }
            try await world.startRunning(job)
            try await eventually("ImageSpecJob \(jobName) names the running build Pod") {
                let status = try await record(jobName, in: world)?.status
                return status?.phase == "Running" && status?.podName == "\(jobName)-running"
            }
            try await world.finish(job, exitCode: 0, message: Self.digest)
            let built = try await world.waitFor("records", "succeeded") { $0.isTrue(Condition.ready) }
            #expect(built.status?.phase == "Succeeded" && built.status?.digest == Self.digest)
            #expect(built.status?.image == "\(world.registry.host)/primehub/records:\(hash(world, apt: ["curl"]))")
            // The record's status is bookkeeping written just after the ImageSpec's.
            try await eventually("ImageSpecJob \(jobName) is Succeeded") {
                try await record(jobName, in: world)?.status?.phase == "Succeeded"
            }
            let finished = try #require(try await record(jobName, in: world)?.status)
            #expect(finished.phase == "Succeeded" && finished.podName.hasPrefix("\(jobName)-pod") && finished.finishTime != nil)
            let history = try await world.client.list(ImageSpecJob.self, namespace: world.namespace,
                                                      options: ListOptions(labelSelector: "imagespecs.primehub.io/name=records"))
            #expect(history.items.map(\.metadata.name) == [jobName])

            // What the server keeps: PrimeHub's CRD prunes the status to its three fields, so the
            // decision's state is in the annotation.
            let raw = try await world.client.get(ImageSpec.self, name: "records", namespace: world.namespace)
            #expect(raw.status?.phase == "Succeeded" && raw.status?.jobName == jobName)
            switch crds {
            case .project:
                #expect(raw.status?.conditions != nil && raw.metadata.annotations?[MetadataKeys.imageBuildState] == nil)
            case .primeHub:
                #expect(raw.status?.conditions == nil && raw.status?.builds == nil)
                #expect(BuildStateAnnotation.state(in: raw.metadata.annotations)?.builds?.first?.digest == Self.digest)
            }
        }
    }

    @Test(arguments: CRDSet.allCases)
    func aFractionalUpdateTimeBuildsOnce(_ crds: CRDSet) async throws {
        let world = try await OperatorFixture.make("cutfrac", crds: crds)
        defer { Task { await world.stop() } }
        try await world.withOperator { _ in
            // As PrimeHub's console writes it (JavaScript's toISOString): with a fraction.
            let second = KubeJSON.formatTimestamp(Date().wholeSeconds)
            let fractional = second.replacingOccurrences(of: "Z", with: ".5Z")
            _ = try await world.controlPlane.kubectl(["apply", "-n", world.namespace, "-f", "-"], input: """
                apiVersion: primehub.io/v1alpha1
                kind: ImageSpec
                metadata: {name: fraction}
                spec:
                  baseImage: \(world.notebookBase)
                  packages: {apt: [curl]}
                  updateTime: "\(fractional)"
                """)
            let jobName = "fraction-\(hash(world, apt: ["curl"]))"
            let job = try await world.waitForJob(jobName)
            #expect(job.metadata.annotations?[MetadataKeys.updateTimeAnnotation] == second)
            // Every Pod and Job event is a pass; with the defect each pass deleted the build and
            // started another, so the first Job never reached its end.
            try await world.startRunning(job)
            try await eventually("ImageSpecJob \(jobName) is Running") {
                try await record(jobName, in: world)?.status?.phase == "Running"
            }
            try await world.finish(job, exitCode: 0, message: Self.digest)
            let built = try await world.waitFor("fraction", "succeeded") { $0.isTrue(Condition.ready) }
            #expect(built.status?.builds?.count == 1)
            #expect(try await world.job(jobName)?.metadata.uid == job.metadata.uid)
            let events = try await world.events(about: "fraction")
            #expect(events.filter { $0.reason == "BuildStarted" }.count == 1 && !events.contains { $0.reason == "Rebuilding" })
        }
    }

    /// PrimeHub's record of a build it finished, as its controller leaves it.
    func primeHubRecord(_ name: String, owner: OwnerReference, source: BuildSource, hash: String, target: String,
                        world: OperatorFixture, apt: [String]) -> ImageSpecJob {
        let labels = source == .imageSpec
            ? ["imagespecs.primehub.io/name": owner.name, "app": "primehub-custom-image"]
            : ["image.primehub.io/name": owner.name, "app": "primehub-image"]
        let annotations = [source == .imageSpec ? "imagespecs.primehub.io/hash" : "image.primehub.io/hash": hash]
        return ImageSpecJob(
            metadata: ObjectMeta(name: name, namespace: world.namespace, labels: labels, annotations: annotations, ownerReferences: [owner]),
            spec: ImageSpecJob.Spec(baseImage: world.notebookBase, packages: Packages(apt: apt), pullSecret: nil, pushSecret: "registry-push",
                                    repoPrefix: "\(world.registry.host)/primehub", targetImage: target,
                                    updateTime: Date().wholeSeconds.addingTimeInterval(-7200)))
    }

    func finishedByPrimeHub(_ record: ImageSpecJob, world: OperatorFixture) async throws {
        let start = Date().wholeSeconds.addingTimeInterval(-7000)
        var created = try await world.client.create(record)
        created.status = ImageSpecJob.Status(phase: "Succeeded", podName: "image-\(record.metadata.name ?? "")-ab12",
                                             startTime: start, finishTime: start.addingTimeInterval(300))
        _ = try await world.client.updateStatus(created)
    }

    static func controller(_ kind: String, _ name: String, uid: String?) -> OwnerReference {
        OwnerReference(apiVersion: "primehub.io/v1alpha1", kind: kind, name: name, uid: uid ?? "", controller: true,
                       blockOwnerDeletion: true)
    }

    @Test(arguments: CRDSet.allCases)
    func whatPrimeHubOrAnEarlierRunBuiltIsAdoptedNotRebuilt(_ crds: CRDSet) async throws {
        let world = try await OperatorFixture.make("cutadopt", crds: crds)
        defer { Task { await world.stop() } }
        let pusher = ImagePusher(registry: world.registry)
        let env = ["PATH=/usr/bin:/bin"]

        // 1. An ImageSpec PrimeHub built: its succeeded record, the tag in the registry (no labels).
        let fromRecordHash = hash(world, apt: ["curl"])
        let fromRecordDigest = try await pusher.pushImage("primehub/legacy", tag: fromRecordHash, user: "jovyan", env: env)
        let legacy = try await world.create(world.imageSpec("legacy", pip: nil))
        try await finishedByPrimeHub(primeHubRecord(
            "legacy-\(fromRecordHash)", owner: Self.controller("ImageSpec", "legacy", uid: legacy.metadata.uid), source: .imageSpec,
            hash: fromRecordHash, target: "\(world.registry.host)/primehub/legacy:\(fromRecordHash)", world: world, apt: ["curl"]), world: world)

        // 2. An ImageSpec whose tag an earlier run of the operator pushed (labelled with the spec hash).
        let labelledHash = hash(world, apt: ["vim"])
        let labelledDigest = try await pusher.pushImage(
            "primehub/labelled", tag: labelledHash, user: "jovyan", env: env,
            labels: [MetadataKeys.specHashImageLabel: labelledHash], created: KubeJSON.formatTimestamp(Date().addingTimeInterval(-3600)))
        _ = try await world.create(world.imageSpec("labelled", apt: ["vim"], pip: nil))

        // 3. An Image PrimeHub built through "Build Custom Image".
        let imageHash = hash(world, apt: ["git"])
        let imageTarget = "\(world.registry.host)/primehub/custom:\(imageHash)"
        _ = try await pusher.pushImage("primehub/custom", tag: imageHash, user: "jovyan", env: env)
        var image = Image(metadata: ObjectMeta(name: "custom", namespace: world.namespace), spec: Image.Spec(
            displayName: "custom", type: "both", url: imageTarget, urlForGpu: imageTarget, pullSecret: "registry-push",
            imageSpec: Image.BuildRequest(baseImage: world.notebookBase, packages: Packages(apt: ["git"]))))
        image.status = Image.Status(jobCondition: Image.JobCondition(phase: "Succeeded", jobName: "custom", image: imageTarget))
        image = try await world.client.create(image)
        try await finishedByPrimeHub(primeHubRecord(
            "custom", owner: Self.controller("Image", "custom", uid: image.metadata.uid), source: .image, hash: imageHash,
            target: imageTarget, world: world, apt: ["git"]), world: world)

        try await world.withOperator { _ in
            let adopted = try await world.waitFor("legacy", "adopted") { $0.isTrue(Condition.ready) }
            #expect(adopted.status?.phase == "Succeeded" && adopted.status?.digest == fromRecordDigest.description)
            #expect(adopted.status?.builds?.first?.reason == "Adopted")
            let labelled = try await world.waitFor("labelled", "adopted") { $0.isTrue(Condition.ready) }
            #expect(labelled.status?.digest == labelledDigest.description && labelled.status?.builds?.first?.reason == "Adopted")
            _ = try await world.waitForEvent(about: "legacy", reason: "Adopted")
            var adoptedImage: Image?
            try await eventually("the Image's build is adopted") {
                adoptedImage = try await world.client.get(Image.self, name: "custom", namespace: world.namespace)
                return adoptedImage.flatMap(ImagePath.buildState(of:))?.builds?.first?.reason == "Adopted"
            }
            #expect(adoptedImage?.status?.jobCondition.phase == "Succeeded" && adoptedImage?.spec.url == imageTarget)
            #expect(adoptedImage?.spec.pullSecret == "registry-pull", "the configured pull secret replaces PrimeHub's push secret")
            // Nothing was built: the statuses went straight to Succeeded, and no Job exists.
            #expect(try await world.client.list(Job.self, namespace: world.namespace).items.isEmpty)
            #expect(try await record("legacy-\(fromRecordHash)", in: world)?.status?.podName == "image-legacy-\(fromRecordHash)-ab12")

            // A rebuild still happens when one is asked for.
            let later = KubeJSON.formatTimestamp(Date().addingTimeInterval(5))
            _ = try await world.client.patch(ImageSpec.self, name: "legacy", namespace: world.namespace,
                                             patch: .merge(["spec": ["updateTime": .string(later)]]))
            _ = try await world.waitForJob("legacy-\(fromRecordHash)")
        }
    }

    @Test func insecureSkipVerifyCoversTheOperatorsOwnRegistryChecks() throws {
        let carried = try OperatorConfigLoader.load(yaml: """
            customImage: {pushRepoPrefix: r.example.com/ph, pushSecretName: push, insecureSkipVerify: true}
            registry: {pullSecret: pull}
            """).get().config
        let everywhere = ImageBuilderOperator.registryClient(config: carried, platform: .linuxAMD64).configuration
        #expect(everywhere.otherRegistries.insecure, "base images in any registry, as PrimeHub's build")
        #expect(everywhere.registries["r.example.com"]?.insecure == true)
        let native = try OperatorConfigLoader.load(yaml: "registry: {pushRepoPrefix: r.example.com/ph, insecure: true}").get().config
        let pushOnly = ImageBuilderOperator.registryClient(config: native, platform: .linuxAMD64).configuration
        #expect(!pushOnly.otherRegistries.insecure && pushOnly.registries["r.example.com"]?.insecure == true)
    }

    @Test func legacyObjectsStayManageableWhenTheProjectCRDsReplacePrimeHubs() async throws {
        try await ControlPlane.withControlPlane { controlPlane in
            guard FileManager.default.fileExists(atPath: CRDSet.primeHubCRDs) else { throw CRDSetMissing(path: CRDSet.primeHubCRDs) }
            _ = try await controlPlane.kubectl(["apply", "-f", CRDSet.primeHubCRDs])
            try await CRDInstallation.waitUntilServed(on: controlPlane)
            let world = try await OperatorFixture.make("cutlegacy", on: controlPlane)
            defer { Task { await world.stop() } }
            let namespace = world.namespace
            @Sendable func spec(_ name: String, apt: String, extra: String = "") -> String {
                """
                apiVersion: primehub.io/v1alpha1
                kind: ImageSpec
                metadata: {name: \(name), namespace: \(namespace)}
                spec:
                  baseImage: \(world.notebookBase)
                  packages: {apt: [\(apt)]}
                \(extra)
                """
            }
            // Accepted under PrimeHub's CRD, which takes any string (its builder drops what fails its filter).
            _ = try await controlPlane.kubectl(["apply", "-f", "-"], input: spec("legacy", apt: "Curl"))

            // The project's CRDs replace PrimeHub's; wait until the new schema is the one in use.
            _ = try await controlPlane.kubectl(["apply", "-k", CRDSet.repository.appendingPathComponent("crds").path])
            try await eventually("the project's ImageSpec schema is served") {
                let probe = try await controlPlane.kubectlResult(
                    ["create", "--dry-run=server", "--validate=false", "-o", "json", "-f", "-"],
                    input: spec("probe", apt: "curl", extra: "  env: [{name: A, value: b}]"))
                return probe.succeeded && probe.stdout.contains("\"env\"")
            }

            try await world.withOperator { _ in
                // The operator can say why it does not build: the status write is accepted.
                let invalid = try await world.waitFor("legacy", "InvalidSpec") { $0.condition(Condition.stalled)?.reason == "InvalidSpec" }
                #expect(invalid.status?.phase == "Failed")
                #expect(invalid.condition(Condition.stalled)?.message?.contains("spec.packages.apt[0]") == true)
                #expect(try await world.job("legacy-\(primeHubHash([world.notebookBase, "apt:[Curl]"]))") == nil)
                // It stays labelable.
                let label = try await controlPlane.kubectlResult(["label", "imagespec", "legacy", "-n", namespace, "team=data"])
                #expect(label.succeeded, "\(label.stderr)")

                // A new bad spec: refused at once by the schema where the field is new (PrimeHub never
                // had `env`), else told by the operator. `--validate=false`: the API server's schema
                // decides. kubectl's own check reads the published OpenAPI document, which the
                // apiserver republishes some time after a CRD changes (a CI run saw the old one).
                let refused = try await controlPlane.kubectlResult(
                    ["apply", "--validate=false", "-f", "-"], input: spec("fresh", apt: "curl", extra: "  env: [{name: 1X, value: b}]"))
                #expect(!refused.succeeded && refused.stderr.contains("spec.env"), "\(refused.stderr)")
                _ = try await controlPlane.kubectl(["apply", "-f", "-"], input: spec("fresh", apt: "Vim"))
                let told = try await world.waitFor("fresh", "InvalidSpec") { $0.condition(Condition.stalled)?.reason == "InvalidSpec" }
                #expect(told.condition(Condition.stalled)?.message?.contains("spec.packages.apt[0]") == true)

                // A corrected spec builds.
                _ = try await controlPlane.kubectl(["apply", "-f", "-"], input: spec("legacy", apt: "curl"))
                _ = try await world.waitForJob("legacy-\(primeHubHash([world.notebookBase, "apt:[curl]"]))")
            }
        }
    }
}
