import CurlHTTP
import Foundation
import KubeTypes

/// How requests authenticate (client certificates travel in `ClientConfiguration.tls`).
public enum Authentication: Sendable, Equatable {
    case none
    case bearerToken(String)
    /// A token read from a file and re-read when it changes (rotated service-account tokens).
    case tokenFile(String)
    case basic(username: String, password: String)
    /// An exec credential plugin, run when a credential is needed, cached until it expires.
    case exec(ExecConfig)
}

/// Everything needed to reach one API server as one user.
public struct ClientConfiguration: Sendable, Equatable {
    /// `https://host:port`, without a trailing slash.
    public var server: String
    public var tls: TLSOptions
    public var authentication: Authentication
    /// The namespace of the context (`default` when unset).
    public var namespace: String
    public var proxyURL: String?
    /// Where this came from, for messages.
    public var source: String
    /// Per-request timeout for everything but watches and followed logs.
    public var requestTimeout: Duration
    /// Sent as `User-Agent`.
    public var userAgent: String
    /// A client-side limit on requests (not watches); nil for none.
    public var rateLimit: RateLimit? = nil
    /// A response body (of anything but a watch or a followed log, which stream) larger than this
    /// fails the request with a `TransportError` of kind `responseTooLarge` instead of being held in
    /// memory: 64 MiB, far above a page of a paged list (500 objects) of anything but huge objects.
    public var maximumResponseSize: Int = 64 << 20

    public init(server: String, tls: TLSOptions = TLSOptions(), authentication: Authentication = .none,
                namespace: String = "default", proxyURL: String? = nil, source: String = "explicit configuration",
                requestTimeout: Duration = .seconds(30), userAgent: String = "image-builder") {
        self.server = server
        self.tls = tls
        self.authentication = authentication
        self.namespace = namespace
        self.proxyURL = proxyURL
        self.source = source
        self.requestTimeout = requestTimeout
        self.userAgent = userAgent
    }

    /// The standard service-account mount of a pod.
    public static let serviceAccountDirectory = "/var/run/secrets/kubernetes.io/serviceaccount"

    /// In-cluster configuration: `KUBERNETES_SERVICE_HOST`/`_PORT`, the service-account token
    /// (re-read when it rotates), `ca.crt` and `namespace` from `directory`.
    public static func inCluster(
        environment: [String: String] = ProcessInfo.processInfo.environment,
        directory: String = serviceAccountDirectory
    ) throws -> ClientConfiguration {
        guard let host = environment["KUBERNETES_SERVICE_HOST"], !host.isEmpty else {
            throw KubeClientError.configuration("in-cluster configuration: KUBERNETES_SERVICE_HOST is not set (not running in a pod?)")
        }
        guard let port = environment["KUBERNETES_SERVICE_PORT"], !port.isEmpty, Int(port) != nil else {
            throw KubeClientError.configuration("in-cluster configuration: KUBERNETES_SERVICE_PORT is not set to a port number")
        }
        let tokenPath = directory + "/token"
        guard FileManager.default.isReadableFile(atPath: tokenPath) else {
            throw KubeClientError.configuration("in-cluster configuration: \(tokenPath): file not found")
        }
        let caPath = directory + "/ca.crt"
        var tls = TLSOptions()
        if FileManager.default.isReadableFile(atPath: caPath) { tls.caFile = caPath }
        let namespace = (try? String(contentsOfFile: directory + "/namespace", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let hostPart = host.contains(":") ? "[\(host)]" : host
        return ClientConfiguration(
            server: "https://\(hostPart):\(port)", tls: tls, authentication: .tokenFile(tokenPath),
            namespace: namespace.flatMap { $0.isEmpty ? nil : $0 } ?? "default",
            source: "in-cluster service account")
    }

    /// The configuration kubectl and controllers would pick: an explicit kubeconfig path, else
    /// `KUBECONFIG` (merged), else in-cluster, else `~/.kube/config`.
    public static func load(
        kubeconfig: String? = nil, context: String? = nil,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> ClientConfiguration {
        if let kubeconfig, !kubeconfig.isEmpty {
            return try Kubeconfig.load(files: [kubeconfig], requireAll: true).configuration(context: context)
        }
        if let list = environment["KUBECONFIG"], !list.isEmpty {
            let files = list.split(separator: ":").map(String.init)
            return try Kubeconfig.load(files: files, requireAll: false).configuration(context: context)
        }
        if environment["KUBERNETES_SERVICE_HOST"]?.isEmpty == false, context == nil {
            return try inCluster(environment: environment)
        }
        let home = environment["HOME"] ?? NSHomeDirectory()
        return try Kubeconfig.load(files: [home + "/.kube/config"], requireAll: true).configuration(context: context)
    }
}
