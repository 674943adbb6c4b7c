import CurlHTTP
import Foundation
import TestHarness

/// `image-builder run` as a child process for one namespace: JSON logs to a file, probes and
/// metrics on a loopback port, leader election on a Lease in the namespace under its name (kept
/// when it is started again, as a Pod's name is).
public final class OperatorProcess: Sendable {
    public let process: ChildProcess
    /// `http://127.0.0.1:PORT`: `/readyz`, `/metrics`.
    public let probeURL: String

    public init(name: String, executable: String, kubeconfig: String, configFile: String, namespace: String,
                workers: Int, directory: String) throws {
        let port = try freeLoopbackPort()
        probeURL = "http://127.0.0.1:\(port)"
        process = ChildProcess(
            name: name, executable: executable,
            arguments: ["run", "--kubeconfig", kubeconfig, "--config", configFile,
                        "--leader-election-namespace", namespace, "--leader-identity", name, "--probe-address", "127.0.0.1:\(port)",
                        "--log-format", "json", "--workers", "\(workers)"],
            directory: directory)
    }

    public func start() async throws { try await process.start() }
    public func kill() async { await process.kill() }
    public func stop() async { await process.stop(grace: .seconds(35)) }

    /// An endpoint's status and body, or nil when nothing answers.
    func get(_ path: String) async -> (status: Int, body: String)? {
        guard let response = try? await HTTPClient.shared.send(HTTPRequest(url: probeURL + path, timeout: .seconds(5)))
        else { return nil }
        return (response.status, String(decoding: response.body, as: UTF8.self))
    }

    public var isReady: Bool { get async { await get("/readyz")?.status == 200 } }

    /// `/metrics` as text, nil when the process does not answer.
    public func metrics() async -> String? {
        guard let (status, body) = await get("/metrics"), status == 200 else { return nil }
        return body
    }

    /// ImageSpec reconciles so far (every result), nil when the process does not answer.
    public func reconciles() async -> Int? {
        guard let text = await metrics() else { return nil }
        return Metrics.sum(of: "controller_runtime_reconcile_total", where: #"controller="imagespec""#, in: text)
    }

    /// True when this replica holds the lease (`leader_election_master_status` 1).
    public func isLeader() async -> Bool {
        guard let text = await metrics() else { return false }
        return Metrics.sum(of: "leader_election_master_status", where: "", in: text) > 0
    }
}

/// Reading Prometheus text.
public enum Metrics {
    /// The sum of the samples of `metric` whose labels contain `filter`.
    public static func sum(of metric: String, where filter: String, in text: String) -> Int {
        text.split(separator: "\n")
            .filter { line in
                !line.hasPrefix("#") && (line.hasPrefix(metric + "{") || line.hasPrefix(metric + " "))
                    && (filter.isEmpty || line.contains(filter))
            }
            .compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }
            .reduce(0) { $0 + Int($1) }
    }
}
