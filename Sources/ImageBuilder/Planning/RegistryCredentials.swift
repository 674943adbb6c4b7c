import Foundation
import KubeTypes
import RegistryTypes

/// The registry credentials of a build as one docker config JSON (`{"auths": {…}}`), which is all
/// kaniko reads: the base image's pull secret and the operator's push secret merged. Apart from
/// it, the pull-only credentials: what a buildah build step that never sees the push secret gets.
public struct RegistryCredentials: Sendable, Hashable {
    /// The merged `config.json`, keys sorted.
    public let dockerConfigJSON: Data
    /// The pull-only credentials: the base image's pull secret and the operator's
    /// `registry.pullSecret` (whose entry wins where both name a registry).
    public let pullConfig: DockerConfig
    /// The push secret's registries, nil without a push secret.
    public let pushConfig: DockerConfig?
    /// Registries both secrets name, where the push secret's entry was kept.
    public let overriddenHosts: [String]
    /// The merged configuration, for looking up a registry's credential.
    public let dockerConfig: DockerConfig

    /// The push secret's credential for `registry`: what pushing authenticates with.
    public func pushCredential(forRegistry registry: String) -> RegistryCredential? {
        pushConfig?.credential(forRegistry: registry)
    }

    public static let secretType = "kubernetes.io/dockerconfigjson"
    public static let secretKey = ".dockerconfigjson"

    /// Merges the registries of `pull` and `push` (either may be nil; `.dockercfg` secrets too).
    /// Where both name a registry, the push secret's entry wins: pushing must work, and push
    /// credentials can pull too. `registryPull` is the operator's `registry.pullSecret` (a
    /// pull-only credential for its own registry), given to build steps instead of the push secret.
    public static func merge(push: Secret?, pull: Secret?, registryPull: Secret? = nil) throws(CredentialsError) -> RegistryCredentials {
        func config(_ secret: Secret?) throws(CredentialsError) -> DockerConfig? {
            guard let secret else { return nil }
            do {
                return try DockerConfig(secret: secret)
            } catch {
                throw CredentialsError(secret: secret.metadata.name ?? "", reason: error.description)
            }
        }
        let pullOnly = mergeDockerConfigs(push: try config(registryPull), pull: try config(pull)).config
        let pushConfig = try config(push)
        let merged = mergeDockerConfigs(push: pushConfig, pull: pullOnly)
        return RegistryCredentials(dockerConfigJSON: merged.jsonData, pullConfig: pullOnly, pushConfig: pushConfig,
                                   overriddenHosts: merged.overriddenHosts, dockerConfig: merged.config)
    }

    /// What a build step that must not push gets: the pull-only credentials, plus the push
    /// secret's entry for `cacheRegistry` when a layer cache is written there (the cache must be
    /// written during the build).
    public func buildStepConfig(cacheRegistry: String?) -> DockerConfig {
        guard let cacheRegistry, let push = pushConfig else { return pullConfig }
        let cacheEntries = push.entries.filter { $0.host == cacheRegistry }
        guard !cacheEntries.isEmpty else { return pullConfig }
        return mergeDockerConfigs(push: DockerConfig(entries: cacheEntries), pull: pullConfig).config
    }
}

public struct CredentialsError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The Secret at fault.
    public var secret: String
    public var reason: String

    public var description: String { reason }
}
