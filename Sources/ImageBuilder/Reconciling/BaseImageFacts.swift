import Foundation

/// What the operator learns about a base image before it builds on it.
public struct BaseImageFacts: Sendable, Hashable {
    /// The manifest (or index) digest the reference resolved to; `FROM` is pinned to it.
    public var digest: String
    /// The user the image runs as (`USER` restored at the end of the Dockerfile); "" for root.
    public var user: String
    public var hasConda: Bool
    public var looksJupyterReady: Bool
    /// How the registry was reached (anonymous, basic as X, bearer token …), for messages.
    public var authentication: String

    public init(digest: String, user: String, hasConda: Bool, looksJupyterReady: Bool, authentication: String = "") {
        self.digest = digest
        self.user = user
        self.hasConda = hasConda
        self.looksJupyterReady = looksJupyterReady
        self.authentication = authentication
    }
}
