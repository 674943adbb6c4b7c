import CurlHTTP
import Foundation
import KubeTypes

/// An error response from the Kubernetes API: the HTTP code and the decoded `Status`.
public struct APIError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The HTTP status code.
    public var code: Int
    /// The `Status` the server sent (synthesised from the body when it sent something else).
    public var status: Status
    /// The `Retry-After` header or `details.retryAfterSeconds`, in seconds.
    public var retryAfterSeconds: Int?
    /// The request that failed: method and path, for messages.
    public var request: String

    public init(code: Int, status: Status, retryAfterSeconds: Int? = nil, request: String = "") {
        self.code = code
        self.status = status
        self.retryAfterSeconds = retryAfterSeconds ?? status.details?.retryAfterSeconds
        self.request = request
    }

    /// Decodes an error response body. Non-`Status` bodies become the message.
    public init(code: Int, body: Data, retryAfter: String? = nil, request: String = "") {
        var status = (try? KubeJSON.decoder.decode(Status.self, from: body)).flatMap { $0.kind == "Status" ? $0 : nil }
        if status == nil {
            let text = String(decoding: body.prefix(1024), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            status = Status(message: text.isEmpty ? "HTTP \(code)" : text, reason: APIError.defaultReason(for: code), code: code)
        }
        self.init(code: code, status: status!, retryAfterSeconds: retryAfter.flatMap { Int($0) }, request: request)
    }

    public var reason: String { status.reason ?? APIError.defaultReason(for: code) }
    public var message: String { status.message ?? "HTTP \(code)" }
    /// Field-level causes (for `Invalid`).
    public var causes: [StatusCause] { status.details?.causes ?? [] }

    public var isNotFound: Bool { code == 404 || reason == "NotFound" }
    public var isAlreadyExists: Bool { code == 409 && reason == "AlreadyExists" }
    /// 409 because the object changed since it was read (stale `resourceVersion`).
    public var isConflict: Bool { code == 409 && reason != "AlreadyExists" }
    /// 410: the requested resourceVersion is too old (compacted); relist.
    public var isGone: Bool { code == 410 || reason == "Expired" || reason == "Gone" }
    public var isInvalid: Bool { code == 422 || reason == "Invalid" }
    public var isForbidden: Bool { code == 403 || reason == "Forbidden" }
    public var isUnauthorized: Bool { code == 401 || reason == "Unauthorized" }
    public var isTooManyRequests: Bool { code == 429 || reason == "TooManyRequests" }
    public var isServerTimeout: Bool { code == 504 || reason == "ServerTimeout" || reason == "Timeout" }
    /// Worth retrying as is: throttling, timeouts, server errors.
    public var isRetryable: Bool { isTooManyRequests || isServerTimeout || code >= 500 }

    public var description: String {
        var text = "\(request.isEmpty ? "" : request + ": ")\(message) (\(reason), HTTP \(code))"
        let fields = causes.compactMap { cause -> String? in
            guard let message = cause.message else { return nil }
            return cause.field.map { "\($0): \(message)" } ?? message
        }
        if !fields.isEmpty, !fields.allSatisfy({ message.contains($0) }) {
            text += "; " + fields.joined(separator: "; ")
        }
        return text
    }

    static func defaultReason(for code: Int) -> String {
        switch code {
        case 400: return "BadRequest"
        case 401: return "Unauthorized"
        case 403: return "Forbidden"
        case 404: return "NotFound"
        case 405: return "MethodNotAllowed"
        case 409: return "Conflict"
        case 410: return "Expired"
        case 415: return "UnsupportedMediaType"
        case 422: return "Invalid"
        case 429: return "TooManyRequests"
        case 500: return "InternalError"
        case 503: return "ServiceUnavailable"
        case 504: return "Timeout"
        default: return "Unknown"
        }
    }
}

/// Client-side failures. The client throws `APIError` for error responses, `TransportError` (from
/// CurlHTTP) when no response arrived, and these for the rest.
public enum KubeClientError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The answer could not be decoded.
    case decoding(type: String, request: String, detail: String)
    /// The configuration cannot be used (missing credentials, bad URL, broken kubeconfig…).
    case configuration(String)
    /// A credential plugin failed.
    case credentialPlugin(String)

    public var description: String {
        switch self {
        case .decoding(let type, let request, let detail): return "\(request): cannot decode \(type): \(detail)"
        case .configuration(let message): return message
        case .credentialPlugin(let message): return message
        }
    }
}

extension Error {
    /// The Kubernetes API error, if this is one.
    public var kubeAPIError: APIError? { self as? APIError }

    /// True when this error is a 404 from the API.
    public var isNotFound: Bool { kubeAPIError?.isNotFound ?? false }

    /// True when no answer came because the server could not be reached or went away: the
    /// connection was refused, closed or reset mid-transfer, or timed out. Not for TLS,
    /// configuration or decoding failures, which trying again does not fix.
    public var isServerUnreachable: Bool {
        guard let transport = self as? TransportError else { return false }
        switch transport.kind {
        case .connectionRefused, .connectionClosed, .timedOut, .hostNotFound: return true
        default: return false
        }
    }
}
