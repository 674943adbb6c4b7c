import Foundation

/// A harness failure: what went wrong and, when a server was involved, the tail of its log.
public struct HarnessError: Error, CustomStringConvertible, Sendable {
    /// What failed and why.
    public var message: String
    /// The last lines of the log of the process concerned, if any.
    public var logTail: String?
    /// Where the full log is.
    public var logFile: String?

    public init(_ message: String, logTail: String? = nil, logFile: String? = nil) {
        self.message = message
        self.logTail = logTail
        self.logFile = logFile
    }

    public var description: String {
        var text = message
        if let logFile { text += "\n(log: \(logFile); failed starts keep it with IMAGE_BUILDER_KEEP_TEST_DIRS=1)" }
        if let logTail, !logTail.isEmpty {
            text += "\n--- last lines of the log ---\n" + logTail
        }
        return text
    }

    static func missingBinary(_ path: String, what: String) -> HarnessError {
        HarnessError(
            "\(what) not found at \(path). Build the control plane with scripts/install-deps.sh "
                + "(set IMAGE_BUILDER_CACHE if it lives elsewhere than /var/cache/image-builder).")
    }
}

/// The last `count` lines of a text file ("" if it cannot be read).
func tailOfFile(_ path: String, lines count: Int = 40) -> String {
    guard let data = FileManager.default.contents(atPath: path) else { return "" }
    // Only look at the end of big logs.
    let slice = data.count > 256 * 1024 ? data.suffix(256 * 1024) : data
    let text = String(decoding: slice, as: UTF8.self)
    var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
    if lines.last == "" { lines.removeLast() }
    return lines.suffix(count).joined(separator: "\n")
}
