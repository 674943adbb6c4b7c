import Foundation
import Synchronization

/// A real OCI registry (Debian's `docker-registry`, distribution 2.8) on a free loopback port,
/// with filesystem storage in a fresh temporary directory. It can also listen on more addresses
/// (same port, same storage: one registry process per address), e.g. a node tier's bridge, and
/// start from a copy of a prepared storage tree.
public final class LocalRegistry: Sendable {
    /// How clients authenticate.
    public enum Auth: Sendable, Hashable {
        /// Anonymous pull and push.
        case none
        /// HTTP basic authentication against an htpasswd (bcrypt) file.
        case htpasswd(username: String, password: String)
        /// Bearer tokens (the Docker token flow): the registry answers 401 with
        /// `WWW-Authenticate: Bearer realm=…`; a token server in this process issues JWTs for
        /// `username`/`password` (HTTP basic), granting whatever scope is asked.
        case token(username: String, password: String)
    }

    /// `http://127.0.0.1:<port>` or `https://…`.
    public let url: URL
    /// `127.0.0.1:<port>`, as used in image references.
    public let host: String
    /// `<address>:<port>` of every listener, `host` first.
    public let hosts: [String]
    public let port: Int
    /// The authentication mode it was started with.
    public let auth: Auth
    /// CA of the serving certificate when started with TLS.
    public let caFile: String?
    public let caCertificatePEM: Data?
    /// The temporary directory (config, certificates, storage, log).
    public let directory: String
    /// Where blobs and manifests are stored.
    public let storageDirectory: String
    /// The token server's realm URL in `.token` mode.
    public let tokenRealm: URL?
    /// The registry's log file.
    public var logFile: String { server.logFile }
    /// Log files of every listener, `host`'s first.
    public var logFiles: [String] { servers.map(\.logFile) }

    /// Requests the registry has answered so far, on every listener (its access log has one
    /// `response completed` line per request).
    public var requestsServed: Int {
        logFiles.reduce(0) { total, file in
            let text = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
            return total + text.split(separator: "\n").filter { $0.contains("response completed") }.count
        }
    }

    private let server: ServerProcess
    private let servers: [ServerProcess]
    private let tokenServer: TokenServer?
    private let stopped = Mutex(false)

    private init(
        port: Int, tls: Bool, auth: Auth, ca: CertificateFiles?, directory: String, servers: [ServerProcess],
        addresses: [String], tokenServer: TokenServer?
    ) {
        self.port = port
        self.host = "127.0.0.1:\(port)"
        self.hosts = addresses.map { "\($0):\(port)" }
        self.url = URL(string: "\(tls ? "https" : "http")://127.0.0.1:\(port)")!
        self.auth = auth
        self.caFile = ca?.certificateFile
        self.caCertificatePEM = ca?.certificatePEM
        self.directory = directory
        self.storageDirectory = directory + "/storage"
        self.server = servers[0]
        self.servers = servers
        self.tokenServer = tokenServer
        self.tokenRealm = tokenServer?.realm
    }

    /// Starts a registry; returns once `GET /v2/` answers (200, or 401 with authentication) on
    /// every address. `additionalAddresses` are listened on beside 127.0.0.1 (same port);
    /// `seedStorage` is a registry storage tree (holding `docker/`) copied in before the start.
    /// With `.token` auth the token server listens on the first additional address (else
    /// 127.0.0.1); `pushGrantedTo` limits push tokens to clients from those addresses.
    /// Throws with the registry's log tail when it cannot start.
    public static func start(
        auth: Auth = .none, tls: Bool = false, additionalAddresses: [String] = [], seedStorage: String? = nil,
        pushGrantedTo: Set<String>? = nil, startupTimeout: Duration = .seconds(30)
    ) async throws -> LocalRegistry {
        let executable = try requireExecutable(
            "docker-registry", package: "docker-registry", fallbacks: ["/usr/bin/docker-registry"])
        _ = try requireExecutable("curl", package: "curl")
        let directory = try makeHarnessDirectory(kind: "registry")
        var tokenServer: TokenServer?
        var servers: [ServerProcess] = []
        let addresses = uniqued(["127.0.0.1"] + additionalAddresses)
        do {
            let port = try freePort(onAll: addresses)
            let scheme = tls ? "https" : "http"
            try FileManager.default.createDirectory(atPath: directory + "/storage", withIntermediateDirectories: true)
            if let seedStorage {
                guard FileManager.default.fileExists(atPath: seedStorage + "/docker") else {
                    throw HarnessError("\(seedStorage) is no registry storage tree (no docker/ in it)")
                }
                try await runChecked("/bin/cp", ["-a", "--reflink=auto", seedStorage + "/.", directory + "/storage"])
            }
            let secret = randomHex()
            var ca: CertificateFiles?
            var config = """
            version: 0.1
            log:
              level: info
              formatter: text
            storage:
              filesystem:
                rootdirectory: \(directory)/storage
              delete:
                enabled: true
              maintenance:
                uploadpurging:
                  enabled: false
            health:
              storagedriver:
                enabled: false
            http:
              addr: LISTEN_ADDRESS:\(port)
              secret: \(secret)
              headers:
                X-Content-Type-Options: [nosniff]

            """
            if tls {
                let pki = try OpenSSL(directory: directory)
                let authority = try await pki.makeCA("registry-ca", commonName: "image-builder-test-registry-ca")
                let serving = try await pki.makeCertificate(
                    "registry", commonName: "127.0.0.1", serverNames: addresses + ["localhost"], signedBy: authority)
                config += """
                  tls:
                    certificate: \(serving.certificateFile)
                    key: \(serving.keyFile)

                """
                ca = authority
            }
            switch auth {
            case .none:
                break
            case .htpasswd(let username, let password):
                let htpasswd = try requireExecutable("htpasswd", package: "apache2-utils")
                let line = try await runChecked(htpasswd, ["-Bbn", username, password])
                try line.trimmingCharacters(in: .whitespacesAndNewlines).appending("\n")
                    .write(toFile: directory + "/htpasswd", atomically: true, encoding: .utf8)
                config += """
                auth:
                  htpasswd:
                    realm: image-builder-test-registry
                    path: \(directory)/htpasswd

                """
            case .token(let username, let password):
                let issuer = try await TokenIssuer.make(directory: directory, service: "image-builder-test-registry")
                let tokens = try TokenServer(
                    issuer: issuer, username: username, password: password,
                    address: additionalAddresses.first ?? "127.0.0.1", pushGrantedTo: pushGrantedTo)
                tokenServer = tokens
                config += """
                auth:
                  token:
                    realm: \(tokens.realm.absoluteString)
                    service: \(issuer.service)
                    issuer: \(issuer.issuer)
                    rootcertbundle: \(issuer.rootCertificateFile)

                """
            }
            for (index, address) in addresses.enumerated() {
                let suffix = index == 0 ? "" : "-\(address)"
                let configFile = directory + "/config\(suffix).yml"
                try config.replacingOccurrences(of: "LISTEN_ADDRESS", with: address)
                    .write(toFile: configFile, atomically: true, encoding: .utf8)
                let registry = ServerProcess(
                    name: "docker-registry\(suffix)", executable: executable, arguments: ["serve", configFile],
                    directory: directory)
                servers.append(registry)
                try await registry.start()
                try await waitUntil("docker-registry GET /v2/ on \(address)", server: registry, timeout: startupTimeout) {
                    let answer = try await httpGet("\(scheme)://\(address):\(port)/v2/", caFile: ca?.certificateFile)
                    let expected = auth == .none ? 200 : 401
                    return (answer.status == expected, "\(answer.status) \(answer.body)")
                }
            }
            return LocalRegistry(
                port: port, tls: tls, auth: auth, ca: ca, directory: directory, servers: servers,
                addresses: addresses, tokenServer: tokenServer)
        } catch {
            for server in servers.reversed() { await server.stop(grace: .seconds(2)) }
            tokenServer?.stop()
            if ProcessInfo.processInfo.environment["IMAGE_BUILDER_KEEP_TEST_DIRS"] == nil {
                try? FileManager.default.removeItem(atPath: directory)
                ChildRegistry.shared.removeDirectory(directory)
            }
            throw error
        }
    }

    /// Starts a registry, runs `body` with it and stops it, also when `body` throws.
    public static func withRegistry<T: Sendable>(
        auth: Auth = .none, tls: Bool = false, _ body: (LocalRegistry) async throws -> T
    ) async throws -> T {
        let registry = try await start(auth: auth, tls: tls)
        do {
            let result = try await body(registry)
            await registry.stop()
            return result
        } catch {
            await registry.stop()
            throw error
        }
    }

    /// Pids of the running registry processes.
    var serverPIDs: [pid_t] { servers.compactMap(\.pid) }

    /// True while the registry process runs (every listener).
    public var isRunning: Bool { servers.allSatisfy(\.isRunning) }

    /// Stops the registry (and token server) and removes the directory. Idempotent.
    public func stop() async {
        let first = stopped.withLock { stopped in
            defer { stopped = true }
            return !stopped
        }
        guard first else { return }
        for server in servers.reversed() { await server.stop(grace: .seconds(5)) }
        tokenServer?.stop()
        try? FileManager.default.removeItem(atPath: directory)
        ChildRegistry.shared.removeDirectory(directory)
    }
}
