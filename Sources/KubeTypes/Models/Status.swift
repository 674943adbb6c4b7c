import Foundation

/// The API's `Status` object: the body of every error response (and of watch `ERROR` events).
public struct Status: Codable, Sendable, Hashable {
    public var apiVersion: String?
    public var kind: String?
    /// "Success" or "Failure".
    public var status: String?
    public var message: String?
    /// Machine-readable reason: NotFound, AlreadyExists, Conflict, Invalid, Forbidden, Unauthorized,
    /// Expired, Gone, TooManyRequests, ServerTimeout, …
    public var reason: String?
    public var details: StatusDetails?
    public var code: Int?

    public init(status: String? = "Failure", message: String? = nil, reason: String? = nil,
                details: StatusDetails? = nil, code: Int? = nil) {
        self.apiVersion = "v1"
        self.kind = "Status"
        self.status = status
        self.message = message
        self.reason = reason
        self.details = details
        self.code = code
    }
}

public struct StatusDetails: Codable, Sendable, Hashable {
    public var name: String?
    public var group: String?
    public var kind: String?
    public var uid: String?
    public var causes: [StatusCause]?
    public var retryAfterSeconds: Int?

    public init(name: String? = nil, group: String? = nil, kind: String? = nil, causes: [StatusCause]? = nil,
                retryAfterSeconds: Int? = nil) {
        self.name = name
        self.group = group
        self.kind = kind
        self.causes = causes
        self.retryAfterSeconds = retryAfterSeconds
    }
}

/// One field-level reason, e.g. for `Invalid`.
public struct StatusCause: Codable, Sendable, Hashable {
    public var reason: String?
    public var message: String?
    public var field: String?

    public init(reason: String? = nil, message: String? = nil, field: String? = nil) {
        self.reason = reason
        self.message = message
        self.field = field
    }
}
