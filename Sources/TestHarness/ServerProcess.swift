import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A long-running server (etcd, kube-apiserver, registry) started through a small `/bin/sh`
/// supervisor, so that it never outlives the test process:
///
/// - the supervisor starts the server in the background, writes its pid to a file and waits for it;
/// - a watcher loop in the supervisor checks every second that the supervisor's parent is still the
///   test process; once the test process is gone (crash, SIGKILL) it sends the server SIGTERM and,
///   5 s later, SIGKILL;
/// - a SIGTERM to the supervisor is forwarded to the server;
/// - an `atexit` handler in the test process kills every server still registered.
///
/// stdout and stderr of the server go to `logFile`. Only pids started here are ever signalled.
final class ServerProcess: Sendable {
    let name: String
    let executable: String
    let arguments: [String]
    let environment: [String: String]
    let logFile: String
    private let directory: String

    private struct Running {
        var supervisor: Process
        var supervisorPid: pid_t
        var serverPid: pid_t
        var exit: ExitSignal
    }
    private let running = Mutex<Running?>(nil)

    init(name: String, executable: String, arguments: [String], environment: [String: String] = [:], directory: String) {
        self.name = name
        self.executable = executable
        self.arguments = arguments
        self.environment = environment
        self.logFile = "\(directory)/\(name).log"
        self.directory = directory
    }

    // $1 = pid of the test process, $2 = pid file, the rest = the server's command line.
    private static let supervisorScript = #"""
        parent=$1; pidfile=$2; shift 2
        "$@" </dev/null &
        child=$!
        echo "$child" > "$pidfile.tmp" && mv "$pidfile.tmp" "$pidfile"
        self=$$
        (
          s=
          trap 'if [ -n "$s" ]; then kill "$s" 2>/dev/null; wait "$s"; fi; exit 0' TERM
          while :; do
            pp=gone
            { read -r _ _ _ pp _ < "/proc/$self/stat"; } 2>/dev/null
            if [ "$pp" != "$parent" ]; then
              kill -TERM "$child" 2>/dev/null
              i=0
              while kill -0 "$child" 2>/dev/null && [ "$i" -lt 10 ]; do sleep 0.5; i=$((i+1)); done
              kill -KILL "$child" 2>/dev/null
              exit 0
            fi
            sleep 1 & s=$!
            wait "$s"; s=
          done
        ) </dev/null 2>/dev/null &
        watcher=$!
        trap 'kill -TERM "$child" 2>/dev/null' TERM INT HUP
        while :; do
          wait "$child"; status=$?
          kill -0 "$child" 2>/dev/null || break
        done
        kill "$watcher" 2>/dev/null; wait "$watcher"
        echo "[harness] pid $child exited with status $status"
        exit "$status"
        """#

    /// Starts the server (again, if it was stopped). Returns once its pid is known.
    func start() async throws {
        guard FileManager.default.isExecutableFile(atPath: executable) else {
            throw HarnessError("\(name): \(executable) is not an executable file")
        }
        try stop(immediately: true)
        // One pid file per start, so a late exit of a previous supervisor never reads this one.
        let pidFile = "\(directory)/.\(name)-\(randomHex(bytes: 4)).pid"
        if !FileManager.default.fileExists(atPath: logFile) {
            _ = FileManager.default.createFile(atPath: logFile, contents: nil)
        }
        guard let log = FileHandle(forWritingAtPath: logFile) else {
            throw HarnessError("\(name): cannot open log file \(logFile)")
        }
        defer { try? log.close() }
        _ = try? log.seekToEnd()
        let stamp = ISO8601DateFormatter().string(from: Date())
        log.write(Data("[harness] \(stamp) starting \(executable) \(arguments.joined(separator: " "))\n".utf8))

        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", Self.supervisorScript, "ib-supervise-\(name)", "\(getpid())", pidFile, executable] + arguments
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        let exit = ExitSignal()
        process.terminationHandler = { process in
            // The supervisor only exits after the server did (or was killed itself): forget both.
            ChildRegistry.shared.remove(process.processIdentifier)
            if let text = try? String(contentsOfFile: pidFile, encoding: .utf8),
                let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines))
            {
                ChildRegistry.shared.remove(pid)
            }
            exit.fire(process.terminationStatus)
        }
        ChildRegistry.shared.installAtExitHandler()
        do {
            try process.run()
        } catch {
            throw failure("cannot start the supervisor shell: \(error)")
        }
        let supervisorPid = process.processIdentifier
        ChildRegistry.shared.add(supervisor: supervisorPid)
        if exit.status != nil { ChildRegistry.shared.remove(supervisorPid) }

        // The supervisor writes the server's pid right after forking it.
        let deadline = ContinuousClock.now + .seconds(10)
        var serverPid: pid_t?
        while serverPid == nil {
            if let text = try? String(contentsOfFile: pidFile, encoding: .utf8),
                let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines))
            {
                serverPid = pid
            } else if exit.status != nil || ContinuousClock.now > deadline {
                ChildRegistry.shared.remove(supervisorPid)
                if exit.status == nil { kill(supervisorPid, SIGKILL) }
                throw failure("the supervisor did not start the server")
            } else {
                await pause(milliseconds: 5)
            }
        }
        ChildRegistry.shared.add(server: serverPid!)
        if exit.status != nil { ChildRegistry.shared.remove(serverPid!) }
        running.withLock {
            $0 = Running(supervisor: process, supervisorPid: supervisorPid, serverPid: serverPid!, exit: exit)
        }
    }

    /// The server's pid while it runs.
    var pid: pid_t? {
        running.withLock { $0?.exit.status == nil ? $0?.serverPid : nil }
    }

    /// True while the server (its supervisor) has not exited.
    var isRunning: Bool { pid != nil }

    /// The exit status, when it was started and has exited.
    var exitStatus: Int32? { running.withLock { $0?.exit.status } }

    /// SIGTERM, then SIGKILL after `grace`; returns once the server has exited.
    func stop(grace: Duration = .seconds(5)) async {
        guard let current = running.withLock({ $0 }) else { return }
        if current.exit.status == nil {
            kill(current.serverPid, SIGTERM)
            if await !waitForExit(current.exit, timeout: grace) {
                kill(current.serverPid, SIGKILL)
                if await !waitForExit(current.exit, timeout: .seconds(5)) {
                    kill(current.supervisorPid, SIGKILL)
                    _ = await waitForExit(current.exit, timeout: .seconds(5))
                }
            }
        }
        forget(current)
    }

    /// SIGKILL, then waits for the exit.
    func killNow() async {
        guard let current = running.withLock({ $0 }) else { return }
        if current.exit.status == nil {
            kill(current.serverPid, SIGKILL)
            _ = await waitForExit(current.exit, timeout: .seconds(10))
        }
        forget(current)
    }

    /// SIGKILL without waiting (before a restart); the supervisor exits by itself.
    func stop(immediately: Bool) throws {
        guard let current = running.withLock({ $0 }) else { return }
        if current.exit.status == nil { kill(current.serverPid, SIGKILL) }
        forget(current)
    }

    private func forget(_ current: Running) {
        ChildRegistry.shared.remove(current.serverPid)
        ChildRegistry.shared.remove(current.supervisorPid)
        running.withLock { if $0?.supervisorPid == current.supervisorPid { $0 = nil } }
    }

    private func waitForExit(_ exit: ExitSignal, timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while exit.status == nil {
            if ContinuousClock.now > deadline { return false }
            await pause(milliseconds: 20)
        }
        return true
    }

    /// The last lines of the server's log.
    func logTail(lines: Int = 40) -> String { tailOfFile(logFile, lines: lines) }

    /// An error about this server, with the tail of its log.
    func failure(_ message: String) -> HarnessError {
        HarnessError("\(name): \(message)", logTail: logTail(), logFile: logFile)
    }
}

/// Sleeps, also in a cancelled task (cleanup must still wait for processes to exit).
func pause(milliseconds: Int) async {
    do {
        try await Task.sleep(for: .milliseconds(milliseconds))
    } catch {
        usleep(UInt32(milliseconds) * 1000)
    }
}

/// Every pid and temporary directory the harness created, for the `atexit` cleanup.
final class ChildRegistry: Sendable {
    static let shared = ChildRegistry()

    private struct State {
        var servers: Set<pid_t> = []
        var supervisors: Set<pid_t> = []
        var directories: Set<String> = []
        var exitHooks: [String: @Sendable () -> Void] = [:]
        var installed = false
    }
    private let state = Mutex(State())

    func add(server pid: pid_t) { state.withLock { _ = $0.servers.insert(pid) } }
    func add(supervisor pid: pid_t) { state.withLock { _ = $0.supervisors.insert(pid) } }
    func remove(_ pid: pid_t) {
        state.withLock {
            $0.servers.remove(pid)
            $0.supervisors.remove(pid)
        }
    }
    func addDirectory(_ path: String) { state.withLock { _ = $0.directories.insert(path) } }
    func removeDirectory(_ path: String) { state.withLock { _ = $0.directories.remove(path) } }
    /// A clean-up that runs at exit before the servers are killed (host state a server leaves:
    /// mounts, network devices, firewall rules). Synchronous; removed again with `removeExitHook`.
    func addExitHook(_ key: String, _ hook: @escaping @Sendable () -> Void) {
        installAtExitHandler()
        state.withLock { $0.exitHooks[key] = hook }
    }
    func removeExitHook(_ key: String) { state.withLock { _ = $0.exitHooks.removeValue(forKey: key) } }

    func installAtExitHandler() {
        let first = state.withLock { state in
            defer { state.installed = true }
            return !state.installed
        }
        if first { atexit { ChildRegistry.shared.killAll() } }
    }

    /// Kills every registered server (SIGKILL), lets their supervisors exit and reaps them (so no
    /// zombie is left to a parentless future), then removes the registered directories.
    func killAll() {
        let hooks = state.withLock { state in
            defer { state.exitHooks = [:] }
            return state.exitHooks
        }
        for (_, hook) in hooks.sorted(by: { $0.key < $1.key }) { hook() }
        let (servers, supervisors, directories) = state.withLock { state in
            defer { state = State(installed: true) }
            return (state.servers, state.supervisors, state.directories)
        }
        for pid in servers { kill(pid, SIGKILL) }
        var waiting = supervisors
        for _ in 0..<150 where !waiting.isEmpty {
            waiting = waiting.filter { pid in
                var status: Int32 = 0
                let reaped = waitpid(pid, &status, WNOHANG)
                return reaped == 0 || (reaped < 0 && errno != ECHILD && kill(pid, 0) == 0)
            }
            if !waiting.isEmpty { usleep(20_000) }
        }
        for pid in waiting { kill(pid, SIGKILL) }
        for directory in directories { try? FileManager.default.removeItem(atPath: directory) }
    }
}

/// Creates a fresh directory for one harness instance, named after this process, and removes
/// directories left behind by harness processes that no longer exist.
func makeHarnessDirectory(kind: String) throws -> String {
    let fm = FileManager.default
    let base = ProcessInfo.processInfo.environment["IMAGE_BUILDER_TEST_TMPDIR"] ?? fm.temporaryDirectory.path
    // ib-harness-<pid>-<kind>-<random>: stale when <pid> is gone.
    if let entries = try? fm.contentsOfDirectory(atPath: base) {
        for entry in entries where entry.hasPrefix("ib-harness-") {
            let parts = entry.split(separator: "-")
            if parts.count > 3, let pid = pid_t(parts[2]), pid != getpid(), kill(pid, 0) != 0, errno == ESRCH {
                // A node tier's leftovers: mounts (never delete through a mount), containers.
                unmountAll(under: "\(base)/\(entry)")
                try? fm.removeItem(atPath: "\(base)/\(entry)")
            }
        }
    }
    let suffix = UUID().uuidString.prefix(8).lowercased()
    let path = "\(base)/ib-harness-\(getpid())-\(kind)-\(suffix)"
    try fm.createDirectory(atPath: path, withIntermediateDirectories: true)
    ChildRegistry.shared.addDirectory(path)
    return path
}

/// Ports handed out in this process, so two servers never get the same one.
private let handedOutPorts = Mutex<Set<Int>>([])

/// A currently free TCP port on 127.0.0.1 (bind to port 0, read the port, close).
public func freeLoopbackPort() throws -> Int {
    try freePort(on: "127.0.0.1")
}

/// A TCP port currently free on every one of `addresses` (IPv4), handed out once per process.
public func freePort(on addresses: String...) throws -> Int {
    try freePort(onAll: addresses)
}

/// A TCP port currently free on every one of `addresses` (IPv4), handed out once per process.
public func freePort(onAll addresses: [String]) throws -> Int {
    let first = addresses.first ?? "127.0.0.1"
    for _ in 0..<50 {
        let port = try freePortCandidate(on: first)
        if addresses.dropFirst().allSatisfy({ canBind($0, port: port) }) { return port }
    }
    throw HarnessError("no port free on all of \(addresses.joined(separator: ", ")) found")
}

/// True when a TCP socket can bind `address:port` right now.
func canBind(_ address: String, port: Int) -> Bool {
    #if canImport(Glibc)
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    #else
    let fd = socket(AF_INET, SOCK_STREAM, 0)
    #endif
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var address4 = sockaddr_in()
    address4.sin_family = sa_family_t(AF_INET)
    address4.sin_port = UInt16(port).bigEndian
    address4.sin_addr.s_addr = inet_addr(address)
    let length = socklen_t(MemoryLayout<sockaddr_in>.size)
    return withUnsafePointer(to: &address4) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 }
    }
}

private func freePortCandidate(on host: String) throws -> Int {
    for _ in 0..<50 {
        #if canImport(Glibc)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw HarnessError("socket() failed: errno \(errno)") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr(host)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                bind(fd, sa, length) == 0 && getsockname(fd, sa, &length) == 0
            }
        }
        guard bound else { throw HarnessError("cannot bind a socket to \(host):0: errno \(errno)") }
        let port = Int(UInt16(bigEndian: address.sin_port))
        if handedOutPorts.withLock({ $0.insert(port).inserted }) { return port }
    }
    throw HarnessError("no free port on \(host) found")
}
