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
import Synchronization
import Testing

/// One test's world: the shared control plane with the project's CRDs, a fresh namespace, a
/// password-protected registry holding base images, push and pull secrets, and the operator
/// running in this process for that namespace.
struct OperatorFixture {
    static let registryUser = "builder"
    static let registryPassword = "s3cret-push"

    let controlPlane: ControlPlane
    /// The tests' own client (admin).
    let client: KubernetesClient
    /// The client the operator runs with (admin unless a test narrows it).
    var operatorClient: KubernetesClient?
    let namespace: String
    let registry: LocalRegistry
    let config: OperatorConfig
    /// `<registry>/base/notebook:latest`: user jovyan, conda, Jupyter environment.
    var notebookBase: String { "\(registry.host)/base/notebook:latest" }
    /// `<registry>/base/plain:latest`: runs as root, no conda, no Jupyter.
    var plainBase: String { "\(registry.host)/base/plain:latest" }
    var notebookDigest: String

    /// Applies `crds/` once per control plane.
    private static let crdsInstalled = CRDInstallation()

    /// `on`: a control plane of the test's own, whose CRDs the test installs (`crds` is then ignored).
    static func make(_ prefix: String, crds: CRDSet = .project, on own: ControlPlane? = nil,
                     configure: (inout OperatorConfig) -> Void = { _ in }) async throws -> OperatorFixture {
        let controlPlane: ControlPlane
        switch (own, crds) {
        case (let own?, _):
            controlPlane = own
        case (nil, .project):
            controlPlane = try await ControlPlane.shared()
            try await crdsInstalled.install(on: controlPlane)
        case (nil, .primeHub):
            controlPlane = try await CRDSet.primeHubControlPlane()
        }
        let client = try controlPlane.client()
        let namespace = try await controlPlane.makeNamespace(prefix)
        let registry = try await LocalRegistry.start(auth: .htpasswd(username: registryUser, password: registryPassword))
        let pusher = ImagePusher(registry: registry)
        let notebookDigest = try await pusher.pushImage(
            "base/notebook", tag: "latest", user: "jovyan",
            env: ["PATH=/opt/conda/bin:/usr/local/bin:/usr/bin:/bin", "CONDA_DIR=/opt/conda", "NB_USER=jovyan",
                  "JUPYTER_PORT=8888"])
        try await pusher.pushImage("base/plain", tag: "latest", user: "", env: ["PATH=/usr/local/bin:/usr/bin:/bin"])

        // The push secret can push to the registry; the pull secret (for published Images) is another.
        _ = try await client.create(dockerConfigSecret("registry-push", namespace: namespace, host: registry.host,
                                                       username: registryUser, password: registryPassword))
        _ = try await client.create(dockerConfigSecret("registry-pull", namespace: namespace, host: registry.host,
                                                       username: registryUser, password: registryPassword))
        var config = OperatorConfig()
        config.registry.push = .prefix("\(registry.host)/primehub")
        config.registry.pushSecret = "registry-push"
        config.registry.pullSecret = "registry-pull"
        config.registry.insecure = true  // the test registry speaks plain HTTP
        // These tests read kaniko's flags; buildah is the default strategy.
        config.builder.strategy = .kaniko
        config.builder.image = "gcr.io/kaniko-project/executor@sha256:" + String(repeating: "0", count: 64)
        configure(&config)
        return OperatorFixture(controlPlane: controlPlane, client: client, operatorClient: nil, namespace: namespace, registry: registry,
                               config: config, notebookDigest: notebookDigest.description)
    }

    static func dockerConfigSecret(_ name: String, namespace: String, host: String, username: String, password: String) -> Secret {
        let auth = Data("\(username):\(password)".utf8).base64EncodedString()
        let json = #"{"auths":{"\#(host)":{"auth":"\#(auth)"}}}"#
        return Secret(metadata: ObjectMeta(name: name, namespace: namespace), type: "kubernetes.io/dockerconfigjson",
                      data: [".dockerconfigjson": Data(json.utf8)])
    }

    /// Runs the operator for this namespace while `body` runs, then stops it gracefully.
    func withOperator<T: Sendable>(workers: Int = 2, leaderElection: Bool = false,
                                   _ body: @Sendable (ImageBuilderOperator) async throws -> T) async throws -> T {
        let election = leaderElection ? LeaderElectionConfiguration(leaseName: "image-builder", namespace: namespace) : nil
        let imageBuilder = ImageBuilderOperator(
            client: operatorClient ?? client, config: config,
            options: .init(namespaces: [namespace], workers: workers, leaderElection: election, probePort: nil,
                           stalledRetryInterval: .seconds(1)))
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                try await imageBuilder.run(signals: [])
                return nil
            }
            defer { imageBuilder.shutDown() }
            let result = try await body(imageBuilder)
            imageBuilder.shutDown()
            while let next = try await group.next() {
                if next == nil { break }
            }
            return result
        }
    }

    func stop() async {
        await registry.stop()
    }

    // MARK: - Objects

    func imageSpec(_ name: String, base: String? = nil, apt: [String]? = ["curl"], pip: [String]? = ["flask>=2"],
                   conda: [String]? = nil, env: [ImageEnvVar]? = nil, publish: Publish? = nil,
                   pullSecret: String? = nil) -> ImageSpec {
        ImageSpec(metadata: ObjectMeta(name: name, namespace: namespace),
                  spec: ImageSpecSpec(baseImage: base ?? notebookBase, pullSecret: pullSecret,
                                      packages: Packages(apt: apt, pip: pip, conda: conda), env: env, publish: publish))
    }

    func create(_ spec: ImageSpec) async throws -> ImageSpec {
        try await client.create(spec)
    }

    /// The ImageSpec with the decision's state: its status, or where PrimeHub's CRD pruned that,
    /// the state the operator keeps in the build-state annotation.
    func get(_ name: String) async throws -> ImageSpec {
        BuildStateAnnotation.restored(try await client.get(ImageSpec.self, name: name, namespace: namespace))
    }

    /// Waits until the ImageSpec's status satisfies `condition`; returns that ImageSpec.
    @discardableResult
    func waitFor(_ name: String, _ what: String, timeout: Duration = .seconds(60),
                 _ condition: @escaping (ImageSpec) -> Bool) async throws -> ImageSpec {
        var last: ImageSpec?
        do {
            try await eventually(timeout: timeout, "\(name): \(what)") {
                last = try await get(name)
                return last.map(condition) ?? false
            }
        } catch {
            Issue.record("last status of \(name): \(String(describing: last?.status))")
            throw error
        }
        return last!
    }

    /// Waits until the ImageSpec's build has started; returns its Job.
    func waitForBuild(_ name: String) async throws -> Job {
        let building = try await waitFor(name, "building") {
            !($0.status?.jobName ?? "").isEmpty && $0.isTrue(Condition.reconciling)
        }
        return try await waitForJob(building.status?.jobName ?? "")
    }

    func job(_ name: String) async throws -> Job? {
        do {
            return try await client.get(Job.self, name: name, namespace: namespace)
        } catch let error as APIError where error.isNotFound {
            return nil
        }
    }

    func waitForJob(_ name: String) async throws -> Job {
        var found: Job?
        try await eventually("Job \(name) exists") {
            found = try await job(name)
            return found != nil
        }
        return found!
    }

    /// Plays the kubelet and the job controller: a Pod for `job` whose builder container ended
    /// with `exitCode` and `message` (the digest file, or the log tail), and the Job's terminal status.
    func finish(_ job: Job, exitCode: Int32, message: String, jobCondition: String? = nil, reason: String? = nil) async throws {
        let now = Date(timeIntervalSince1970: Date().timeIntervalSince1970.rounded(.down))
        let owner = OwnerReference(apiVersion: "batch/v1", kind: "Job", name: job.metadata.name ?? "", uid: job.metadata.uid ?? "",
                                   controller: true, blockOwnerDeletion: true)
        var pod = Pod(metadata: ObjectMeta(name: "\(job.metadata.name ?? "")-pod\(Int.random(in: 1000...9999))", namespace: namespace,
                                           labels: job.spec?.template.metadata?.labels,
                                           annotations: job.spec?.template.metadata?.annotations, ownerReferences: [owner]),
                      spec: PodSpec(containers: [Container(name: "build", image: job.spec?.template.spec?.containers.first?.image)],
                                    restartPolicy: "Never"))
        pod = try await client.create(pod)
        pod.status = PodStatus(phase: exitCode == 0 ? "Succeeded" : "Failed", containerStatuses: [
            ContainerStatus(name: "build", ready: false, state: ContainerState(terminated: ContainerStateTerminated(
                exitCode: exitCode, reason: exitCode == 0 ? "Completed" : (reason ?? "Error"), message: message,
                startedAt: now, finishedAt: now))),
        ])
        _ = try await client.updateStatus(pod)

        var finished = try await client.get(Job.self, name: job.metadata.name ?? "", namespace: namespace)
        let type = jobCondition ?? (exitCode == 0 ? "Complete" : "Failed")
        finished.status = JobStatus(
            conditions: [JobCondition(type: type, status: "True", reason: type == "Failed" ? "BackoffLimitExceeded" : nil,
                                      lastProbeTime: now, lastTransitionTime: now)],
            startTime: now, completionTime: type == "Complete" ? now : nil, active: 0,
            succeeded: type == "Complete" ? 1 : 0, failed: type == "Failed" ? 1 : 0)
        _ = try await client.updateStatus(finished)
    }

    /// Plays the kubelet for a Pod that is running.
    func startRunning(_ job: Job) async throws {
        let owner = OwnerReference(apiVersion: "batch/v1", kind: "Job", name: job.metadata.name ?? "", uid: job.metadata.uid ?? "",
                                   controller: true, blockOwnerDeletion: true)
        var pod = try await client.create(Pod(
            metadata: ObjectMeta(name: "\(job.metadata.name ?? "")-running", namespace: namespace,
                                 labels: job.spec?.template.metadata?.labels,
                                           annotations: job.spec?.template.metadata?.annotations, ownerReferences: [owner]),
            spec: PodSpec(containers: [Container(name: "build", image: "kaniko")], restartPolicy: "Never")))
        pod.status = PodStatus(phase: "Running", containerStatuses: [
            ContainerStatus(name: "build", ready: true, state: ContainerState(running: ContainerStateRunning(startedAt: Date()))),
        ])
        _ = try await client.updateStatus(pod)
    }

    func events(about name: String) async throws -> [Event] {
        try await client.list(Event.self, namespace: namespace, options: ListOptions(fieldSelector: "involvedObject.name=\(name)")).items
    }

    func waitForEvent(about name: String, reason: String) async throws -> Event {
        var found: Event?
        try await eventually("event \(reason) about \(name)") {
            found = try await events(about: name).first { $0.reason == reason }
            return found != nil
        }
        return found!
    }
}

/// The CustomResourceDefinitions a test's control plane serves: the project's `crds/`, or
/// PrimeHub's own as clusters that run PrimeHub have them (`Tests/Fixtures/primehub-crds`), whose schemas prune the status to `phase`, `jobName` and `image` and know no
/// `env`, `publish` or ImageSpec `cancel`.
enum CRDSet: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case project
    case primeHub

    var testDescription: String { self == .project ? "the project's CRDs" : "PrimeHub's CRDs" }

    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// The structure of PrimeHub's published CRDs (`Tests/Fixtures/primehub-crds`, or
    /// `IMAGE_BUILDER_PRIMEHUB_CRDS`).
    static var primeHubCRDs: String {
        ProcessInfo.processInfo.environment["IMAGE_BUILDER_PRIMEHUB_CRDS"]
            ?? repository.appendingPathComponent("Tests/Fixtures/primehub-crds").path
    }

    private static let primeHubInstance = Mutex<Task<ControlPlane, any Error>?>(nil)

    /// A control plane of its own (CRDs are cluster-wide) with PrimeHub's CRDs, shared by the tests
    /// of this process; removed at exit like the shared one.
    static func primeHubControlPlane() async throws -> ControlPlane {
        let task = primeHubInstance.withLock { task in
            if let task { return task }
            // Unstructured on purpose: the start is owned by no single caller.
            let created = Task {
                guard FileManager.default.fileExists(atPath: primeHubCRDs) else {
                    throw CRDSetMissing(path: primeHubCRDs)
                }
                let controlPlane = try await ControlPlane.start()
                try await controlPlane.kubectl(["apply", "-f", primeHubCRDs])
                try await CRDInstallation.waitUntilServed(on: controlPlane)
                return controlPlane
            }
            task = created
            return created
        }
        return try await task.value
    }
}

struct CRDSetMissing: Error, CustomStringConvertible {
    var path: String
    var description: String { "PrimeHub's CRDs are not at \(path) (set IMAGE_BUILDER_PRIMEHUB_CRDS)" }
}

/// Applies the project's `crds/` to a control plane once and waits until they are served;
/// concurrent callers share the one installation.
actor CRDInstallation {
    private var installations: [ObjectIdentifier: Task<Void, any Error>] = [:]

    func install(on controlPlane: ControlPlane) async throws {
        let id = ObjectIdentifier(controlPlane)
        if let running = installations[id] { return try await running.value }
        let task = Task { try await Self.apply(to: controlPlane) }
        installations[id] = task
        try await task.value
    }

    private static func apply(to controlPlane: ControlPlane) async throws {
        try await controlPlane.kubectl(["apply", "-k", CRDSet.repository.appendingPathComponent("crds").path])
        try await waitUntilServed(on: controlPlane)
    }

    /// Waits until ImageSpecs and Images are served.
    static func waitUntilServed(on controlPlane: ControlPlane) async throws {
        let client = try controlPlane.client()
        for resource in [ImageSpec.resourceType, Image.resourceType, ImageSpecJob.resourceType] {
            try await eventually("\(resource) is served") {
                do {
                    _ = try await client.list(JSONValue.self, resource: resource, namespace: "default")
                    return true
                } catch let error as APIError where error.isNotFound {
                    return false
                }
            }
        }
    }
}

extension ImageSpec {
    var condition: (String) -> Condition? { { type in self.status?.conditions?[type] } }
    func isTrue(_ type: String) -> Bool { condition(type)?.isTrue == true }
}
