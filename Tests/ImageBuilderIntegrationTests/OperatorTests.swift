import Crypto
import CurlHTTP
import Foundation
import ImageBuilder
import ImageBuilderReconcilers
import KubeClient
import KubeRuntime
import KubeTestSupport
import KubeTypes
import RegistryClient
import RegistryTestSupport
import RegistryTypes
import TestHarness
import Testing

/// PrimeHub's spec hash, computed here independently of the operator.
func primeHubHash(_ parts: [String]) -> String {
    Insecure.SHA1.hash(data: Array(parts.joined(separator: ";").utf8)).map { String(format: "%02x", $0) }.joined().prefix(8).description
}

@Suite("The operator against a real kube-apiserver and registry", .serialized)
struct OperatorTests {
    @Test func buildsReportsProgressAndPublishes() async throws {
        let world = try await OperatorFixture.make("build")
        defer { Task { await world.stop() } }
        try await world.withOperator { _ in
            let spec = world.imageSpec("datasci", publish: Publish(displayName: "Data science", type: "cpu"))
            _ = try await world.create(spec)
            let hash = primeHubHash([world.notebookBase, "apt:[curl]", "pip:[flask>=2]"])
            let jobName = "datasci-\(hash)"
            let target = "\(world.registry.host)/primehub/datasci:\(hash)"

            // The build starts: Job, ConfigMap and merged Secret, all owned by the ImageSpec.
            let job = try await world.waitForJob(jobName)
            let pending = try await world.waitFor("datasci", "reconciling with the job name") {
                $0.status?.jobName == jobName && $0.isTrue(Condition.reconciling)
            }
            #expect(pending.status?.phase == "Pending")
            #expect(pending.status?.baseImageDigest == world.notebookDigest)
            #expect(!pending.isTrue(Condition.ready) && !pending.isTrue(Condition.stalled))
            let owner = try #require(job.metadata.controllerReference)
            #expect(owner.uid == pending.metadata.uid && owner.kind == "ImageSpec" && owner.blockOwnerDeletion == true)
            #expect(job.metadata.labels?["imagespecs.primehub.io/name"] == "datasci")
            #expect(job.metadata.annotations?["imagespecs.primehub.io/hash"] == hash)
            let args = job.spec?.template.spec?.containers.first?.args ?? []
            #expect(args.contains("--destination=\(target)"))
            #expect(args.contains("--insecure-registry=\(world.registry.host)"))
            #expect(args.contains("--label=image-builder.primehub.io/base-image=\(world.notebookBase)"))
            #expect(args.contains("--label=image-builder.primehub.io/base-digest=\(world.notebookDigest)"))

            let context = try await world.client.get(ConfigMap.self, name: jobName, namespace: world.namespace)
            let dockerfile = context.data?["Dockerfile"] ?? ""
            #expect(dockerfile.contains("FROM \(world.notebookBase)@\(world.notebookDigest)"))
            #expect(dockerfile.hasSuffix("USER jovyan\n"))
            // The package lists are build arguments, not context files.
            #expect(args.contains("--build-arg=IMAGE_BUILDER_PIP_REQUIREMENTS=flask>=2"))
            #expect(context.data?.keys.sorted() == ["Dockerfile"])
            let secret = try await world.client.get(Secret.self, name: jobName, namespace: world.namespace)
            let dockerConfig = String(decoding: secret.data?[".dockerconfigjson"] ?? Data(), as: UTF8.self)
            #expect(dockerConfig.contains(world.registry.host))

            // PrimeHub's build record, as its console reads it: history by label, spec fields, status.
            var record: ImageSpecJob?
            try await eventually("ImageSpecJob \(jobName) is Pending") {
                record = try? await world.client.get(ImageSpecJob.self, name: jobName, namespace: world.namespace)
                return record?.status?.phase == "Pending"
            }
            let history = try await world.client.list(ImageSpecJob.self, namespace: world.namespace,
                                                      options: ListOptions(labelSelector: "imagespecs.primehub.io/name=datasci"))
            #expect(history.items.map { $0.metadata.name } == [jobName])
            #expect(record?.metadata.labels?["app"] == "primehub-custom-image")
            #expect(record?.metadata.annotations?["imagespecs.primehub.io/hash"] == hash)
            #expect(record?.metadata.controllerReference?.uid == pending.metadata.uid)
            #expect(record?.spec.baseImage == world.notebookBase)
            #expect(record?.spec.targetImage == target)
            #expect(record?.spec.packages.apt == ["curl"] && record?.spec.packages.pip == ["flask>=2"])
            #expect(record?.spec.pushSecret == "registry-push")
            #expect(record?.status?.podName == "")

            // The builder runs, then succeeds and reports its digest.
            try await world.startRunning(job)
            try await world.waitFor("datasci", "running") { $0.status?.phase == "Running" }
            try await eventually("ImageSpecJob \(jobName) names the running build pod") {
                record = try? await world.client.get(ImageSpecJob.self, name: jobName, namespace: world.namespace)
                return record?.status?.phase == "Running" && record?.status?.podName == "\(jobName)-running"
            }
            let digest = "sha256:" + String(repeating: "5e", count: 32)
            try await world.finish(job, exitCode: 0, message: digest)
            let ready = try await world.waitFor("datasci", "ready") { $0.isTrue(Condition.ready) }
            #expect(ready.status?.phase == "Succeeded")
            #expect(ready.status?.image == target)
            #expect(ready.status?.digest == digest)
            #expect(ready.status?.observedGeneration == ready.metadata.generation)
            #expect(ready.condition(Condition.ready)?.observedGeneration == ready.metadata.generation)
            #expect(!ready.isTrue(Condition.reconciling) && !ready.isTrue(Condition.stalled))
            #expect(ready.status?.builds?.first?.phase == "Succeeded")
            #expect(ready.status?.builds?.first?.digest == digest)
            try await eventually("ImageSpecJob \(jobName) is Succeeded with its finish time") {
                record = try? await world.client.get(ImageSpecJob.self, name: jobName, namespace: world.namespace)
                return record?.status?.phase == "Succeeded" && record?.status?.finishTime != nil
            }
            // podName follows the build's newest Pod (the finished one), whose log the console fetches.
            let finalPod = try await world.client.get(Pod.self, name: record?.status?.podName ?? "", namespace: world.namespace)
            #expect(finalPod.metadata.controllerReference?.uid == job.metadata.uid)
            #expect(finalPod.status?.containerStatuses?.first?.state?.terminated?.exitCode == 0)

            // Published to PrimeHub's image list with the pull secret, never the push secret.
            var image: Image?
            try await eventually("Image datasci is published") {
                image = try? await world.client.get(Image.self, name: "datasci", namespace: world.namespace)
                return image?.spec.url == target
            }
            #expect(image?.spec.urlForGpu == target)
            #expect(image?.spec.pullSecret == "registry-pull")
            #expect(image?.spec.displayName == "Data science")
            #expect(image?.spec.type == "cpu")

            // The merged Secret with push credentials is gone once the build ended.
            try await eventually("the build's registry secret is deleted") {
                do {
                    _ = try await world.client.get(Secret.self, name: jobName, namespace: world.namespace)
                    return false
                } catch let error as APIError where error.isNotFound {
                    return true
                }
            }
            let started = try await world.waitForEvent(about: "datasci", reason: "BuildStarted")
            #expect(started.type == "Normal" && started.message?.contains(jobName) == true)
            _ = try await world.waitForEvent(about: "datasci", reason: "BuildSucceeded")
            _ = try await world.waitForEvent(about: "datasci", reason: "Published")
        }
    }

    @Test func failedBuildSaysWhereItFailedAndKeepsThePublishedImage() async throws {
        let world = try await OperatorFixture.make("fail")
        defer { Task { await world.stop() } }
        try await world.withOperator { _ in
            _ = try await world.create(world.imageSpec("broken", apt: ["does-not-exist"], pip: nil))
            let hash = primeHubHash([world.notebookBase, "apt:[does-not-exist]"])
            let job = try await world.waitForJob("broken-\(hash)")
            let log = """
                E: Unable to locate package does-not-exist
                error building image: error building stage: failed to execute command: waiting for process to exit: exit status 100
                """
            try await world.finish(job, exitCode: 1, message: log)
            let failed = try await world.waitFor("broken", "stalled") { $0.isTrue(Condition.stalled) }
            #expect(failed.status?.phase == "Failed")
            let stalled = try #require(failed.condition(Condition.stalled))
            #expect(stalled.reason == "BuildStepFailed")
            #expect(stalled.message?.contains("Unable to locate package does-not-exist") == true)
            #expect(!failed.isTrue(Condition.ready))
            #expect(failed.status?.builds?.first?.reason == "BuildStepFailed")
            let event = try await world.waitForEvent(about: "broken", reason: "BuildStepFailed")
            #expect(event.type == "Warning")
        }
    }

    @Test func invalidSpecsStallWithTheFieldAndNoJob() async throws {
        let world = try await OperatorFixture.make("invalid")
        defer { Task { await world.stop() } }
        try await world.withOperator { _ in
            // The CRD's schema cannot see that a channel flag needs a package after it; the operator can.
            _ = try await world.create(world.imageSpec("bad", conda: ["-c"]))
            let stalled = try await world.waitFor("bad", "stalled") { $0.isTrue(Condition.stalled) }
            let condition = try #require(stalled.condition(Condition.stalled))
            #expect(condition.reason == "InvalidSpec")
            #expect(condition.message?.contains("spec.packages.conda") == true)
            #expect(stalled.status?.phase == "Failed")
            #expect(stalled.status?.jobName == "")  // PrimeHub's required status fields, written empty
            let jobs = try await world.client.list(Job.self, namespace: world.namespace)
            #expect(jobs.items.isEmpty)
            _ = try await world.waitForEvent(about: "bad", reason: "InvalidSpec")
        }
    }

    @Test func missingSecretStallsAndHealsWhenTheSecretAppears() async throws {
        let world = try await OperatorFixture.make("secret")
        defer { Task { await world.stop() } }
        try await world.withOperator { _ in
            _ = try await world.create(world.imageSpec("needs-secret", pullSecret: "late-secret"))
            let stalled = try await world.waitFor("needs-secret", "stalled on the secret") {
                $0.condition(Condition.stalled)?.reason == "MissingSecret"
            }
            #expect(stalled.condition(Condition.stalled)?.message
                == "pull secret (spec.pullSecret) late-secret not found in namespace \(world.namespace)")
            #expect(try await world.client.list(Job.self, namespace: world.namespace).items.isEmpty)

            _ = try await world.client.create(OperatorFixture.dockerConfigSecret(
                "late-secret", namespace: world.namespace, host: world.registry.host,
                username: OperatorFixture.registryUser, password: OperatorFixture.registryPassword))
            try await world.waitFor("needs-secret", "building once the secret exists") {
                $0.isTrue(Condition.reconciling) && $0.status?.phase == "Pending"
            }
        }
    }

    @Test func baseImageProblemsAreFoundBeforeAnyBuild() async throws {
        let world = try await OperatorFixture.make("base")
        defer { Task { await world.stop() } }
        try await world.withOperator { _ in
            // Not in the registry.
            _ = try await world.create(world.imageSpec("missing-base", base: "\(world.registry.host)/base/nothing:1.0"))
            let missing = try await world.waitFor("missing-base", "stalled") { $0.isTrue(Condition.stalled) }
            #expect(missing.condition(Condition.stalled)?.reason == "BaseImageUnavailable")
            #expect(missing.condition(Condition.stalled)?.message?.contains("base/nothing") == true)

            // Conda packages on a base without conda.
            _ = try await world.create(world.imageSpec("no-conda", base: world.plainBase, conda: ["numpy"]))
            let noConda = try await world.waitFor("no-conda", "stalled") { $0.isTrue(Condition.stalled) }
            #expect(noConda.condition(Condition.stalled)?.reason == "CondaUnavailable")

            // A base without Jupyter builds, with a warning that it suits Job Submission only.
            _ = try await world.create(world.imageSpec("plain", base: world.plainBase))
            let warning = try await world.waitForEvent(about: "plain", reason: "JobSubmissionOnly")
            #expect(warning.type == "Warning")
            let plain = try await world.waitFor("plain", "building") { $0.isTrue(Condition.reconciling) }
            let job = try await world.waitForJob(plain.status?.jobName ?? "")
            let context = try await world.client.get(ConfigMap.self, name: job.metadata.name ?? "", namespace: world.namespace)
            // The base names no user: the image ends as root.
            #expect(context.data?["Dockerfile"]?.hasSuffix("USER root\n") == true)

            #expect(try await world.job("missing-base-\(primeHubHash(["\(world.registry.host)/base/nothing:1.0", "apt:[curl]", "pip:[flask>=2]"]))") == nil)
        }
    }

    @Test func pushCredentialsAreCheckedBeforeBuilding() async throws {
        // The base comes from another, open registry (plain HTTP); only pushing needs the (wrong) password.
        let baseRegistry = try await LocalRegistry.start()
        defer { Task { await baseRegistry.stop() } }
        let world = try await OperatorFixture.make("push") {
            $0.registry.pushSecret = "wrong-push"
            $0.registry.insecureRegistries = [baseRegistry.host]
        }
        defer { Task { await world.stop() } }
        try await ImagePusher(registry: baseRegistry).pushImage("base/notebook", tag: "1", user: "jovyan", env: ["NB_USER=jovyan"])
        _ = try await world.client.create(OperatorFixture.dockerConfigSecret(
            "wrong-push", namespace: world.namespace, host: world.registry.host, username: OperatorFixture.registryUser,
            password: "not-the-password"))
        try await world.withOperator { _ in
            _ = try await world.create(world.imageSpec("denied", base: "\(baseRegistry.host)/base/notebook:1"))
            let denied = try await world.waitFor("denied", "stalled") { $0.isTrue(Condition.stalled) }
            #expect(denied.condition(Condition.stalled)?.reason == "PushDenied")
            #expect(denied.condition(Condition.stalled)?.message?.contains(world.registry.host) == true)
            #expect(try await world.client.list(Job.self, namespace: world.namespace).items.isEmpty)
        }
    }

    @Test func cancelStopsTheRunningBuild() async throws {
        let world = try await OperatorFixture.make("cancel")
        defer { Task { await world.stop() } }
        try await world.withOperator { _ in
            _ = try await world.create(world.imageSpec("stop-me"))
            let jobName = try await world.waitForBuild("stop-me").metadata.name ?? ""
            _ = try await world.client.patch(ImageSpec.self, name: "stop-me", namespace: world.namespace,
                                             patch: .merge(["spec": ["cancel": true]]))
            let cancelled = try await world.waitFor("stop-me", "cancelled") { $0.status?.phase == "Cancelled" }
            #expect(cancelled.condition(Condition.stalled)?.reason == "Cancelled")
            try await eventually("the Job is deleted") { try await world.job(jobName) == nil }
            #expect(cancelled.status?.builds?.first?.phase == "Cancelled")
        }
    }

    @Test func newerUpdateTimeRebuildsAndSpecChangesKeepHistory() async throws {
        let world = try await OperatorFixture.make("rebuild")
        defer { Task { await world.stop() } }
        try await world.withOperator { _ in
            _ = try await world.create(world.imageSpec("again"))
            let job = try await world.waitForBuild("again")
            let jobName = job.metadata.name ?? ""
            try await world.finish(job, exitCode: 0, message: "sha256:" + String(repeating: "1", count: 64))
            try await world.waitFor("again", "ready") { $0.isTrue(Condition.ready) }

            // PrimeHub's rebuild button: a newer updateTime. Same hash, same Job name, a new Job.
            let later = KubeJSON.formatTimestamp(Date().addingTimeInterval(5))
            _ = try await world.client.patch(ImageSpec.self, name: "again", namespace: world.namespace,
                                             patch: .merge(["spec": ["updateTime": .string(later)]]))
            var rebuilt: Job?
            try await eventually("a new Job replaces the finished one") {
                rebuilt = try await world.job(jobName)
                return rebuilt != nil && rebuilt?.metadata.uid != job.metadata.uid
            }
            _ = try await world.waitForEvent(about: "again", reason: "Rebuilding")
            try await world.finish(rebuilt!, exitCode: 0, message: "sha256:" + String(repeating: "2", count: 64))
            try await world.waitFor("again", "ready after the rebuild") {
                $0.isTrue(Condition.ready) && $0.status?.digest == "sha256:" + String(repeating: "2", count: 64)
            }

            // Another package list: a second build under a new name; the first stays as history.
            _ = try await world.client.patch(ImageSpec.self, name: "again", namespace: world.namespace,
                                             patch: .merge(["spec": ["packages": ["apt": ["curl", "vim"]]]]))
            let second = try await world.waitFor("again", "a second build") {
                ($0.status?.jobName ?? jobName) != jobName && $0.isTrue(Condition.reconciling)
            }
            // Not Ready: the built image is for the previous generation. The last good image stays.
            #expect(!second.isTrue(Condition.ready))
            #expect(second.status?.image.hasSuffix(":" + String(jobName.suffix(8))) == true)
            #expect(second.status?.builds?.map(\.jobName).contains(jobName) == true)
            #expect(try await world.job(jobName) != nil)
        }
    }

    @Test func movedBaseTagRebuildsWhenTheImageSpecOptsIn() async throws {
        let world = try await OperatorFixture.make("basechange") { $0.baseImages.checkIntervalSeconds = 1 }
        defer { Task { await world.stop() } }
        try await world.withOperator { _ in
            var spec = world.imageSpec("follows-base")
            spec.metadata.annotations = [OperatorConfig.BaseImagePolicy.annotation: "true"]
            _ = try await world.create(spec)
            let job = try await world.waitForBuild("follows-base")
            try await world.finish(job, exitCode: 0, message: "sha256:" + String(repeating: "8", count: 64))
            let ready = try await world.waitFor("follows-base", "ready") { $0.isTrue(Condition.ready) }
            #expect(ready.status?.baseImageDigest == world.notebookDigest)

            // The base tag moves to a new image: the operator notices and builds again from it.
            let moved = try await ImagePusher(registry: world.registry).pushImage(
                "base/notebook", tag: "latest", user: "jovyan", env: ["CONDA_DIR=/opt/conda", "NB_USER=jovyan"])
            _ = try await world.waitForEvent(about: "follows-base", reason: "BaseImageChanged")
            var rebuilt: Job?
            try await eventually("a new build from the moved base") {
                rebuilt = try await world.job(job.metadata.name ?? "")
                return rebuilt != nil && rebuilt?.metadata.uid != job.metadata.uid
            }
            #expect(rebuilt?.metadata.annotations?[MetadataKeys.baseDigestAnnotation] == moved.description)
            try await world.waitFor("follows-base", "the new base digest recorded") { $0.status?.baseImageDigest == moved.description }
        }
    }

    @Test func restartedOperatorPicksUpWhereTheLastOneStopped() async throws {
        let world = try await OperatorFixture.make("restart")
        defer { Task { await world.stop() } }
        let jobName = try await world.withOperator { _ in
            _ = try await world.create(world.imageSpec("survivor"))
            return try await world.waitForBuild("survivor").metadata.name ?? ""
        }
        // While no operator runs, the build finishes.
        let job = try await world.waitForJob(jobName)
        try await world.finish(job, exitCode: 0, message: "sha256:" + String(repeating: "3", count: 64))
        try await world.withOperator { _ in
            let ready = try await world.waitFor("survivor", "ready") { $0.isTrue(Condition.ready) }
            #expect(ready.status?.digest == "sha256:" + String(repeating: "3", count: 64))
            let jobs = try await world.client.list(Job.self, namespace: world.namespace)
            #expect(jobs.items.count == 1)  // nothing was built twice
        }
    }

    @Test func stuckBuildPodIsGivenUpWithTheReason() async throws {
        // A reason that cannot heal gives up at once; waits that might heal (ImagePullBackOff) are
        // given up after builder.pendingTimeout (unit-tested with a clock in BuildAssessmentTests).
        let world = try await OperatorFixture.make("stuck")
        defer { Task { await world.stop() } }
        try await world.withOperator { _ in
            _ = try await world.create(world.imageSpec("stuck"))
            let job = try await world.waitForBuild("stuck")
            // The kubelet cannot even parse the builder image's name.
            let owner = OwnerReference(apiVersion: "batch/v1", kind: "Job", name: job.metadata.name ?? "", uid: job.metadata.uid ?? "",
                                       controller: true, blockOwnerDeletion: true)
            var pod = try await world.client.create(Pod(
                metadata: ObjectMeta(name: "stuck-pod", namespace: world.namespace, labels: job.spec?.template.metadata?.labels,
                                     annotations: job.spec?.template.metadata?.annotations, ownerReferences: [owner]),
                spec: PodSpec(containers: [Container(name: "build", image: "registry.invalid/kaniko:v1")], restartPolicy: "Never")))
            pod.status = PodStatus(phase: "Pending", containerStatuses: [ContainerStatus(name: "build", state: ContainerState(
                waiting: ContainerStateWaiting(reason: "InvalidImageName", message: "Failed to apply default image tag \"registry.invalid/kaniko:v1\"")))])
            _ = try await world.client.updateStatus(pod)
            let stuck = try await world.waitFor("stuck", "given up") { $0.isTrue(Condition.stalled) }
            #expect(stuck.condition(Condition.stalled)?.reason == "BuilderImagePullFailed")
            #expect(stuck.condition(Condition.stalled)?.message?.contains("InvalidImageName") == true)
            try await eventually("the stuck Job is deleted") { try await world.job(job.metadata.name ?? "") == nil }
        }
    }
}

@Suite("Deployment manifests")
struct DeploymentManifestTests {
    @Test func kustomizationIsAcceptedByTheAPIServer() async throws {
        let controlPlane = try await ControlPlane.shared()
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let namespace = "hub-\(UUID().uuidString.prefix(6).lowercased())"
        // The base installs into `hub`; server-side dry run checks every object against the real API.
        let rendered = try await controlPlane.kubectl(["kustomize", root.appendingPathComponent("deploy").path])
        #expect(rendered.contains("kind: Deployment"))
        try await controlPlane.kubectl(["create", "namespace", namespace])
        let output = try await controlPlane.kubectl(
            ["apply", "--dry-run=server", "-n", namespace, "-f", "-"],
            input: rendered.replacingOccurrences(of: "namespace: hub", with: "namespace: \(namespace)"))
        for kind in ["customresourcedefinition", "serviceaccount", "clusterrole", "clusterrolebinding", "configmap", "service", "deployment"] {
            #expect(output.contains(kind), "\(kind) missing from: \(output)")
        }
    }
}

@Suite("The operator with only the RBAC it is deployed with")
struct OperatorRBACTests {
    /// A client for a ServiceAccount bound to `deploy/rbac.yaml`'s ClusterRole, with a token from
    /// the TokenRequest API (no controller manager needed).
    static func serviceAccountClient(_ world: OperatorFixture) async throws -> KubernetesClient {
        let token = try await serviceAccountToken(world)
        return KubernetesClient(configuration: ClientConfiguration(
            server: world.controlPlane.serverURL.absoluteString, tls: TLSOptions(caFile: world.controlPlane.caFile),
            authentication: .bearerToken(token), namespace: world.namespace))
    }

    /// A token of ServiceAccount `image-builder` in the world's namespace, bound to nothing but
    /// `deploy/rbac.yaml`'s ClusterRole.
    static func serviceAccountToken(_ world: OperatorFixture) async throws -> String {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let rbac = try String(contentsOfFile: root.appendingPathComponent("deploy/rbac.yaml").path, encoding: .utf8)
            .replacingOccurrences(of: "namespace: hub", with: "namespace: \(world.namespace)")
            .replacingOccurrences(of: "kind: ClusterRoleBinding\nmetadata:\n  name: image-builder",
                                  with: "kind: ClusterRoleBinding\nmetadata:\n  name: image-builder-\(world.namespace)")
        try await world.controlPlane.kubectl(["apply", "-f", "-"], input: rbac)
        try await world.controlPlane.kubectl(["create", "serviceaccount", "image-builder", "-n", world.namespace])
        let request = KubernetesClient.Request(
            method: "POST", path: "/api/v1/namespaces/\(world.namespace)/serviceaccounts/image-builder/token",
            body: Data(#"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenRequest","spec":{"expirationSeconds":3600}}"#.utf8),
            contentType: "application/json")
        let response = try await world.client.send(request)
        return try #require(try JSONDecoder().decode(JSONValue.self, from: response.body).value(at: "status", "token")?.stringValue)
    }

    @Test func buildsAndPublishesWithLeaderElection() async throws {
        let admin = try await OperatorFixture.make("rbac")
        defer { Task { await admin.stop() } }
        var narrowed = admin
        narrowed.operatorClient = try await Self.serviceAccountClient(admin)
        let world = narrowed
        try await world.withOperator(leaderElection: true) { imageBuilder in
            _ = try await world.create(world.imageSpec("least-privilege", publish: Publish(displayName: "Least privilege")))
            let job = try await world.waitForBuild("least-privilege")
            try await world.finish(job, exitCode: 0, message: "sha256:" + String(repeating: "7", count: 64))
            try await world.waitFor("least-privilege", "ready") { $0.isTrue(Condition.ready) }
            try await eventually("the Image is published") {
                (try? await world.client.get(Image.self, name: "least-privilege", namespace: world.namespace))?.spec.url != nil
            }
            _ = try await world.waitForEvent(about: "least-privilege", reason: "BuildSucceeded")
            #expect(imageBuilder.leaderElector?.isLeader == true)
        }
        // A clean stop released the lease.
        let lease = try await world.client.get(Lease.self, name: "image-builder", namespace: world.namespace)
        #expect(lease.spec?.holderIdentity == nil || lease.spec?.holderIdentity == "")
    }
}
