import Foundation

/// A program the tests run as a separate process — the operator, `image-builder run` — with the
/// harness's supervision: it never outlives the test process, its output goes to `logFile`, and it
/// can be stopped gracefully or killed with SIGKILL (the chaos scenarios) and started again.
public final class ChildProcess: Sendable {
    private let server: ServerProcess

    /// - Parameters:
    ///   - name: names the log file (`<directory>/<name>.log`, appended to across restarts).
    ///   - directory: an existing directory, e.g. a control plane's.
    public init(name: String, executable: String, arguments: [String], environment: [String: String] = [:],
                directory: String) {
        server = ServerProcess(name: name, executable: executable, arguments: arguments, environment: environment,
                               directory: directory)
    }

    public var name: String { server.name }
    public var logFile: String { server.logFile }
    /// The program's pid while it runs.
    public var pid: Int32? { server.pid }
    public var isRunning: Bool { server.isRunning }
    /// Its exit status once it has exited.
    public var exitStatus: Int32? { server.exitStatus }

    /// Starts it (again, after a stop or kill). Returns once its pid is known.
    public func start() async throws { try await server.start() }

    /// SIGTERM, then SIGKILL after `grace`; returns once it has exited.
    public func stop(grace: Duration = .seconds(5)) async { await server.stop(grace: grace) }

    /// SIGKILL at once (no goodbye: its leases and connections are left as they are); returns once
    /// it has exited.
    public func kill() async { await server.killNow() }

    /// The last lines of its output.
    public func logTail(lines: Int = 40) -> String { server.logTail(lines: lines) }
}
