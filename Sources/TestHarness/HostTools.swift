import Foundation

#if canImport(Glibc)
import Glibc
#endif

// Synchronous host helpers for clean-ups that must also work in an `atexit` handler, where no
// task runs: processes started with posix_spawn and reaped with waitpid, mounts, /proc scans.

/// Runs a command to completion without Foundation's Process; output (stdout and stderr) is
/// captured through a temporary file. After `timeout` seconds the command is killed.
@discardableResult
func runSync(_ executable: String, _ arguments: [String], timeout: Double = 30) -> (status: Int32, output: String) {
    let outPath = FileManager.default.temporaryDirectory.appendingPathComponent("ib-sync-\(UUID().uuidString)").path
    defer { unlink(outPath) }
    let fd = open(outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    guard fd >= 0 else { return (-1, "cannot create \(outPath)") }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_adddup2(&actions, fd, 1)
    posix_spawn_file_actions_adddup2(&actions, fd, 2)
    let argv = ([executable] + arguments).map { strdup($0) } + [nil]
    defer { for pointer in argv { free(pointer) } }
    var pid: pid_t = 0
    let spawned = posix_spawn(&pid, executable, &actions, nil, argv, environ)
    close(fd)
    guard spawned == 0 else { return (-1, "cannot run \(executable): error \(spawned)") }
    var status: Int32 = 0
    let deadline = Date().addingTimeInterval(timeout)
    while true {
        let reaped = waitpid(pid, &status, WNOHANG)
        if reaped == pid { break }
        if reaped < 0 && errno != EINTR { status = -1; break }
        if Date() > deadline {
            kill(pid, SIGKILL)
            waitpid(pid, &status, 0)
            break
        }
        usleep(10_000)
    }
    let output = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
    let exitCode: Int32 = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    return (exitCode, output)
}

/// The whole content of a /proc file. (`String(contentsOfFile:)` and `FileManager.contents` stop
/// after the first page of these files, whose reported size is 0.)
func readProcFile(_ path: String) -> Data? {
    guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
    defer { try? handle.close() }
    return try? handle.readToEnd()
}

/// Mount points at or below `directory` (from /proc/self/mountinfo), deepest first.
func mountPoints(under directory: String, inNamespaceOf pid: pid_t? = nil) -> [String] {
    guard let data = readProcFile("/proc/\(pid.map(String.init) ?? "self")/mountinfo") else { return [] }
    let text = String(decoding: data, as: UTF8.self)
    let prefix = directory.hasSuffix("/") ? directory : directory + "/"
    var points: [String] = []
    for line in text.split(separator: "\n") {
        let fields = line.split(separator: " ")
        guard fields.count > 4 else { continue }
        let point = unescapeMountField(String(fields[4]))
        if point == directory || point.hasPrefix(prefix) { points.append(point) }
    }
    return points.sorted { $0.split(separator: "/").count > $1.split(separator: "/").count }
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
private func unescapeMountField(_ field: String) -> String {
    guard field.contains("\\") else { return field }
    var bytes: [UInt8] = []
    var iterator = Array(field.utf8)[...]
    while let byte = iterator.popFirst() {
        if byte == UInt8(ascii: "\\"), iterator.count >= 3,
            let value = UInt8(String(decoding: iterator.prefix(3), as: UTF8.self), radix: 8)
        {
            bytes.append(value)
            iterator = iterator.dropFirst(3)
        } else {
            bytes.append(byte)
        }
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// Unmounts everything mounted at or below `directory` (deepest first; lazily when busy).
/// Returns what could not be unmounted.
@discardableResult
func unmountAll(under directory: String) -> [String] {
    var failed: [String] = []
    // A mount point can be stacked several times; a few rounds take them all.
    for _ in 0..<4 {
        let points = mountPoints(under: directory)
        if points.isEmpty { return [] }
        failed = []
        for point in points where umount2(point, 0) != 0 {
            if umount2(point, Int32(MNT_DETACH)) != 0 { failed.append(point) }
        }
    }
    return mountPoints(under: directory).isEmpty ? [] : failed
}

/// Processes whose command line satisfies `matches` (pid and arguments), from /proc.
func processes(where matches: ([String]) -> Bool) -> [(pid: pid_t, arguments: [String])] {
    guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
    var found: [(pid_t, [String])] = []
    for entry in entries {
        guard let pid = pid_t(entry), pid != getpid(),
            let data = readProcFile("/proc/\(entry)/cmdline"), !data.isEmpty
        else { continue }
        let arguments = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        if matches(arguments) { found.append((pid, arguments)) }
    }
    return found
}

/// True while `pid` exists.
func processExists(_ pid: pid_t) -> Bool { kill(pid, 0) == 0 || errno == EPERM }

/// SIGTERM to `pids`, then SIGKILL to those still there after `grace` seconds.
func terminate(_ pids: [pid_t], grace: Double) {
    guard !pids.isEmpty else { return }
    for pid in pids { kill(pid, SIGTERM) }
    let deadline = Date().addingTimeInterval(grace)
    while pids.contains(where: processExists), Date() < deadline { usleep(20_000) }
    for pid in pids where processExists(pid) { kill(pid, SIGKILL) }
}
