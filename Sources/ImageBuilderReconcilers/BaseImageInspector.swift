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
    /// Forgets any remembered push answer covering `repository`, with every credential (a build
    /// pushing there ended `PushFailed`), so the next check asks the registry again.
    func forgetPushAccess(to repository: String)
}

extension RegistryInspector {
    /// Nothing remembered, nothing to forget.
    public func forgetPushAccess(to repository: String) {}
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
/// - with `pushPrefix` (the configuration's `pushRepoPrefix`), a target `<prefix>/<name>` is keyed
///   by (prefix, credential) instead, so a burst of ImageSpecs, each with its own repository,
///   makes one push check in all. What a remembered prefix answer proves is narrower than the
///   key: a registry grants push per repository (a token's scope names one repository), so it
///   proves that this credential was granted push on one repository under the prefix (the first
///   one asked) within the TTL, and assumes the registry's policy treats the prefix's
///   repositories alike (a Harbor project, a GitLab group, a distribution htpasswd user). It is
///   asked again when the answer expires, when the credential changes, and after a build under the
///   prefix ended `PushFailed` (`forgetPushAccess`). A registry that refuses one repository of
///   the prefix is still caught: that build's push fails and the ImageSpec ends `PushFailed` from
///   the build itself, only later than the pre-check would have said so.
/// The registry client itself remembers which scheme an insecure registry answered on, so a
/// plain-HTTP registry is not tried over TLS again.
public final class LiveRegistryInspector: RegistryInspector {
    let client: RegistryClient
    /// Base-image answers by (reference, credential).
    public let baseImages: RegistryFactCache<BaseImageKey, BaseImageFacts>
    /// Granted push checks by (repository or prefix, credential).
    public let pushChecks: RegistryFactCache<PushCheckKey, Bool>
    /// The push prefix's name (registry host included, as `ImageReference.name` spells it);
    /// repositories directly below it share one push check.
    public let pushPrefix: String?

    /// A base-image resolution's key: the reference as written and the credential used for it.
    public struct BaseImageKey: Hashable, Sendable {
        var reference: String
        var credential: RegistryCredential?
    }

    /// A push check's key: the repository or the push prefix (registry host included) and the
    /// credential.
    public struct PushCheckKey: Hashable, Sendable {
        public enum Scope: Hashable, Sendable {
            case repository(String)
            case prefix(String)
        }
        public var scope: Scope
        public var credential: RegistryCredential?
    }

    /// `now` drives both caches' expiry (injectable for tests). `pushPrefix`: the configured
    /// `pushRepoPrefix`, whose repositories share one push check (nil: one check per repository).
    public init(client: RegistryClient, baseImageTTL: TimeInterval = 30, pushCheckTTL: TimeInterval = 600,
                pushPrefix: String? = nil, now: @escaping @Sendable () -> Date = { Date() }) {
        self.client = client
        self.baseImages = RegistryFactCache(timeToLive: baseImageTTL, now: now)
        self.pushChecks = RegistryFactCache(timeToLive: pushCheckTTL, now: now)
        // Parsed as a repository below it would be, so registry defaults (Docker Hub's
        // `library/`) normalise the prefix and its repositories alike.
        self.pushPrefix = pushPrefix.flatMap { ImageReference.parse($0 + "/x") }.map { String($0.name.dropLast(2)) }
    }

    /// The key `repository`'s push check is remembered under.
    public func pushCheckKey(for repository: ImageReference, credential: RegistryCredential?) -> PushCheckKey {
        let name = repository.name
        if let prefix = pushPrefix, name.hasPrefix(prefix + "/"), !name.dropFirst(prefix.count + 1).contains("/") {
            return PushCheckKey(scope: .prefix(prefix), credential: credential)
        }
        return PushCheckKey(scope: .repository(name), credential: credential)
    }

    public func forgetPushAccess(to repository: String) {
        guard let parsed = ImageReference.parse(repository) else { return }
        let scope = pushCheckKey(for: parsed, credential: nil).scope
        pushChecks.invalidate { $0.scope == scope }
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
        _ = try await pushChecks.value(for: pushCheckKey(for: parsed, credential: credential)) {
            let access = try await client.checkPushAccess(repository: parsed, credential: credential)
            if let denial = access.denial { throw denial }
            return true
        }
    }
}
