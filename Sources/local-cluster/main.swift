// `local-cluster`: the test harness's node tier (a real single-node Kubernetes cluster with a
// registry and the test images) as a command for shell scripts; the same `NodeCluster` the tests
// start.
//
//   local-cluster up [--state-dir DIR] [--detach]   start; in the foreground until SIGTERM/SIGINT
//                                                   or `down` (--detach: in the background, return
//                                                   once it is ready)
//   local-cluster down [--state-dir DIR]            stop what `up` started
//   local-cluster status [--state-dir DIR]          print the environment of a running tier
//
// The state directory (default $IMAGE_BUILDER_LOCAL_CLUSTER or /tmp/image-builder-local-cluster)
// holds: `pid` (of `up`), `kubeconfig` (admin, self-contained), `env` (shell assignments: KUBECONFIG,
// KUBECTL, REGISTRY, POD_REGISTRY, BASE_IMAGE, BUILDER_IMAGE, PAUSE_IMAGE, BRIDGE_ADDRESS,
// SECCOMP_PROFILE, REGISTRIES_CONF, …), `registries.conf`, `local-cluster.log` with --detach, and
// `ready` once everything is up. Needs root and `scripts/install-deps.sh`.
import Foundation
import Synchronization
import TestHarness

#if canImport(Glibc)
import Glibc
#endif

func fail(_ message: String, status: Int32 = 1) -> Never {
    FileHandle.standardError.write(Data("local-cluster: \(message)\n".utf8))
    exit(status)
}

/// Writes to stdout at once (also when stdout is a file).
func say(_ text: String) {
    FileHandle.standardOutput.write(Data((text.hasSuffix("\n") || text.isEmpty ? text : text + "\n").utf8))
}

/// The command line.
struct Invocation: Sendable {
    static let usage = "usage: local-cluster up|down|status [--state-dir DIR] [--detach]"
    var command: String
    var stateDirectory: String
    var detach = false

    init(_ commandLine: [String]) {
        var arguments = commandLine
        guard let command = arguments.first else { fail(Self.usage, status: 2) }
        arguments.removeFirst()
        self.command = command
        stateDirectory = ProcessInfo.processInfo.environment["IMAGE_BUILDER_LOCAL_CLUSTER"]
            ?? "/tmp/image-builder-local-cluster"
        while let argument = arguments.first {
            arguments.removeFirst()
            switch argument {
            case "--state-dir":
                guard let value = arguments.first else { fail("--state-dir needs a value", status: 2) }
                stateDirectory = value
                arguments.removeFirst()
            case "--detach":
                detach = true
            default:
                fail("unknown argument \(argument)\n\(Self.usage)", status: 2)
            }
        }
    }

    var pidFile: String { stateDirectory + "/pid" }
    var readyFile: String { stateDirectory + "/ready" }
    var envFile: String { stateDirectory + "/env" }
}

let invocation = Invocation(Array(CommandLine.arguments.dropFirst()))
let stateDirectory = invocation.stateDirectory
let pidFile = invocation.pidFile, readyFile = invocation.readyFile, envFile = invocation.envFile

/// The pid of a running `up`, if any.
func runningPid(_ pidFile: String = pidFile) -> pid_t? {
    guard let text = try? String(contentsOfFile: pidFile, encoding: .utf8),
        let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)), kill(pid, 0) == 0
    else { return nil }
    return pid
}

/// `NAME='value'` with the value single-quoted for sh.
func assignment(_ name: String, _ value: String) -> String {
    "export \(name)='\(value.replacingOccurrences(of: "'", with: "'\\''"))'"
}

/// Runs `up` in a new session in the background; returns once the state directory says ready.
func upDetached() -> Never {
    if let pid = runningPid() { fail("already up (pid \(pid)); see \(envFile)") }
    try? FileManager.default.createDirectory(atPath: stateDirectory, withIntermediateDirectories: true)
    try? FileManager.default.removeItem(atPath: readyFile)
    let log = stateDirectory + "/local-cluster.log"
    let fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard fd >= 0 else { fail("cannot open \(log)") }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_adddup2(&actions, fd, 1)
    posix_spawn_file_actions_adddup2(&actions, fd, 2)
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    posix_spawnattr_setflags(&attributes, 0x80)  // POSIX_SPAWN_SETSID: a session of its own
    let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    let argv: [UnsafeMutablePointer<CChar>?] =
        [executable, "up", "--state-dir", stateDirectory].map { (text: String) in strdup(text) } + [nil]
    var pid: pid_t = 0
    let spawned = posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
    close(fd)
    guard spawned == 0 else { fail("cannot start \(executable): error \(spawned)") }
    let deadline = Date().addingTimeInterval(1200)
    while !FileManager.default.fileExists(atPath: readyFile) {
        var status: Int32 = 0
        if waitpid(pid, &status, WNOHANG) == pid {
            let tail = ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").suffix(40)
            fail("up exited before it was ready:\n" + tail.joined(separator: "\n"))
        }
        if Date() > deadline { fail("not ready after 20 minutes; see \(log)") }
        usleep(200_000)
    }
    say((try? String(contentsOfFile: envFile, encoding: .utf8)) ?? "")
    exit(0)
}

/// Starts the tier, writes the state directory, waits for SIGTERM/SIGINT, stops the tier.
func up(_ invocation: Invocation) async -> Never {
    let stateDirectory = invocation.stateDirectory
    let pidFile = invocation.pidFile, readyFile = invocation.readyFile, envFile = invocation.envFile
    if let pid = runningPid(pidFile), pid != getpid() { fail("already up (pid \(pid)); see \(envFile)") }
    do {
        try FileManager.default.createDirectory(atPath: stateDirectory, withIntermediateDirectories: true)
        try? FileManager.default.removeItem(atPath: readyFile)
        try "\(getpid())\n".write(toFile: pidFile, atomically: true, encoding: .utf8)
    } catch {
        fail("cannot write \(stateDirectory): \(error)")
    }
    // A handler, not SIG_IGN: an ignored signal stays ignored in every child (the servers would
    // not stop on SIGTERM); a handler is reset to the default by exec.
    for number in [SIGTERM, SIGINT, SIGHUP] {
        signal(number) { receivedSignal.store($0, ordering: .relaxed) }
    }
    let cluster: NodeCluster
    do {
        cluster = try await NodeCluster.start()
    } catch {
        try? FileManager.default.removeItem(atPath: pidFile)
        fail("the node tier did not start: \(error)")
    }
    let kubeconfig = stateDirectory + "/kubeconfig", registriesConf = stateDirectory + "/registries.conf"
    let environment = [
        assignment("KUBECONFIG", kubeconfig),
        assignment("KUBECTL", cluster.kubectlPath),
        assignment("API_SERVER", cluster.controlPlane.serverURL.absoluteString),
        assignment("REGISTRY", cluster.registry.host),
        assignment("POD_REGISTRY", cluster.podRegistryHost),
        assignment("BASE_IMAGE", cluster.images.base),
        assignment("BUILDER_IMAGE", cluster.images.builder),
        assignment("PAUSE_IMAGE", cluster.images.pause),
        assignment("BRIDGE_ADDRESS", cluster.bridgeAddress),
        assignment("NODE_NAME", cluster.nodeName),
        assignment("SECCOMP_PROFILE", NodeCluster.buildahSeccompProfile),
        assignment("REGISTRIES_CONF", registriesConf),
        assignment("CLUSTER_DIR", cluster.directory),
        assignment("LOCAL_CLUSTER_PID", "\(getpid())"),
    ]
    do {
        try cluster.controlPlane.embeddedKubeconfig(for: .admin).write(toFile: kubeconfig, atomically: true, encoding: .utf8)
        try cluster.registriesConf.write(toFile: registriesConf, atomically: true, encoding: .utf8)
        try (environment.joined(separator: "\n") + "\n").write(toFile: envFile, atomically: true, encoding: .utf8)
        try "\(cluster.startupDuration)\n".write(toFile: readyFile, atomically: true, encoding: .utf8)
    } catch {
        await cluster.stop()
        fail("cannot write \(stateDirectory): \(error)")
    }
    say("ready in \(cluster.startupDuration); environment in \(envFile):")
    say(environment.joined(separator: "\n"))

    while receivedSignal.load(ordering: .relaxed) == 0 { try? await Task.sleep(for: .milliseconds(200)) }
    let received = receivedSignal.load(ordering: .relaxed)
    say("signal \(received): stopping")
    await cluster.stop()
    for file in [readyFile, pidFile, envFile] { try? FileManager.default.removeItem(atPath: file) }
    say("stopped")
    exit(0)
}

/// The last signal received (0: none yet); set by the signal handler.
let receivedSignal = Atomic<Int32>(0)

/// Sends SIGTERM to `up` and waits until it has stopped the tier.
func down() -> Never {
    guard let pid = runningPid() else {
        say("not running (no live pid in \(pidFile))")
        exit(0)
    }
    kill(pid, SIGTERM)
    let deadline = Date().addingTimeInterval(180)
    while kill(pid, 0) == 0 {
        if Date() > deadline { fail("pid \(pid) did not stop within 3 minutes") }
        usleep(200_000)
    }
    say("stopped (pid \(pid))")
    exit(0)
}

switch invocation.command {
case "up" where invocation.detach: upDetached()
case "up": await up(invocation)
case "down": down()
case "status":
    guard runningPid() != nil, FileManager.default.fileExists(atPath: readyFile) else { fail("not running", status: 3) }
    say((try? String(contentsOfFile: envFile, encoding: .utf8)) ?? "")
default: fail(Invocation.usage, status: 2)
}
