import Foundation
import KubeTypes
import RegistryClient
import RegistryTypes

/// A manifest response body, read as `RegistryClient.resolve` reads it; the first byte picks the
/// `Content-Type` the registry sent. Properties: digests print and parse back; platform selection
/// picks an entry that serves the platform asked for.
enum RegistryManifestTarget {
    static let contentTypes: [String?] = [
        nil, "application/json", "text/plain", "application/octet-stream",
        MediaType.ociIndex, MediaType.dockerManifestList, MediaType.ociManifest, MediaType.dockerManifest,
        MediaType.ociIndex + "; charset=utf-8", " Application/VND.OCI.image.manifest.v1+JSON ", "", ";",
    ]
    static let wanted = [Platform.linuxAMD64, Platform(os: "linux", architecture: "arm64"),
                         Platform(os: "linux", architecture: "arm", variant: "v7")]

    static func run(_ data: Data) {
        guard let control = data.first else { return }
        let body = Data(data.dropFirst())
        let mediaType = RegistryClient.manifestMediaType(header: contentTypes[Int(control) % contentTypes.count], body: body)
        FuzzCheck.require(mediaType == mediaType.lowercased(), "a media type that is not lowercased: \(mediaType)")
        for algorithm in ["sha256", "sha512"] {
            let digest = Digest.of(body, algorithm: algorithm)
            FuzzCheck.require((try? Digest(parsing: digest.description)) == digest, "a digest that does not parse back")
            FuzzCheck.require(digest.verifies(body), "a digest that does not verify its data")
        }
        if let index = try? JSONDecoder().decode(ImageIndex.self, from: body) {
            _ = index.platforms
            let candidates = index.manifests.filter { MediaType.imageManifests.contains(MediaType.essence($0.mediaType)) }
            for platform in wanted {
                if let entry = platform.select(from: candidates, platform: { $0.platform?.platform }) {
                    let chosen = entry.platform?.platform
                    FuzzCheck.require(chosen.map { $0.os == platform.os && $0.architecture == platform.architecture } ?? false,
                                      "selected \(chosen.map(\.description) ?? "nothing") for \(platform)")
                }
            }
            for descriptor in index.manifests.prefix(8) {
                FuzzCheck.require((try? Digest(parsing: descriptor.digest.description)) == descriptor.digest,
                                  "a descriptor digest that does not parse back")
            }
        }
        if let manifest = try? JSONDecoder().decode(ImageManifest.self, from: body) {
            _ = MediaType.configs.contains(MediaType.essence(manifest.config.mediaType))
            _ = try? JSONEncoder().encode(manifest)
        }
        if let config = try? JSONDecoder().decode(ImageConfiguration.self, from: body) {
            _ = (config.user, config.environment, config.exposedPorts, config.platform, config.labels, config.workingDir)
        }
        let text = String(decoding: body, as: UTF8.self)
        for line in text.split(separator: "\n").prefix(8) {
            if let platform = try? Platform(parsing: String(line)) {
                FuzzCheck.require((try? Platform(parsing: platform.description)) == platform, "a platform that does not parse back")
                FuzzCheck.require(platform.matches(platform), "a platform that does not match itself")
            }
        }
    }

}

/// `WWW-Authenticate` values, one a line, then each line as a bearer token. Property: challenges
/// written back in canonical form (quoted parameters) parse to the same challenges.
enum WWWAuthenticateTarget {
    static func run(_ data: Data) {
        let text = String(decoding: data, as: UTF8.self)
        let values = text.split(separator: "\n", omittingEmptySubsequences: false).prefix(16).map(String.init)
        let challenges = AuthenticationChallenge.parse(values)
        for challenge in challenges {
            FuzzCheck.require(!challenge.scheme.isEmpty, "a challenge without a scheme")
            let written = canonical(challenge)
            let reread = AuthenticationChallenge.parse([written])
            FuzzCheck.require(reread == [challenge], "\(challenge) written as \(written) reads back as \(reread)")
            _ = (challenge.realm, challenge.service, challenge.scope, challenge.error)
        }
        for value in values {
            if let claims = TokenClaims(jwt: value) {
                for access in claims.access.prefix(4) {
                    _ = claims.grants("push", onRepository: access.name)
                }
            }
        }
    }

    static func canonical(_ challenge: AuthenticationChallenge) -> String {
        let parameters = challenge.parameters.sorted { $0.key < $1.key }.map { key, value in
            var quoted = ""
            for scalar in value.unicodeScalars {
                if scalar == "\\" || scalar == "\"" { quoted.unicodeScalars.append("\\") }
                quoted.unicodeScalars.append(scalar)
            }
            return "\(key)=\"\(quoted)\""
        }
        return ([challenge.scheme] + [parameters.joined(separator: ", ")]).filter { !$0.isEmpty }.joined(separator: " ")
    }
}

/// Docker config JSON (`config.json` or `.dockercfg`); a NUL splits a push and a pull config.
/// Properties: the config re-encoded gives the same credential for every host; a merge holds
/// every host of both, with the push config's credential where both have one.
enum DockerConfigTarget {
    static func run(_ data: Data) {
        let (first, second) = splitAtNUL(data)
        guard let push = try? DockerConfig(json: first) else { return }
        check(push)
        let pull = second.flatMap { try? DockerConfig(json: $0) }
        if let pull { check(pull) }
        let merged = mergeDockerConfigs(push: push, pull: pull)
        let hosts = Set(push.entries.map(\.host)).union(pull?.entries.map(\.host) ?? [])
        FuzzCheck.require(Set(merged.config.entries.map(\.host)) == hosts, "a merge lost or invented a host")
        FuzzCheck.require(merged.config.entries.count == hosts.count, "a merge with two entries for a host")
        for host in hosts {
            if let credential = push.credential(forRegistry: host) {
                FuzzCheck.require(merged.config.credential(forRegistry: host)?.password == credential.password,
                                  "a merge did not keep the push credential of \(host)")
            }
        }
        guard let reread = try? DockerConfig(json: merged.jsonData) else {
            FuzzCheck.require(false, "a merged config does not parse back")
            return
        }
        FuzzCheck.require(reread.entries.map(\.key) == merged.config.entries.map(\.key), "a merged config reads back other keys")
    }

    static func check(_ config: DockerConfig) {
        guard let reread = try? DockerConfig(json: config.jsonData) else {
            FuzzCheck.require(false, "a config does not parse back from its own JSON")
            return
        }
        for entry in config.entries.prefix(16) {
            FuzzCheck.require(entry.host == DockerConfig.host(ofKey: entry.host), "a host that is not normalized: \(entry.host)")
            let credential = config.credential(forRegistry: entry.host)
            FuzzCheck.require(reread.credential(forRegistry: entry.host) == credential, "re-encoding changed the credential of \(entry.host)")
            if let credential, credential.password.count >= 4, credential.password.allSatisfy({ $0.isLetter || $0.isNumber }),
               !credential.username.contains(credential.password), !(credential.source ?? "").contains(credential.password),
               !"user auths key".contains(credential.password)
            {
                FuzzCheck.require(!"\(credential)".contains(credential.password), "a credential's description shows its password")
            }
        }
    }
}

/// Image references, one a line. Property: a parsed reference prints as text that parses to the
/// same reference, and its familiar form too.
enum ImageReferenceTarget {
    static func run(_ data: Data) {
        let text = String(decoding: data, as: UTF8.self)
        for line in text.split(separator: "\n", omittingEmptySubsequences: false).prefix(16) {
            guard let reference = try? ImageReference(parsing: String(line)) else { continue }
            FuzzCheck.require((try? ImageReference(parsing: reference.description)) == reference,
                              "\(line) prints as \(reference.description), which reads as something else")
            FuzzCheck.require((try? ImageReference(parsing: reference.familiar)) == reference,
                              "\(line) is familiarly \(reference.familiar), which reads as something else")
            _ = (reference.apiHost, reference.manifestReference, reference.withDefaultTag, reference.name, reference.isDockerHub)
            if let digest = reference.digest {
                FuzzCheck.require((try? Digest(parsing: digest.description)) == digest, "a digest that does not parse back")
            }
        }
    }
}
