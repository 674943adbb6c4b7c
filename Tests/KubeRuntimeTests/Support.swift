import CurlHTTP
import Foundation
import KubeClient
import KubeRuntime
import TestHarness
import Testing

extension ControlPlane {
    func client(_ user: User = .admin) throws -> KubernetesClient {
        KubernetesClient(configuration: try ClientConfiguration.load(kubeconfig: kubeconfig(for: user), environment: [:]))
    }

    /// A fresh namespace for one test.
    func makeNamespace(_ prefix: String) async throws -> String {
        let name = "\(prefix)-\(UUID().uuidString.prefix(8).lowercased())"
        _ = try await client().create(Namespace(metadata: ObjectMeta(name: name)))
        return name
    }
}

/// Polls `condition` until it holds or `timeout` passes (generous: the machine may be loaded).
func eventually(timeout: Duration = .seconds(60), _ what: String,
                _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(100))
    }
    Issue.record("timed out waiting for: \(what)")
    throw CancellationError()
}

/// The test kind: `widgets.test.example.com/v1` Widget, namespaced, with a status subresource.
struct Widget: KubeObject, Hashable {
    static let resourceType = ResourceType(group: "test.example.com", version: "v1", plural: "widgets",
                                           kind: "Widget", namespaced: true)
    var apiVersion: String? = "test.example.com/v1"
    var kind: String? = "Widget"
    var metadata: ObjectMeta
    var spec: Spec?
    var status: Status?

    struct Spec: Codable, Sendable, Hashable {
        var size: Int
    }

    struct Status: Codable, Sendable, Hashable {
        var observedSize: Int?
        var observedGeneration: Int64?
    }

    init(name: String, namespace: String, size: Int) {
        metadata = ObjectMeta(name: name, namespace: namespace)
        spec = Spec(size: size)
    }

    /// Converged: the status reflects the spec.
    var isConverged: Bool { status?.observedSize == spec?.size }

    static let definition: JSONValue = .object([
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": .object(["name": "widgets.test.example.com"]),
        "spec": .object([
            "group": "test.example.com",
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

    /// Creates the CRD (once per control plane) and waits until it is served.
    static func install(on controlPlane: ControlPlane) async throws {
        let client = try controlPlane.client()
        do {
            _ = try await client.create(DynamicObject(definition), resource: .customResourceDefinitions, namespace: nil)
        } catch let error as APIError where error.isAlreadyExists {}
        try await eventually("the Widget CRD is served") {
            do {
                _ = try await client.list(Widget.self, namespace: "default")
                return true
            } catch let error as APIError where error.isNotFound {
                return false
            }
        }
    }
}

/// GET of a URL on loopback: status and body.
func httpGet(_ url: String) async throws -> (status: Int, body: String) {
    let response = try await HTTPClient.shared.send(HTTPRequest(url: url, timeout: .seconds(10)))
    return (response.status, String(decoding: response.body, as: UTF8.self))
}

/// Runs `body` while `services` run in the background; cancels them afterwards.
func whileRunning<T: Sendable>(_ services: [@Sendable () async throws -> Void],
                               _ body: () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: Void.self) { group in
        for service in services { group.addTask { try await service() } }
        do {
            let result = try await body()
            group.cancelAll()
            while let _ = try? await group.next() {}
            return result
        } catch {
            group.cancelAll()
            while let _ = try? await group.next() {}
            throw error
        }
    }
}
