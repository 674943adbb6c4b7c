import Foundation
import Testing
@testable import KubeClient

/// Writes files into a fresh temporary folder.
struct TempFolder {
    let path: String

    init() throws {
        path = NSTemporaryDirectory() + "kubeclient-tests-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    @discardableResult
    func write(_ name: String, _ text: String) throws -> String {
        let file = path + "/" + name
        try FileManager.default.createDirectory(
            atPath: (file as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        return file
    }
}

@Suite struct KubeconfigTests {
    let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"

    @Test func everyClusterAndUserField() throws {
        let folder = try TempFolder()
        try folder.write("ca.crt", pem)
        try folder.write("certs/client.crt", pem)
        try folder.write("certs/client.key", "key")
        let caData = Data(pem.utf8).base64EncodedString()
        let file = try folder.write("config", """
            apiVersion: v1
            kind: Config
            current-context: dev
            clusters:
            - name: with-file
              cluster:
                server: https://10.0.0.1:6443/
                certificate-authority: ca.crt
                tls-server-name: kubernetes.default
                proxy-url: http://proxy.local:3128
            - name: with-data
              cluster:
                server: https://example.com
                certificate-authority-data: \(caData)
            - name: insecure
              cluster:
                server: http://127.0.0.1:8080
                insecure-skip-tls-verify: true
            users:
            - name: token-user
              user: {token: abc123}
            - name: cert-files
              user:
                client-certificate: certs/client.crt
                client-key: certs/client.key
            - name: cert-data
              user:
                client-certificate-data: \(caData)
                client-key-data: \(Data("key".utf8).base64EncodedString())
            - name: basic
              user: {username: alice, password: s3cret}
            - name: token-file
              user: {tokenFile: ca.crt}
            - name: plugin
              user:
                exec:
                  apiVersion: client.authentication.k8s.io/v1beta1
                  command: ./bin/get-token
                  args: [--cluster, dev]
                  env: [{name: REGION, value: eu}]
                  installHint: install get-token
                  provideClusterInfo: true
            contexts:
            - name: dev
              context: {cluster: with-file, user: token-user, namespace: team-a}
            - name: data
              context: {cluster: with-data, user: cert-data}
            - name: files
              context: {cluster: insecure, user: cert-files}
            - name: basic
              context: {cluster: with-data, user: basic}
            - name: tokenfile
              context: {cluster: with-data, user: token-file}
            - name: plugin
              context: {cluster: with-data, user: plugin}
            """)
        let config = try Kubeconfig.load(files: [file], requireAll: true)

        let dev = try config.configuration()
        #expect(dev.server == "https://10.0.0.1:6443")
        #expect(dev.tls.caFile == folder.path + "/ca.crt")
        #expect(dev.tls.serverName == "kubernetes.default")
        #expect(dev.proxyURL == "http://proxy.local:3128")
        #expect(dev.authentication == .bearerToken("abc123"))
        #expect(dev.namespace == "team-a")

        let data = try config.configuration(context: "data")
        #expect(data.tls.caData == Data(pem.utf8))
        #expect(data.tls.clientCertificateData == Data(pem.utf8))
        #expect(data.tls.clientKeyData == Data("key".utf8))
        #expect(data.namespace == "default")

        let files = try config.configuration(context: "files")
        #expect(files.tls.insecureSkipVerify)
        #expect(files.tls.clientCertificateFile == folder.path + "/certs/client.crt")
        #expect(files.tls.clientKeyFile == folder.path + "/certs/client.key")

        #expect(try config.configuration(context: "basic").authentication == .basic(username: "alice", password: "s3cret"))
        #expect(try config.configuration(context: "tokenfile").authentication == .tokenFile(folder.path + "/ca.crt"))

        guard case .exec(let exec) = try config.configuration(context: "plugin").authentication else {
            Issue.record("expected exec authentication")
            return
        }
        #expect(exec.command == folder.path + "/./bin/get-token")
        #expect(exec.args == ["--cluster", "dev"])
        #expect(exec.env == [ExecConfig.EnvVar(name: "REGION", value: "eu")])
        #expect(exec.apiVersion == "client.authentication.k8s.io/v1beta1")
        #expect(exec.installHint == "install get-token")
        #expect(exec.provideClusterInfo)
    }

    @Test func mergesLikeKubectl() throws {
        let folder = try TempFolder()
        let first = try folder.write("a", """
            current-context: one
            clusters: [{name: shared, cluster: {server: "https://first"}}]
            users: [{name: u, user: {token: first}}]
            contexts: [{name: one, context: {cluster: shared, user: u}}]
            """)
        let second = try folder.write("b", """
            current-context: two
            clusters:
            - {name: shared, cluster: {server: "https://second"}}
            - {name: only-second, cluster: {server: "https://only"}}
            users: [{name: u, user: {token: second}}]
            contexts:
            - {name: one, context: {cluster: only-second, user: u}}
            - {name: two, context: {cluster: only-second, user: u, namespace: ns2}}
            """)
        let missing = folder.path + "/does-not-exist"
        let environment = ["KUBECONFIG": "\(missing):\(first):\(second)"]
        let merged = try ClientConfiguration.load(environment: environment)
        // First file wins for current-context, clusters, users and contexts.
        #expect(merged.server == "https://first")
        #expect(merged.authentication == .bearerToken("first"))
        let two = try ClientConfiguration.load(context: "two", environment: environment)
        #expect(two.server == "https://only")
        #expect(two.namespace == "ns2")
        #expect(two.authentication == .bearerToken("first"))
    }

    @Test func explicitPathWinsOverEnvironment() throws {
        let folder = try TempFolder()
        let file = try folder.write("explicit", """
            current-context: c
            clusters: [{name: c, cluster: {server: "https://explicit"}}]
            contexts: [{name: c, context: {cluster: c}}]
            """)
        let config = try ClientConfiguration.load(kubeconfig: file, environment: ["KUBECONFIG": "/nonexistent"])
        #expect(config.server == "https://explicit")
        #expect(config.authentication == .none)
    }

    @Test(arguments: [
        ("current-context: nope\nclusters: []\ncontexts: []", nil, "context \"nope\": not found"),
        ("clusters: []\ncontexts: []", nil, "current-context: not set"),
        ("current-context: c\ncontexts: [{name: c, context: {cluster: gone, user: u}}]", nil, "cluster \"gone\": not found"),
        ("current-context: c\nclusters: [{name: k, cluster: {}}]\ncontexts: [{name: c, context: {cluster: k}}]", nil, "cluster \"k\": server: missing"),
        ("current-context: c\nclusters: [{name: k, cluster: {server: 'ftp://x'}}]\ncontexts: [{name: c, context: {cluster: k}}]", nil, "server: \"ftp://x\" is not an http(s) URL"),
        ("current-context: c\nclusters: [{name: k, cluster: {server: 'https://x'}}]\ncontexts: [{name: c, context: {cluster: k, user: who}}]", nil, "user \"who\": not found"),
        ("users: [{name: u, user: {client-key-data: '%%%'}}]", nil, "user \"u\": client-key-data: not valid base64"),
        ("clusters: [{name: k, cluster: {certificate-authority-data: '!!'}}]", nil, "cluster \"k\": certificate-authority-data: not valid base64"),
        ("clusters: {name: k}", nil, "clusters: expected"),
        ("clusters: [{cluster: {server: x}}]", nil, "clusters[0]: name: missing"),
        ("users: [{name: u, user: {exec: {apiVersion: client.authentication.k8s.io/v1}}}]", nil, "user \"u\": exec.command: missing"),
        ("users: [{name: u, user: {exec: {command: x, apiVersion: client.authentication.k8s.io/v1alpha1}}}]", nil, "exec.apiVersion: \"client.authentication.k8s.io/v1alpha1\" is not supported"),
        ("current-context: c\nclusters: [{name: k, cluster: {server: 'https://x', certificate-authority: /nonexistent/ca}}]\ncontexts: [{name: c, context: {cluster: k}}]", nil, "certificate-authority: /nonexistent/ca: file not found"),
        ("current-context: c\nclusters: [{name: k, cluster: {server: 'https://x'}}]\nusers: [{name: u, user: {client-certificate-data: QQ==}}]\ncontexts: [{name: c, context: {cluster: k, user: u}}]", nil, "client-key: missing"),
        ("current-context: c\nclusters: [{name: k, cluster: {server: 'https://x'}}]\nusers: [{name: u, user: {auth-provider: {name: gcp}}}]\ncontexts: [{name: c, context: {cluster: k, user: u}}]", nil, "auth-provider: \"gcp\" is not supported"),
        ("key: [unclosed", nil, "not valid YAML"),
    ] as [(String, String?, String)])
    func brokenFilesNameFileContextAndField(yaml: String, context: String?, expected: String) throws {
        let folder = try TempFolder()
        let file = try folder.write("config", yaml)
        let error = #expect(throws: KubeClientError.self) {
            try Kubeconfig.load(files: [file], requireAll: true).configuration(context: context)
        }
        let text = error.map { "\($0)" } ?? ""
        #expect(text.contains(expected), "\(text)")
        #expect(text.contains(file), "\(text)")
    }

    @Test func missingExplicitFile() {
        let error = #expect(throws: KubeClientError.self) {
            try ClientConfiguration.load(kubeconfig: "/nonexistent/kubeconfig", environment: [:])
        }
        #expect("\(error!)".contains("/nonexistent/kubeconfig: file not found"))
    }

    @Test func inCluster() throws {
        let folder = try TempFolder()
        try folder.write("token", "tok\n")
        try folder.write("ca.crt", pem)
        try folder.write("namespace", "hub\n")
        let config = try ClientConfiguration.inCluster(
            environment: ["KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"],
            directory: folder.path)
        #expect(config.server == "https://10.96.0.1:443")
        #expect(config.tls.caFile == folder.path + "/ca.crt")
        #expect(config.namespace == "hub")
        #expect(config.authentication == .tokenFile(folder.path + "/token"))

        let ipv6 = try ClientConfiguration.inCluster(
            environment: ["KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"], directory: folder.path)
        #expect(ipv6.server == "https://[fd00::1]:443")

        #expect(throws: KubeClientError.self) {
            try ClientConfiguration.inCluster(environment: [:], directory: folder.path)
        }
        #expect(throws: KubeClientError.self) {
            try ClientConfiguration.inCluster(
                environment: ["KUBERNETES_SERVICE_HOST": "h", "KUBERNETES_SERVICE_PORT": "1"], directory: folder.path + "/none")
        }
    }

    @Test func tokenFileIsReReadAfterInvalidation() async throws {
        let folder = try TempFolder()
        let token = try folder.write("token", "first\n")
        let source = CredentialSource(configuration: ClientConfiguration(server: "https://x", authentication: .tokenFile(token)))
        #expect(try await source.credentials().authorization == "Bearer first")
        try "second".write(toFile: token, atomically: true, encoding: .utf8)
        // Cached until invalidated (or a minute passes).
        #expect(try await source.credentials().authorization == "Bearer first")
        await source.invalidate()
        #expect(try await source.credentials().authorization == "Bearer second")
    }
}
