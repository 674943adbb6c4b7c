import RegistryTestSupport
import Foundation
import Testing

@testable import RegistryClient
import TestHarness
import KubeTypes

/// The built `image-builder` executable: next to the test bundle (`swift test` builds every
/// product), else in the package's `.build/debug`.
private func executable() throws -> String {
    let candidates = [
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("image-builder").path,
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent(".build/debug/image-builder").path,
    ]
    guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
        throw HarnessError("image-builder is not built (looked at \(candidates.joined(separator: ", ")))")
    }
    return found
}

private func writeSecret(_ registry: LocalRegistry, username: String, password: String) throws -> String {
    let config = #"{"auths":{"\#(registry.host)":{"auth":"\#(Data("\(username):\(password)".utf8).base64EncodedString())"}}}"#
    let yaml = """
        apiVersion: v1
        kind: Secret
        metadata:
          name: pull-secret
          namespace: hub
        type: kubernetes.io/dockerconfigjson
        data:
          .dockerconfigjson: \(Data(config.utf8).base64EncodedString())
        """
    let path = registry.directory + "/pull-secret-\(UUID().uuidString).yaml"
    try yaml.write(toFile: path, atomically: true, encoding: .utf8)
    return path
}

@Suite("image-builder inspect")
struct InspectCommandTests {
    @Test func inspectsAnImageAsAPersonWould() async throws {
        let binary = try executable()
        try await LocalRegistry.withRegistry(auth: .htpasswd(username: "admin", password: "hunter2"), tls: true) { registry in
            let images = try await ImagePusher(registry: registry).pushTestImages("team/notebook")
            let secret = try writeSecret(registry, username: "admin", password: "hunter2")
            let caFile = try #require(registry.caFile)
            let image = "\(registry.host)/team/notebook:multi"

            let text = try await runCommand(binary, ["inspect", image, "--pull-secret", secret, "--ca-file", caFile])
            #expect(text.status == 0, "\(text.stderr)")
            let lines = text.stdout.split(separator: "\n").map(String.init)
            func value(_ name: String) -> String? {
                lines.first { $0.hasPrefix(name + ":") }.map { String($0.dropFirst(name.count + 1)).trimmingCharacters(in: .whitespaces) }
            }
            #expect(value("Image") == image)
            #expect(value("Digest") == images.index.description)
            #expect(value("Manifest") == images.amd64Manifest.description)
            #expect(value("Pinned") == "\(registry.host)/team/notebook@\(images.index)")
            #expect(value("Platform") == "linux/amd64")
            #expect(value("Index platforms") == "linux/amd64, linux/arm64/v8")
            #expect(value("User") == "jovyan")
            #expect(value("Working dir") == "/home/jovyan")
            #expect(value("Conda") == "yes (CONDA_DIR=/opt/conda)")
            #expect(value("JupyterHub-ready")?.hasPrefix("yes") == true)
            #expect(value("Authentication") == "basic as user \"admin\" (credentials from auths key \"\(registry.host)\")")
            #expect(lines.contains("  NB_USER=jovyan"))
            #expect(!text.stdout.contains("hunter2"))

            let json = try await runCommand(binary, [
                "inspect", image, "--pull-secret", secret, "--ca-file", caFile, "--platform", "linux/arm64", "-o", "json",
            ])
            #expect(json.status == 0, "\(json.stderr)")
            let report = try JSONDecoder().decode(InspectReport.self, from: Data(json.stdout.utf8))
            #expect(report.digest == images.index.description)
            #expect(report.manifestDigest == images.arm64Manifest.description)
            #expect(report.platform == "linux/arm64/v8")
            #expect(report.user == "builder")
            #expect(report.env == ["PATH=/usr/bin:/bin", "ARCH=arm64"])
            #expect(report.conda == nil)
            #expect(report.authentication.hasPrefix("basic as user \"admin\""))
        }
    }

    @Test func failuresExitWithTheSentence() async throws {
        let binary = try executable()
        try await LocalRegistry.withRegistry(auth: .htpasswd(username: "admin", password: "hunter2")) { registry in
            _ = try await ImagePusher(registry: registry).pushTestImages("team/notebook")
            let wrong = try writeSecret(registry, username: "admin", password: "wrong")
            let right = try writeSecret(registry, username: "admin", password: "hunter2")
            let image = "\(registry.host)/team/notebook:amd64"

            let rejected = try await runCommand(binary, ["inspect", image, "--insecure", "--pull-secret", wrong])
            #expect(rejected.status == 1)
            #expect(rejected.stderr == "error: registry \(registry.host) rejected the credentials of user \"admin\" for repository team/notebook (unauthorized)\n")
            #expect(rejected.stdout.isEmpty)

            let anonymous = try await runCommand(binary, ["inspect", image, "--insecure"])
            #expect(anonymous.status == 1)
            #expect(anonymous.stderr.contains("requires authentication for repository team/notebook"))

            let missing = try await runCommand(binary, ["inspect", "\(registry.host)/team/notebook:v9", "--insecure", "--pull-secret", right])
            #expect(missing.status == 1)
            #expect(missing.stderr.contains("manifest \"v9\" not found in repository team/notebook on registry \(registry.host)"))

            let strict = try await runCommand(binary, ["inspect", image, "--pull-secret", right])
            #expect(strict.status == 1)
            #expect(strict.stderr.contains("is unreachable"))

            let otherHost = registry.directory + "/other.json"
            try #"{"auths":{"elsewhere.example.com":{"username":"a","password":"b"}}}"#
                .write(toFile: otherHost, atomically: true, encoding: .utf8)
            let noCredentials = try await runCommand(binary, ["inspect", image, "--insecure", "--pull-secret", otherHost])
            #expect(noCredentials.status == 1)
            #expect(noCredentials.stderr.hasPrefix("note: \(otherHost) has no credentials for \(registry.host); trying anonymously\n"))

            let badReference = try await runCommand(binary, ["inspect", "Team/Notebook"])
            #expect(badReference.status == 64)
            #expect(badReference.stderr.contains("must be lowercase"))
            let badPlatform = try await runCommand(binary, ["inspect", image, "--platform", "linux"])
            #expect(badPlatform.status == 64)
            let badSecret = try await runCommand(binary, ["inspect", image, "--pull-secret", registry.directory + "/none.yaml"])
            #expect(badSecret.status != 0)
            #expect(badSecret.stderr.contains("no such readable file"))
        }
    }
}
