import KubeTestSupport
import CurlHTTP
import Foundation
import KubeClient
import KubeRuntime
import KubeTypes
import TestHarness
import Testing

/// The test kind, typed: `WidgetCRD`'s Widget (namespaced, with a status subresource).
struct Widget: KubeObject, Hashable {
    static let resourceType = WidgetCRD.resource
    var apiVersion: String? = WidgetCRD.resource.apiVersion
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

    /// Creates the CRD (once per control plane) and waits until it is served.
    static func install(on controlPlane: ControlPlane) async throws {
        try await WidgetCRD.install(on: controlPlane)
    }
}

/// GET of a URL on loopback: status and body.
func httpGet(_ url: String) async throws -> (status: Int, body: String) {
    let response = try await HTTPClient.shared.send(HTTPRequest(url: url, timeout: .seconds(10)))
    return (response.status, String(decoding: response.body, as: UTF8.self))
}

/// Runs `body` while `services` run in the background; cancels them afterwards and waits (at most
/// `stopTimeout`) until they have returned.
func whileRunning<T: Sendable>(_ services: [@Sendable () async throws -> Void], stopTimeout: Duration = .seconds(60),
                               _ body: () async throws -> T) async throws -> T {
    let tasks = services.map { service in Task { try await service() } }
    func stop() async throws {
        for task in tasks { task.cancel() }
        try await withTimeout(stopTimeout, "\(tasks.count) service(s) stop after cancellation") {
            for task in tasks { _ = await task.result }
        }
    }
    let result: T
    do {
        result = try await withTaskCancellationHandler {
            try await body()
        } onCancel: {
            for task in tasks { task.cancel() }
        }
    } catch {
        try? await stop()
        throw error
    }
    try await stop()
    return result
}
