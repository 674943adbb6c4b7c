import CurlHTTP
import Foundation
import KubeTypes
import Logging
import RegistryTypes
import Synchronization

/// How to reach one registry.
public struct RegistryOptions: Sendable, Hashable {
    /// Plain HTTP or HTTPS without certificate verification: HTTPS (unverified) is tried first,
    /// then plain HTTP, as the docker CLI does for its insecure registries. The scheme that
    /// answered is remembered. Loopback registries are not insecure unless marked.
    public var insecure: Bool
    /// A PEM CA bundle (file or bytes) to verify the registry with instead of the system store.
    public var caFile: String?
    public var caData: Data?

    public init(insecure: Bool = false, caFile: String? = nil, caData: Data? = nil) {
        self.insecure = insecure
        self.caFile = caFile
        self.caData = caData
    }

    var tls: TLSOptions {
        TLSOptions(caFile: caFile, caData: caData, insecureSkipVerify: insecure)
    }
}

/// An image reference resolved against its registry: the digests to pin and the platform image's config.
public struct ResolvedImage: Sendable, Hashable {
    /// The reference as asked for.
    public var reference: ImageReference
    /// What the reference points at: the index digest for a multi-platform image, else the manifest
    /// digest. This is the digest to pin (`FROM name@digest`) and to watch for tag moves.
    public var digest: Digest
    public var mediaType: String
    /// The chosen platform's image manifest (equal to `digest` for a single-platform image).
    public var manifestDigest: Digest
    public var manifestMediaType: String
    /// The platform of the image whose config was read.
    public var platform: Platform
    /// The platforms the index offers; empty for a single-platform image.
    public var indexPlatforms: [Platform]
    public var configDigest: Digest
    public var config: ImageConfiguration
    /// How the manifest request was authenticated.
    public var authentication: AuthenticationMethod

    /// `name@digest`: the reference to build `FROM`.
    public var pinnedReference: ImageReference { reference.pinned(to: digest) }
}

/// A manifest as fetched: its bytes, media type and (verified) digest.
public struct FetchedManifest: Sendable, Hashable {
    public var data: Data
    public var mediaType: String
    public var digest: Digest
    public var authentication: AuthenticationMethod
}

/// The result of a push-access check.
public enum PushAccess: Sendable, Hashable {
    /// Push is allowed; how that was established.
    case granted(PushAccessEvidence)
    /// Push is not allowed: missing or rejected credentials, or denied access (the error says which).
    case denied(RegistryError)

    public var isGranted: Bool { denial == nil }

    /// Why push is not allowed, nil when it is.
    public var denial: RegistryError? {
        if case .denied(let error) = self { return error }
        return nil
    }
}

public enum PushAccessEvidence: Sendable, Hashable, CustomStringConvertible {
    /// The token service granted `push` in the token's `access` claim.
    case tokenGrant(realm: String)
    /// The registry accepted the start of a blob upload (then cancelled).
    case uploadAccepted

    public var description: String {
        switch self {
        case .tokenGrant(let realm): "the token service \(realm) granted push"
        case .uploadAccepted: "the registry accepted a blob upload (cancelled again)"
        }
    }
}

/// An OCI/Docker registry (distribution v2 API) client on the libcurl transport.
///
/// One client serves every registry; it keeps, per registry host, the authentication challenge it
/// learned, the scheme of insecure registries, and bearer tokens (per host, scope and credential,
/// so tokens of one pull secret never serve another). Methods throw `RegistryError` (or
/// `CancellationError`).
public final class RegistryClient: Sendable {
    public struct Configuration: Sendable {
        /// Per-registry settings, keyed by the registry as written in references (`docker.io`,
        /// `host:5000`) or by the API host.
        public var registries: [String: RegistryOptions]
        /// The settings of every registry `registries` does not name.
        public var otherRegistries = RegistryOptions()
        /// The platform picked from an index when none is asked for.
        public var defaultPlatform: Platform
        public var userAgent: String
        /// The limit for one request.
        public var timeout: Duration
        public var maxManifestBytes: Int
        public var maxConfigBytes: Int
        public var maxRedirects: Int

        public init(
            registries: [String: RegistryOptions] = [:], defaultPlatform: Platform = .linuxAMD64,
            userAgent: String = "image-builder", timeout: Duration = .seconds(60),
            maxManifestBytes: Int = 4 << 20, maxConfigBytes: Int = 8 << 20, maxRedirects: Int = 5
        ) {
            self.registries = registries
            self.defaultPlatform = defaultPlatform
            self.userAgent = userAgent
            self.timeout = timeout
            self.maxManifestBytes = maxManifestBytes
            self.maxConfigBytes = maxConfigBytes
            self.maxRedirects = maxRedirects
        }
    }

    public let configuration: Configuration
    private let http: HTTPClient
    private let logger: Logger
    private let state = Mutex(State())

    private struct State {
        var challenges: [String: AuthenticationChallenge] = [:]
        var tokens: [String: CachedToken] = [:]
        var schemes: [String: String] = [:]
    }

    private struct CachedToken {
        var token: String
        var realm: String
        var expires: ContinuousClock.Instant
    }

    public init(configuration: Configuration = Configuration(), http: HTTPClient = .shared,
                logger: Logger = Logger(label: "image-builder.registry")) {
        self.configuration = configuration
        self.http = http
        self.logger = logger
    }

    // MARK: - Public operations

    /// Resolves a reference: its manifest (and, from an index, the platform's manifest), then the
    /// image config. Every piece is verified against its digest.
    public func resolve(_ reference: ImageReference, platform: Platform? = nil,
                        credential: RegistryCredential? = nil) async throws -> ResolvedImage {
        let wanted = platform ?? configuration.defaultPlatform
        let target = Target(reference: reference, credential: credential, actions: "pull")
        let top = try await manifest(target, reference: reference.manifestReference, expected: reference.digest)
        var chosen = top
        var indexPlatforms: [Platform] = []
        var descriptorPlatform: Platform?
        if MediaType.indexes.contains(top.mediaType) {
            let index: ImageIndex = try decode(top.data, target, what: "index")
            indexPlatforms = index.platforms
            let candidates = index.manifests.filter { MediaType.imageManifests.contains(MediaType.essence($0.mediaType)) }
            guard let entry = wanted.select(from: candidates, platform: { $0.platform?.platform }) else {
                throw target.error(.platformNotFound(requested: wanted, available: indexPlatforms))
            }
            descriptorPlatform = entry.platform?.platform
            chosen = try await manifest(target, reference: entry.digest.description, expected: entry.digest)
        }
        guard MediaType.imageManifests.contains(chosen.mediaType) else {
            throw target.error(.unsupportedMediaType(chosen.mediaType))
        }
        let image: ImageManifest = try decode(chosen.data, target, what: "manifest")
        let configType = MediaType.essence(image.config.mediaType)
        guard MediaType.configs.contains(configType) else {
            throw target.error(.unsupportedMediaType(configType), message: "not a container image config")
        }
        let configData = try await blob(target, descriptor: image.config, limit: configuration.maxConfigBytes)
        let config: ImageConfiguration = try decode(configData, target, what: "image config")
        return ResolvedImage(
            reference: reference, digest: top.digest, mediaType: top.mediaType, manifestDigest: chosen.digest,
            manifestMediaType: chosen.mediaType,
            platform: config.platform ?? descriptorPlatform ?? wanted, indexPlatforms: indexPlatforms,
            configDigest: image.config.digest, config: config, authentication: top.authentication)
    }

    /// The digest a reference points at now, from a `HEAD` (no download, and no pull counted by
    /// registries that rate-limit pulls); falls back to `GET` when the registry sends no
    /// `Docker-Content-Digest`. For watching a base tag move. A reference that carries a digest is
    /// returned as is, unchecked (use `resolve` to know that it exists).
    public func digest(of reference: ImageReference, credential: RegistryCredential? = nil) async throws -> Digest {
        if let digest = reference.digest { return digest }
        let target = Target(reference: reference, credential: credential, actions: "pull")
        let path = "/v2/\(reference.repository)/manifests/\(reference.manifestReference)"
        let exchange = try await request(target, method: "HEAD", path: path, headers: ["Accept": MediaType.manifestAccept])
        let response = exchange.response
        guard response.status == 200 else {
            throw failure(response, target, exchange.authentication, operation: "a manifest request",
                          notFound: .manifestNotFound(reference: reference.manifestReference))
        }
        if let header = response.headers["Docker-Content-Digest"], let digest = try? Digest(parsing: header) {
            return digest
        }
        return try await manifest(target, reference: reference.manifestReference, expected: nil).digest
    }

    /// Fetches a manifest or index by tag or digest, verifying its digest.
    public func manifest(_ reference: ImageReference, credential: RegistryCredential? = nil) async throws -> FetchedManifest {
        try await manifest(Target(reference: reference, credential: credential, actions: "pull"),
                           reference: reference.manifestReference, expected: reference.digest)
    }

    /// Fetches a blob of `repository` (the reference's tag and digest are ignored), verifying it.
    public func blob(_ digest: Digest, in repository: ImageReference, credential: RegistryCredential? = nil,
                     limit: Int = 64 << 20) async throws -> Data {
        let target = Target(reference: repository, credential: credential, actions: "pull")
        return try await blob(target, descriptor: Descriptor(mediaType: "", digest: digest, size: -1), limit: limit)
    }

    /// Whether `credential` may push to `repository` (tag and digest ignored).
    ///
    /// How it is decided, by what the registry's `/v2/` challenge says:
    /// - Bearer (token service): a token is requested for `repository:<repo>:push,pull`. A token
    ///   service answers with the actions it grants, which a JWT lists in its `access` claim: push
    ///   granted there is `granted`, a token without push `denied`. The service rejecting the
    ///   credentials is `denied` (unauthorized). A token that is not a JWT (opaque) is tried with
    ///   an upload probe instead.
    /// - Basic, or no authentication at all: basic-auth registries keep no scopes to ask about, so
    ///   the only way to know is to try: an authenticated `POST /v2/<repo>/blobs/uploads/` starts an
    ///   upload (202 Accepted → `granted`), which is cancelled at once with `DELETE` on the returned
    ///   `Location`; 401 → `denied` (credentials), 403/404/405 → `denied`. The probe uploads no
    ///   content and pushes no manifest, so no repository or tag appears; the DELETE removes the
    ///   upload session (distribution 2.8 keeps only its few-byte hash state, which its upload
    ///   purging removes), as does the purging should the DELETE fail.
    /// Unreachable registries, 429 and 5xx throw: those are not answers about access.
    public func checkPushAccess(repository: ImageReference, credential: RegistryCredential?) async throws -> PushAccess {
        let target = Target(reference: repository, credential: credential, actions: "push,pull")
        var challenge = state.withLock { $0.challenges[target.host] }
        if challenge == nil {
            let ping = try await send(target, method: "GET", path: "/v2/", headers: [:], body: nil, limit: 64 << 10)
            if ping.status == 401 {
                challenge = learnChallenge(ping, target)
            } else if ping.status != 200 {
                throw failure(ping, target, .anonymous, operation: "the API version check (GET /v2/)", notFound: nil)
            }
        }
        if let challenge, challenge.scheme == "bearer", let realm = challenge.realm {
            let token: String
            do {
                token = try await fetchToken(target, challenge: challenge).token
            } catch let error as RegistryError where error.isAccessProblem {
                return .denied(error)
            }
            if let claims = TokenClaims(jwt: token) {
                return claims.grants("push", onRepository: target.repository)
                    ? .granted(.tokenGrant(realm: realm))
                    : .denied(target.error(.denied(username: credential?.username),
                                           message: "the token service granted no push access"))
            }
        }
        return try await uploadProbe(target)
    }

    // MARK: - Targets

    /// One operation's registry, repository, credential and the actions it needs.
    struct Target: Sendable {
        var registry: String
        var host: String
        var repository: String
        var credential: RegistryCredential?
        var actions: String

        init(reference: ImageReference, credential: RegistryCredential?, actions: String) {
            registry = reference.registry
            host = reference.apiHost
            repository = reference.repository
            self.credential = credential
            self.actions = actions
        }

        var scope: String { "repository:\(repository):\(actions)" }

        func error(_ kind: RegistryError.Kind, message: String? = nil) -> RegistryError {
            RegistryError(registry: registry, repository: repository, kind: kind, serverMessage: message)
        }
    }

    private func options(forHost host: String, registry: String? = nil) -> RegistryOptions {
        if let registry, let options = configuration.registries[registry] { return options }
        if let options = configuration.registries[host] { return options }
        if host == ImageReference.dockerHubAPIHost, let options = configuration.registries[ImageReference.dockerHub] {
            return options
        }
        return configuration.otherRegistries
    }

    // MARK: - Manifests and blobs

    private func manifest(_ target: Target, reference: String, expected: Digest?) async throws -> FetchedManifest {
        let path = "/v2/\(target.repository)/manifests/\(reference)"
        let exchange = try await request(target, method: "GET", path: path, headers: ["Accept": MediaType.manifestAccept],
                                         limit: configuration.maxManifestBytes)
        let response = exchange.response
        guard response.status == 200 else {
            throw failure(response, target, exchange.authentication, operation: "a manifest request",
                          notFound: .manifestNotFound(reference: reference))
        }
        let data = response.body
        let mediaType = Self.manifestMediaType(header: response.headers["Content-Type"], body: data)
        guard MediaType.imageManifests.contains(mediaType) || MediaType.indexes.contains(mediaType) else {
            throw target.error(.unsupportedMediaType(mediaType.isEmpty ? "unknown" : mediaType))
        }
        let algorithm = expected?.algorithm ?? "sha256"
        let actual = Digest.of(data, algorithm: algorithm)
        if let expected, expected != actual {
            throw target.error(.digestMismatch(expected: expected, actual: actual))
        }
        if let header = response.headers["Docker-Content-Digest"], let announced = try? Digest(parsing: header),
           announced.algorithm == algorithm, announced != actual
        {
            throw target.error(.digestMismatch(expected: announced, actual: actual))
        }
        return FetchedManifest(data: data, mediaType: mediaType, digest: actual, authentication: exchange.authentication)
    }

    /// The manifest's media type: the `Content-Type`, unless it is generic (`application/json`,
    /// absent), then the body's `mediaType` field, else the shape (`manifests` → OCI index,
    /// `config` → OCI manifest). Never fails: an unreadable body leaves the declared type.
    public static func manifestMediaType(header: String?, body: Data) -> String {
        let declared = header.map(MediaType.essence) ?? ""
        if !declared.isEmpty, declared != "application/json", declared != "text/plain",
           declared != "application/octet-stream"
        {
            return declared
        }
        guard let json = try? JSONDecoder().decode(JSONValue.self, from: body) else { return declared }
        if let type = json["mediaType"]?.stringValue { return MediaType.essence(type) }
        if json["manifests"] != nil { return MediaType.ociIndex }
        if json["config"] != nil { return MediaType.ociManifest }
        return declared
    }

    private func blob(_ target: Target, descriptor: Descriptor, limit: Int) async throws -> Data {
        if descriptor.size > Int64(limit) {
            throw target.error(.invalidContent("blob \(descriptor.digest) is \(descriptor.size) bytes, more than the \(limit) read"))
        }
        let path = "/v2/\(target.repository)/blobs/\(descriptor.digest)"
        let exchange = try await request(target, method: "GET", path: path, headers: [:], limit: limit)
        let response = exchange.response
        guard response.status == 200 else {
            throw failure(response, target, exchange.authentication, operation: "a blob request",
                          notFound: .blobNotFound(descriptor.digest))
        }
        let actual = Digest.of(response.body, algorithm: descriptor.digest.algorithm)
        guard actual == descriptor.digest else {
            throw target.error(.digestMismatch(expected: descriptor.digest, actual: actual))
        }
        if descriptor.size >= 0, Int64(response.body.count) != descriptor.size {
            throw target.error(.invalidContent(
                "blob \(descriptor.digest) is \(response.body.count) bytes, the manifest says \(descriptor.size)"))
        }
        return response.body
    }

    private func uploadProbe(_ target: Target) async throws -> PushAccess {
        let path = "/v2/\(target.repository)/blobs/uploads/"
        let exchange: Exchange
        do {
            exchange = try await request(target, method: "POST", path: path, headers: [:], body: Data())
        } catch let error as RegistryError where error.isAccessProblem {
            return .denied(error)
        }
        let response = exchange.response
        switch response.status {
        case 202:
            if let location = response.headers["Location"] {
                await cancelUpload(target, location: location, authorization: exchange.authorization)
            }
            return .granted(.uploadAccepted)
        case 401, 403, 404, 405:
            return .denied(failure(response, target, exchange.authentication, operation: "starting a blob upload",
                                   notFound: .denied(username: exchange.authentication.username)))
        default:
            throw failure(response, target, exchange.authentication, operation: "starting a blob upload", notFound: nil)
        }
    }

    /// Best effort: an upload that is not cancelled is purged by the registry later.
    private func cancelUpload(_ target: Target, location: String, authorization: String?) async {
        let base = state.withLock { $0.schemes[target.host] } ?? "https"
        guard let url = URL(string: location, relativeTo: URL(string: "\(base)://\(target.host)/")) else { return }
        var headers: HTTPHeaders = ["User-Agent": configuration.userAgent]
        let hostPort = (url.host ?? "") + (url.port.map { ":\($0)" } ?? "")
        if let authorization, hostPort == target.host {
            headers.set("Authorization", authorization)
        }
        let options = options(forHost: target.host, registry: target.registry)
        let request = HTTPRequest(method: "DELETE", url: url.absoluteString, headers: headers, tls: options.tls,
                                  timeout: configuration.timeout)
        do {
            let response = try await http.send(request)
            logger.debug("cancelled probe upload", metadata: ["status": "\(response.status)", "registry": "\(target.registry)"])
        } catch {
            logger.debug("could not cancel probe upload", metadata: ["error": "\(error)", "registry": "\(target.registry)"])
        }
    }

    // MARK: - Authenticated requests

    struct Exchange: Sendable {
        var response: HTTPResponse
        var authentication: AuthenticationMethod
        var authorization: String?
    }

    /// Sends a registry API request, authenticating as the registry's challenge asks: a cached
    /// authorization first when there is one; on 401, the challenge is learned, a token fetched or
    /// basic credentials attached, and the request sent once more. A second 401 is the answer.
    private func request(_ target: Target, method: String, path: String, headers: HTTPHeaders, body: Data? = nil,
                         limit: Int? = nil) async throws -> Exchange {
        var authorization = cachedAuthorization(target)
        var renewed = false
        while true {
            var requestHeaders = headers
            if let authorization { requestHeaders.set("Authorization", authorization.header) }
            let response = try await send(target, method: method, path: path, headers: requestHeaders, body: body,
                                          limit: limit)
            let method = authorization?.method ?? .anonymous
            guard response.status == 401, !renewed else {
                return Exchange(response: response, authentication: method, authorization: authorization?.header)
            }
            guard let challenge = learnChallenge(response, target) else {
                throw failure(response, target, method, operation: "a request", notFound: nil)
            }
            authorization = try await authorize(target, challenge: challenge)
            guard authorization != nil else {
                throw target.error(.unauthorized(username: nil), message: Self.serverMessage(response.body))
            }
            renewed = true
        }
    }

    private func learnChallenge(_ response: HTTPResponse, _ target: Target) -> AuthenticationChallenge? {
        let challenges = AuthenticationChallenge.parse(response.headers.values(for: "WWW-Authenticate"))
        guard let challenge = challenges.first(where: { $0.scheme == "bearer" && $0.realm != nil })
            ?? challenges.first(where: { $0.scheme == "basic" })
        else { return nil }
        state.withLock { $0.challenges[target.host] = challenge }
        return challenge
    }

    private func cachedAuthorization(_ target: Target) -> (header: String, method: AuthenticationMethod)? {
        let key = tokenKey(target)
        return state.withLock { state -> (header: String, method: AuthenticationMethod)? in
            guard let challenge = state.challenges[target.host] else { return nil }
            if challenge.scheme == "basic", let credential = target.credential {
                return (Self.basicHeader(credential), .basic(username: credential.username, source: credential.source))
            }
            guard challenge.scheme == "bearer", let cached = state.tokens[key] else { return nil }
            guard cached.expires > .now else {
                state.tokens[key] = nil
                return nil
            }
            return ("Bearer \(cached.token)", .bearer(realm: cached.realm, username: target.credential?.username,
                                                       source: target.credential?.source))
        }
    }

    private func authorize(_ target: Target, challenge: AuthenticationChallenge) async throws
        -> (header: String, method: AuthenticationMethod)?
    {
        switch challenge.scheme {
        case "basic":
            guard let credential = target.credential else { return nil }
            return (Self.basicHeader(credential), .basic(username: credential.username, source: credential.source))
        default:
            let (token, realm) = try await fetchToken(target, challenge: challenge)
            return ("Bearer \(token)", .bearer(realm: realm, username: target.credential?.username,
                                               source: target.credential?.source))
        }
    }

    private func tokenKey(_ target: Target) -> String {
        let who = target.credential.map { Digest.of(Data("\($0.username)\u{0}\($0.password)".utf8)).short } ?? "anonymous"
        return "\(target.host) \(target.scope) \(who)"
    }

    /// Asks the token service of a Bearer challenge for the target's scope (with the credential as
    /// HTTP basic, when there is one) and caches the token until shortly before it expires.
    private func fetchToken(_ target: Target, challenge: AuthenticationChallenge) async throws -> (token: String, realm: String) {
        guard let realm = challenge.realm, var components = URLComponents(string: realm),
              let scheme = components.scheme?.lowercased(), scheme == "https" || scheme == "http",
              let realmHost = components.host
        else {
            throw target.error(.tokenServiceFailed(realm: challenge.realm ?? "(none)", detail: "the realm is not an http(s) URL"))
        }
        var query = components.queryItems ?? []
        if let service = challenge.service { query.append(URLQueryItem(name: "service", value: service)) }
        query.append(URLQueryItem(name: "scope", value: target.scope))
        if let credential = target.credential { query.append(URLQueryItem(name: "account", value: credential.username)) }
        components.queryItems = query
        // `+` in a query is a space to many servers; encode it.
        components.percentEncodedQuery = components.percentEncodedQuery?.replacingOccurrences(of: "+", with: "%2B")
        guard let url = components.url?.absoluteString else {
            throw target.error(.tokenServiceFailed(realm: realm, detail: "the realm is not a valid URL"))
        }
        var headers: HTTPHeaders = ["User-Agent": configuration.userAgent, "Accept": "application/json"]
        if let credential = target.credential { headers.set("Authorization", Self.basicHeader(credential)) }
        let realmPort = components.port.map { ":\($0)" } ?? ""
        let options = options(forHost: realmHost + realmPort,
                              registry: realmHost + realmPort == target.host ? target.registry : nil)
        let request = HTTPRequest(url: url, headers: headers, tls: options.tls, timeout: configuration.timeout)
        let response: HTTPResponse
        do {
            response = try await http.send(request)
        } catch let error as TransportError {
            if error.kind == .cancelled { throw CancellationError() }
            throw target.error(error.kind == .tlsVerificationFailed
                ? .tlsVerificationFailed("token service \(realm): \(error)")
                : .tokenServiceFailed(realm: realm, detail: error.description))
        }
        switch response.status {
        case 200:
            guard let answer = TokenResponse(json: response.body) else {
                throw target.error(.tokenServiceFailed(realm: realm, detail: "the answer has no token"))
            }
            let lifetime = answer.expiresIn
            let margin = min(10, lifetime / 5)
            let cached = CachedToken(token: answer.token, realm: realm,
                                     expires: .now + .seconds(lifetime - margin))
            let key = tokenKey(target)
            state.withLock { $0.tokens[key] = cached }
            logger.debug("token issued", metadata: ["realm": "\(realm)", "scope": "\(target.scope)", "expiresIn": "\(lifetime)"])
            return (answer.token, realm)
        case 401, 403:
            throw target.error(.unauthorized(username: target.credential?.username),
                               message: Self.serverMessage(response.body))
        case 429:
            throw target.error(.tooManyRequests, message: Self.serverMessage(response.body))
        default:
            throw target.error(.tokenServiceFailed(realm: realm, detail: "HTTP \(response.status)"),
                               message: Self.serverMessage(response.body))
        }
    }

    static func basicHeader(_ credential: RegistryCredential) -> String {
        "Basic " + Data("\(credential.username):\(credential.password)".utf8).base64EncodedString()
    }

    // MARK: - Transport: schemes, redirects, body limits

    /// Sends one request to the target's registry, following redirects (without the
    /// `Authorization` header once they leave the registry's host). For insecure registries HTTPS
    /// is tried first, then plain HTTP, and the scheme that answered is remembered.
    private func send(_ target: Target, method: String, path: String, headers: HTTPHeaders, body: Data?,
                      limit: Int?) async throws -> HTTPResponse {
        let options = options(forHost: target.host, registry: target.registry)
        let schemes: [String]
        if options.insecure {
            schemes = state.withLock { $0.schemes[target.host] }.map { [$0] } ?? ["https", "http"]
        } else {
            schemes = ["https"]
        }
        var lastError: TransportError?
        for scheme in schemes {
            do {
                let response = try await sendFollowingRedirects(
                    target, method: method, url: "\(scheme)://\(target.host)\(path)", headers: headers, body: body,
                    options: options, limit: limit)
                if options.insecure { state.withLock { $0.schemes[target.host] = scheme } }
                return response
            } catch let error as TransportError where error.kind != .cancelled {
                logger.debug("registry request failed", metadata: ["url": "\(error.url)", "error": "\(error)"])
                lastError = error
            }
        }
        let error = lastError!
        if error.kind == .tlsVerificationFailed { throw target.error(.tlsVerificationFailed(error.description)) }
        let hint = error.kind == .tlsHandshakeFailed && !options.insecure
            ? "; if the registry serves plain HTTP, mark it insecure" : ""
        throw target.error(.unreachable(error.description + hint))
    }

    private func sendFollowingRedirects(_ target: Target, method: String, url start: String, headers: HTTPHeaders,
                                        body: Data?, options: RegistryOptions, limit: Int?) async throws -> HTTPResponse {
        var url = start
        var headers = headers
        headers.set("User-Agent", configuration.userAgent)
        var tls = options.tls
        var redirects = 0
        while true {
            let request = HTTPRequest(method: method, url: url, headers: headers, body: body, tls: tls,
                                      timeout: configuration.timeout)
            let response = try await transfer(request, target: target, limit: method == "GET" ? limit : nil)
            guard [301, 302, 303, 307, 308].contains(response.status), method == "GET" || method == "HEAD",
                  let location = response.headers["Location"], redirects < configuration.maxRedirects,
                  let next = URL(string: location, relativeTo: URL(string: url))?.absoluteURL,
                  let scheme = next.scheme?.lowercased(), scheme == "https" || scheme == "http"
            else { return response }
            let from = URL(string: url)
            if next.host != from?.host || next.port != from?.port || scheme != from?.scheme?.lowercased() {
                headers.remove("Authorization")
                let hostPort = (next.host ?? "") + (next.port.map { ":\($0)" } ?? "")
                tls = hostPort == target.host ? options.tls : self.options(forHost: hostPort).tls
            }
            logger.debug("following redirect", metadata: ["status": "\(response.status)", "to": "\(next.host ?? "")"])
            url = next.absoluteString
            redirects += 1
        }
    }

    /// One request; GET bodies are read up to `limit` bytes (more is an error).
    private func transfer(_ request: HTTPRequest, target: Target, limit: Int?) async throws -> HTTPResponse {
        do {
            guard let limit else { return try await http.send(request) }
            let streamed = try await http.stream(request)
            if let length = streamed.headers["Content-Length"].flatMap(Int.init), length > limit,
               streamed.status == 200
            {
                streamed.body.cancel()
                throw target.error(.invalidContent("the response is \(length) bytes, more than the \(limit) read"))
            }
            let body = try await streamed.collectBody(limit: limit + 1)
            if body.count > limit, streamed.status == 200 {
                throw target.error(.invalidContent("the response is larger than the \(limit) bytes read"))
            }
            return HTTPResponse(status: streamed.status, headers: streamed.headers, body: body,
                                httpVersion: streamed.httpVersion)
        } catch let error as TransportError where error.kind == .cancelled {
            throw CancellationError()
        }
    }

    // MARK: - Errors

    /// The error for an unexpected answer: 404 → `notFound`, 401 → unauthorized, 403 → denied,
    /// 429 → rate-limited, 5xx → server error, else the status.
    private func failure(_ response: HTTPResponse, _ target: Target, _ authentication: AuthenticationMethod,
                         operation: String, notFound: RegistryError.Kind?) -> RegistryError {
        let message = Self.serverMessage(response.body)
        let username = authentication.username
        switch response.status {
        case 404 where notFound != nil:
            return target.error(notFound!, message: message)
        case 401:
            let challenge = AuthenticationChallenge.parse(response.headers.values(for: "WWW-Authenticate")).first
            if challenge?.error == "insufficient_scope" || (username != nil && authentication.isBearer) {
                return target.error(.denied(username: username), message: message)
            }
            return target.error(.unauthorized(username: username), message: message)
        case 403:
            return target.error(.denied(username: username), message: message)
        case 429:
            return target.error(.tooManyRequests, message: message)
        case 500...599:
            return target.error(.serverError(status: response.status), message: message)
        default:
            return target.error(.unexpectedStatus(status: response.status, operation: operation), message: message)
        }
    }

    /// The message of a distribution error body (`{"errors": [{"code", "message", "detail"}]}`).
    static func serverMessage(_ body: Data) -> String? {
        guard let json = try? JSONDecoder().decode(JSONValue.self, from: body),
              let first = json["errors"]?.arrayValue?.first
        else { return nil }
        let code = first["code"]?.stringValue
        let message = first["message"]?.stringValue
        switch (code, message) {
        case (let code?, let message?): return "\(code): \(message)"
        case (let code?, nil): return code
        case (nil, let message?): return message
        default: return nil
        }
    }

    private func decode<T: Decodable>(_ data: Data, _ target: Target, what: String) throws -> T {
        do {
            return try JSONDecoder().decode(T.self, from: data)
        } catch {
            throw target.error(.invalidContent("the \(what) cannot be read: \(Self.describe(error))"))
        }
    }

    private static func describe(_ error: any Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, let context):
            return "missing \((context.codingPath + [key]).map(\.stringValue).joined(separator: "."))"
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context),
             DecodingError.dataCorrupted(let context):
            let path = context.codingPath.map(\.stringValue).joined(separator: ".")
            return (path.isEmpty ? "" : "\(path): ") + context.debugDescription
        default:
            return "\(error)"
        }
    }
}

extension AuthenticationMethod {
    /// The user the request was authenticated as, nil when anonymous.
    public var username: String? {
        switch self {
        case .anonymous: nil
        case .basic(let username, _): username
        case .bearer(_, let username, _): username
        }
    }

    var isBearer: Bool {
        if case .bearer = self { return true }
        return false
    }
}
