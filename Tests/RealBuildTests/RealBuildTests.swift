import Foundation
import ImageBuilder
import ImageBuilderReconcilers
import KubeClient
import KubeTestSupport
import KubeTypes
import RegistryClient
import RegistryTypes
import TestHarness
import Testing

/// Builds that really run: the operator (in this process) against a real single-node cluster
/// (kubelet, containerd, CNI bridge) and registry. An ImageSpec becomes a buildah Job whose Pod
/// installs apt packages from Debian and pip packages from PyPI, pushes to the registry and hands
/// the digest back; then a Pod runs the built image.
@Suite("Real builds on a single-node cluster", .serialized)
struct RealBuildTests {
    /// The operator's configuration for the tier: buildah with the harness's builder image and
    /// seccomp profile; pushes to the registry as Pods reach it (plain HTTP).
    static func config(_ cluster: NodeCluster) -> OperatorConfig {
        var config = OperatorConfig()
        config.registry.push = .prefix("\(cluster.podRegistryHost)/primehub")
        config.registry.insecure = true
        config.registry.insecureRegistries = [cluster.podRegistryHost, cluster.registry.host]
        config.builder.strategy = .buildah
        config.builder.image = cluster.images.builder
        config.builder.seccompProfile = .localhost(NodeCluster.buildahSeccompProfile)
        config.builder.timeoutSeconds = 900
        config.builder.resources = nil
        return config
    }

    /// The base image as a Pod's build reaches it (the bridge address of the same registry).
    static func base(_ cluster: NodeCluster) -> String {
        cluster.images.base.replacingOccurrences(of: cluster.registry.host, with: cluster.podRegistryHost)
    }

    static let crds = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("crds").path

    /// Runs the operator for `namespace` while `body` runs.
    static func withOperator<T: Sendable>(_ cluster: NodeCluster, namespace: String, config: OperatorConfig,
                                          _ body: @Sendable (KubernetesClient) async throws -> T) async throws -> T {
        let client = try cluster.controlPlane.client()
        try await SharedClusterCRDs.installation.install(on: cluster)
        let imageBuilder = ImageBuilderOperator(
            client: client, config: config,
            options: .init(namespaces: [namespace], workers: 2, probePort: nil, stalledRetryInterval: .seconds(5)))
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                try await imageBuilder.run(signals: [])
                return nil
            }
            defer { imageBuilder.shutDown() }
            let result = try await body(client)
            imageBuilder.shutDown()
            while let next = try await group.next() {
                if let next { return next }
            }
            return result
        }
    }

    /// Waits for `condition` on the ImageSpec `name`. The default deadline is generous: on a loaded
    /// 2-core CI machine a real build with apt and pip took more than 600 s.
    static func waitFor(_ client: KubernetesClient, _ name: String, namespace: String, _ what: String,
                        timeout: Duration = .seconds(1200), _ condition: @escaping @Sendable (ImageSpec) -> Bool) async throws -> ImageSpec {
        var last: ImageSpec?
        do {
            try await eventually(timeout: timeout, "\(name): \(what)") {
                last = try await client.get(ImageSpec.self, name: name, namespace: namespace)
                return last.map(condition) ?? false
            }
        } catch {
            Issue.record("last status of \(name): \(String(describing: last?.status))")
            throw error
        }
        return last!
    }

    @Test func anImageSpecIsBuiltPushedPublishedAndRuns() async throws {
        let cluster = try await NodeCluster.shared()
        let namespace = try await cluster.controlPlane.makeNamespace("build")
        try await Self.withOperator(cluster, namespace: namespace, config: Self.config(cluster)) { client in
            let spec = ImageSpec(metadata: ObjectMeta(name: "tools", namespace: namespace), spec: ImageSpecSpec(
                baseImage: Self.base(cluster),
                packages: Packages(apt: ["jq"], pip: ["six==1.16.0", "idna[all]>=3 ; python_version >= '3'"]),
                env: [ImageEnvVar(name: "GREETING", value: "hello from image-builder")],
                publish: Publish(displayName: "Tools", type: "cpu")))
            _ = try await client.create(spec)

            let ready = try await Self.waitFor(client, "tools", namespace: namespace, "built and pushed") {
                $0.isTrue(Condition.ready) || $0.isTrue(Condition.stalled)
            }
            #expect(ready.isTrue(Condition.ready), "\(String(describing: ready.condition(Condition.stalled)?.message))")
            #expect(ready.status?.phase == "Succeeded")
            let image = try #require(ready.status?.image.nilIfEmpty)
            let digest = try #require(ready.status?.digest)

            // The digest handed back is the registry's.
            let reference = try ImageReference(parsing: image.replacingOccurrences(of: cluster.podRegistryHost, with: cluster.registry.host))
            let registry = RegistryClient(configuration: RegistryClient.Configuration(
                registries: [cluster.registry.host: RegistryOptions(insecure: true)]))
            let registryDigest = try await registry.digest(of: reference)
            #expect(registryDigest.description == digest)
            let buildSeconds = ready.status?.builds?.first?.completionTime.flatMap { end in
                ready.status?.builds?.first?.startTime.map { end.timeIntervalSince($0) }
            }
            print("real build: \(image) status.digest \(digest), the registry answers \(registryDigest), "
                  + "build \(buildSeconds.map { "\(Int($0)) s" } ?? "?") from Job creation to completion")

            // Published to PrimeHub's image list.
            let published = try await client.get(Image.self, name: "tools", namespace: namespace)
            #expect(published.spec.url == image)

            // PrimeHub's record names the build Pod, whose log the console reads without naming a container.
            // Its status is bookkeeping written just after the ImageSpec's.
            try await eventually("ImageSpecJob \(ready.status?.jobName ?? "") is Succeeded") {
                try await client.get(ImageSpecJob.self, name: ready.status?.jobName ?? "", namespace: namespace).status?.phase == "Succeeded"
            }
            let record = try await client.get(ImageSpecJob.self, name: ready.status?.jobName ?? "", namespace: namespace)
            #expect(record.status?.phase == "Succeeded")
            let podName = try #require(record.status?.podName.nilIfEmpty)
            let log = try await cluster.kubectl(["logs", "-n", namespace, podName])
            #expect(!log.isEmpty)

            // The build Pod ran with exactly the documented privileges: root in its own user
            // namespace with SETUID, SETGID and SETFCAP only, the Localhost seccomp profile, no
            // privilege escalation, a read-only root, no service-account token, no host paths.
            let buildPod = try await client.get(Pod.self, name: podName, namespace: namespace)
            let podSpec = try #require(buildPod.spec)
            #expect(podSpec.automountServiceAccountToken == false)
            // Every volume is a ConfigMap, a Secret or an emptyDir (a host path would be none of these).
            #expect(podSpec.volumes?.allSatisfy { $0.configMap != nil || $0.secret != nil || $0.emptyDir != nil } ?? true)
            for container in (podSpec.initContainers ?? []) + podSpec.containers {
                let context = try #require(container.securityContext, "\(container.name) has no security context")
                #expect(context.privileged != true, "\(container.name)")
                #expect(context.runAsUser == 0, "\(container.name)")
                #expect(context.allowPrivilegeEscalation == false, "\(container.name)")
                #expect(context.readOnlyRootFilesystem == true, "\(container.name)")
                #expect(context.capabilities?.drop == ["ALL"], "\(container.name)")
                #expect(Set(context.capabilities?.add ?? []) == ["SETUID", "SETGID", "SETFCAP"], "\(container.name)")
                #expect(context.seccompProfile == SeccompProfile(type: "Localhost", localhostProfile: NodeCluster.buildahSeccompProfile),
                        "\(container.name)")
            }

            // The built image runs: the packages, the environment and the base image's user.
            let runner = "run-tools"
            let pulled = "\(cluster.registry.host)/primehub/tools:\(image.split(separator: ":").last ?? "")"
            _ = try await cluster.kubectl(["run", runner, "-n", namespace, "--restart=Never", "--image=\(pulled)",
                                           "--command", "--", "sh", "-c",
                                           "jq --version; python3 -c 'import six, idna; print(\"six\", six.__version__)'; echo \"$GREETING\"; id -u"])
            let finished = try await cluster.waitForPodToFinish(runner, namespace: namespace)
            #expect(finished.exitCode == 0, "\(finished.logs)")
            #expect(finished.logs.contains("jq-"), "\(finished.logs)")
            #expect(finished.logs.contains("six 1.16.0"), "\(finished.logs)")
            #expect(finished.logs.contains("hello from image-builder"), "\(finished.logs)")
            #expect(finished.logs.split(separator: "\n").last == "1000", "the base image's user: \(finished.logs)")
        }
    }

    @Test func aRebuildRunsTheStepsAgainAndACancelStopsTheBuildPod() async throws {
        let cluster = try await NodeCluster.shared()
        let namespace = try await cluster.controlPlane.makeNamespace("rebuild")
        try await Self.withOperator(cluster, namespace: namespace, config: Self.config(cluster)) { client in
            _ = try await client.create(ImageSpec(metadata: ObjectMeta(name: "again", namespace: namespace), spec: ImageSpecSpec(
                baseImage: Self.base(cluster), packages: Packages(pip: ["six"]))))
            let first = try await Self.waitFor(client, "again", namespace: namespace, "built") {
                $0.isTrue(Condition.ready) || $0.isTrue(Condition.stalled)
            }
            #expect(first.isTrue(Condition.ready), "\(String(describing: first.condition(Condition.stalled)?.message))")
            let firstDigest = try #require(first.status?.digest)

            // A newer updateTime: the package steps run again; the same tag, a new digest.
            let later = KubeJSON.formatTimestamp(Date().addingTimeInterval(2))
            _ = try await client.patch(ImageSpec.self, name: "again", namespace: namespace,
                                       patch: .merge(["spec": ["updateTime": .string(later)]]))
            let second = try await Self.waitFor(client, "again", namespace: namespace, "built again") {
                ($0.isTrue(Condition.ready) && $0.status?.digest != firstDigest) || $0.isTrue(Condition.stalled)
            }
            #expect(second.isTrue(Condition.ready), "\(String(describing: second.condition(Condition.stalled)?.message))")
            #expect(second.status?.image == first.status?.image)
            #expect(second.status?.digest != firstDigest)

            // Cancel of a running build: its Job and Pod go, the phase is Cancelled.
            let latest = KubeJSON.formatTimestamp(Date().addingTimeInterval(4))
            _ = try await client.patch(ImageSpec.self, name: "again", namespace: namespace,
                                       patch: .merge(["spec": ["updateTime": .string(latest)]]))
            let running = try await Self.waitFor(client, "again", namespace: namespace, "running again", timeout: .seconds(300)) {
                $0.status?.phase == "Running"
            }
            let jobName = running.status?.jobName ?? ""
            _ = try await client.patch(ImageSpec.self, name: "again", namespace: namespace,
                                       patch: .merge(["spec": ["cancel": true]]))
            let cancelled = try await Self.waitFor(client, "again", namespace: namespace, "cancelled", timeout: .seconds(120)) {
                $0.status?.phase == "Cancelled"
            }
            #expect(cancelled.condition(Condition.stalled)?.reason == "Cancelled")
            try await eventually(timeout: .seconds(180), "the cancelled build's Pods are gone") {
                let pods = try await client.list(Pod.self, namespace: namespace, options: ListOptions(labelSelector: "job-name=\(jobName)"))
                return pods.items.isEmpty
            }
        }
    }

    @Test func pushesToATLSRegistryWithACustomCA() async throws {
        let cluster = try await NodeCluster.shared()
        let namespace = try await cluster.controlPlane.makeNamespace("tls")
        let secure = try await LocalRegistry.start(tls: true, additionalAddresses: [cluster.bridgeAddress])
        defer { Task { await secure.stop() } }
        var config = Self.config(cluster)
        let secureHost = "\(cluster.bridgeAddress):\(secure.port)"
        config.registry.push = .prefix("\(secureHost)/primehub")
        config.registry.insecure = false
        config.registry.caBundle = String(decoding: try #require(secure.caCertificatePEM), as: UTF8.self)
        try await Self.withOperator(cluster, namespace: namespace, config: config) { client in
            _ = try await client.create(ImageSpec(metadata: ObjectMeta(name: "secure", namespace: namespace), spec: ImageSpecSpec(
                baseImage: Self.base(cluster), packages: Packages(pip: ["six"]))))
            let built = try await Self.waitFor(client, "secure", namespace: namespace, "built") {
                $0.isTrue(Condition.ready) || $0.isTrue(Condition.stalled)
            }
            #expect(built.isTrue(Condition.ready), "\(String(describing: built.condition(Condition.stalled)?.message))")
            let image = try #require(built.status?.image.nilIfEmpty)
            #expect(image.hasPrefix(secureHost + "/primehub/secure:"))
            let registry = RegistryClient(configuration: RegistryClient.Configuration(
                registries: [secureHost: RegistryOptions(caData: secure.caCertificatePEM)]))
            let digest = try await registry.digest(of: try ImageReference(parsing: image))
            #expect(digest.description == built.status?.digest)
        }
    }

    /// A registry that grants the operator's push check but refuses the build's push: its token
    /// server gives push tokens to the host's address only, so the build Pod gets pull-only tokens.
    @Test func aPushTheRegistryRefusesEndsPushFailed() async throws {
        let cluster = try await NodeCluster.shared()
        let namespace = try await cluster.controlPlane.makeNamespace("refused")
        let (username, password) = ("builder", "refused-push-\(UInt32.random(in: 0...UInt32.max))")
        let refusing = try await LocalRegistry.start(
            auth: .token(username: username, password: password), additionalAddresses: [cluster.bridgeAddress],
            pushGrantedTo: [cluster.bridgeAddress])
        defer { Task { await refusing.stop() } }
        let host = "\(cluster.bridgeAddress):\(refusing.port)"
        var config = Self.config(cluster)
        config.registry.push = .prefix("\(host)/primehub")
        config.registry.insecureRegistries.append(host)
        config.registry.pushSecret = "push-credentials"
        try await Self.withOperator(cluster, namespace: namespace, config: config) { client in
            let auth = Data("\(username):\(password)".utf8).base64EncodedString()
            _ = try await client.create(Secret(
                metadata: ObjectMeta(name: "push-credentials", namespace: namespace), type: "kubernetes.io/dockerconfigjson",
                data: [".dockerconfigjson": Data(#"{"auths":{"\#(host)":{"auth":"\#(auth)"}}}"#.utf8)]))
            _ = try await client.create(ImageSpec(metadata: ObjectMeta(name: "refused", namespace: namespace), spec: ImageSpecSpec(
                baseImage: Self.base(cluster), env: [ImageEnvVar(name: "IMAGE_BUILDER_TEST", value: "refused")])))
            let failed = try await Self.waitFor(client, "refused", namespace: namespace, "failed") {
                $0.isTrue(Condition.stalled) || $0.isTrue(Condition.ready)
            }
            let stalled = try #require(failed.condition(Condition.stalled))
            #expect(failed.status?.phase == "Failed")
            #expect(stalled.reason == "PushFailed", "\(stalled.message ?? "")")
            // The registry's own answer is quoted, and the password is not.
            let message = stalled.message ?? ""
            #expect(message.lowercased().contains("unauthorized") || message.lowercased().contains("denied"), "\(message)")
            #expect(!message.contains(password))
            let manifests = refusing.storageDirectory + "/docker/registry/v2/repositories/primehub/refused/_manifests"
            #expect(!FileManager.default.fileExists(atPath: manifests), "nothing was pushed")
        }
    }

    @Test func aBuildStepThatFailsSaysWhichPackage() async throws {
        let cluster = try await NodeCluster.shared()
        let namespace = try await cluster.controlPlane.makeNamespace("fail")
        try await Self.withOperator(cluster, namespace: namespace, config: Self.config(cluster)) { client in
            _ = try await client.create(ImageSpec(metadata: ObjectMeta(name: "broken", namespace: namespace), spec: ImageSpecSpec(
                baseImage: Self.base(cluster), packages: Packages(apt: ["image-builder-no-such-package"]))))
            let failed = try await Self.waitFor(client, "broken", namespace: namespace, "failed") {
                $0.isTrue(Condition.stalled) || $0.isTrue(Condition.ready)
            }
            #expect(failed.status?.phase == "Failed")
            let stalled = try #require(failed.condition(Condition.stalled))
            #expect(stalled.reason == "BuildStepFailed", "\(stalled.message ?? "")")
            #expect(stalled.message?.contains("image-builder-no-such-package") == true, "\(stalled.message ?? "")")
        }
    }
}

/// The project's CRDs on the shared node tier, applied once for every suite here. Two suites applying
/// them at the same moment raced in a CI run: kubectl's create of a CRD the other had just created
/// failed with AlreadyExists.
actor SharedClusterCRDs {
    static let installation = SharedClusterCRDs()
    private var applied: Task<Void, any Error>?

    func install(on cluster: NodeCluster) async throws {
        // Unstructured on purpose, like `NodeCluster.shared()`: owned by no single caller.
        let task = applied ?? Task {
            _ = try await cluster.kubectl(["apply", "-k", RealBuildTests.crds])
            _ = try await cluster.kubectl(["wait", "--for=condition=Established", "crd/imagespecs.primehub.io",
                                           "crd/imagespecjobs.primehub.io", "crd/images.primehub.io", "--timeout=60s"])
        }
        applied = task
        try await task.value
    }
}

/// `image-builder logs` reading real Pod logs from a kubelet: a Job shaped like buildah's isolated
/// build (an init container `build-image` whose log the `build` container replays before its own
/// lines), named in an ImageSpec's status. No operator: the log plumbing is what is tested.
@Suite("image-builder logs on a single-node cluster")
struct LogsCommandTests {
    @Test func printsAndFollowsTheBuildLogWithoutTheReplay() async throws {
        let executable = try #require(builtExecutable("image-builder"), "the image-builder executable is not beside the tests")
        let cluster = try await NodeCluster.shared()
        let namespace = try await cluster.controlPlane.makeNamespace("logs")
        let client = try cluster.controlPlane.client()
        try await SharedClusterCRDs.installation.install(on: cluster)
        let spec = try await client.create(ImageSpec(metadata: ObjectMeta(name: "logged", namespace: namespace),
                                                     spec: ImageSpecSpec(baseImage: RealBuildTests.base(cluster), packages: Packages(apt: ["jq"]))))
        var status = ImageSpecStatus(phase: "Running", jobName: "logged-0000beef", image: "")
        status.builds = [BuildRecord(jobName: "logged-0000beef", hash: "0000beef", phase: "Running")]
        var withStatus = spec
        withStatus.status = status
        _ = try await client.updateStatus(withStatus)
        let script = "for i in 1 2 3; do echo \"step $i\"; sleep 1; done"
        _ = try await cluster.kubectl(["apply", "-n", namespace, "-f", "-"], input: """
            apiVersion: batch/v1
            kind: Job
            metadata: {name: logged-0000beef}
            spec:
              backoffLimit: 0
              template:
                spec:
                  restartPolicy: Never
                  automountServiceAccountToken: false
                  initContainers:
                    - {name: build-image, image: "\(cluster.images.base)", command: [sh, -c, '\(script)']}
                  containers:
                    - {name: build, image: "\(cluster.images.base)", command: [sh, -c, 'echo "step 1"; echo "step 2"; echo "step 3"; echo pushed']}
            """)
        let arguments = ["logs", "logged", "-n", namespace, "--kubeconfig", cluster.controlPlane.kubeconfig(for: .admin)]
        // Followed from wherever the build is: the build step's lines, then the push step's own.
        let followed = try await runCommand(executable, arguments + ["-f"], timeout: .seconds(300))
        #expect(followed.succeeded, "\(followed.stderr)")
        #expect(followed.stdout == "step 1\nstep 2\nstep 3\npushed\n", "\(followed.stdout)")
        // Once it ended: the build container's log, which holds it all.
        try await eventually(timeout: .seconds(120), "the Job's Pod ends") {
            let pods = try await client.list(Pod.self, namespace: namespace, options: ListOptions(labelSelector: "job-name=logged-0000beef"))
            return pods.items.first?.status?.phase == "Succeeded"
        }
        let printed = try await runCommand(executable, arguments)
        #expect(printed.succeeded, "\(printed.stderr)")
        #expect(printed.stdout == "step 1\nstep 2\nstep 3\npushed\n", "\(printed.stdout)")
        // A build of another ImageSpec's history is refused by name.
        let other = try await runCommand(executable, arguments + ["--build", "other-1"])
        #expect(other.status == 1 && other.stderr.contains("has no build other-1: its builds are logged-0000beef"), "\(other.stderr)")
    }
}

extension String {
    var nilIfEmpty: String? { isEmpty ? nil : self }
}

extension ImageSpec {
    func condition(_ type: String) -> Condition? { status?.conditions?[type] }
    func isTrue(_ type: String) -> Bool { condition(type)?.isTrue == true }
}
