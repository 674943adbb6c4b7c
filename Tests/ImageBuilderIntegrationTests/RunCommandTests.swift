import CurlHTTP
import Foundation
import ImageBuilder
import ImageBuilderReconcilers
import KubeClient
import KubeTestSupport
import KubeTypes
import TestHarness
import Testing

/// `image-builder run` as a person runs it: the built executable, a kubeconfig, a configuration
/// file; probes and metrics over HTTP; SIGTERM for a clean stop.
@Suite("image-builder run, the executable")
struct RunCommandTests {
    static let executable = builtExecutable("image-builder")

    func get(_ url: String) async -> (Int, String) {
        guard let response = try? await HTTPClient.shared.send(HTTPRequest(url: url, timeout: .seconds(5))) else { return (0, "") }
        return (response.status, String(decoding: response.body, as: UTF8.self))
    }

    @Test func runsServesProbesBuildsAndStopsOnSIGTERM() async throws {
        let executable = try #require(Self.executable, "the image-builder executable is not beside the tests; run swift build first")
        let world = try await OperatorFixture.make("cli")
        defer { Task { await world.stop() } }
        let configFile = world.controlPlane.directory + "/operator-\(world.namespace).yaml"
        try """
            watchNamespaces: [\(world.namespace)]
            registry:
              pushRepoPrefix: \(world.registry.host)/primehub
              pushSecret: registry-push
              pullSecret: registry-pull
              insecure: true
            builder:
              strategy: kaniko
              image: gcr.io/kaniko-project/executor@sha256:\(String(repeating: "0", count: 64))
            """.write(toFile: configFile, atomically: true, encoding: .utf8)
        let port = try freeLoopbackPort()
        let logFile = world.controlPlane.directory + "/operator-\(world.namespace).log"
        FileManager.default.createFile(atPath: logFile, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = ["run", "--kubeconfig", world.controlPlane.kubeconfig(for: .admin), "--config", configFile,
                             "--leader-election-namespace", world.namespace, "--probe-address", "127.0.0.1:\(port)",
                             "--log-format", "json", "--workers", "2"]
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logFile))
        process.standardOutput = log
        process.standardError = log
        try process.run()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        let base = "http://127.0.0.1:\(port)"

        try await eventually("/readyz answers 200 once the caches synced") { await get(base + "/readyz").0 == 200 }
        #expect(await get(base + "/healthz").0 == 200)

        let created = try await world.create(world.imageSpec("from-cli"))
        let job = try await world.waitForBuild("from-cli")
        try await world.finish(job, exitCode: 0, message: "sha256:" + String(repeating: "9", count: 64))
        try await world.waitFor("from-cli", "ready") { $0.isTrue(Condition.ready) }

        // Metrics are recorded right after the status write that the test just saw: read until they show it.
        var (status, metrics) = await get(base + "/metrics")
        try await eventually("/metrics counts the build's success") {
            (status, metrics) = await get(base + "/metrics")
            return metrics.contains(#"image_builder_builds_total{result="succeeded"} 1"#)
        }
        // One status write per pass at most: every change of the ImageSpec after its creation is a
        // status write of the operator (nothing else writes it), each from one reconcile.
        var writes = 0
        let changes = try await world.client.watch(
            ImageSpec.self, namespace: world.namespace,
            options: WatchOptions(resourceVersion: created.metadata.resourceVersion, allowBookmarks: false, timeoutSeconds: 2,
                                  fieldSelector: "metadata.name=from-cli"))
        for try await change in changes {
            if case .modified = change { writes += 1 }
        }
        let reconciles = Self.sum(of: "controller_runtime_reconcile_total", controller: "imagespec", in: metrics)
        #expect(writes >= 2, "the status was written \(writes) times; pending and ready at least")
        #expect(writes <= reconciles, "\(writes) status writes in \(reconciles) reconciles")
        #expect(status == 200)
        for name in ["controller_runtime_reconcile_total", "workqueue_adds_total", "rest_client_requests_total",
                     "leader_election_master_status", "image_builder_builds_total"] {
            #expect(metrics.contains(name), "\(name) missing from /metrics")
        }
        #expect(metrics.contains(#"image_builder_builds_total{result="succeeded"} 1"#))

        kill(process.processIdentifier, SIGTERM)
        let deadline = ContinuousClock.now + .seconds(35)
        while process.isRunning, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(100)) }
        #expect(!process.isRunning, "still running 35 s after SIGTERM")
        #expect(process.terminationStatus == 0)
        let lease = try await world.client.get(Lease.self, name: "image-builder", namespace: world.namespace)
        #expect((lease.spec?.holderIdentity ?? "").isEmpty, "the lease was not released")
        let lines = try String(contentsOfFile: logFile, encoding: .utf8).split(separator: "\n")
        #expect(lines.contains { $0.hasPrefix("{") && $0.contains("\"msg\":") && $0.contains("\"level\":") }, "JSON log lines expected")
    }

    /// The sum of a counter's samples for one controller in Prometheus text.
    static func sum(of metric: String, controller: String, in text: String) -> Int {
        text.split(separator: "\n").filter { $0.hasPrefix(metric + "{") && $0.contains("controller=\"\(controller)\"") }
            .compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }
            .reduce(0) { $0 + Int($1) }
    }

    @Test func invalidConfigurationExitsWithTheFieldAndLine() async throws {
        let executable = try #require(Self.executable)
        let file = NSTemporaryDirectory() + "bad-config-\(UUID().uuidString).yaml"
        try "registry:\n  pushRepoPrefix: 'Not A Repo'\nbuilder:\n  timeout: soon\n".write(toFile: file, atomically: true, encoding: .utf8)
        let result = try await runCommand(executable, ["run", "--config", file, "--kubeconfig", "/nonexistent"])
        #expect(result.status == 2)
        #expect(result.stderr.contains("\(file):2:"), "\(result.stderr)")
        #expect(result.stderr.contains("registry.pushRepoPrefix"))
        #expect(result.stderr.contains("builder.timeout"))
    }
}
