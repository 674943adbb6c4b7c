import Crypto
import RegistryTypes

/// The spec hash, computed exactly as PrimeHub does so existing image tags stay valid:
/// `hex(sha1(parts.joined(";")))` cut to 8 characters, where parts are the base image, then
/// `apt:[a,b]`, `pip:[…]` and `conda:[…]` for each non-empty list (items joined by ',', in order).
/// `pullSecret` is not hashed.
///
/// `env`, which PrimeHub does not have, adds one last part when non-empty:
/// `env:` followed by a JSON array of `"NAME=VALUE"` strings in list order, each written as a
/// canonical JSON string (see `Quoting.json`): `env:["LANG=C.UTF-8","TZ=UTC"]`. A spec without env
/// therefore hashes exactly like PrimeHub's.
public enum SpecHash {
    public static let length = 8

    /// The text that is hashed.
    public static func input(of spec: ImageSpecSpec) -> String {
        var parts = [spec.baseImage]
        for (label, list) in [("apt", spec.packages.apt), ("pip", spec.packages.pip), ("conda", spec.packages.conda)] {
            if let list, !list.isEmpty { parts.append("\(label):[\(list.joined(separator: ","))]") }
        }
        if let env = spec.env, !env.isEmpty {
            let items = env.map { Quoting.json("\($0.name)=\($0.value ?? "")") }
            parts.append("env:[" + items.joined(separator: ",") + "]")
        }
        return parts.joined(separator: ";")
    }

    public static func compute(_ spec: ImageSpecSpec) -> String {
        String(sha1Hex(input(of: spec)).prefix(length))
    }

    /// Lower-case hex SHA-1 of the UTF-8 bytes of `text`.
    static func sha1Hex(_ text: String) -> String {
        Insecure.SHA1.hash(data: Array(text.utf8)).lowercaseHex
    }
}

/// Where built images are pushed, from the operator configuration.
public enum PushDestination: Sendable, Hashable {
    /// One repository for every image: `<repository>:<name>-<hash>` (PrimeHub's `pushRepo`).
    case repository(String)
    /// A repository per ImageSpec below a prefix: `<prefix>/<name>:<hash>` (PrimeHub's `pushRepoPrefix`).
    case prefix(String)

    /// The repository the image named `name` goes to.
    public func repository(for name: String) -> String {
        switch self {
        case .repository(let repository): return repository
        case .prefix(let prefix): return "\(prefix)/\(name)"
        }
    }
}

/// Names derived from an ImageSpec's name and hash.
public enum BuildNaming {
    /// `<destination>:<name>-<hash>` or `<prefix>/<name>:<hash>`, as PrimeHub names them.
    public static func targetImage(name: String, hash: String, destination: PushDestination) -> String {
        switch destination {
        case .repository(let repository): return "\(repository):\(name)-\(hash)"
        case .prefix(let prefix): return "\(prefix)/\(name):\(hash)"
        }
    }

    public static let maxJobNameLength = 63

    /// `<name>-<hash>` (PrimeHub's build name). When that is longer than 63 characters the name is
    /// cut, and 5 hex digits of the full name's SHA-1 keep cut names apart:
    /// `<name cut to 48>-<name digest>-<hash>`. The hash is always kept whole.
    public static func jobName(imageSpecName name: String, hash: String) -> String {
        let plain = "\(name)-\(hash)"
        if plain.count <= maxJobNameLength { return plain }
        let nameDigest = SpecHash.sha1Hex(name).prefix(5)
        let room = maxJobNameLength - hash.count - nameDigest.count - 2
        var cut = String(name.prefix(room))
        while let last = cut.last, !(last.isASCII && (last.isLetter || last.isNumber)) { cut.removeLast() }
        return "\(cut)-\(nameDigest)-\(hash)"
    }
}
