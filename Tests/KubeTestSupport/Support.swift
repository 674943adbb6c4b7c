import Foundation
import KubeClient
import KubeTypes
import TestHarness
import Testing

/// Clients for the harness's users, and helpers shared by the integration test targets.
extension ControlPlane {
    public func client(_ user: User = .admin) throws -> KubernetesClient {
        KubernetesClient(configuration: try ClientConfiguration.load(kubeconfig: kubeconfig(for: user), environment: [:]))
    }

    /// A fresh namespace for one test.
    public func makeNamespace(_ prefix: String) async throws -> String {
        let name = "\(prefix)-\(UUID().uuidString.prefix(8).lowercased())"
        _ = try await client().create(Namespace(metadata: ObjectMeta(name: name)))
        return name
    }
}

/// Polls `condition` until it holds or `timeout` passes (generous: the machine may be loaded).
public func eventually(timeout: Duration = .seconds(60), _ what: String,
                _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(100))
    }
    Issue.record("timed out waiting for: \(what)")
    throw CancellationError()
}

/// A namespaced test CRD, `widgets.test.image-builder.dev`, with a status subresource.
public enum WidgetCRD {
    public static let resource = ResourceType(group: "test.image-builder.dev", version: "v1", plural: "widgets",
                                       kind: "Widget", namespaced: true)

    public static let definition: JSONValue = .object([
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": .object(["name": "widgets.test.image-builder.dev"]),
        "spec": .object([
            "group": "test.image-builder.dev",
            "scope": "Namespaced",
            "names": .object(["plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"]),
            "versions": .array([.object([
                "name": "v1", "served": true, "storage": true,
                "subresources": .object(["status": .object([:])]),
                "schema": .object(["openAPIV3Schema": .object([
                    "type": "object",
                    "properties": .object([
                        "spec": .object(["type": "object", "x-kubernetes-preserve-unknown-fields": true]),
                        "status": .object(["type": "object", "x-kubernetes-preserve-unknown-fields": true]),
                    ]),
                ])]),
            ])]),
        ]),
    ])

    /// Creates the CRD once per control plane and waits until it is served.
    public static func install(on controlPlane: ControlPlane) async throws {
        let client = try controlPlane.client()
        do {
            _ = try await client.create(DynamicObject(definition), resource: .customResourceDefinitions, namespace: nil)
        } catch let error as APIError where error.isAlreadyExists {}
        try await eventually("the Widget CRD is served") {
            do {
                _ = try await client.list(DynamicObject.self, resource: resource, namespace: "default")
                return true
            } catch let error as APIError where error.isNotFound {
                return false
            }
        }
    }

    public static func widget(_ name: String, namespace: String, size: Int) -> DynamicObject {
        DynamicObject(.object([
            "apiVersion": "test.image-builder.dev/v1", "kind": "Widget",
            "metadata": .object(["name": .string(name), "namespace": .string(namespace)]),
            "spec": .object(["size": .int(Int64(size)), "color": "blue"]),
        ]))
    }
}

/// An executable of this package built beside the test bundle (`swift build --build-tests`
/// builds them all), or nil when it is not there.
public func builtExecutable(_ name: String) -> String? {
    let directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    return [directory, directory.deletingLastPathComponent(), Bundle.main.bundleURL, Bundle.main.bundleURL.deletingLastPathComponent()]
        .map { $0.appendingPathComponent(name).path }
        .first { FileManager.default.isExecutableFile(atPath: $0) }
}
