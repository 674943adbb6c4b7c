import Foundation
import ImageBuilder
import KubeClient
import KubeTypes
import RegistryClient
import RegistryTypes
import Synchronization

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

/// Asks registries about images: resolves base images and checks push access. A protocol so the
/// reconciler's failure paths can also be driven without a registry.
public protocol RegistryInspector: Sendable {
    /// `credentials`: the build's merged docker config (pull secret, and the push secret, which
    /// kaniko also pulls with).
    func inspectBaseImage(_ reference: String, credentials: DockerConfig?) async throws -> BaseImageFacts
    /// Whether `pushSecret` may push to `repository`; throws `RegistryError` for a denial or failure.
    func checkPushAccess(to repository: String, pushSecret: Secret?) async throws
}

/// The `RegistryInspector` on the real registry client. Push checks are remembered for a while per
/// repository and secret version, so a burst of builds does not ask the token service each time.
public final class LiveRegistryInspector: RegistryInspector {
    let client: RegistryClient
    let pushCheckTTL: TimeInterval
    private let pushChecks = Mutex<[String: Date]>([:])

    public init(client: RegistryClient, pushCheckTTL: TimeInterval = 600) {
        self.client = client
        self.pushCheckTTL = pushCheckTTL
    }

    public func inspectBaseImage(_ reference: String, credentials: DockerConfig?) async throws -> BaseImageFacts {
        let parsed = try ImageReference(parsing: reference)
        let credential = credentials?.credential(forRegistry: parsed.registry)
        let resolved = try await client.resolve(parsed, credential: credential)
        return BaseImageFacts(
            digest: resolved.digest.description, user: resolved.config.user ?? "",
            hasConda: hasConda(config: resolved.config), looksJupyterReady: imageLooksJupyterReady(config: resolved.config),
            authentication: "\(resolved.authentication)")
    }

    public func checkPushAccess(to repository: String, pushSecret: Secret?) async throws {
        let parsed = try ImageReference(parsing: repository)
        let cacheKey = "\(parsed.name)|\(pushSecret?.metadata.uid ?? "")|\(pushSecret?.metadata.resourceVersion ?? "")"
        if let checked = pushChecks.withLock({ $0[cacheKey] }), Date().timeIntervalSince(checked) < pushCheckTTL { return }
        let credential = try pushSecret.flatMap { try DockerConfig(secret: $0).credential(forRegistry: parsed.registry) }
        let access = try await client.checkPushAccess(repository: parsed, credential: credential)
        if let denial = access.denial { throw denial }
        pushChecks.withLock { $0[cacheKey] = Date() }
    }
}
