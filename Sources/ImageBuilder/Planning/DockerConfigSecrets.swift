import Foundation
import KubeTypes
import RegistryTypes

// Docker config Secrets are read on the operator side: `RegistryTypes` knows the docker config
// format, not Kubernetes Secrets or files.

extension DockerConfig {
    /// The config of a Secret: `.dockerconfigjson` (type `kubernetes.io/dockerconfigjson`) or
    /// `.dockercfg` (type `kubernetes.io/dockercfg`), from `data` or `stringData`.
    public init(secret: Secret) throws(FormatError) {
        let name = secret.metadata.name.map { "secret \"\($0)\"" } ?? "the secret"
        let type = secret.type ?? ""
        let keys: [String]
        switch type {
        case "kubernetes.io/dockerconfigjson": keys = [".dockerconfigjson"]
        case "kubernetes.io/dockercfg": keys = [".dockercfg"]
        default: keys = [".dockerconfigjson", ".dockercfg"]
        }
        for key in keys {
            let bytes = secret.data?[key] ?? secret.stringData?[key].map { Data($0.utf8) }
            guard let bytes else { continue }
            do {
                try self.init(json: bytes)
            } catch {
                throw FormatError("\(name): \(key): \(error.description)")
            }
            return
        }
        throw FormatError(
            "\(name) (type \(type.isEmpty ? "unset" : type)) has no \(keys.joined(separator: " or ")) key; "
                + "a pull or push secret is of type kubernetes.io/dockerconfigjson")
    }

    /// Reads the contents of a file: a Kubernetes Secret (YAML or JSON) holding a docker config,
    /// or a bare docker `config.json` / `.dockercfg`. YAML goes through the hardened `YAMLLoader`
    /// (size, alias and depth limits), as every other input does.
    public static func load(fileContents data: Data) throws(FormatError) -> DockerConfig {
        guard let text = String(data: data, encoding: .utf8) else { throw FormatError("the file is not UTF-8 text") }
        let stream = YAMLLoader.load(text)
        if let error = stream.error { throw FormatError("the file is neither JSON nor YAML: \(error)") }
        guard stream.documents.count <= 1 else {
            throw FormatError("the file holds \(stream.documents.count) documents; one secret or docker config is expected")
        }
        let value = stream.documents.first?.value ?? .null
        if value["kind"]?.stringValue == "Secret" || value["apiVersion"] != nil {
            guard value["kind"]?.stringValue == "Secret" else {
                throw FormatError("the file holds a \(value["kind"]?.stringValue ?? "resource without kind"), not a Secret")
            }
            var value = value
            if value["metadata"] == nil { value["metadata"] = .object([:]) }
            let secret: Secret
            do { secret = try value.decode(as: Secret.self) } catch {
                throw FormatError("the Secret in the file cannot be read: \(error)")
            }
            return try DockerConfig(secret: secret)
        }
        return try DockerConfig(value: value)
    }
}
