import Foundation
import KubeTypes

/// A username and password for one registry, and where they came from.
public struct RegistryCredential: Sendable, Hashable, CustomStringConvertible {
    public var username: String
    public var password: String
    /// The `auths` key they were found under (for messages: "from secret key …").
    public var source: String?

    public init(username: String, password: String, source: String? = nil) {
        self.username = username
        self.password = password
        self.source = source
    }

    /// Never shows the password.
    public var description: String {
        "user \"\(username)\"" + (source.map { " (auths key \"\($0)\")" } ?? "")
    }
}

/// The credentials of a docker `config.json` (`{"auths": {key: {auth|username+password}}}`), as
/// found in `kubernetes.io/dockerconfigjson` Secrets, or the legacy `.dockercfg` form
/// (`{key: {auth, email}}`, type `kubernetes.io/dockercfg`).
///
/// Keys are matched by host: a key may be written `host`, `host:port`, `https://host/v1/` or with
/// any scheme and path; the scheme and path are ignored and the host compares case-insensitively,
/// port included. Docker Hub's keys (`https://index.docker.io/v1/`, `index.docker.io`, `docker.io`,
/// `registry-1.docker.io`, `registry.hub.docker.com`) all mean Docker Hub. Credential helpers
/// (`credsStore`, `credHelpers`) and `identitytoken` logins are not supported: a pod has no helper.
public struct DockerConfig: Sendable, Hashable {
    /// One `auths` entry, as written (unknown fields kept for merging).
    public struct Entry: Sendable, Hashable {
        /// The key as written.
        public var key: String
        /// The registry host the key names (normalized; `docker.io` for Docker Hub).
        public var host: String
        /// The entry's JSON object.
        public var value: JSONValue

        /// The username and password of `auth` (base64 `user:pass`) or `username`/`password`;
        /// nil when the entry has neither.
        public var credential: RegistryCredential? {
            if let auth = value["auth"]?.stringValue, !auth.isEmpty {
                let cleaned = auth.filter { !$0.isWhitespace }
                guard let decoded = Data(base64Encoded: cleaned) ?? Data(base64Encoded: Self.padded(cleaned)),
                      let text = String(data: decoded, encoding: .utf8),
                      let colon = text.firstIndex(of: ":")
                else { return nil }
                return RegistryCredential(
                    username: String(text[..<colon]), password: String(text[text.index(after: colon)...]), source: key)
            }
            if let username = value["username"]?.stringValue, let password = value["password"]?.stringValue,
               !username.isEmpty
            {
                return RegistryCredential(username: username, password: password, source: key)
            }
            return nil
        }

        private static func padded(_ text: String) -> String {
            text + String(repeating: "=", count: (4 - text.count % 4) % 4)
        }
    }

    /// Why a secret or file holds no usable docker config.
    public struct FormatError: Error, Sendable, Hashable, CustomStringConvertible {
        public var description: String
        public init(_ description: String) { self.description = description }
    }

    /// The entries, in key order.
    public private(set) var entries: [Entry]

    public init(entries: [Entry] = []) {
        self.entries = entries.sorted { $0.key < $1.key }
    }

    /// Parses a `config.json` (`{"auths": …}`) or a legacy `.dockercfg` (`{host: {auth}}`).
    public init(json data: Data) throws(FormatError) {
        let value: JSONValue
        do { value = try JSONDecoder().decode(JSONValue.self, from: data) } catch {
            throw FormatError("the docker config is not valid JSON")
        }
        try self.init(value: value)
    }

    /// The config in a parsed JSON value: `{"auths": {…}}`, or a legacy bare map of keys to entries.
    public init(value: JSONValue) throws(FormatError) {
        guard let object = value.objectValue else { throw FormatError("the docker config is not a JSON object") }
        let auths: [String: JSONValue]
        if let nested = object["auths"] {
            guard let map = nested.objectValue else { throw FormatError("\"auths\" in the docker config is not an object") }
            auths = map
        } else if !object.isEmpty, object.values.allSatisfy({ $0["auth"] != nil || $0["username"] != nil }) {
            auths = object
        } else if object.isEmpty || object.keys.allSatisfy({ ["credsStore", "credHelpers", "HttpHeaders", "psFormat", "currentContext", "proxies", "experimental", "stackOrchestrator", "detachKeys", "plugins", "aliases", "features"].contains($0) }) {
            auths = [:]
        } else {
            throw FormatError("the docker config has no \"auths\" object")
        }
        var entries: [Entry] = []
        for (key, entry) in auths {
            guard entry.objectValue != nil else { throw FormatError("the docker config entry \"\(key)\" is not an object") }
            entries.append(Entry(key: key, host: Self.host(ofKey: key), value: entry))
        }
        self.init(entries: entries)
    }

    /// The credential for a registry as written in references (`docker.io`, `host:5000`): the entry
    /// whose key names the same host. When several do, a key written exactly as the host wins,
    /// then one without scheme or path, then the first in key order.
    public func credential(forRegistry registry: String) -> RegistryCredential? {
        let host = Self.host(ofKey: registry)
        let candidates = entries.filter { $0.host == host }
        let ranked = candidates.sorted { Self.rank($0, registry) < Self.rank($1, registry) }
        return ranked.lazy.compactMap(\.credential).first
    }

    /// How well a key names a registry: written exactly as it (0), without scheme or path (1), other (2).
    static func rank(_ entry: Entry, _ registry: String) -> Int {
        if entry.key == registry { return 0 }
        if !entry.key.contains("/") { return 1 }
        return 2
    }

    /// The normalized registry host of a key: scheme and path dropped, spaces around the host
    /// trimmed, lowercased, Docker Hub's aliases mapped to `docker.io`. Normalizing a host again
    /// gives the same host.
    public static func host(ofKey key: String) -> String {
        var text = Substring(key.trimmingCharacters(in: .whitespaces))
        if let scheme = text.range(of: "://") { text = text[scheme.upperBound...] }
        if let slash = text.firstIndex(of: "/") { text = text[..<slash] }
        let host = text.trimmingCharacters(in: .whitespaces).lowercased()
        return dockerHubAliases.contains(host) ? ImageReference.dockerHub : host
    }

    /// Every way Docker Hub is written as a config key or registry.
    public static let dockerHubAliases: Set<String> = [
        "docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com",
    ]

    /// The key Docker Hub's credentials are stored under by `docker login`, which every tool reads.
    public static let dockerHubKey = "https://index.docker.io/v1/"

    /// `{"auths": {…}}` with sorted keys.
    public var jsonData: Data {
        var auths: [String: JSONValue] = [:]
        for entry in entries { auths[entry.key] = entry.value }
        return (try? KubeJSON.encoder.encode(JSONValue.object(["auths": .object(auths)]))) ?? Data("{\"auths\":{}}".utf8)
    }
}

/// The result of merging the push and pull secrets into the one config a build job mounts.
public struct DockerConfigMerge: Sendable, Hashable {
    /// The merged config (`{"auths": …}`).
    public var config: DockerConfig
    /// Hosts both secrets had credentials for, where the push secret's were kept.
    public var overriddenHosts: [String]

    /// The merged config as JSON.
    public var jsonData: Data { config.jsonData }
}

/// Merges the push and pull configs into one for the build job: every host of either, one entry
/// per host. When both have the same host, the push entry wins — the build's last step, the push,
/// fails the whole build without it, while the base image was already resolved with the pull
/// credentials before the build; such hosts are listed in `overriddenHosts` so the caller can warn.
/// Docker Hub's entry is written under `https://index.docker.io/v1/`, the key every tool looks up;
/// other keys are kept as written.
public func mergeDockerConfigs(push: DockerConfig?, pull: DockerConfig?) -> DockerConfigMerge {
    var byHost: [String: DockerConfig.Entry] = [:]
    var overridden: Set<String> = []
    // Within one config, the entry `credential(forRegistry:)` would use is the one kept.
    func add(_ config: DockerConfig?, overriding: Bool) {
        guard let config else { return }
        var seen: Set<String> = []
        for host in Set(config.entries.map(\.host)).sorted() {
            // Ranked as `credential(forRegistry: host)` ranks them (a key written exactly as the
            // host before one differing in case), entries without a credential last.
            let preferred = config.entries.filter { $0.host == host }.sorted { lhs, rhs in
                (lhs.credential == nil ? 1 : 0, DockerConfig.rank(lhs, host), lhs.key)
                    < (rhs.credential == nil ? 1 : 0, DockerConfig.rank(rhs, host), rhs.key)
            }
            guard var entry = preferred.first, !seen.contains(host) else { continue }
            seen.insert(host)
            if host == ImageReference.dockerHub { entry.key = DockerConfig.dockerHubKey }
            if let existing = byHost[host] {
                if overriding, existing.value != entry.value { overridden.insert(host) }
                if !overriding { continue }
            }
            byHost[host] = entry
        }
    }
    add(pull, overriding: false)
    add(push, overriding: true)
    return DockerConfigMerge(config: DockerConfig(entries: Array(byHost.values)), overriddenHosts: overridden.sorted())
}
