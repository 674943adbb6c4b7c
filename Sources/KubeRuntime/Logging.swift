import Foundation
import Logging

/// How log lines look: `text` for people, `json` (one object per line) for log collectors.
public enum LogFormat: String, Sendable, CaseIterable {
    case text
    case json
}

/// Sets up swift-log for an operator process: `--log-format text|json` and `--log-level`.
public enum LoggingBootstrap {
    /// Bootstraps the logging system (once per process) to write to standard error.
    public static func bootstrap(format: LogFormat, level: Logger.Level) {
        LoggingSystem.bootstrap { label in
            makeHandler(label: label, format: format, level: level)
        }
    }

    /// A handler writing to standard error in `format`, at `level` and above.
    public static func makeHandler(label: String, format: LogFormat, level: Logger.Level) -> any LogHandler {
        switch format {
        case .text:
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        case .json:
            var handler = JSONLogHandler(label: label)
            handler.logLevel = level
            return handler
        }
    }

    /// Parses a level name (`trace`, `debug`, `info`, `notice`, `warning`, `error`, `critical`).
    public static func level(named name: String) -> Logger.Level? {
        Logger.Level(rawValue: name.lowercased())
    }
}

/// Writes each log record as one JSON object per line:
/// `{"ts":"2024-01-02T03:04:05.678Z","level":"info","logger":"…","msg":"…",<metadata…>}`.
/// Metadata keys follow in sorted order; nested metadata becomes nested JSON.
public struct JSONLogHandler: LogHandler {
    public let label: String
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let write: @Sendable (String) -> Void

    /// - Parameter write: where lines go (each with its newline); standard error by default.
    public init(label: String, metadataProvider: Logger.MetadataProvider? = LoggingSystem.metadataProvider,
                write: @escaping @Sendable (String) -> Void = JSONLogHandler.writeToStandardError) {
        self.label = label
        self.metadataProvider = metadataProvider
        self.write = write
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        var line = "{\"ts\":"
        appendString(KubeTimestamp.millis(Date()), to: &line)
        line += ",\"level\":"
        appendString(event.level.rawValue, to: &line)
        line += ",\"logger\":"
        appendString(label, to: &line)
        line += ",\"msg\":"
        appendString(event.message.description, to: &line)
        for key in merged.keys.sorted() where !["ts", "level", "logger", "msg"].contains(key) {
            line += ","
            appendString(key, to: &line)
            line += ":"
            appendValue(merged[key]!, to: &line)
        }
        if event.level >= .error {
            line += ",\"source\":"
            appendString("\(event.file):\(event.line)", to: &line)
        }
        line += "}\n"
        write(line)
    }

    @Sendable public static func writeToStandardError(_ line: String) {
        // One write(2) per line, so lines of concurrent loggers do not interleave.
        var line = line
        line.withUTF8 { bytes in
            var offset = 0
            while offset < bytes.count {
                let written = Foundation.write(STDERR_FILENO, bytes.baseAddress! + offset, bytes.count - offset)
                if written <= 0 { return }
                offset += written
            }
        }
    }

    private func appendValue(_ value: Logger.Metadata.Value, to line: inout String) {
        switch value {
        case .string(let text): appendString(text, to: &line)
        case .stringConvertible(let convertible): appendString(convertible.description, to: &line)
        case .array(let values):
            line += "["
            for (index, element) in values.enumerated() {
                if index > 0 { line += "," }
                appendValue(element, to: &line)
            }
            line += "]"
        case .dictionary(let members):
            line += "{"
            for (index, key) in members.keys.sorted().enumerated() {
                if index > 0 { line += "," }
                appendString(key, to: &line)
                line += ":"
                appendValue(members[key]!, to: &line)
            }
            line += "}"
        }
    }

    private func appendString(_ text: String, to line: inout String) {
        line += "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": line += "\\\""
            case "\\": line += "\\\\"
            case "\n": line += "\\n"
            case "\r": line += "\\r"
            case "\t": line += "\\t"
            case _ where scalar.value < 0x20:
                line += String(format: "\\u%04x", scalar.value)
            default: line.unicodeScalars.append(scalar)
            }
        }
        line += "\""
    }
}

/// UTC timestamps with milliseconds for log lines.
enum KubeTimestamp {
    static func millis(_ date: Date) -> String {
        let interval = date.timeIntervalSince1970
        var seconds = time_t(interval.rounded(.down))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        let millis = min(999, Int((interval - interval.rounded(.down)) * 1000))
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1,
                      Int(parts.tm_mday), Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec), millis)
    }
}
