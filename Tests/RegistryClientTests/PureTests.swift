import Foundation
import KubeTypes
import RegistryTestSupport
import Testing

@testable import RegistryClient
@testable import RegistryTypes

private func base64URL(_ text: String) -> String {
    Data(text.utf8).base64EncodedString().replacingOccurrences(of: "+", with: "-")
        .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
}

@Suite("Authentication pieces")
struct AuthenticationTests {
    @Test func parsesBearerChallenges() throws {
        let challenges = AuthenticationChallenge.parse([
            #"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/ubuntu:pull""#,
        ])
        let challenge = try #require(challenges.first)
        #expect(challenges.count == 1)
        #expect(challenge.scheme == "bearer")
        #expect(challenge.realm == "https://auth.docker.io/token")
        #expect(challenge.service == "registry.docker.io")
        #expect(challenge.scope == "repository:library/ubuntu:pull")
    }

    @Test func parsesSeveralChallengesAndOddSpacing() {
        let challenges = AuthenticationChallenge.parse([
            #"Basic realm="Registry Realm", Bearer  realm = "http://t/token" , service=svc,error="insufficient_scope""#,
            #"Newauth realm="a \"quoted\" realm""#,
        ])
        #expect(challenges.map(\.scheme) == ["basic", "bearer", "newauth"])
        #expect(challenges[0].realm == "Registry Realm")
        #expect(challenges[1].realm == "http://t/token")
        #expect(challenges[1].service == "svc")
        #expect(challenges[1].error == "insufficient_scope")
        #expect(challenges[2].realm == #"a "quoted" realm"#)
        #expect(AuthenticationChallenge.parse([""]).isEmpty)
        #expect(AuthenticationChallenge.parse([#"Bearer realm="unterminated"#]).first?.realm == "unterminated")
    }

    @Test func readsAccessClaims() throws {
        let header = base64URL(#"{"alg":"RS256","typ":"JWT"}"#)
        let payload = base64URL("""
            {"sub":"robot","exp":2000000000,"access":[
              {"type":"repository","name":"team/app","actions":["pull","push"]},
              {"type":"repository","name":"team/other","actions":["pull"]},
              {"type":"repository","name":"admin/all","actions":["*"]}]}
            """)
        let claims = try #require(TokenClaims(jwt: "\(header).\(payload).c2ln"))
        #expect(claims.subject == "robot")
        #expect(claims.grants("push", onRepository: "team/app"))
        #expect(!claims.grants("push", onRepository: "team/other"))
        #expect(claims.grants("pull", onRepository: "team/other"))
        #expect(claims.grants("push", onRepository: "admin/all"))
        #expect(!claims.grants("push", onRepository: "team"))
        #expect(claims.expiresAt == Date(timeIntervalSince1970: 2_000_000_000))
        #expect(TokenClaims(jwt: "opaque-token") == nil)
        #expect(TokenClaims(jwt: "a.b.c") == nil)
        #expect(TokenClaims(jwt: "\(header).\(base64URL(#"{"sub":"x"}"#)).sig") == nil)
    }

    @Test func tokenResponses() {
        #expect(TokenResponse(json: Data(#"{"token":"a","expires_in":300}"#.utf8))?.expiresIn == 300)
        #expect(TokenResponse(json: Data(#"{"access_token":"b"}"#.utf8))?.token == "b")
        #expect(TokenResponse(json: Data(#"{"access_token":"b"}"#.utf8))?.expiresIn == 60)
        #expect(TokenResponse(json: Data(#"{"token":"","access_token":"c","expires_in":0}"#.utf8))?.token == "c")
        #expect(TokenResponse(json: Data(#"{"token":"","access_token":"c","expires_in":0}"#.utf8))?.expiresIn == 60)
        #expect(TokenResponse(json: Data(#"{"error":"x"}"#.utf8)) == nil)
        #expect(TokenResponse(json: Data("not json".utf8)) == nil)
    }

    @Test func authenticationDescriptions() {
        #expect(AuthenticationMethod.anonymous.description == "anonymous")
        #expect(AuthenticationMethod.basic(username: "u", source: "r.io").description
            == #"basic as user "u" (credentials from auths key "r.io")"#)
        #expect(AuthenticationMethod.bearer(realm: "http://t/token", username: nil, source: nil).description
            == "anonymous bearer token from realm http://t/token")
        #expect(AuthenticationMethod.bearer(realm: "http://t/token", username: "r", source: nil).description
            == #"bearer token from realm http://t/token as user "r""#)
    }
}

@Suite("Platforms and manifests")
struct PlatformTests {
    private static func entry(_ platform: String?) -> Descriptor {
        let parsed = platform.map { try! Platform(parsing: $0) }
        return Descriptor(
            mediaType: MediaType.ociManifest, digest: Digest.of(Data((platform ?? "none").utf8)), size: 1,
            platform: parsed.map { DescriptorPlatform(architecture: $0.architecture, os: $0.os, variant: $0.variant) })
    }

    @Test func parsesPlatforms() throws {
        #expect(try Platform(parsing: "linux/amd64") == .linuxAMD64)
        #expect(try Platform(parsing: "Linux/ARM/v7").description == "linux/arm/v7")
        for bad in ["linux", "linux/", "/amd64", "linux/arm/v7/x", "linux/a md64", ""] {
            #expect(throws: RegistryError.PlatformSyntax.self) { try Platform(parsing: bad) }
        }
    }

    @Test func selectsFromIndexes() throws {
        let entries = ["linux/amd64", "linux/arm64/v8", "linux/arm/v6", "linux/arm/v7", "windows/amd64", nil].map(Self.entry)
        func pick(_ text: String) throws -> String? {
            try Platform(parsing: text).select(from: entries) { $0.platform?.platform }?.platform?.platform.description
        }
        #expect(try pick("linux/amd64") == "linux/amd64")
        #expect(try pick("linux/arm64") == "linux/arm64/v8")
        #expect(try pick("linux/arm64/v8") == "linux/arm64/v8")
        #expect(try pick("linux/arm") == "linux/arm/v7")
        #expect(try pick("linux/arm/v6") == "linux/arm/v6")
        #expect(try pick("windows/amd64") == "windows/amd64")
        #expect(try pick("linux/s390x") == nil)
        #expect(try pick("linux/arm64/v9") == nil)
        // Without variants written in the index, arm64 still matches arm64/v8 and a lone arm entry serves linux/arm.
        let plain = ["linux/arm64", "linux/arm/v5"].map(Self.entry)
        #expect(try Platform(parsing: "linux/arm64/v8").select(from: plain) { $0.platform?.platform }?.platform?.architecture == "arm64")
        #expect(try Platform(parsing: "linux/arm").select(from: plain) { $0.platform?.platform }?.platform?.variant == "v5")
        #expect(try Platform(parsing: "linux/arm/v7").select(from: plain) { $0.platform?.platform } == nil)
    }

    @Test func indexPlatformsLeaveOutAttestations() {
        let index = ImageIndex(mediaType: MediaType.ociIndex, manifests: [
            Self.entry("linux/amd64"),
            Descriptor(mediaType: MediaType.ociManifest, digest: Digest.of(Data()), size: 1,
                       platform: DescriptorPlatform(architecture: "unknown", os: "unknown")),
        ])
        #expect(index.platforms.map(\.description) == ["linux/amd64"])
    }

    @Test func manifestMediaTypeSniffing() {
        let index = Data(#"{"schemaVersion":2,"manifests":[]}"#.utf8)
        let manifest = Data(#"{"schemaVersion":2,"config":{},"layers":[]}"#.utf8)
        let typed = Data(#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json"}"#.utf8)
        #expect(RegistryClient.manifestMediaType(header: "application/vnd.oci.image.index.v1+json; charset=utf-8", body: manifest)
            == MediaType.ociIndex)
        #expect(RegistryClient.manifestMediaType(header: "application/json", body: index) == MediaType.ociIndex)
        #expect(RegistryClient.manifestMediaType(header: nil, body: manifest) == MediaType.ociManifest)
        #expect(RegistryClient.manifestMediaType(header: "text/plain", body: typed) == MediaType.dockerManifestList)
    }

    @Test func configEnvironment() throws {
        let blob = Data("""
            {"architecture":"arm64","os":"linux","variant":"v8","config":{"User":"1000:100","Env":["PATH=/a:/b","EMPTY","X=1=2","X=3"],
             "WorkingDir":"/home/jovyan","Entrypoint":["tini","--"],"Cmd":["start-notebook.py"],"Labels":{"a":"b"},
             "ExposedPorts":{"8888/tcp":{}}},"rootfs":{"type":"layers","diff_ids":[]}}
            """.utf8)
        let config = try JSONDecoder().decode(ImageConfiguration.self, from: blob)
        #expect(config.user == "1000:100")
        #expect(config.environment == ["PATH": "/a:/b", "EMPTY": "", "X": "3"])
        #expect(config.platform?.description == "linux/arm64/v8")
        #expect(config.exposedPorts == ["8888/tcp"])
        #expect(ImageConfiguration(config: .init(user: "")).user == nil)
    }
}

@Suite("Image heuristics")
struct HeuristicsTests {
    private func config(env: [String] = [], user: String? = nil, workingDir: String? = nil, labels: [String: String]? = nil,
                        entrypoint: [String]? = nil, cmd: [String]? = nil) -> ImageConfiguration {
        ImageConfiguration(config: .init(user: user, env: env, workingDir: workingDir, entrypoint: entrypoint, cmd: cmd,
                                         labels: labels))
    }

    @Test func conda() {
        #expect(hasConda(config: config(env: ["CONDA_DIR=/opt/conda"])))
        #expect(condaEvidence(config: config(env: ["CONDA_DIR=/opt/conda"])) == "CONDA_DIR=/opt/conda")
        #expect(!hasConda(config: config(env: ["CONDA_DIR="])))
        #expect(hasConda(config: config(env: ["PATH=/usr/local/sbin:/opt/conda/bin:/usr/bin"])))
        #expect(hasConda(config: config(env: ["PATH=/root/miniconda3/bin:/usr/bin"])))
        #expect(hasConda(config: config(env: ["PATH=/opt/Anaconda3/bin"])))
        #expect(hasConda(config: config(env: ["PATH=/opt/miniforge3/condabin"])))
        #expect(hasConda(config: config(env: ["CONDA_PREFIX=/env"])))
        #expect(!hasConda(config: config(env: ["PATH=/usr/local/bin:/usr/bin"])))
        #expect(!hasConda(config: config(env: ["PATH=/opt/conda-tools/lib", "MAMBA_ROOT_PREFIX=/opt/mamba"])))
        #expect(!hasConda(config: config(env: ["PATH=/opt/notconda/bin"])))
        #expect(!hasConda(config: config()))
    }

    @Test func jupyter() {
        #expect(jupyterEvidence(config: config(env: ["NB_USER=jovyan", "NB_UID=1000"])) == ["Env NB_UID", "Env NB_USER"])
        #expect(imageLooksJupyterReady(config: config(env: ["JUPYTER_PORT=8888"])))
        #expect(imageLooksJupyterReady(config: config(labels: ["maintainer": "Jupyter Project <jupyter@googlegroups.com>"])))
        #expect(imageLooksJupyterReady(config: config(cmd: ["start-notebook.py"])))
        #expect(imageLooksJupyterReady(config: config(entrypoint: ["/usr/local/bin/jupyterhub-singleuser"])))
        #expect(imageLooksJupyterReady(config: config(cmd: ["/bin/sh", "-c", "jupyter lab"])))
        #expect(imageLooksJupyterReady(config: config(user: "jovyan")))
        #expect(imageLooksJupyterReady(config: config(workingDir: "/home/jovyan/work")))
        #expect(!imageLooksJupyterReady(config: config(env: ["PATH=/usr/bin"], user: "1000", workingDir: "/app",
                                                        labels: ["org.opencontainers.image.title": "api"],
                                                        cmd: ["python", "main.py"])))
        #expect(!imageLooksJupyterReady(config: ImageConfiguration()))
    }
}

@Suite("Error sentences")
struct ErrorSentenceTests {
    @Test func sentencesNameRegistryRepositoryAndWhat() {
        func sentence(_ kind: RegistryError.Kind, message: String? = nil) -> String {
            RegistryError(registry: "r.io:5000", repository: "team/base", kind: kind, serverMessage: message).description
        }
        #expect(sentence(.manifestNotFound(reference: "v9")) == #"manifest "v9" not found in repository team/base on registry r.io:5000"#)
        #expect(sentence(.unauthorized(username: nil))
            == "registry r.io:5000 requires authentication for repository team/base, and no credentials for r.io:5000 were given")
        #expect(sentence(.unauthorized(username: "bob")).contains(#"rejected the credentials of user "bob""#))
        #expect(sentence(.denied(username: "bob"), message: "DENIED: nope").hasSuffix("(the registry says: DENIED: nope)"))
        #expect(sentence(.platformNotFound(requested: .linuxAMD64, available: [Platform(os: "linux", architecture: "arm64")]))
            == "repository team/base on registry r.io:5000 has no image for platform linux/amd64; its index offers linux/arm64")
        #expect(sentence(.tlsVerificationFailed("x")).contains("mark the registry insecure"))
        #expect(sentence(.unreachable("connection refused")) == "registry r.io:5000 is unreachable (repository team/base): connection refused")
    }

    @Test func retryable() {
        func error(_ kind: RegistryError.Kind) -> RegistryError { RegistryError(registry: "r", repository: "p", kind: kind) }
        #expect(error(.unreachable("x")).isRetryable)
        #expect(error(.tooManyRequests).isRetryable)
        #expect(error(.serverError(status: 503)).isRetryable)
        #expect(error(.tokenServiceFailed(realm: "t", detail: "HTTP 502")).isRetryable)
        #expect(!error(.tokenServiceFailed(realm: "t", detail: "HTTP 400")).isRetryable)
        #expect(!error(.manifestNotFound(reference: "x")).isRetryable)
        #expect(!error(.unauthorized(username: nil)).isRetryable)
        #expect(!error(.denied(username: nil)).isRetryable)
        #expect(!error(.tlsVerificationFailed("x")).isRetryable)
        #expect(!error(.platformNotFound(requested: .linuxAMD64, available: [])).isRetryable)
        #expect(error(.manifestNotFound(reference: "x")).isNotFound)
        #expect(error(.denied(username: nil)).isAccessProblem)
    }
}
