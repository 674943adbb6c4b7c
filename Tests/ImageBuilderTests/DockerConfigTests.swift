import Foundation
import ImageBuilder
import KubeTypes
import Testing

@testable import RegistryTypes

private func auth(_ user: String, _ password: String) -> String {
    Data("\(user):\(password)".utf8).base64EncodedString()
}

private func config(_ auths: [String: String]) throws -> DockerConfig {
    var object: [String: JSONValue] = [:]
    for (key, value) in auths { object[key] = .object(["auth": .string(value)]) }
    return try DockerConfig(value: .object(["auths": .object(object)]))
}

@Suite("Docker configs and credentials")
struct DockerConfigTests {
    @Test func matchesKeysByHost() throws {
        let config = try config([
            "https://registry.example.com/v2/": auth("full", "1"),
            "registry.example.com:5000": auth("port", "2"),
            "http://LOCALHOST:5000": auth("local", "3"),
            "quay.io/some/org": auth("quay", "4"),
        ])
        #expect(config.credential(forRegistry: "registry.example.com")?.username == "full")
        #expect(config.credential(forRegistry: "registry.example.com")?.password == "1")
        #expect(config.credential(forRegistry: "registry.example.com:5000")?.username == "port")
        #expect(config.credential(forRegistry: "localhost:5000")?.username == "local")
        #expect(config.credential(forRegistry: "quay.io")?.username == "quay")
        #expect(config.credential(forRegistry: "registry.example.com:5001") == nil)
        #expect(config.credential(forRegistry: "example.com") == nil)
        #expect(config.credential(forRegistry: "docker.io") == nil)
        #expect(config.credential(forRegistry: "registry.example.com")?.source == "https://registry.example.com/v2/")
    }

    @Test(arguments: [
        "https://index.docker.io/v1/", "index.docker.io", "docker.io", "https://docker.io", "registry-1.docker.io",
        "https://registry-1.docker.io/v2/", "registry.hub.docker.com",
    ])
    func dockerHubKeyForms(_ key: String) throws {
        let config = try config([key: auth("hubuser", "hubpass"), "ghcr.io": auth("gh", "x")])
        let credential = try #require(config.credential(forRegistry: ImageReference.parse("ubuntu")!.registry))
        #expect(credential.username == "hubuser")
        #expect(credential.password == "hubpass")
        #expect(credential.source == key)
        #expect(config.credential(forRegistry: "ghcr.io")?.username == "gh")
    }

    @Test func exactKeyWinsAmongSameHost() throws {
        let config = try config([
            "https://index.docker.io/v1/": auth("legacy", "1"),
            "docker.io": auth("exact", "2"),
        ])
        #expect(config.credential(forRegistry: "docker.io")?.username == "exact")
    }

    @Test func usernamePasswordAndPasswordsWithColons() throws {
        let config = try DockerConfig(json: Data("""
            {"auths": {
              "a.io": {"username": "alice", "password": "pa:ss:word"},
              "b.io": {"auth": "\(auth("bob", "x:y"))"},
              "c.io": {"auth": "bm9jb2xvbg=="},
              "d.io": {"identitytoken": "abc"},
              "e.io": {"auth": "\(auth("eve", "p").replacingOccurrences(of: "=", with: ""))"}
            }}
            """.utf8))
        #expect(config.credential(forRegistry: "a.io") == RegistryCredential(username: "alice", password: "pa:ss:word", source: "a.io"))
        #expect(config.credential(forRegistry: "b.io")?.password == "x:y")
        #expect(config.credential(forRegistry: "c.io") == nil)  // "nocolon"
        #expect(config.credential(forRegistry: "d.io") == nil)
        #expect(config.credential(forRegistry: "e.io")?.username == "eve")
        #expect(!String(describing: config.credential(forRegistry: "a.io")!).contains("pa:ss"))
    }

    @Test func secretsOfBothTypes() throws {
        let json = Data(#"{"auths":{"r.io":{"auth":"\#(auth("u", "p"))"}}}"#.utf8)
        let modern = Secret(metadata: ObjectMeta(name: "pull"), type: "kubernetes.io/dockerconfigjson",
                            data: [".dockerconfigjson": json])
        #expect(try DockerConfig(secret: modern).credential(forRegistry: "r.io")?.username == "u")
        let legacy = Secret(metadata: ObjectMeta(name: "old"), type: "kubernetes.io/dockercfg",
                            data: [".dockercfg": Data(#"{"r.io":{"auth":"\#(auth("old", "p"))","email":"x@y"}}"#.utf8)])
        #expect(try DockerConfig(secret: legacy).credential(forRegistry: "r.io")?.username == "old")
        let stringData = Secret(metadata: ObjectMeta(name: "s"), type: "kubernetes.io/dockerconfigjson",
                                stringData: [".dockerconfigjson": String(decoding: json, as: UTF8.self)])
        #expect(try DockerConfig(secret: stringData).credential(forRegistry: "r.io") != nil)
        let opaque = Secret(metadata: ObjectMeta(name: "opaque"), type: "Opaque", data: ["token": Data("x".utf8)])
        let error = #expect(throws: DockerConfig.FormatError.self) { try DockerConfig(secret: opaque) }
        #expect(error?.description.contains("secret \"opaque\"") == true)
        let broken = Secret(metadata: ObjectMeta(name: "broken"), type: "kubernetes.io/dockerconfigjson",
                            data: [".dockerconfigjson": Data("{not json".utf8)])
        #expect(throws: DockerConfig.FormatError.self) { try DockerConfig(secret: broken) }
    }

    @Test func loadsSecretFilesAndBareConfigs() throws {
        let json = #"{"auths":{"r.io:5000":{"username":"u","password":"p"}}}"#
        let encoded = Data(json.utf8).base64EncodedString()
        let yaml = """
            apiVersion: v1
            kind: Secret
            metadata:
              name: pull
            type: kubernetes.io/dockerconfigjson
            data:
              .dockerconfigjson: \(encoded)
            """
        #expect(try DockerConfig.load(fileContents: Data(yaml.utf8)).credential(forRegistry: "r.io:5000")?.username == "u")
        let secretJSON = #"{"apiVersion":"v1","kind":"Secret","type":"kubernetes.io/dockerconfigjson","data":{".dockerconfigjson":"\#(encoded)"}}"#
        #expect(try DockerConfig.load(fileContents: Data(secretJSON.utf8)).credential(forRegistry: "r.io:5000") != nil)
        let stringDataYAML = """
            kind: Secret
            apiVersion: v1
            metadata: {name: pull}
            type: kubernetes.io/dockerconfigjson
            stringData:
              .dockerconfigjson: '\(json)'
            """
        #expect(try DockerConfig.load(fileContents: Data(stringDataYAML.utf8)).credential(forRegistry: "r.io:5000") != nil)
        #expect(try DockerConfig.load(fileContents: Data(json.utf8)).credential(forRegistry: "r.io:5000") != nil)
        #expect(try DockerConfig.load(fileContents: Data(#"{"credsStore":"desktop"}"#.utf8)).entries.isEmpty)

        let configMap = "apiVersion: v1\nkind: ConfigMap\ndata: {}\n"
        let error = #expect(throws: DockerConfig.FormatError.self) { try DockerConfig.load(fileContents: Data(configMap.utf8)) }
        #expect(error?.description.contains("ConfigMap") == true)
        #expect(throws: DockerConfig.FormatError.self) { try DockerConfig.load(fileContents: Data("[1, 2]".utf8)) }
        #expect(throws: DockerConfig.FormatError.self) { try DockerConfig.load(fileContents: Data("a: [".utf8)) }
        let badBase64 = "kind: Secret\napiVersion: v1\nmetadata: {name: x}\ndata:\n  .dockerconfigjson: '!!!'\n"
        #expect(throws: DockerConfig.FormatError.self) { try DockerConfig.load(fileContents: Data(badBase64.utf8)) }
    }

    @Test func mergePushAndPull() throws {
        let push = try config(["registry.example.com": auth("pusher", "1"), "docker.io": auth("hub-push", "2")])
        let pull = try config([
            "https://registry.example.com/v1/": auth("puller", "3"), "https://index.docker.io/v1/": auth("hub-pull", "4"),
            "quay.io": auth("quay", "5"),
        ])
        let merged = mergeDockerConfigs(push: push, pull: pull)
        #expect(merged.overriddenHosts == ["docker.io", "registry.example.com"])
        let config = merged.config
        #expect(config.entries.map(\.key) == ["https://index.docker.io/v1/", "quay.io", "registry.example.com"])
        #expect(config.credential(forRegistry: "registry.example.com")?.username == "pusher")
        #expect(config.credential(forRegistry: "docker.io")?.username == "hub-push")
        #expect(config.credential(forRegistry: "quay.io")?.username == "quay")
        // The JSON round-trips and has one entry per host.
        let reread = try DockerConfig(json: merged.jsonData)
        #expect(reread == config)
        let text = String(decoding: merged.jsonData, as: UTF8.self)
        #expect(text.hasPrefix(#"{"auths":{"https://index.docker.io/v1/":"#))

        #expect(mergeDockerConfigs(push: nil, pull: nil).config.entries.isEmpty)
        #expect(mergeDockerConfigs(push: push, pull: nil).overriddenHosts.isEmpty)
        let same = mergeDockerConfigs(push: push, pull: push)
        #expect(same.overriddenHosts.isEmpty)
        #expect(same.config.entries.count == 2)
    }

    @Test func mergeKeepsUnknownFieldsAndPrefersEntriesWithCredentials() throws {
        let pull = try DockerConfig(json: Data("""
            {"auths": {"r.io": {"auth": "\(auth("u", "p"))", "email": "u@r.io"},
                       "https://r.io/v1/": {"identitytoken": "t"}}}
            """.utf8))
        let merged = mergeDockerConfigs(push: nil, pull: pull)
        #expect(merged.config.entries.count == 1)
        #expect(merged.config.entries[0].value["email"]?.stringValue == "u@r.io")
    }

    /// The docker-config fuzz target's merge property: the merge keeps, for each host, the entry
    /// `credential(forRegistry:)` uses. With two keys differing only in case it kept the one that
    /// sorts first ("R.io"), while lookups used the one written exactly as the host ("r.io").
    @Test func mergeKeepsTheEntryThatLookupsUse() throws {
        let push = try config(["R.io": auth("upper", "wrong"), "r.io": auth("lower", "right"),
                               "https://r.io/v1/": auth("path", "other")])
        #expect(push.credential(forRegistry: "r.io")?.password == "right")
        let merged = mergeDockerConfigs(push: push, pull: nil)
        #expect(merged.config.entries.map(\.key) == ["r.io"])
        #expect(merged.config.credential(forRegistry: "r.io")?.password == "right")
    }

    @Test func hostOfKey() {
        #expect(DockerConfig.host(ofKey: "https://Registry.IO:443/v2/x") == "registry.io:443")
        #expect(DockerConfig.host(ofKey: " quay.io ") == "quay.io")
        // Spaces inside the scheme and path are trimmed too, so a host normalizes to itself.
        #expect(DockerConfig.host(ofKey: "https:// Quay.io /v2/") == "quay.io")
        #expect(DockerConfig.host(ofKey: "https://index.docker.io/v1/") == "docker.io")
    }
}
