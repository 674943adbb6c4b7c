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

/// The `RegistryInspector` on the real registry client, with registry facts shared between
/// reconciles:
/// - a base-image resolution is remembered per (reference, credential for its registry) for
///   `baseImageTTL` (30 s by default), and concurrent reconciles asking for the same key wait for
///   the one request in flight, so a burst of ImageSpecs over one base image makes one resolution
///   per TTL instead of one per ImageSpec. A moved tag is still noticed: an answer is never served
///   longer than the TTL, so the next base check after that (`baseImages.checkInterval`, a spec
///   change, a restart) resolves the tag again.
/// - a granted push access is remembered per (registry and repository, credential) for
///   `pushCheckTTL` (10 minutes by default), with the same single flight; a changed secret is
///   another key and asks again. Denials and failures are not remembered.
/// The registry client itself remembers which scheme an insecure registry answered on, so a
/// plain-HTTP registry is not tried over TLS again.
public final class LiveRegistryInspector: RegistryInspector {
    let client: RegistryClient
    /// Base-image answers by (reference, credential).
    public let baseImages: RegistryFactCache<BaseImageKey, BaseImageFacts>
    /// Granted push checks by (repository, credential).
    public let pushChecks: RegistryFactCache<PushCheckKey, Bool>

    /// A base-image resolution's key: the reference as written and the credential used for it.
    public struct BaseImageKey: Hashable, Sendable {
        var reference: String
        var credential: RegistryCredential?
    }

    /// A push check's key: the repository (registry host included) and the credential.
    public struct PushCheckKey: Hashable, Sendable {
        var repository: String
        var credential: RegistryCredential?
    }

    /// `now` drives both caches' expiry (injectable for tests).
    public init(client: RegistryClient, baseImageTTL: TimeInterval = 30, pushCheckTTL: TimeInterval = 600,
                now: @escaping @Sendable () -> Date = { Date() }) {
        self.client = client
        self.baseImages = RegistryFactCache(timeToLive: baseImageTTL, now: now)
        self.pushChecks = RegistryFactCache(timeToLive: pushCheckTTL, now: now)
    }

    public func inspectBaseImage(_ reference: String, credentials: DockerConfig?) async throws -> BaseImageFacts {
        let parsed = try ImageReference(parsing: reference)
        let credential = credentials?.credential(forRegistry: parsed.registry)
        let client = self.client
        return try await baseImages.value(for: BaseImageKey(reference: reference, credential: credential)) {
            let resolved = try await client.resolve(parsed, credential: credential)
            return BaseImageFacts(
                digest: resolved.digest.description, user: resolved.config.user ?? "",
                hasConda: hasConda(config: resolved.config), looksJupyterReady: imageLooksJupyterReady(config: resolved.config),
                authentication: "\(resolved.authentication)")
        }
    }

    public func checkPushAccess(to repository: String, credential: RegistryCredential?) async throws {
        let parsed = try ImageReference(parsing: repository)
        let client = self.client
        _ = try await pushChecks.value(for: PushCheckKey(repository: parsed.name, credential: credential)) {
            let access = try await client.checkPushAccess(repository: parsed, credential: credential)
            if let denial = access.denial { throw denial }
            return true
        }
    }
}
