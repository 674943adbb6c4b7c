import CurlHTTP
import Foundation
import KubeTypes
import Yams

/// A kubeconfig, possibly merged from several files the way kubectl merges `KUBECONFIG`: for each
/// cluster, user and context name the first file that defines it wins, and so does the first
/// `current-context`. Relative paths inside a file are relative to that file's folder.
public struct Kubeconfig: Sendable, Equatable {
    public struct Cluster: Sendable, Equatable {
        public var server: String?
        /// A path, already resolved against the file's folder.
        public var certificateAuthority: String?
        public var certificateAuthorityData: Data?
        public var insecureSkipTLSVerify: Bool
        public var tlsServerName: String?
        public var proxyURL: String?
        /// The file this entry came from.
        public var file: String
    }

    public struct User: Sendable, Equatable {
        public var token: String?
        public var tokenFile: String?
        public var clientCertificate: String?
        public var clientCertificateData: Data?
        public var clientKey: String?
        public var clientKeyData: Data?
        public var username: String?
        public var password: String?
        public var exec: ExecConfig?
        /// Set when the entry uses the removed `auth-provider` mechanism (unsupported).
        public var authProviderName: String?
        public var file: String
    }

    public struct Context: Sendable, Equatable {
        public var cluster: String
        public var user: String
        public var namespace: String?
        public var file: String
    }

    public var clusters: [String: Cluster] = [:]
    public var users: [String: User] = [:]
    public var contexts: [String: Context] = [:]
    public var currentContext: String?
    /// The files read, in order.
    public var files: [String] = []

    public init() {}

    /// Parses one kubeconfig file's text. `file` names it in errors and anchors relative paths.
    public init(yaml: String, file: String) throws {
        let folder = (file as NSString).deletingLastPathComponent
        let raw: RawKubeconfig
        do {
            raw = try YAMLDecoder().decode(RawKubeconfig.self, from: yaml)
        } catch let error as DecodingError {
            throw KubeClientError.configuration("kubeconfig \(file): \(describe(error))")
        } catch {
            throw KubeClientError.configuration("kubeconfig \(file): not valid YAML: \(error)")
        }
        files = [file]
        currentContext = raw.currentContext.flatMap { $0.isEmpty ? nil : $0 }
        func resolve(_ path: String?) -> String? {
            guard let path, !path.isEmpty else { return nil }
            if path.hasPrefix("/") || folder.isEmpty { return path }
            if path.hasPrefix("~/") { return (path as NSString).expandingTildeInPath }
            return (folder as NSString).appendingPathComponent(path)
        }
        func base64(_ text: String?, _ field: String) throws -> Data? {
            guard let text, !text.isEmpty else { return nil }
            let cleaned = text.filter { !$0.isWhitespace }
            guard let data = Data(base64Encoded: cleaned) else {
                throw KubeClientError.configuration("kubeconfig \(file): \(field): not valid base64")
            }
            return data
        }
        for (index, entry) in (raw.clusters ?? []).enumerated() {
            guard let name = entry.name, !name.isEmpty else {
                throw KubeClientError.configuration("kubeconfig \(file): clusters[\(index)]: name: missing")
            }
            guard clusters[name] == nil else { continue }
            let value = entry.cluster ?? RawCluster()
            clusters[name] = Cluster(
                server: value.server,
                certificateAuthority: resolve(value.certificateAuthority),
                certificateAuthorityData: try base64(value.certificateAuthorityData, "cluster \"\(name)\": certificate-authority-data"),
                insecureSkipTLSVerify: value.insecureSkipTLSVerify ?? false,
                tlsServerName: value.tlsServerName, proxyURL: value.proxyURL, file: file)
        }
        for (index, entry) in (raw.users ?? []).enumerated() {
            guard let name = entry.name, !name.isEmpty else {
                throw KubeClientError.configuration("kubeconfig \(file): users[\(index)]: name: missing")
            }
            guard users[name] == nil else { continue }
            let value = entry.user ?? RawUser()
            var exec: ExecConfig?
            if let rawExec = value.exec {
                guard let command = rawExec.command, !command.isEmpty else {
                    throw KubeClientError.configuration("kubeconfig \(file): user \"\(name)\": exec.command: missing")
                }
                let apiVersion = rawExec.apiVersion ?? ""
                guard ExecConfig.supportedAPIVersions.contains(apiVersion) else {
                    throw KubeClientError.configuration(
                        "kubeconfig \(file): user \"\(name)\": exec.apiVersion: \"\(apiVersion)\" is not supported (use client.authentication.k8s.io/v1 or v1beta1)")
                }
                // A command with a slash is a path relative to the kubeconfig; a bare name is looked up in PATH.
                let resolvedCommand = command.contains("/") ? resolve(command) ?? command : command
                exec = ExecConfig(
                    command: resolvedCommand, args: rawExec.args ?? [],
                    env: (rawExec.env ?? []).map { ExecConfig.EnvVar(name: $0.name ?? "", value: $0.value ?? "") },
                    apiVersion: apiVersion, installHint: rawExec.installHint,
                    provideClusterInfo: rawExec.provideClusterInfo ?? false)
            }
            users[name] = User(
                token: value.token.flatMap { $0.isEmpty ? nil : $0 },
                tokenFile: resolve(value.tokenFile),
                clientCertificate: resolve(value.clientCertificate),
                clientCertificateData: try base64(value.clientCertificateData, "user \"\(name)\": client-certificate-data"),
                clientKey: resolve(value.clientKey),
                clientKeyData: try base64(value.clientKeyData, "user \"\(name)\": client-key-data"),
                username: value.username, password: value.password, exec: exec,
                authProviderName: value.authProvider?.name, file: file)
        }
        for (index, entry) in (raw.contexts ?? []).enumerated() {
            guard let name = entry.name, !name.isEmpty else {
                throw KubeClientError.configuration("kubeconfig \(file): contexts[\(index)]: name: missing")
            }
            guard contexts[name] == nil else { continue }
            let value = entry.context ?? RawContext()
            contexts[name] = Context(
                cluster: value.cluster ?? "", user: value.user ?? "",
                namespace: value.namespace.flatMap { $0.isEmpty ? nil : $0 }, file: file)
        }
    }

    /// Reads and merges files in order. Missing files are an error when `requireAll` (an explicit
    /// `--kubeconfig`), and skipped otherwise (entries of `KUBECONFIG`, as kubectl does).
    public static func load(files: [String], requireAll: Bool) throws -> Kubeconfig {
        var merged = Kubeconfig()
        for file in files where !file.isEmpty {
            guard FileManager.default.fileExists(atPath: file) else {
                if requireAll { throw KubeClientError.configuration("kubeconfig \(file): file not found") }
                continue
            }
            guard let data = FileManager.default.contents(atPath: file) else {
                throw KubeClientError.configuration("kubeconfig \(file): cannot be read")
            }
            guard let text = String(data: data, encoding: .utf8) else {
                throw KubeClientError.configuration("kubeconfig \(file): not UTF-8 text")
            }
            merged.merge(try Kubeconfig(yaml: text, file: file))
        }
        if merged.files.isEmpty {
            throw KubeClientError.configuration("kubeconfig: none of \(files.joined(separator: ", ")) exists")
        }
        return merged
    }

    /// Adds another file's entries; entries already present win.
    public mutating func merge(_ other: Kubeconfig) {
        files += other.files
        if currentContext == nil { currentContext = other.currentContext }
        clusters.merge(other.clusters) { mine, _ in mine }
        users.merge(other.users) { mine, _ in mine }
        contexts.merge(other.contexts) { mine, _ in mine }
    }

    /// The client configuration for a context (the current one when nil).
    public func configuration(context requested: String? = nil) throws -> ClientConfiguration {
        let where_ = "kubeconfig \(files.joined(separator: ":"))"
        guard let contextName = requested ?? currentContext else {
            throw KubeClientError.configuration("\(where_): current-context: not set and no context was given")
        }
        guard let context = contexts[contextName] else {
            throw KubeClientError.configuration("\(where_): context \"\(contextName)\": not found")
        }
        let at = "kubeconfig \(context.file): context \"\(contextName)\""
        guard let cluster = clusters[context.cluster] else {
            throw KubeClientError.configuration("\(at): cluster \"\(context.cluster)\": not found")
        }
        guard let server = cluster.server, !server.isEmpty else {
            throw KubeClientError.configuration("kubeconfig \(cluster.file): context \"\(contextName)\": cluster \"\(context.cluster)\": server: missing")
        }
        guard let url = URLComponents(string: server), let scheme = url.scheme, scheme == "https" || scheme == "http",
              url.host?.isEmpty == false
        else {
            throw KubeClientError.configuration("kubeconfig \(cluster.file): context \"\(contextName)\": cluster \"\(context.cluster)\": server: \"\(server)\" is not an http(s) URL")
        }
        var tls = TLSOptions(insecureSkipVerify: cluster.insecureSkipTLSVerify, serverName: cluster.tlsServerName)
        if let data = cluster.certificateAuthorityData {
            tls.caData = data
        } else if let path = cluster.certificateAuthority {
            guard FileManager.default.isReadableFile(atPath: path) else {
                throw KubeClientError.configuration("kubeconfig \(cluster.file): context \"\(contextName)\": cluster \"\(context.cluster)\": certificate-authority: \(path): file not found")
            }
            tls.caFile = path
        }
        var authentication = Authentication.none
        if !context.user.isEmpty {
            guard let user = users[context.user] else {
                throw KubeClientError.configuration("\(at): user \"\(context.user)\": not found")
            }
            let userAt = "kubeconfig \(user.file): context \"\(contextName)\": user \"\(context.user)\""
            if let provider = user.authProviderName {
                throw KubeClientError.configuration("\(userAt): auth-provider: \"\(provider)\" is not supported; use an exec credential plugin")
            }
            func readable(_ path: String, _ field: String) throws -> String {
                guard FileManager.default.isReadableFile(atPath: path) else {
                    throw KubeClientError.configuration("\(userAt): \(field): \(path): file not found")
                }
                return path
            }
            if let data = user.clientCertificateData {
                tls.clientCertificateData = data
            } else if let path = user.clientCertificate {
                tls.clientCertificateFile = try readable(path, "client-certificate")
            }
            if let data = user.clientKeyData {
                tls.clientKeyData = data
            } else if let path = user.clientKey {
                tls.clientKeyFile = try readable(path, "client-key")
            }
            let hasCertificate = tls.clientCertificateData != nil || tls.clientCertificateFile != nil
            let hasKey = tls.clientKeyData != nil || tls.clientKeyFile != nil
            if hasCertificate != hasKey {
                throw KubeClientError.configuration("\(userAt): \(hasCertificate ? "client-key" : "client-certificate"): missing (a client certificate needs both)")
            }
            if let token = user.token {
                authentication = .bearerToken(token)
            } else if let path = user.tokenFile {
                authentication = .tokenFile(try readable(path, "tokenFile"))
            } else if let exec = user.exec {
                authentication = .exec(exec)
            } else if let username = user.username {
                authentication = .basic(username: username, password: user.password ?? "")
            }
        }
        return ClientConfiguration(
            server: server.hasSuffix("/") ? String(server.dropLast()) : server,
            tls: tls, authentication: authentication,
            namespace: context.namespace ?? "default", proxyURL: cluster.proxyURL,
            source: "kubeconfig \(context.file), context \"\(contextName)\"")
    }
}

/// An exec credential plugin (`users[].user.exec`).
public struct ExecConfig: Sendable, Equatable {
    public struct EnvVar: Sendable, Equatable {
        public var name: String
        public var value: String
    }

    public static let supportedAPIVersions = ["client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1"]

    public var command: String
    public var args: [String]
    public var env: [EnvVar]
    public var apiVersion: String
    public var installHint: String?
    public var provideClusterInfo: Bool

    public init(command: String, args: [String] = [], env: [EnvVar] = [], apiVersion: String,
                installHint: String? = nil, provideClusterInfo: Bool = false) {
        self.command = command
        self.args = args
        self.env = env
        self.apiVersion = apiVersion
        self.installHint = installHint
        self.provideClusterInfo = provideClusterInfo
    }
}

/// Describes a decoding error as `path.to.field: reason`.
func describe(_ error: DecodingError) -> String {
    func path(_ keys: [any CodingKey]) -> String {
        var text = ""
        for key in keys {
            if let index = key.intValue {
                text += "[\(index)]"
            } else {
                text += (text.isEmpty ? "" : ".") + key.stringValue
            }
        }
        return text.isEmpty ? "(top level)" : text
    }
    switch error {
    case .typeMismatch(let type, let context):
        return "\(path(context.codingPath)): expected \(type)"
    case .valueNotFound(let type, let context):
        return "\(path(context.codingPath)): expected \(type), found nothing"
    case .keyNotFound(let key, let context):
        return "\(path(context.codingPath + [key])): missing"
    case .dataCorrupted(let context):
        return "\(path(context.codingPath)): \(context.debugDescription)"
    @unknown default:
        return "\(error)"
    }
}

// MARK: - The file format

private struct RawKubeconfig: Decodable {
    var currentContext: String?
    var clusters: [NamedCluster]?
    var users: [NamedUser]?
    var contexts: [NamedContext]?

    enum CodingKeys: String, CodingKey {
        case currentContext = "current-context", clusters, users, contexts
    }
}

private struct NamedCluster: Decodable {
    var name: String?
    var cluster: RawCluster?
}

private struct RawCluster: Decodable {
    var server: String?
    var certificateAuthority: String?
    var certificateAuthorityData: String?
    var insecureSkipTLSVerify: Bool?
    var tlsServerName: String?
    var proxyURL: String?

    enum CodingKeys: String, CodingKey {
        case server
        case certificateAuthority = "certificate-authority"
        case certificateAuthorityData = "certificate-authority-data"
        case insecureSkipTLSVerify = "insecure-skip-tls-verify"
        case tlsServerName = "tls-server-name"
        case proxyURL = "proxy-url"
    }
}

private struct NamedUser: Decodable {
    var name: String?
    var user: RawUser?
}

private struct RawUser: Decodable {
    var token: String?
    var tokenFile: String?
    var clientCertificate: String?
    var clientCertificateData: String?
    var clientKey: String?
    var clientKeyData: String?
    var username: String?
    var password: String?
    var exec: RawExec?
    var authProvider: RawAuthProvider?

    enum CodingKeys: String, CodingKey {
        case token, tokenFile, username, password, exec
        case clientCertificate = "client-certificate"
        case clientCertificateData = "client-certificate-data"
        case clientKey = "client-key"
        case clientKeyData = "client-key-data"
        case authProvider = "auth-provider"
    }
}

private struct RawAuthProvider: Decodable {
    var name: String?
}

private struct RawExec: Decodable {
    struct Env: Decodable {
        var name: String?
        var value: String?
    }

    var command: String?
    var args: [String]?
    var env: [Env]?
    var apiVersion: String?
    var installHint: String?
    var provideClusterInfo: Bool?
}

private struct NamedContext: Decodable {
    var name: String?
    var context: RawContext?
}

private struct RawContext: Decodable {
    var cluster: String?
    var user: String?
    var namespace: String?
}
