import Foundation
import KubeTypes
import RegistryTypes

/// The registry credentials of a build as one docker config JSON (`{"auths": {…}}`), which is all
/// kaniko reads: the base image's pull secret and the operator's push secret merged.
public struct RegistryCredentials: Sendable, Hashable {
    /// The merged `config.json`, keys sorted.
    public let dockerConfigJSON: Data
    /// Registries both secrets name, where the push secret's entry was kept.
    public let overriddenHosts: [String]
    /// The merged configuration, for looking up a registry's credential.
    public let dockerConfig: DockerConfig
    /// The push secret's own configuration (nil without a push secret).
    public let pushConfig: DockerConfig?

    /// The push secret's credential for `registry`: what pushing authenticates with.
    public func pushCredential(forRegistry registry: String) -> RegistryCredential? {
        pushConfig?.credential(forRegistry: registry)
    }

    public static let secretType = "kubernetes.io/dockerconfigjson"
    public static let secretKey = ".dockerconfigjson"

    /// Merges the registries of `pull` and `push` (either may be nil; `.dockercfg` secrets too).
    /// Where both name a registry, the push secret's entry wins: pushing must work, and push
    /// credentials can pull too.
    public static func merge(push: Secret?, pull: Secret?) throws(CredentialsError) -> RegistryCredentials {
        func config(_ secret: Secret?) throws(CredentialsError) -> DockerConfig? {
            guard let secret else { return nil }
            do {
                return try DockerConfig(secret: secret)
            } catch {
                throw CredentialsError(secret: secret.metadata.name ?? "", reason: error.description)
            }
        }
        let pushConfig = try config(push)
        let merged = mergeDockerConfigs(push: pushConfig, pull: try config(pull))
        return RegistryCredentials(dockerConfigJSON: merged.jsonData, overriddenHosts: merged.overriddenHosts,
                                   dockerConfig: merged.config, pushConfig: pushConfig)
    }
}

public struct CredentialsError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The Secret at fault.
    public var secret: String
    public var reason: String

    public var description: String { reason }
}
