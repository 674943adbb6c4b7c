import Foundation
import ImageBuilder
import KubeClient
import KubeTypes
import RegistryTestSupport
import TestHarness

/// What the chaos scenarios run on: a control plane of their own (they kill and compact it), the
/// project's CRDs, a password-protected registry with a base image, and the `image-builder`
/// executable, run as child processes (the SIGKILL scenarios need a process).
public final class ChaosWorld: Sendable {
    public let controlPlane: ControlPlane
    /// The scenario driver's own client (admin): creates, rewrites, plays the kubelet, checks.
    public let client: KubernetesClient
    public let registry: LocalRegistry
    public let operatorExecutable: String
    /// `<registry>/base/notebook:latest`.
    public let baseImage: String
    /// A fault proxy in front of the registry (plain HTTP, like the registry).
    public let registryProxy: FaultProxy
    /// The base image through `registryProxy`.
    public var proxiedBaseImage: String { "\(registryProxy.host)/base/notebook:latest" }

    static let registryUser = "builder"
    static let registryPassword = "chaos-push"

    private init(controlPlane: ControlPlane, client: KubernetesClient, registry: LocalRegistry, operatorExecutable: String,
                 baseImage: String, registryProxy: FaultProxy) {
        self.registryProxy = registryProxy
        self.controlPlane = controlPlane
        self.client = client
        self.registry = registry
        self.operatorExecutable = operatorExecutable
        self.baseImage = baseImage
    }

    /// Starts the world. `watchCache: false` makes watches from a compacted revision fail with 410.
    public static func start(operatorExecutable: String, watchCache: Bool = true) async throws -> ChaosWorld {
        guard FileManager.default.isExecutableFile(atPath: operatorExecutable) else {
            throw ChaosError("the operator executable \(operatorExecutable) does not exist; build it first (swift build --product image-builder)")
        }
        let controlPlane = try await ControlPlane.start(.init(watchCache: watchCache))
        do {
            let client = KubernetesClient(configuration: try ClientConfiguration.load(
                kubeconfig: controlPlane.kubeconfig(for: .admin), environment: [:]))
            try await controlPlane.kubectl(["apply", "-k", Self.crdsDirectory])
            for resource in [ImageSpec.resourceType, Image.resourceType] {
                try await until("\(resource) is served", timeout: .seconds(60)) {
                    (try? await client.list(JSONValue.self, resource: resource, namespace: "default")) != nil
                }
            }
            let registry = try await LocalRegistry.start(auth: .htpasswd(username: registryUser, password: registryPassword))
            try await ImagePusher(registry: registry).pushImage(
                "base/notebook", tag: "latest", user: "jovyan",
                env: ["PATH=/opt/conda/bin:/usr/local/bin:/usr/bin:/bin", "CONDA_DIR=/opt/conda", "NB_USER=jovyan"])
            return ChaosWorld(controlPlane: controlPlane, client: client, registry: registry,
                              operatorExecutable: operatorExecutable, baseImage: "\(registry.host)/base/notebook:latest",
                              registryProxy: try FaultProxy.startPlain(to: registry.port))
        } catch {
            await controlPlane.stop()
            throw error
        }
    }

    public func stop() async {
        registryProxy.stop()
        await registry.stop()
        await controlPlane.stop()
    }

    static var crdsDirectory: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("crds").path
    }

    /// A fresh namespace with the push and pull secrets and an operator configuration for it;
    /// returns the namespace and the configuration file.
    func prepareNamespace(_ prefix: String) async throws -> (namespace: String, configFile: String) {
        let namespace = "\(prefix)-\(UUID().uuidString.prefix(6).lowercased())"
        _ = try await client.create(Namespace(metadata: ObjectMeta(name: namespace)))
        let auth = Data("\(Self.registryUser):\(Self.registryPassword)".utf8).base64EncodedString()
        let json = #"{"auths":{"\#(registry.host)":{"auth":"\#(auth)"},"\#(registryProxy.host)":{"auth":"\#(auth)"}}}"#
        for name in ["registry-push", "registry-pull"] {
            _ = try await client.create(Secret(metadata: ObjectMeta(name: name, namespace: namespace),
                                               type: "kubernetes.io/dockerconfigjson",
                                               data: [".dockerconfigjson": Data(json.utf8)]))
        }
        let configFile = controlPlane.directory + "/operator-\(namespace).yaml"
        try """
            watchNamespaces: [\(namespace)]
            registry:
              pushRepoPrefix: \(registry.host)/primehub
              pushSecret: registry-push
              pullSecret: registry-pull
              insecure: true
              insecureRegistries: ["\(registryProxy.host)"]
            builder:
              strategy: kaniko
              image: gcr.io/kaniko-project/executor@sha256:\(String(repeating: "0", count: 64))
            """.write(toFile: configFile, atomically: true, encoding: .utf8)
        return (namespace, configFile)
    }

    func makeOperator(_ name: String, namespace: String, configFile: String, kubeconfig: String, workers: Int) throws -> OperatorProcess {
        try OperatorProcess(name: name, executable: operatorExecutable, kubeconfig: kubeconfig,
                            configFile: configFile, namespace: namespace, workers: workers,
                            directory: controlPlane.directory)
    }
}

/// A chaos scenario could not run or did not hold.
public struct ChaosError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Polls `condition` every 100 ms until it holds; throws `ChaosError` after `timeout`.
func until(_ what: @autoclosure () -> String, timeout: Duration, _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while true {
        if try await condition() { return }
        if ContinuousClock.now > deadline { throw ChaosError("timed out after \(timeout) waiting for: \(what())") }
        try await Task.sleep(for: .milliseconds(100))
    }
}
