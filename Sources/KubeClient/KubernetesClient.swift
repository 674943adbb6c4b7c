import CoreMetrics
/// The transport types (TLSOptions, TransportError, HTTPResponse) are part of this module's API.
import CurlHTTP
import Foundation
import Logging
import KubeTypes

/// A client for one Kubernetes API server, as one user. Cheap to share: requests from every task
/// go through one connection pool (HTTP/1.1 connections kept and reused; see `HTTPClient`).
public final class KubernetesClient: Sendable {
    public let configuration: ClientConfiguration
    let http: HTTPClient
    let credentials: CredentialSource
    let logger: Logger
    let rateLimiter: TokenBucket?

    public init(configuration: ClientConfiguration, http: HTTPClient = .shared,
                logger: Logger = Logger(label: "kube-client")) {
        self.configuration = configuration
        self.http = http
        self.credentials = CredentialSource(configuration: configuration)
        self.logger = logger
        self.rateLimiter = configuration.rateLimit.map(TokenBucket.init)
    }

    /// The namespace requests use when none is given.
    public var defaultNamespace: String { configuration.namespace }

    // MARK: - Raw requests

    /// One API request: method, path and query, optional body.
    public struct Request: Sendable {
        public var method: String
        /// The path below the server URL, e.g. `/api/v1/namespaces/default/pods`.
        public var path: String
        public var query: [(String, String)]
        public var body: Data?
        public var contentType: String?
        public var accept: String
        /// nil uses the configuration's request timeout; `.none` for streams.
        public var timeout: Timeout

        public enum Timeout: Sendable {
            case standard
            case none
            case custom(Duration)
        }

        public init(method: String = "GET", path: String, query: [(String, String)] = [], body: Data? = nil,
                    contentType: String? = nil, accept: String = "application/json", timeout: Timeout = .standard) {
            self.method = method
            self.path = path
            self.query = query
            self.body = body
            self.contentType = contentType
            self.accept = accept
            self.timeout = timeout
        }

        /// `GET /api/v1/...`, for messages.
        public var summary: String { "\(method) \(path)" }
    }

    /// Sends a request and returns the response; error statuses throw `APIError`. Retries a 401
    /// once with fresh credentials (token file, exec plugin) and honours `Retry-After` on 429.
    public func send(_ request: Request) async throws -> HTTPResponse {
        var attempt = 0
        while true {
            attempt += 1
            try await rateLimiter?.acquire()
            let response = try await http.send(try await makeHTTPRequest(request))
            record(request.method, response.status)
            if response.status < 400 { return response }
            let error = APIError(code: response.status, body: response.body,
                                 retryAfter: response.headers["Retry-After"], request: request.summary)
            if try await shouldRetry(error, attempt: attempt) { continue }
            throw error
        }
    }

    /// Sends a request whose response body is streamed (watches, followed logs). Error statuses
    /// throw `APIError` after reading the (small) error body.
    public func stream(_ request: Request, bufferLimit: Int = 1 << 20) async throws -> HTTPStreamingResponse {
        var attempt = 0
        while true {
            attempt += 1
            let response = try await http.stream(try await makeHTTPRequest(request), bufferLimit: bufferLimit)
            record(request.method, response.status)
            if response.status < 400 { return response }
            let body = try await response.collectBody(limit: 64 << 10)
            let error = APIError(code: response.status, body: body,
                                 retryAfter: response.headers["Retry-After"], request: request.summary)
            if try await shouldRetry(error, attempt: attempt) { continue }
            throw error
        }
    }

    private func shouldRetry(_ error: APIError, attempt: Int) async throws -> Bool {
        if error.isUnauthorized, attempt == 1, credentials.canRefresh {
            await credentials.invalidate()
            return true
        }
        if error.isTooManyRequests, attempt <= 5, let seconds = error.retryAfterSeconds {
            logger.debug("throttled by the API server", metadata: ["retryAfter": "\(seconds)s", "request": "\(error.request)"])
            try await Task.sleep(for: .seconds(min(max(seconds, 1), 30)))
            return true
        }
        return false
    }

    private func makeHTTPRequest(_ request: Request) async throws -> HTTPRequest {
        let presented = try await credentials.credentials()
        var url = configuration.server + request.path
        if !request.query.isEmpty {
            url += "?" + request.query.map { "\(percentEncode($0.0))=\(percentEncode($0.1))" }.joined(separator: "&")
        }
        var headers: HTTPHeaders = ["Accept": request.accept, "User-Agent": configuration.userAgent]
        if let contentType = request.contentType { headers.add("Content-Type", contentType) }
        if let authorization = presented.authorization { headers.add("Authorization", authorization) }
        var tls = configuration.tls
        if let certificate = presented.clientCertificateData, let key = presented.clientKeyData {
            tls.clientCertificateData = certificate
            tls.clientCertificateFile = nil
            tls.clientKeyData = key
            tls.clientKeyFile = nil
        }
        let timeout: Duration?
        switch request.timeout {
        case .standard: timeout = configuration.requestTimeout
        case .none: timeout = nil
        case .custom(let value): timeout = value
        }
        return HTTPRequest(method: request.method, url: url, headers: headers, body: request.body, tls: tls,
                           proxy: configuration.proxyURL, timeout: timeout,
                           maximumBodySize: configuration.maximumResponseSize)
    }

    private func record(_ method: String, _ code: Int) {
        Counter(label: "rest_client_requests_total", dimensions: [("code", String(code)), ("method", method)])
            .increment()
    }

    // MARK: - Paths

    /// The path of a collection or of one object (and optionally a subresource).
    public func path(for resource: ResourceType, namespace: String?, name: String? = nil,
                     subresource: String? = nil) -> String {
        var path = resource.groupVersionPath
        if resource.namespaced {
            path += "/namespaces/" + percentEncode(namespace ?? defaultNamespace)
        }
        path += "/" + resource.plural
        if let name {
            path += "/" + percentEncode(name)
            if let subresource { path += "/" + subresource }
        }
        return path
    }

    func decode<T: Decodable>(_ type: T.Type, from data: Data, request: String,
                              profile: DecodingProfile = .everything) throws -> T {
        do {
            return try KubeJSON.decoder(profile: profile).decode(T.self, from: data)
        } catch let error as DecodingError {
            let excerpt = String(decoding: data.prefix(200), as: UTF8.self)
            throw KubeClientError.decoding(
                type: "\(T.self)", request: request, detail: "\(describe(error)) (\(data.count) bytes: \(excerpt))")
        }
    }

    func encode<T: Encodable>(_ value: T) throws -> Data {
        try KubeJSON.encoder.encode(value)
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
func percentEncode(_ text: String) -> String {
    var allowed = CharacterSet.alphanumerics
    allowed.insert(charactersIn: "-._~")
    // `alphanumerics` includes non-ASCII letters; restrict to ASCII.
    return text.unicodeScalars.map { scalar -> String in
        if scalar.isASCII, allowed.contains(scalar) { return String(scalar) }
        return String(scalar).utf8.map { String(format: "%%%02X", $0) }.joined()
    }.joined()
}
