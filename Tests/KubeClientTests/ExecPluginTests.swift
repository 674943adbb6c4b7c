import CurlHTTP
import Foundation
import KubeTypes
import Testing
@testable import KubeClient

@Suite struct ExecPluginTests {
    /// A plugin script that records each run and prints the given credential JSON.
    func plugin(in folder: TempFolder, output: String, exitCode: Int = 0, stderr: String = "") throws -> String {
        let script = try folder.write("plugin.sh", """
            #!/bin/sh
            echo run >> "\(folder.path)/runs"
            printf '%s' "$KUBERNETES_EXEC_INFO" > "\(folder.path)/exec-info"
            printf '%s' "$PLUGIN_ENV" > "\(folder.path)/plugin-env"
            printf '%s' '\(stderr)' >&2
            cat <<'JSON'
            \(output)
            JSON
            exit \(exitCode)
            """)
        chmod(script, 0o755)
        return script
    }

    func runs(_ folder: TempFolder) -> Int {
        ((try? String(contentsOfFile: folder.path + "/runs", encoding: .utf8)) ?? "").split(separator: "\n").count
    }

    func source(_ script: String, apiVersion: String = "client.authentication.k8s.io/v1", clusterInfo: Bool = false) -> CredentialSource {
        let exec = ExecConfig(command: script, args: [], env: [.init(name: "PLUGIN_ENV", value: "from-config")],
                              apiVersion: apiVersion, installHint: "install the plugin", provideClusterInfo: clusterInfo)
        return CredentialSource(configuration: ClientConfiguration(
            server: "https://api.example:6443", tls: TLSOptions(caData: Data("CA".utf8)), authentication: .exec(exec)))
    }

    @Test func tokenIsCachedUntilExpiryAndRefreshedAfterInvalidate() async throws {
        let folder = try TempFolder()
        let future = KubeJSON.formatTimestamp(Date().addingTimeInterval(3600))
        let script = try plugin(in: folder, output: """
            {"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"t0k","expirationTimestamp":"\(future)"}}
            """)
        let credentials = source(script, clusterInfo: true)
        #expect(try await credentials.credentials().authorization == "Bearer t0k")
        #expect(try await credentials.credentials().authorization == "Bearer t0k")
        #expect(runs(folder) == 1)
        await credentials.invalidate()
        _ = try await credentials.credentials()
        #expect(runs(folder) == 2)

        let info = try JSONDecoder().decode(JSONValue.self, from: Data(contentsOf: URL(fileURLWithPath: folder.path + "/exec-info")))
        #expect(info["kind"] == .string("ExecCredential"))
        #expect(info["apiVersion"] == .string("client.authentication.k8s.io/v1"))
        #expect(info.value(at: "spec", "interactive") == .bool(false))
        #expect(info.value(at: "spec", "cluster", "server") == .string("https://api.example:6443"))
        #expect(info.value(at: "spec", "cluster", "certificate-authority-data") == .string(Data("CA".utf8).base64EncodedString()))
        #expect(try String(contentsOfFile: folder.path + "/plugin-env", encoding: .utf8) == "from-config")
    }

    @Test func expiredCredentialRunsThePluginAgain() async throws {
        let folder = try TempFolder()
        let past = KubeJSON.formatTimestamp(Date().addingTimeInterval(-5))
        let script = try plugin(in: folder, output: """
            {"apiVersion":"client.authentication.k8s.io/v1beta1","kind":"ExecCredential","status":{"token":"old","expirationTimestamp":"\(past)"}}
            """)
        let credentials = source(script, apiVersion: "client.authentication.k8s.io/v1beta1")
        _ = try await credentials.credentials()
        _ = try await credentials.credentials()
        #expect(runs(folder) == 2)
    }

    @Test func concurrentCallersShareOneRun() async throws {
        let folder = try TempFolder()
        let script = try plugin(in: folder, output: """
            {"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"shared"}}
            """)
        let credentials = source(script)
        try await withThrowingTaskGroup(of: String?.self) { group in
            for _ in 0..<8 { group.addTask { try await credentials.credentials().authorization } }
            for try await value in group { #expect(value == "Bearer shared") }
        }
        #expect(runs(folder) == 1)
    }

    @Test func clientCertificateFromPlugin() async throws {
        let folder = try TempFolder()
        let script = try plugin(in: folder, output: """
            {"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"clientCertificateData":"CERT","clientKeyData":"KEY"}}
            """)
        let presented = try await source(script).credentials()
        #expect(presented.authorization == nil)
        #expect(presented.clientCertificateData == Data("CERT".utf8))
        #expect(presented.clientKeyData == Data("KEY".utf8))
    }

    @Test(arguments: [
        ("{\"apiVersion\":\"client.authentication.k8s.io/v1beta1\",\"kind\":\"ExecCredential\",\"status\":{\"token\":\"x\"}}", 0, "apiVersion: expected client.authentication.k8s.io/v1, got client.authentication.k8s.io/v1beta1"),
        ("{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\"}", 0, "status: missing"),
        ("{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":{}}", 0, "neither token nor"),
        ("{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":{\"clientCertificateData\":\"C\"}}", 0, "clientKeyData: missing"),
        ("not json", 0, "output is not JSON"),
        ("{}", 3, "exited with status 3: boom"),
    ] as [(String, Int, String)])
    func pluginFailuresAreExplained(output: String, exitCode: Int, expected: String) async throws {
        let folder = try TempFolder()
        let script = try plugin(in: folder, output: output, exitCode: exitCode, stderr: "boom")
        await #expect {
            _ = try await source(script).credentials()
        } throws: { error in
            let text = "\(error)"
            return text.contains(expected) && text.contains(script)
        }
    }

    @Test func missingCommandShowsInstallHint() async throws {
        let credentials = source("definitely-not-an-installed-plugin")
        await #expect {
            _ = try await credentials.credentials()
        } throws: { error in
            "\(error)".contains("status 127") && "\(error)".contains("install the plugin")
        }
    }
}
