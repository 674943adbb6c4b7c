import CurlHTTP
import Foundation
import KubeTypes
import Synchronization

/// What one request presents: an `Authorization` header and/or a client certificate.
struct RequestCredentials: Sendable, Equatable {
    var authorization: String?
    var clientCertificateData: Data?
    var clientKeyData: Data?
}

/// Produces credentials for requests, caching what is expensive to get: token files are re-read
/// at most once a minute (and after a 401), exec plugins run once and their result is kept until
/// its `expirationTimestamp` (or a 401).
actor CredentialSource {
    private let configuration: ClientConfiguration
    private var cached: (credentials: RequestCredentials, validUntil: Date?)?
    private var refreshing = false
    private var waiters: [CheckedContinuation<RequestCredentials, any Error>] = []
    /// How long a token file's contents are trusted before reading it again.
    static let tokenFileTTL: TimeInterval = 60

    init(configuration: ClientConfiguration) {
        self.configuration = configuration
    }

    /// True when a 401 may go away with fresh credentials (token file or plugin).
    nonisolated var canRefresh: Bool {
        switch configuration.authentication {
        case .tokenFile, .exec: return true
        default: return false
        }
    }

    func credentials() async throws -> RequestCredentials {
        switch configuration.authentication {
        case .none:
            return RequestCredentials()
        case .bearerToken(let token):
            return RequestCredentials(authorization: "Bearer \(token)")
        case .basic(let username, let password):
            let encoded = Data("\(username):\(password)".utf8).base64EncodedString()
            return RequestCredentials(authorization: "Basic \(encoded)")
        case .tokenFile, .exec:
            if let cached, cached.validUntil.map({ $0 > Date() }) ?? true {
                return cached.credentials
            }
            if refreshing {
                return try await withCheckedThrowingContinuation { waiters.append($0) }
            }
            refreshing = true
            let result: Result<(RequestCredentials, Date?), any Error>
            do {
                result = .success(try await fetch())
            } catch {
                result = .failure(error)
            }
            refreshing = false
            let pending = waiters
            waiters = []
            switch result {
            case .success(let (credentials, validUntil)):
                cached = (credentials, validUntil)
                for waiter in pending { waiter.resume(returning: credentials) }
                return credentials
            case .failure(let error):
                for waiter in pending { waiter.resume(throwing: error) }
                throw error
            }
        }
    }

    /// Forgets cached credentials (after a 401).
    func invalidate() {
        cached = nil
    }

    private func fetch() async throws -> (RequestCredentials, Date?) {
        switch configuration.authentication {
        case .tokenFile(let path):
            guard let data = FileManager.default.contents(atPath: path) else {
                throw KubeClientError.configuration("\(configuration.source): token file \(path) cannot be read")
            }
            let token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard !token.isEmpty else {
                throw KubeClientError.configuration("\(configuration.source): token file \(path) is empty")
            }
            return (RequestCredentials(authorization: "Bearer \(token)"), Date().addingTimeInterval(Self.tokenFileTTL))
        case .exec(let exec):
            let status = try await ExecCredentialPlugin(config: exec, cluster: configuration).run()
            var credentials = RequestCredentials()
            if let token = status.token { credentials.authorization = "Bearer \(token)" }
            credentials.clientCertificateData = status.clientCertificateData.map { Data($0.utf8) }
            credentials.clientKeyData = status.clientKeyData.map { Data($0.utf8) }
            // Refresh a little before the stated expiry.
            return (credentials, status.expirationTimestamp.map { $0.addingTimeInterval(-10) })
        default:
            return (RequestCredentials(), nil)
        }
    }
}

/// Runs an exec credential plugin (`client.authentication.k8s.io` ExecCredential) and reads its answer.
struct ExecCredentialPlugin: Sendable {
    let config: ExecConfig
    let cluster: ClientConfiguration
    var timeout: Duration = .seconds(120)

    /// The `KUBERNETES_EXEC_INFO` the plugin receives.
    func execInfo() -> String {
        var spec: [String: JSONValue] = ["interactive": .bool(false)]
        if config.provideClusterInfo {
            var info: [String: JSONValue] = ["server": .string(cluster.server)]
            if let ca = cluster.tls.caData ?? cluster.tls.caFile.flatMap({ FileManager.default.contents(atPath: $0) }) {
                info["certificate-authority-data"] = .string(ca.base64EncodedString())
            }
            if cluster.tls.insecureSkipVerify { info["insecure-skip-tls-verify"] = .bool(true) }
            if let name = cluster.tls.serverName { info["tls-server-name"] = .string(name) }
            if let proxy = cluster.proxyURL { info["proxy-url"] = .string(proxy) }
            spec["cluster"] = .object(info)
        }
        let value = JSONValue.object([
            "apiVersion": .string(config.apiVersion), "kind": .string("ExecCredential"), "spec": .object(spec),
        ])
        return String(decoding: (try? KubeJSON.encoder.encode(value)) ?? Data(), as: UTF8.self)
    }

    func run() async throws -> ExecCredentialStatus {
        let name = "exec credential plugin \"\(config.command)\""
        var environment = ProcessInfo.processInfo.environment
        for variable in config.env { environment[variable.name] = variable.value }
        environment["KUBERNETES_EXEC_INFO"] = execInfo()
        let output = try await ProcessRunner.run(
            executable: "/usr/bin/env", arguments: [config.command] + config.args,
            environment: environment, timeout: timeout)
        guard output.exitCode == 0 else {
            var message = "\(name): exited with status \(output.exitCode)"
            let stderr = String(decoding: output.stderr.suffix(2048), as: UTF8.self)
                .trimmingCharacters(in: .whitespacesAndNewlines)
            if !stderr.isEmpty { message += ": \(stderr)" }
            if output.exitCode == 127, let hint = config.installHint { message += "\n\(hint)" }
            throw KubeClientError.credentialPlugin(message)
        }
        return try config.credential(fromOutput: output.stdout)
    }
}

/// Runs a program to completion without blocking Swift's cooperative threads: the waiting happens
/// on dedicated threads (one per output pipe), which end with the program.
enum ProcessRunner {
    struct Output: Sendable {
        var exitCode: Int32
        var stdout: Data
        var stderr: Data
    }

    static func run(executable: String, arguments: [String], environment: [String: String],
                    timeout: Duration) async throws -> Output {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = environment
        let stdoutPipe = Pipe()
        let stderrPipe = Pipe()
        process.standardOutput = stdoutPipe
        process.standardError = stderrPipe
        process.standardInput = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            throw KubeClientError.credentialPlugin("cannot start \(executable): \(error)")
        }
        let pid = process.processIdentifier
        let timedOut = Mutex(false)
        let timer = DispatchWorkItem {
            if process.isRunning {
                timedOut.withLock { $0 = true }
                kill(pid, SIGKILL)
            }
        }
        DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(Int(timeout.components.seconds * 1000)), execute: timer)
        async let stdout = readToEnd(stdoutPipe.fileHandleForReading, limit: 16 << 20)
        async let stderr = readToEnd(stderrPipe.fileHandleForReading, limit: 1 << 20)
        let output = (await stdout, await stderr)
        let exitCode: Int32 = await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                process.waitUntilExit()
                continuation.resume(returning: process.terminationStatus)
            }
        }
        timer.cancel()
        if timedOut.withLock({ $0 }) {
            throw KubeClientError.credentialPlugin("\(arguments.first ?? executable): did not finish within \(timeout)")
        }
        return Output(exitCode: exitCode, stdout: output.0, stderr: output.1)
    }

    /// Reads a pipe until end of file on a dedicated thread; keeps at most `limit` bytes.
    private static func readToEnd(_ handle: FileHandle, limit: Int) async -> Data {
        await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                var data = Data()
                while true {
                    let chunk = handle.availableData
                    if chunk.isEmpty { break }
                    if data.count < limit { data.append(chunk.prefix(limit - data.count)) }
                }
                try? handle.close()
                continuation.resume(returning: data)
            }
        }
    }
}

/// What an exec credential plugin answered: a token, or a client certificate and key.
public struct ExecCredentialStatus: Decodable, Sendable, Hashable {
    public var token: String?
    public var clientCertificateData: String?
    public var clientKeyData: String?
    public var expirationTimestamp: Date?
}

extension ExecConfig {
    private struct ExecCredential: Decodable {
        var apiVersion: String?
        var kind: String?
        var status: ExecCredentialStatus?
    }

    /// Reads a plugin's standard output: an `ExecCredential` of this config's `apiVersion` with a
    /// token or a certificate and key; anything else throws `KubeClientError.credentialPlugin` saying what is wrong.
    public func credential(fromOutput output: Data) throws -> ExecCredentialStatus {
        let name = "exec credential plugin \"\(command)\""
        guard (try? KubeJSON.decoder.decode(JSONValue.self, from: output)) != nil else {
            throw KubeClientError.credentialPlugin("\(name): output is not JSON")
        }
        let credential: ExecCredential
        do {
            credential = try KubeJSON.decoder.decode(ExecCredential.self, from: output)
        } catch let error as DecodingError {
            throw KubeClientError.credentialPlugin("\(name): output is not an ExecCredential: \(describe(error))")
        } catch {
            throw KubeClientError.credentialPlugin("\(name): output cannot be read: \(error)")
        }
        guard credential.kind == "ExecCredential" else {
            throw KubeClientError.credentialPlugin("\(name): kind: expected ExecCredential, got \(credential.kind ?? "nothing")")
        }
        guard credential.apiVersion == apiVersion else {
            throw KubeClientError.credentialPlugin(
                "\(name): apiVersion: expected \(apiVersion), got \(credential.apiVersion ?? "nothing")")
        }
        guard let status = credential.status else {
            throw KubeClientError.credentialPlugin("\(name): status: missing")
        }
        let hasCertificate = status.clientCertificateData?.isEmpty == false
        let hasKey = status.clientKeyData?.isEmpty == false
        guard hasCertificate == hasKey else {
            throw KubeClientError.credentialPlugin(
                "\(name): status: \(hasCertificate ? "clientKeyData" : "clientCertificateData"): missing")
        }
        guard status.token?.isEmpty == false || hasCertificate else {
            throw KubeClientError.credentialPlugin(
                "\(name): status: neither token nor clientCertificateData with clientKeyData")
        }
        return status
    }
}
