import Foundation
import KubeClient

/// The registry credentials of a build as one docker config JSON (`{"auths": {…}}`), which is all
/// kaniko reads: the base image's pull secret and the operator's push secret merged.
public struct RegistryCredentials: Sendable, Hashable {
    /// The merged `config.json`, keys sorted.
    public let dockerConfigJSON: Data

    public static let secretType = "kubernetes.io/dockerconfigjson"
    public static let secretKey = ".dockerconfigjson"
    static let legacySecretKey = ".dockercfg"

    /// Merges the `auths` of `pull` and `push` (either may be nil). Where both name a registry,
    /// the push secret's entry wins: pushing must work, and push credentials can pull too.
    public static func merge(push: Secret?, pull: Secret?) throws(CredentialsError) -> RegistryCredentials {
        var auths: [String: JSONValue] = [:]
        for secret in [pull, push].compactMap({ $0 }) {
            for (registry, entry) in try self.auths(of: secret) { auths[registry] = entry }
        }
        do {
            return RegistryCredentials(dockerConfigJSON: try KubeJSON.encoder.encode(JSONValue.object(["auths": .object(auths)])))
        } catch {
            throw CredentialsError(secret: push?.metadata.name ?? "", reason: "cannot encode the merged configuration: \(error)")
        }
    }

    /// The `auths` of a `kubernetes.io/dockerconfigjson` Secret, or of a legacy
    /// `kubernetes.io/dockercfg` one (whose JSON is the `auths` map itself).
    static func auths(of secret: Secret) throws(CredentialsError) -> [String: JSONValue] {
        let name = secret.metadata.name ?? ""
        let data = secret.data ?? [:]
        let (raw, legacy): (Data, Bool)
        if let modern = data[secretKey] {
            (raw, legacy) = (modern, false)
        } else if let old = data[legacySecretKey] {
            (raw, legacy) = (old, true)
        } else {
            throw CredentialsError(secret: name, reason: "has no \(secretKey) key (type must be \(secretType))")
        }
        guard let json = try? KubeJSON.decoder.decode(JSONValue.self, from: raw) else {
            throw CredentialsError(secret: name, reason: "\(legacy ? legacySecretKey : secretKey) is not valid JSON")
        }
        guard let auths = legacy ? json.objectValue : json["auths"]?.objectValue ?? (json["auths"] == nil ? [:] : nil) else {
            throw CredentialsError(secret: name, reason: "\"auths\" must be an object of registry to credentials")
        }
        for (registry, entry) in auths where entry.objectValue == nil {
            throw CredentialsError(secret: name, reason: "the entry for \(Quoting.displayed(registry)) is not an object")
        }
        return auths
    }
}

public struct CredentialsError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The Secret at fault.
    public var secret: String
    public var reason: String

    public var description: String { "Secret \(Quoting.displayed(secret)) \(reason)" }
}
