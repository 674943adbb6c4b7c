import RegistryTypes
import RegistryTestSupport
import CurlHTTP
import Foundation
import Testing

@testable import RegistryClient
import TestHarness

/// The RegistryError a call throws, or a recorded issue.
private func registryError(_ body: () async throws -> some Any) async -> RegistryError? {
    do {
        let value = try await body()
        Issue.record("expected a RegistryError, got \(value)")
    } catch let error as RegistryError {
        return error
    } catch {
        Issue.record("expected a RegistryError, got \(error)")
    }
    return nil
}

@Suite("Registry client against a real registry")
struct RegistryTests {
    @Test func anonymousTagsDigestsAndPlatforms() async throws {
        try await LocalRegistry.withRegistry { registry in
            let images = try await ImagePusher(registry: registry).pushTestImages("team/base")
            let client = client(for: registry)

            // A single-platform tag: its config, user and environment.
            let single = try await client.resolve(images.reference("amd64"))
            #expect(single.digest == images.amd64Manifest)
            #expect(single.manifestDigest == images.amd64Manifest)
            #expect(single.mediaType == MediaType.dockerManifest)
            #expect(single.indexPlatforms.isEmpty)
            #expect(single.platform == .linuxAMD64)
            #expect(single.configDigest == images.amd64Config)
            #expect(single.config.user == "jovyan")
            #expect(single.config.workingDir == "/home/jovyan")
            #expect(single.config.environment["NB_USER"] == "jovyan")
            #expect(single.config.env.first == "PATH=/opt/conda/bin:/usr/bin:/bin")
            #expect(single.config.labels == ["org.example.arch": "amd64"])
            #expect(single.authentication == .anonymous)
            #expect(single.pinnedReference.description == "\(registry.host)/team/base@\(images.amd64Manifest)")
            #expect(hasConda(config: single.config))
            #expect(imageLooksJupyterReady(config: single.config))

            // The same image by digest.
            let byDigest = try await client.resolve(images.reference(images.amd64Manifest.description))
            #expect(byDigest.digest == images.amd64Manifest)
            #expect(byDigest.config == single.config)

            // An index: the default platform, then arm64, then one it does not have.
            let multi = try await client.resolve(images.reference("multi"))
            #expect(multi.digest == images.index)
            #expect(multi.mediaType == MediaType.ociIndex)
            #expect(multi.manifestDigest == images.amd64Manifest)
            #expect(multi.indexPlatforms.map(\.description) == ["linux/amd64", "linux/arm64/v8"])
            #expect(multi.config.user == "jovyan")
            let arm = try await client.resolve(images.reference("multi"), platform: Platform(parsing: "linux/arm64"))
            #expect(arm.digest == images.index)
            #expect(arm.manifestDigest == images.arm64Manifest)
            #expect(arm.configDigest == images.arm64Config)
            #expect(arm.platform.description == "linux/arm64/v8")
            #expect(arm.config.user == "builder")
            #expect(arm.config.environment["ARCH"] == "arm64")
            #expect(!hasConda(config: arm.config))
            let armByIndexDigest = try await client.resolve(images.reference(images.index.description),
                                                            platform: Platform(parsing: "linux/arm64/v8"))
            #expect(armByIndexDigest.config.user == "builder")
            let missingPlatform = await registryError {
                try await client.resolve(images.reference("multi"), platform: Platform(parsing: "linux/s390x"))
            }
            #expect(missingPlatform?.kind == .platformNotFound(
                requested: Platform(os: "linux", architecture: "s390x"),
                available: [.linuxAMD64, Platform(os: "linux", architecture: "arm64", variant: "v8")]))
            #expect(missingPlatform?.description
                == "repository team/base on registry \(registry.host) has no image for platform linux/s390x; its index offers linux/amd64, linux/arm64/v8")

            // HEAD gives the digest a tag points at.
            #expect(try await client.digest(of: images.reference("multi")) == images.index)
            #expect(try await client.digest(of: images.reference("amd64")) == images.amd64Manifest)
        }
    }

    @Test func notFoundAnswers() async throws {
        try await LocalRegistry.withRegistry { registry in
            let images = try await ImagePusher(registry: registry).pushTestImages("team/base")
            let client = client(for: registry)
            let missingTag = await registryError { try await client.resolve(images.reference("v9")) }
            #expect(missingTag?.kind == .manifestNotFound(reference: "v9"))
            #expect(missingTag?.description == "manifest \"v9\" not found in repository team/base on registry \(registry.host)")
            #expect(missingTag?.isRetryable == false)
            let missingRepository = await registryError {
                try await client.resolve(ImageReference(parsing: "\(registry.host)/nobody/here:1"))
            }
            #expect(missingRepository?.kind == .manifestNotFound(reference: "1"))
            #expect(missingRepository?.repository == "nobody/here")
            let unknownDigest = Digest.of(Data("nothing".utf8))
            let missingDigest = await registryError {
                try await client.resolve(images.reference(unknownDigest.description))
            }
            #expect(missingDigest?.kind == .manifestNotFound(reference: unknownDigest.description))
            let headMissing = await registryError { try await client.digest(of: images.reference("v9")) }
            #expect(headMissing?.isNotFound == true)
        }
    }

    @Test func plainHTTPRegistryNeedsInsecure() async throws {
        try await LocalRegistry.withRegistry { registry in
            let images = try await ImagePusher(registry: registry).pushTestImages("team/base")
            // Not insecure: HTTPS against a plain-HTTP server fails, and says so.
            let strict = await registryError {
                try await client(for: registry, insecure: false).resolve(images.reference("amd64"))
            }
            guard case .unreachable(let detail)? = strict?.kind else {
                Issue.record("expected unreachable, got \(String(describing: strict))")
                return
            }
            #expect(detail.contains(registry.host))
            #expect(detail.hasSuffix("; if the registry serves plain HTTP, mark it insecure"))
            #expect(strict?.isRetryable == true)
            #expect(strict?.description.hasPrefix("registry \(registry.host) is unreachable (repository team/base)") == true)
            // Insecure: HTTPS is tried, then plain HTTP answers (and is remembered).
            let insecure = client(for: registry, insecure: true)
            #expect(try await insecure.resolve(images.reference("amd64")).config.user == "jovyan")
            #expect(try await insecure.resolve(images.reference("arm64")).config.user == "builder")
        }
    }

    @Test func unreachableRegistry() async throws {
        let port = try await LocalRegistry.withRegistry { $0.port }  // a port that was just freed
        let client = RegistryClient(configuration: .init(registries: ["127.0.0.1:\(port)": RegistryOptions(insecure: true)]))
        let error = await registryError { try await client.resolve(ImageReference(parsing: "127.0.0.1:\(port)/a/b:1")) }
        #expect(error?.isRetryable == true)
        #expect(error?.description.contains("connection refused") == true)
    }

    @Test func tlsWithAndWithoutTheCA() async throws {
        try await LocalRegistry.withRegistry(tls: true) { registry in
            let images = try await ImagePusher(registry: registry).pushTestImages("secure/app")
            let caFile = try #require(registry.caFile)
            let withCA = try await client(for: registry, caFile: caFile).resolve(images.reference("multi"))
            #expect(withCA.digest == images.index)
            let withCAData = try await client(for: registry, caData: registry.caCertificatePEM).resolve(images.reference("amd64"))
            #expect(withCAData.config.user == "jovyan")

            let withoutCA = await registryError { try await client(for: registry).resolve(images.reference("amd64")) }
            guard case .tlsVerificationFailed? = withoutCA?.kind else {
                Issue.record("expected a TLS verification failure, got \(String(describing: withoutCA))")
                return
            }
            #expect(withoutCA?.isRetryable == false)
            #expect(withoutCA?.description.hasPrefix("the TLS certificate of registry \(registry.host) could not be verified") == true)

            let insecure = try await client(for: registry, insecure: true).resolve(images.reference("amd64"))
            #expect(insecure.digest == images.amd64Manifest)
        }
    }

    @Test func basicAuthFromDockerConfig() async throws {
        try await LocalRegistry.withRegistry(auth: .htpasswd(username: "builder", password: "s3cret")) { registry in
            let images = try await ImagePusher(registry: registry).pushTestImages("private/app")
            let client = client(for: registry)
            let config = try DockerConfig(json: Data("""
                {"auths": {"http://\(registry.host)/v1/": {"auth": "\(Data("builder:s3cret".utf8).base64EncodedString())"},
                           "other.example.com": {"username": "x", "password": "y"}}}
                """.utf8))
            let credential = try #require(config.credential(forRegistry: registry.host))
            let resolved = try await client.resolve(images.reference("multi"), credential: credential)
            #expect(resolved.config.user == "jovyan")
            #expect(resolved.authentication == .basic(username: "builder", source: "http://\(registry.host)/v1/"))

            let wrong = await registryError {
                try await client.resolve(images.reference("amd64"),
                                         credential: RegistryCredential(username: "builder", password: "wrong"))
            }
            #expect(wrong?.kind == .unauthorized(username: "builder"))
            #expect(wrong?.description == "registry \(registry.host) rejected the credentials of user \"builder\" for repository private/app (unauthorized)")
            let anonymous = await registryError { try await client.resolve(images.reference("amd64")) }
            #expect(anonymous?.kind == .unauthorized(username: nil))
            #expect(anonymous?.isAccessProblem == true)
            // The right password still works after a wrong one on the same client.
            #expect(try await client.resolve(images.reference("arm64"), credential: credential).config.user == "builder")
        }
    }

    @Test func bearerTokenAuth() async throws {
        try await LocalRegistry.withRegistry(auth: .token(username: "robot", password: "pw")) { registry in
            let images = try await ImagePusher(registry: registry).pushTestImages("tokened/app")
            let client = client(for: registry)
            let realm = try #require(registry.tokenRealm?.absoluteString)
            let credential = RegistryCredential(username: "robot", password: "pw", source: registry.host)
            let resolved = try await client.resolve(images.reference("multi"), credential: credential)
            #expect(resolved.config.user == "jovyan")
            #expect(resolved.authentication == .bearer(realm: realm, username: "robot", source: registry.host))
            #expect(resolved.authentication.description
                == "bearer token from realm \(realm) as user \"robot\" (credentials from auths key \"\(registry.host)\")")
            // The cached token serves the next request of the same scope and credential.
            let again = try await client.resolve(images.reference("arm64"), platform: nil, credential: credential)
            #expect(again.authentication == resolved.authentication)

            let wrong = await registryError {
                try await client.resolve(images.reference("amd64"), credential: RegistryCredential(username: "robot", password: "no"))
            }
            #expect(wrong?.kind == .unauthorized(username: "robot"))
            let anonymous = await registryError { try await client.resolve(images.reference("amd64")) }
            #expect(anonymous?.kind == .unauthorized(username: nil))
            // A token for one repository does not open another; a missing one is still "not found".
            let missing = await registryError {
                try await client.resolve(ImageReference(parsing: "\(registry.host)/tokened/none:1"), credential: credential)
            }
            #expect(missing?.kind == .manifestNotFound(reference: "1"))
        }
    }

    @Test func corruptedContentFailsVerification() async throws {
        try await LocalRegistry.withRegistry { registry in
            let images = try await ImagePusher(registry: registry).pushTestImages("team/base")
            let hex = images.amd64Config.hex
            let path = "\(registry.storageDirectory)/docker/registry/v2/blobs/sha256/\(hex.prefix(2))/\(hex)/data"
            #expect(FileManager.default.fileExists(atPath: path))
            try Data(#"{"architecture":"amd64","os":"linux","config":{"User":"root"}}"#.utf8).write(to: URL(fileURLWithPath: path))
            let error = await registryError { try await client(for: registry).resolve(images.reference("amd64")) }
            guard case .digestMismatch(let expected, let actual)? = error?.kind else {
                Issue.record("expected a digest mismatch, got \(String(describing: error))")
                return
            }
            #expect(expected == images.amd64Config)
            #expect(actual != expected)
            #expect(error?.description.contains("does not match the expected \(images.amd64Config)") == true)
            // The arm64 image shares nothing corrupted.
            #expect(try await client(for: registry).resolve(images.reference("arm64")).config.user == "builder")
        }
    }

    @Test func pushAccessWithBasicAuth() async throws {
        try await LocalRegistry.withRegistry(auth: .htpasswd(username: "builder", password: "s3cret")) { registry in
            let client = client(for: registry)
            let target = try ImageReference(parsing: "\(registry.host)/team/new-image:1")
            let granted = try await client.checkPushAccess(
                repository: target, credential: RegistryCredential(username: "builder", password: "s3cret"))
            #expect(granted == .granted(.uploadAccepted))
            // The probe's upload was cancelled: the session's data and start time are gone
            // (distribution keeps only its hash state), and no manifest makes it a repository.
            let repository = "\(registry.storageDirectory)/docker/registry/v2/repositories/team/new-image"
            let left = FileManager.default.subpaths(atPath: repository) ?? []
            #expect(!left.isEmpty)
            #expect(!left.contains { $0.hasSuffix("/data") || $0.hasSuffix("/startedat") || $0.hasPrefix("_manifests") }, "\(left)")

            let wrong = try await client.checkPushAccess(
                repository: target, credential: RegistryCredential(username: "builder", password: "nope"))
            #expect(wrong.denial?.kind == .unauthorized(username: "builder"))
            #expect(wrong.denial?.repository == "team/new-image")
            let anonymous = try await client.checkPushAccess(repository: target, credential: nil)
            #expect(anonymous.denial?.kind == .unauthorized(username: nil))
        }
    }

    @Test func pushAccessWithTokensAndAnonymousRegistries() async throws {
        try await LocalRegistry.withRegistry(auth: .token(username: "robot", password: "pw")) { registry in
            let client = client(for: registry)
            let target = try ImageReference(parsing: "\(registry.host)/team/app")
            let granted = try await client.checkPushAccess(
                repository: target, credential: RegistryCredential(username: "robot", password: "pw"))
            #expect(granted == .granted(.tokenGrant(realm: registry.tokenRealm!.absoluteString)))
            let wrong = try await client.checkPushAccess(
                repository: target, credential: RegistryCredential(username: "robot", password: "bad"))
            #expect(wrong.denial?.kind == .unauthorized(username: "robot"))
        }
        try await LocalRegistry.withRegistry { registry in
            let access = try await client(for: registry).checkPushAccess(
                repository: ImageReference(parsing: "\(registry.host)/open/app"), credential: nil)
            #expect(access == .granted(.uploadAccepted))
        }
    }
}
