import Foundation

/// One HTTP GET through the `curl` CLI: the status code (0 when there was no HTTP answer) and body.
func httpGet(
    _ url: String, caFile: String? = nil, insecure: Bool = false, bearerToken: String? = nil
) async throws -> (status: Int, body: String) {
    let curl = try requireExecutable("curl", package: "curl")
    var arguments = ["-sS", "--max-time", "3", "-w", "\n%{http_code}"]
    if let caFile { arguments += ["--cacert", caFile] }
    if insecure { arguments.append("-k") }
    if let bearerToken { arguments += ["-H", "Authorization: Bearer \(bearerToken)"] }
    arguments.append(url)
    let result = try await runCommand(curl, arguments, timeout: .seconds(10))
    var lines = result.stdout.split(separator: "\n", omittingEmptySubsequences: false)
    let code = lines.popLast().flatMap { Int($0) } ?? 0
    let body = lines.joined(separator: "\n")
    return (code, body.isEmpty ? result.stderr : body)
}

/// Polls `check` every `interval` until it returns true; fails if `server` exits or `timeout` passes.
/// `check` returns a description of the last answer for the timeout error.
func waitUntil(
    _ what: String, server: ServerProcess, timeout: Duration, interval: Duration = .milliseconds(100),
    check: () async throws -> (ok: Bool, detail: String)
) async throws {
    let deadline = ContinuousClock.now + timeout
    var detail = ""
    while true {
        if let status = server.exitStatus {
            throw server.failure("exited with status \(status) while waiting for \(what)")
        }
        let answer = try await check()
        if answer.ok { return }
        detail = answer.detail
        if ContinuousClock.now > deadline {
            throw server.failure("\(what) did not happen within \(timeout); last answer: \(detail)")
        }
        try await Task.sleep(for: interval)
    }
}
