import Foundation
import ImageBuilder
import KubeClient
import KubeTypes
import RegistryClient
import RegistryTypes
import Synchronization

/// Asks registries about images: resolves base images and checks push access. A protocol so the
/// reconciler's failure paths can also be driven without a registry.
public protocol RegistryInspector: Sendable {
    /// `credentials`: the build's merged docker config (pull secret, and the push secret, which
    /// kaniko also pulls with).
    func inspectBaseImage(_ reference: String, credentials: DockerConfig?) async throws -> BaseImageFacts
    /// Whether `credential` may push to `repository`; throws `RegistryError` for a denial or failure.
    func checkPushAccess(to repository: String, credential: RegistryCredential?) async throws
    /// The image under a build's target tag (nil: no such tag); see `TargetImageLookup.swift`.
    func inspectTargetImage(_ reference: String, credential: RegistryCredential?) async throws -> TargetImageFacts?
}

/// The `RegistryInspector` on the real registry client. Push checks are remembered for a while per
/// repository and secret version, so a burst of builds does not ask the token service each time.
public final class LiveRegistryInspector: RegistryInspector {
    let client: RegistryClient
    let pushCheckTTL: TimeInterval
    private let pushChecks = Mutex<[PushCheckKey: Date]>([:])

    /// A push check is remembered per repository and credential (a changed secret asks again).
    private struct PushCheckKey: Hashable {
        var repository: String
        var credential: RegistryCredential?
    }

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

    public func checkPushAccess(to repository: String, credential: RegistryCredential?) async throws {
        let parsed = try ImageReference(parsing: repository)
        let cacheKey = PushCheckKey(repository: parsed.name, credential: credential)
        if let checked = pushChecks.withLock({ $0[cacheKey] }), Date().timeIntervalSince(checked) < pushCheckTTL { return }
        let access = try await client.checkPushAccess(repository: parsed, credential: credential)
        if let denial = access.denial { throw denial }
        pushChecks.withLock { $0[cacheKey] = Date() }
    }
}
