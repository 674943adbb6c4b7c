import Foundation
import Testing

@testable import TestHarness

/// `curl -sS -o /dev/null -w %{http_code} args…`: the status code, or nil when no HTTP answer came.
private func statusCode(_ arguments: [String]) async throws -> Int? {
    let result = try await runCommand("/usr/bin/curl", ["-sS", "-o", "/dev/null", "-w", "%{http_code}"] + arguments)
    return result.succeeded ? Int(result.stdout) : nil
}

/// Pushes a small blob to `repository` (`POST …/blobs/uploads/`, then `PUT <location>&digest=`)
/// and returns the final HTTP status (201 on success) and the digest.
private func pushBlob(_ registry: LocalRegistry, repository: String, extra: [String] = []) async throws -> (Int?, String) {
    let file = registry.directory + "/blob-\(UUID().uuidString)"
    try "blob-\(UUID().uuidString)".write(toFile: file, atomically: true, encoding: .utf8)
    let sum = try await runCommand("/usr/bin/sha256sum", [file])
    let digest = "sha256:" + String(sum.stdout.prefix(64))
    let start = try await runCommand(
        "/usr/bin/curl",
        ["-sS", "-o", "/dev/null", "-X", "POST", "-w", "%{http_code} %header{location}"] + extra
            + [registry.url.absoluteString + "/v2/\(repository)/blobs/uploads/"])
    let parts = start.stdout.split(separator: " ", maxSplits: 1)
    guard parts.first == "202", parts.count == 2 else { return (Int(parts.first ?? ""), digest) }
    var location = String(parts[1])
    if location.hasPrefix("/") { location = registry.url.absoluteString + location }
    location += (location.contains("?") ? "&" : "?") + "digest=\(digest)"
    let code = try await statusCode(
        extra + ["-X", "PUT", "-H", "Content-Type: application/octet-stream", "--data-binary", "@\(file)", location])
    return (code, digest)
}

@Suite("Local registry")
struct LocalRegistryTests {
    @Test func anonymousRegistryAnswers200() async throws {
        try await LocalRegistry.withRegistry { registry in
            #expect(registry.url.absoluteString == "http://\(registry.host)")
            do { let code = try await statusCode([registry.url.absoluteString + "/v2/"]); #expect(code == 200) }
            #expect(registry.caFile == nil)
            let (pushed, digest) = try await pushBlob(registry, repository: "harness/anon")
            #expect(pushed == 201)
            let head = try await statusCode(["-I", registry.url.absoluteString + "/v2/harness/anon/blobs/\(digest)"])
            #expect(head == 200)
        }
    }

    @Test func htpasswdRegistryNeedsCredentials() async throws {
        try await LocalRegistry.withRegistry(auth: .htpasswd(username: "builder", password: "s3cret")) { registry in
            let v2 = registry.url.absoluteString + "/v2/"
            do { let code = try await statusCode([v2]); #expect(code == 401) }
            do { let code = try await statusCode(["-u", "builder:wrong", v2]); #expect(code == 401) }
            do { let code = try await statusCode(["-u", "builder:s3cret", v2]); #expect(code == 200) }
        }
    }

    @Test func tlsRegistryIsTrustedOnlyWithItsCA() async throws {
        try await LocalRegistry.withRegistry(tls: true) { registry in
            let v2 = registry.url.absoluteString + "/v2/"
            #expect(registry.url.scheme == "https")
            let caFile = try #require(registry.caFile)
            do { let code = try await statusCode(["--cacert", caFile, v2]); #expect(code == 200) }
            do { let code = try await statusCode([v2]); #expect(code == nil) }
            #expect(String(decoding: registry.caCertificatePEM ?? Data(), as: UTF8.self).contains("BEGIN CERTIFICATE"))
        }
    }

    @Test func tlsAndHtpasswdTogether() async throws {
        try await LocalRegistry.withRegistry(auth: .htpasswd(username: "u", password: "p"), tls: true) { registry in
            let v2 = registry.url.absoluteString + "/v2/"
            let caFile = try #require(registry.caFile)
            do { let code = try await statusCode(["--cacert", caFile, v2]); #expect(code == 401) }
            do { let code = try await statusCode(["--cacert", caFile, "-u", "u:p", v2]); #expect(code == 200) }
        }
    }

    @Test func tokenRegistryAcceptsIssuedTokens() async throws {
        try await LocalRegistry.withRegistry(auth: .token(username: "robot", password: "pw")) { registry in
            let v2 = registry.url.absoluteString + "/v2/"
            // The challenge names the realm.
            let challenge = try await runCommand("/usr/bin/curl", ["-sS", "-D", "-", "-o", "/dev/null", v2])
            #expect(challenge.stdout.contains("401"))
            #expect(challenge.stdout.contains("Bearer realm=\"\(registry.tokenRealm!.absoluteString)\""))

            let realm = registry.tokenRealm!.absoluteString
            do { let code = try await statusCode([realm + "?service=x"]); #expect(code == 401) }
            let scope = "repository:harness/test:pull,push"
            let tokenAnswer = try await runCommand(
                "/usr/bin/curl",
                ["-sS", "-u", "robot:pw", "-G", realm, "--data-urlencode", "service=image-builder-test-registry",
                 "--data-urlencode", "scope=\(scope)"])
            let json = try #require(
                try JSONSerialization.jsonObject(with: Data(tokenAnswer.stdout.utf8)) as? [String: Any])
            let token = try #require(json["token"] as? String)
            do { let code = try await statusCode(["-H", "Authorization: Bearer \(token)", v2]); #expect(code == 200) }
            do { let code = try await statusCode(["-H", "Authorization: Bearer \(token)", registry.url.absoluteString + "/v2/harness/test/tags/list"]); #expect(code == 404) }
            do { let code = try await statusCode(["-H", "Authorization: Bearer \(token)", registry.url.absoluteString + "/v2/other/repo/tags/list"]); #expect(code == 401) }
            do { let code = try await statusCode(["-H", "Authorization: Bearer not-a-token", v2]); #expect(code == 401) }
            let (pushed, _) = try await pushBlob(
                registry, repository: "harness/test", extra: ["-H", "Authorization: Bearer \(token)"])
            #expect(pushed == 201)
            let (refused, _) = try await pushBlob(registry, repository: "harness/test")
            #expect(refused == 401)
        }
    }

    @Test func stoppedRegistryIsGone() async throws {
        let registry = try await LocalRegistry.start()
        let v2 = registry.url.absoluteString + "/v2/"
        do { let code = try await statusCode([v2]); #expect(code == 200) }
        await registry.stop()
        #expect(!registry.isRunning)
        do { let code = try await statusCode([v2]); #expect(code == nil) }
        #expect(!FileManager.default.fileExists(atPath: registry.directory))
    }
}
