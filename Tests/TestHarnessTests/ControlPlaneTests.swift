import Foundation
import Testing

@testable import TestHarness

@Suite("Shared control plane")
struct SharedControlPlaneTests {
    @Test func adminCanReadTheDefaultNamespace() async throws {
        let cp = try await ControlPlane.shared()
        let name = try await cp.kubectl(["get", "namespace", "default", "-o", "jsonpath={.metadata.name}"])
        #expect(name == "default")
        #expect(cp.serverURL.absoluteString == "https://127.0.0.1:\(cp.port)")
    }

    @Test func sharedIsOneInstance() async throws {
        async let a = ControlPlane.shared()
        async let b = ControlPlane.shared()
        let (first, second) = try await (a, b)
        #expect(first === second)
    }

    @Test func limitedUserIsForbiddenToCreateSecrets() async throws {
        let cp = try await ControlPlane.shared()
        let result = try await cp.kubectlResult(
            ["create", "secret", "generic", "harness-forbidden", "--from-literal=a=b"], as: .limited)
        #expect(!result.succeeded)
        #expect(result.stderr.contains("Forbidden") || result.stderr.contains("forbidden"), "\(result.stderr)")
    }

    @Test func limitedUserCanListConfigMapsInDefaultOnly() async throws {
        let cp = try await ControlPlane.shared()
        try await cp.kubectl(["get", "configmaps", "-n", "default"], as: .limited)
        let elsewhere = try await cp.kubectlResult(["get", "configmaps", "-n", "kube-system"], as: .limited)
        #expect(!elsewhere.succeeded)
        #expect(elsewhere.stderr.contains("forbidden"), "\(elsewhere.stderr)")
    }

    @Test func clientCertificateUserCanListNamespaces() async throws {
        let cp = try await ControlPlane.shared()
        let names = try await cp.kubectl(["get", "namespaces", "-o", "name"], as: .clientCertificate)
        #expect(names.contains("namespace/default"))
        #expect(names.contains("namespace/kube-system"))
        let whoami = try await cp.kubectlResult(["auth", "can-i", "create", "secrets"], as: .clientCertificate)
        #expect(whoami.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "yes")
    }

    @Test func embeddedKubeconfigsWork() async throws {
        let cp = try await ControlPlane.shared()
        for user in ControlPlane.User.allCases {
            let yaml = cp.embeddedKubeconfig(for: user)
            #expect(yaml.contains("certificate-authority-data: "))
            #expect(!yaml.contains(cp.directory))
            let path = cp.directory + "/embedded-\(user.rawValue)-\(UUID().uuidString).yaml"
            try yaml.write(toFile: path, atomically: true, encoding: .utf8)
            let result = try await runCommand("/usr/bin/kubectl", ["--kubeconfig", path, "get", "configmaps", "-o", "name"])
            #expect(result.succeeded, "\(user): \(result.stderr)")
        }
    }

    @Test func tokenAndCAWorkWithCurl() async throws {
        let cp = try await ControlPlane.shared()
        let ok = try await runCommand(
            "/usr/bin/curl",
            ["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", cp.caFile,
             "-H", "Authorization: Bearer \(cp.adminToken)", cp.serverURL.absoluteString + "/api/v1/namespaces"])
        #expect(ok.stdout == "200")
        let unknownCA = try await runCommand("/usr/bin/curl", ["-sS", cp.serverURL.absoluteString + "/readyz"])
        #expect(!unknownCA.succeeded)
        #expect(String(decoding: cp.caCertificatePEM, as: UTF8.self).contains("BEGIN CERTIFICATE"))
        #expect(String(decoding: cp.clientKeyPEM, as: UTF8.self).contains("PRIVATE KEY"))
    }

    @Test func compactEtcdReturnsTheCurrentRevision() async throws {
        let cp = try await ControlPlane.shared()
        try await cp.kubectl(["create", "configmap", "harness-compact-\(UUID().uuidString.prefix(8).lowercased())"])
        let before = try await cp.etcdRevision()
        let compacted = try await cp.compactEtcd()
        #expect(compacted >= before)
        #expect(compacted > 1)
    }
}

@Suite("Own control planes", .serialized)
struct OwnControlPlaneTests {
    @Test func apiServerStopsAndStartsAgain() async throws {
        try await ControlPlane.withControlPlane(.init(watchCache: false)) { cp in
        let oldVersion = try await cp.kubectl(
            ["create", "configmap", "survives", "--from-literal=k=v", "-o", "jsonpath={.metadata.resourceVersion}"])
        try await cp.kubectl(["create", "configmap", "later"])
        try await cp.kubectl(["create", "configmap", "later-still"])
        let revision = try await cp.compactEtcd()
        #expect(revision > Int64(oldVersion)!)
        // Without the watch cache, a watch from a compacted revision ends with 410 Gone.
        let watch = try await cp.kubectlResult(
            ["get", "--raw", "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=\(oldVersion)&timeoutSeconds=2"])
        #expect(watch.stdout.contains("\"code\":410"), "\(watch.stdout) \(watch.stderr)")

        let clock = ContinuousClock()
        let stopTime = await clock.measure { await cp.stopAPIServer() }
        print("stopAPIServer took \(stopTime), start took \(cp.startupDuration)")
        #expect(!cp.isAPIServerRunning)
        let down = try await cp.kubectlResult(["get", "ns", "default", "--request-timeout=2s"])
        #expect(!down.succeeded)

        let startTime = try await clock.measure { try await cp.startAPIServer() }
        print("startAPIServer took \(startTime)")
        #expect(cp.isAPIServerRunning)
        let value = try await cp.kubectl(["get", "configmap", "survives", "-o", "jsonpath={.data.k}"])
        #expect(value == "v")

        try await cp.restartAPIServer()
        try await cp.kubectl(["get", "ns", "default"])
        await cp.stop()
        #expect(!FileManager.default.fileExists(atPath: cp.directory))
        }
    }

    @Test func controllerManagerRunsJobsController() async throws {
        try await ControlPlane.withControlPlane(.init(controllerManager: true)) { cp in
        let job = """
        apiVersion: batch/v1
        kind: Job
        metadata:
          name: harness-job
        spec:
          template:
            spec:
              restartPolicy: Never
              containers:
              - name: c
                image: busybox
        """
        try await cp.kubectl(["apply", "-f", "-"], input: job)
        // The Job controller creates a Pod (that never runs: there is no kubelet).
        var pods = ""
        for _ in 0..<100 where pods.isEmpty {
            pods = try await cp.kubectl(["get", "pods", "-l", "job-name=harness-job", "-o", "name"])
            if pods.isEmpty { try await Task.sleep(for: .milliseconds(200)) }
        }
        #expect(pods.contains("pod/harness-job-"))
        }
    }

    @Test func missingBinaryNamesTheInstallScript() async throws {
        let error = try await #require(throws: HarnessError.self) {
            try await ControlPlane.start(.init(binaryDirectory: "/nonexistent/bin"))
        }
        #expect(error.description.contains("/nonexistent/bin/kube-apiserver"))
        #expect(error.description.contains("scripts/install-deps.sh"))
    }

    @Test func failedStartReportsTheLogTail() async throws {
        let error = try await #require(throws: HarnessError.self) {
            try await ControlPlane.start(.init(extraAPIServerArguments: ["--no-such-flag=1"]))
        }
        #expect(error.message.contains("kube-apiserver"))
        #expect(error.description.contains("unknown flag: --no-such-flag"), "\(error)")
    }
}
