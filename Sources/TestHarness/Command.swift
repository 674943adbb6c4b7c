import Foundation
import Synchronization

/// The outcome of a finished command.
public struct CommandResult: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
    /// True when the command exited with status 0.
    public var succeeded: Bool { status == 0 }
}

/// Runs `executable` with `arguments` to completion and captures its output.
///
/// Output goes through temporary files (no pipes, so no reader threads and no deadlock on large
/// output). A non-zero exit status is not an error; a command that cannot be started is.
/// After `timeout` the command is killed (SIGKILL) and the call throws.
public func runCommand(
    _ executable: String,
    _ arguments: [String],
    environment: [String: String] = [:],
    input: Data? = nil,
    timeout: Duration = .seconds(120)
) async throws -> CommandResult {
    let fm = FileManager.default
    let scratch = fm.temporaryDirectory.appendingPathComponent("ib-cmd-\(UUID().uuidString)").path
    try fm.createDirectory(atPath: scratch, withIntermediateDirectories: true)
    defer { try? fm.removeItem(atPath: scratch) }
    let outPath = scratch + "/stdout", errPath = scratch + "/stderr", inPath = scratch + "/stdin"
    _ = fm.createFile(atPath: outPath, contents: nil)
    _ = fm.createFile(atPath: errPath, contents: nil)
    _ = fm.createFile(atPath: inPath, contents: input ?? Data())
    guard let out = FileHandle(forWritingAtPath: outPath), let err = FileHandle(forWritingAtPath: errPath),
        let stdin = FileHandle(forReadingAtPath: inPath)
    else { throw HarnessError("cannot create output files in \(scratch)") }
    defer {
        try? out.close()
        try? err.close()
        try? stdin.close()
    }

    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    if !environment.isEmpty {
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    }
    process.standardOutput = out
    process.standardError = err
    process.standardInput = stdin
    let exit = ExitSignal()
    process.terminationHandler = { exit.fire($0.terminationStatus) }
    do {
        try process.run()
    } catch {
        throw HarnessError("cannot run \(executable): \(error)")
    }
    let pid = process.processIdentifier
    let started = ContinuousClock.now
    let status = await withTaskGroup(of: Void.self) { group in
        group.addTask {
            if (try? await Task.sleep(for: timeout)) != nil { kill(pid, SIGKILL) }
        }
        let status = await exit.wait()
        group.cancelAll()
        return status
    }
    let stdout = String(decoding: fm.contents(atPath: outPath) ?? Data(), as: UTF8.self)
    let stderr = String(decoding: fm.contents(atPath: errPath) ?? Data(), as: UTF8.self)
    if process.terminationReason == .uncaughtSignal && status == SIGKILL
        && ContinuousClock.now - started >= timeout
    {
        throw HarnessError(
            "\(executable) \(arguments.joined(separator: " ")) timed out after \(timeout)",
            logTail: stderr)
    }
    return CommandResult(status: status, stdout: stdout, stderr: stderr)
}

/// Like `runCommand`, but a non-zero exit status throws an error carrying stderr.
@discardableResult
func runChecked(
    _ executable: String, _ arguments: [String], environment: [String: String] = [:],
    input: Data? = nil, timeout: Duration = .seconds(120)
) async throws -> String {
    let result = try await runCommand(
        executable, arguments, environment: environment, input: input, timeout: timeout)
    guard result.succeeded else {
        let name = (executable as NSString).lastPathComponent
        throw HarnessError(
            "\(name) \(arguments.joined(separator: " ")) failed with status \(result.status)",
            logTail: (result.stderr + result.stdout).trimmingCharacters(in: .whitespacesAndNewlines))
    }
    return result.stdout
}

/// A one-shot event carrying an exit status; `wait()` suspends until it fires.
final class ExitSignal: Sendable {
    private struct State {
        var status: Int32?
        var waiters: [CheckedContinuation<Int32, Never>] = []
    }
    private let state = Mutex(State())

    func fire(_ status: Int32) {
        let waiters = state.withLock { state in
            state.status = status
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(returning: status) }
    }

    var status: Int32? { state.withLock { $0.status } }

    func wait() async -> Int32 {
        await withCheckedContinuation { continuation in
            let done = state.withLock { state -> Int32? in
                if let status = state.status { return status }
                state.waiters.append(continuation)
                return nil
            }
            if let done { continuation.resume(returning: done) }
        }
    }
}

/// Looks `name` up in PATH, then in `fallbacks`.
func findExecutable(_ name: String, fallbacks: [String] = []) -> String? {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
    let candidates = path.split(separator: ":").map { "\($0)/\(name)" } + fallbacks
    return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
}

/// `findExecutable`, or an error naming the Debian package that provides it.
func requireExecutable(_ name: String, package: String, fallbacks: [String] = []) throws -> String {
    guard let path = findExecutable(name, fallbacks: fallbacks) else {
        throw HarnessError(
            "\(name) not found in PATH (Debian package \(package); scripts/install-deps.sh installs it)")
    }
    return path
}
