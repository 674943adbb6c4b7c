import CurlHTTP
import KubeClient
import KubeTestSupport
import KubeTypes
import TestHarness
import Testing

/// The client through the harness's fault proxy: requests are forwarded (TLS terminated with the
/// apiserver's certificate) and injected errors arrive as the API's would.
@Suite("The client through a fault proxy")
struct FaultProxyTests {
    func client(through proxy: FaultProxy, _ controlPlane: ControlPlane) throws -> KubernetesClient {
        KubernetesClient(configuration: try ClientConfiguration.load(
            kubeconfig: controlPlane.kubeconfig(server: proxy.url, name: "proxy-\(proxy.port)"), environment: [:]))
    }

    @Test func forwardsThenInjectsErrors() async throws {
        let controlPlane = try await ControlPlane.shared()
        let proxy = try FaultProxy.start(in: controlPlane)
        defer { proxy.stop() }
        let client = try client(through: proxy, controlPlane)
        // Forwarded: TLS terminated with the apiserver's certificate, verified against the harness CA.
        let namespaces = try await client.list(Namespace.self)
        #expect(namespaces.items.contains { $0.metadata.name == "default" })

        proxy.setFault(.status(500, retryAfterSeconds: nil))
        await #expect { _ = try await client.get(Namespace.self, name: "default") } throws: { error in
            (error as? APIError)?.code == 500
        }

        proxy.setFault(.none)
        #expect(try await client.get(Namespace.self, name: "default").metadata.name == "default")
        #expect(proxy.statistics.faulted == 1)
    }

    /// An answer over `maximumResponseSize` ends as the client's own `responseTooLarge` error that
    /// names the limit, not as curl's write error (23) from the refused body; the next request works.
    @Test(arguments: [(limit: 64 << 20, answer: 100 << 20), (limit: 1 << 20, answer: (1 << 20) + 1)])
    func oversizedAnswerIsResponseTooLarge(limit: Int, answer: Int) async throws {
        let controlPlane = try await ControlPlane.shared()
        let proxy = try FaultProxy.start(in: controlPlane)
        defer { proxy.stop() }
        var configuration = try ClientConfiguration.load(
            kubeconfig: controlPlane.kubeconfig(server: proxy.url, name: "proxy-\(proxy.port)"), environment: [:])
        configuration.maximumResponseSize = limit
        let client = KubernetesClient(configuration: configuration)

        proxy.setFault(.oversized(bytes: answer))
        await #expect {
            _ = try await client.list(Namespace.self)
        } throws: { error in
            guard let transport = error as? TransportError else { return false }
            return transport.kind == .responseTooLarge && transport.curlCode == 0
                && "\(transport)".contains("larger than the limit of \(limit) bytes")
                && !"\(transport)".contains("curl error")
        }
        proxy.setFault(.none)
        #expect(try await client.get(Namespace.self, name: "default").metadata.name == "default")
    }
}
