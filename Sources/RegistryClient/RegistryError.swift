import Foundation
import RegistryTypes

/// Everything that can go wrong talking to a registry. The `description` is one sentence naming
/// the registry, the repository and what happened; it is written for an ImageSpec's conditions.
public struct RegistryError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        /// No manifest for this tag or digest (or no such repository).
        case manifestNotFound(reference: String)
        /// A blob the manifest names is missing.
        case blobNotFound(Digest)
        /// 401: credentials missing (`username` nil) or rejected.
        case unauthorized(username: String?)
        /// 403, or a valid login without the needed access.
        case denied(username: String?)
        /// No HTTP answer: DNS, connection, timeout (the transport's sentence).
        case unreachable(String)
        /// The server's certificate did not verify (the transport's sentence).
        case tlsVerificationFailed(String)
        /// An index without an image for the wanted platform.
        case platformNotFound(requested: Platform, available: [Platform])
        /// A manifest or config of a type this client does not read.
        case unsupportedMediaType(String)
        /// Content whose digest is not the one it was fetched by.
        case digestMismatch(expected: Digest, actual: Digest)
        /// 429.
        case tooManyRequests
        /// 5xx.
        case serverError(status: Int)
        /// Any other status the operation did not expect.
        case unexpectedStatus(status: Int, operation: String)
        /// A body that is not what the API promises (bad JSON, too large).
        case invalidContent(String)
        /// The bearer token service failed (not a credential rejection: that is `unauthorized`).
        case tokenServiceFailed(realm: String, detail: String)
    }

    /// The registry as written in references (`docker.io`, `127.0.0.1:5000`).
    public var registry: String
    /// The repository the operation was about, when there was one.
    public var repository: String?
    public var kind: Kind
    /// The registry's own message (`errors[0].message`), when it sent one.
    public var serverMessage: String?

    public init(registry: String, repository: String?, kind: Kind, serverMessage: String? = nil) {
        self.registry = registry
        self.repository = repository
        self.kind = kind
        self.serverMessage = serverMessage.flatMap { $0.isEmpty ? nil : $0 }
    }

    /// True when the same request may succeed later (unreachable, rate-limited, server errors);
    /// false for permanent answers (not found, unauthorized, denied, TLS, bad content).
    public var isRetryable: Bool {
        switch kind {
        case .unreachable, .tooManyRequests, .serverError: true
        case .tokenServiceFailed(_, let detail): !detail.hasPrefix("HTTP 4")
        default: false
        }
    }

    /// True for a missing manifest or blob.
    public var isNotFound: Bool {
        switch kind {
        case .manifestNotFound, .blobNotFound: true
        default: false
        }
    }

    /// True for missing/rejected credentials or denied access.
    public var isAccessProblem: Bool {
        switch kind {
        case .unauthorized, .denied: true
        default: false
        }
    }

    public var description: String {
        let registry = "registry \(registry)"
        let repository = self.repository.map { "repository \($0)" } ?? "the registry API"
        let onRegistry = "\(repository) on \(registry)"
        var sentence: String
        var includeServerMessage = false
        switch kind {
        case .manifestNotFound(let reference):
            sentence = "manifest \"\(reference)\" not found in \(onRegistry)"
        case .blobNotFound(let digest):
            sentence = "blob \(digest) not found in \(onRegistry)"
        case .unauthorized(nil):
            sentence = "\(registry) requires authentication for \(repository), and no credentials for \(self.registry) were given"
        case .unauthorized(let username?):
            sentence = "\(registry) rejected the credentials of user \"\(username)\" for \(repository) (unauthorized)"
        case .denied(nil):
            sentence = "\(registry) denied anonymous access to \(repository) (it may not exist, or it needs credentials)"
            includeServerMessage = true
        case .denied(let username?):
            sentence = "\(registry) denied user \"\(username)\" access to \(repository) (it may not exist, or the user lacks permission)"
            includeServerMessage = true
        case .unreachable(let detail):
            sentence = "\(registry) is unreachable (\(repository)): \(detail)"
        case .tlsVerificationFailed(let detail):
            sentence = "the TLS certificate of \(registry) could not be verified (\(repository)): \(detail); "
                + "give the registry's CA bundle, or mark the registry insecure"
        case .platformNotFound(let requested, let available):
            let offered = available.isEmpty ? "no platforms" : available.map(\.description).joined(separator: ", ")
            sentence = "\(onRegistry) has no image for platform \(requested); its index offers \(offered)"
        case .unsupportedMediaType(let type):
            sentence = "\(onRegistry) returned content of unsupported media type \"\(type)\""
        case .digestMismatch(let expected, let actual):
            sentence = "\(registry) returned content for \(repository) whose digest \(actual) does not match the expected \(expected)"
        case .tooManyRequests:
            sentence = "\(registry) is rate-limiting requests for \(repository) (429 Too Many Requests)"
            includeServerMessage = true
        case .serverError(let status):
            sentence = "\(registry) failed with HTTP \(status) for \(repository)"
            includeServerMessage = true
        case .unexpectedStatus(let status, let operation):
            sentence = "\(registry) answered HTTP \(status) to \(operation) for \(repository)"
            includeServerMessage = true
        case .invalidContent(let detail):
            sentence = "\(registry) returned invalid content for \(repository): \(detail)"
        case .tokenServiceFailed(let realm, let detail):
            sentence = "the token service \(realm) of \(registry) failed for \(repository): \(detail)"
        }
        if includeServerMessage, let serverMessage {
            sentence += " (the registry says: \(serverMessage.prefix(300)))"
        }
        return sentence
    }

    /// A platform that is not `os/arch` or `os/arch/variant`.
    public struct PlatformSyntax: Error, Sendable, Hashable, CustomStringConvertible {
        public var text: String
        public var description: String {
            "invalid platform \"\(text.debugEscaped)\": expected os/arch or os/arch/variant (linux/amd64, linux/arm64/v8)"
        }
    }
}
