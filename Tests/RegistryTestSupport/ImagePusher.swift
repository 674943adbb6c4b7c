import CurlHTTP
import Foundation
import KubeTypes
import RegistryClient
import RegistryTypes
import TestHarness

/// Pushes test images to a LocalRegistry with plain HTTP requests (independent of the client under
/// test): blobs by monolithic upload (`POST …/blobs/uploads/`, then `PUT <location>?digest=`),
/// then manifests and an index.
public struct ImagePusher: Sendable {
    public let registry: LocalRegistry
    let http = HTTPClient.shared

    public init(registry: LocalRegistry) { self.registry = registry }

    var tls: TLSOptions { TLSOptions(caFile: registry.caFile) }

    /// The Authorization header for pushing to `repository` in the registry's auth mode.
    public func authorization(_ repository: String) async throws -> String? {
        switch registry.auth {
        case .none:
            return nil
        case .htpasswd(let username, let password):
            return "Basic " + Data("\(username):\(password)".utf8).base64EncodedString()
        case .token(let username, let password):
            var components = URLComponents(url: registry.tokenRealm!, resolvingAgainstBaseURL: false)!
            components.queryItems = [
                URLQueryItem(name: "service", value: "image-builder-test-registry"),
                URLQueryItem(name: "scope", value: "repository:\(repository):push,pull"),
            ]
            let basic = "Basic " + Data("\(username):\(password)".utf8).base64EncodedString()
            let response = try await http.send(HTTPRequest(url: components.url!.absoluteString, headers: ["Authorization": basic]))
            let json = try JSONDecoder().decode(JSONValue.self, from: response.body)
            guard let token = json["token"]?.stringValue else { throw PushError("no token: \(response.status)") }
            return "Bearer " + token
        }
    }

    public struct PushError: Error, CustomStringConvertible {
        public var description: String
        public init(_ description: String) { self.description = description }
    }

    private func send(_ method: String, _ url: String, _ headers: HTTPHeaders, body: Data?, auth: String?) async throws -> HTTPResponse {
        var headers = headers
        if let auth { headers.set("Authorization", auth) }
        return try await http.send(HTTPRequest(method: method, url: url, headers: headers, body: body, tls: tls))
    }

    @discardableResult
    public func pushBlob(_ repository: String, _ data: Data, mediaType: String = MediaType.ociLayer) async throws -> Descriptor {
        let auth = try await authorization(repository)
        let digest = Digest.of(data)
        let start = try await send("POST", registry.url.absoluteString + "/v2/\(repository)/blobs/uploads/", [:], body: Data(), auth: auth)
        guard start.status == 202, var location = start.headers["Location"] else {
            throw PushError("upload start: \(start.status) \(String(decoding: start.body, as: UTF8.self))")
        }
        if location.hasPrefix("/") { location = registry.url.absoluteString + location }
        location += (location.contains("?") ? "&" : "?") + "digest=\(digest)"
        let put = try await send("PUT", location, ["Content-Type": "application/octet-stream"], body: data, auth: auth)
        guard put.status == 201 else { throw PushError("upload: \(put.status) \(String(decoding: put.body, as: UTF8.self))") }
        return Descriptor(mediaType: mediaType, digest: digest, size: Int64(data.count))
    }

    @discardableResult
    public func pushManifest(_ repository: String, reference: String, _ data: Data, mediaType: String) async throws -> Digest {
        let auth = try await authorization(repository)
        let response = try await send(
            "PUT", registry.url.absoluteString + "/v2/\(repository)/manifests/\(reference)", ["Content-Type": mediaType],
            body: data, auth: auth)
        guard response.status == 201 else {
            throw PushError("manifest \(reference): \(response.status) \(String(decoding: response.body, as: UTF8.self))")
        }
        return Digest.of(data)
    }

    /// Pushes the standard test images to `repository` and returns what was pushed.
    public func pushTestImages(_ repository: String) async throws -> TestImages {
        let layer = try await pushBlob(repository, Data("layer-\(UUID().uuidString)".utf8))
        func configBlob(architecture: String, variant: String?, user: String, env: [String]) -> Data {
            var object: [String: Any] = [
                "architecture": architecture, "os": "linux",
                "config": [
                    "User": user, "Env": env, "WorkingDir": "/home/\(user)", "Cmd": ["start-notebook.sh"],
                    "Labels": ["org.example.arch": architecture],
                ],
                "rootfs": ["type": "layers", "diff_ids": [layer.digest.description]],
            ]
            if let variant { object["variant"] = variant }
            return try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        }
        let amd64Config = try await pushBlob(
            repository,
            configBlob(architecture: "amd64", variant: nil, user: "jovyan",
                       env: ["PATH=/opt/conda/bin:/usr/bin:/bin", "CONDA_DIR=/opt/conda", "NB_USER=jovyan"]),
            mediaType: MediaType.dockerConfig)
        let arm64Config = try await pushBlob(
            repository,
            configBlob(architecture: "arm64", variant: "v8", user: "builder", env: ["PATH=/usr/bin:/bin", "ARCH=arm64"]),
            mediaType: MediaType.ociConfig)

        func manifest(_ config: Descriptor, mediaType: String, layerType: String) throws -> Data {
            let layerDescriptor = Descriptor(mediaType: layerType, digest: layer.digest, size: layer.size)
            return try JSONEncoder.sorted.encode(ImageManifest(mediaType: mediaType, config: config, layers: [layerDescriptor]))
        }
        let amd64Data = try manifest(amd64Config, mediaType: MediaType.dockerManifest, layerType: MediaType.dockerLayer)
        let amd64 = try await pushManifest(repository, reference: "amd64", amd64Data, mediaType: MediaType.dockerManifest)
        let arm64Data = try manifest(arm64Config, mediaType: MediaType.ociManifest, layerType: MediaType.ociLayer)
        let arm64 = try await pushManifest(repository, reference: "arm64", arm64Data, mediaType: MediaType.ociManifest)
        let index = ImageIndex(mediaType: MediaType.ociIndex, manifests: [
            Descriptor(mediaType: MediaType.dockerManifest, digest: amd64, size: Int64(amd64Data.count),
                       platform: DescriptorPlatform(architecture: "amd64", os: "linux")),
            Descriptor(mediaType: MediaType.ociManifest, digest: arm64, size: Int64(arm64Data.count),
                       platform: DescriptorPlatform(architecture: "arm64", os: "linux", variant: "v8")),
        ])
        let indexData = try JSONEncoder.sorted.encode(index)
        let indexDigest = try await pushManifest(repository, reference: "multi", indexData, mediaType: MediaType.ociIndex)
        return TestImages(repository: repository, host: registry.host, amd64Manifest: amd64, arm64Manifest: arm64,
                          index: indexDigest, amd64Config: amd64Config.digest, arm64Config: arm64Config.digest)
    }
}

extension ImagePusher {
    /// Pushes one single-platform image (linux/amd64, Docker schema 2) with the given config
    /// `User`, `Env`, `Labels` and `created` under `tag`; returns its manifest digest.
    @discardableResult
    public func pushImage(_ repository: String, tag: String, user: String, env: [String], labels: [String: String]? = nil,
                          created: String? = nil) async throws -> Digest {
        let layer = try await pushBlob(repository, Data("layer-\(UUID().uuidString)".utf8), mediaType: MediaType.dockerLayer)
        var runConfig: [String: Any] = ["User": user, "Env": env]
        if let labels { runConfig["Labels"] = labels }
        var config: [String: Any] = [
            "architecture": "amd64", "os": "linux",
            "config": runConfig,
            "rootfs": ["type": "layers", "diff_ids": [layer.digest.description]],
        ]
        if let created { config["created"] = created }
        let configData = try JSONSerialization.data(withJSONObject: config, options: [.sortedKeys])
        let configDescriptor = try await pushBlob(repository, configData, mediaType: MediaType.dockerConfig)
        let manifest = try JSONEncoder.sorted.encode(ImageManifest(mediaType: MediaType.dockerManifest,
                                                                   config: configDescriptor, layers: [layer]))
        return try await pushManifest(repository, reference: tag, manifest, mediaType: MediaType.dockerManifest)
    }
}

/// What `pushTestImages` pushed: tags `amd64` (Docker schema 2, user jovyan), `arm64` (OCI, user
/// builder) and `multi` (an OCI index of both).
public struct TestImages: Sendable {
    public var repository: String
    public var host: String
    public var amd64Manifest: Digest
    public var arm64Manifest: Digest
    public var index: Digest
    public var amd64Config: Digest
    public var arm64Config: Digest

    public func reference(_ tagOrDigest: String) -> ImageReference {
        let separator = tagOrDigest.hasPrefix("sha256:") ? "@" : ":"
        return ImageReference.parse("\(host)/\(repository)\(separator)\(tagOrDigest)")!
    }
}

extension JSONEncoder {
    public static var sorted: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }
}

/// A client for `registry` with its TLS settings (`insecure` for plain HTTP).
public func client(for registry: LocalRegistry, insecure: Bool? = nil, caFile: String? = nil, caData: Data? = nil) -> RegistryClient {
    let plain = registry.url.scheme == "http"
    let options = RegistryOptions(insecure: insecure ?? plain, caFile: caFile, caData: caData)
    return RegistryClient(configuration: .init(registries: [registry.host: options]))
}
