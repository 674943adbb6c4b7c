import CurlHTTP
import Foundation
import KubeTypes

/// Options of a watch request.
public struct WatchOptions: Sendable, Hashable {
    /// Start after this version ("" or nil: from now, after a synthetic ADDED for every object).
    public var resourceVersion: String?
    public var allowBookmarks: Bool
    /// Ask the server to end the watch after this many seconds.
    public var timeoutSeconds: Int?
    public var labelSelector: String?
    public var fieldSelector: String?
    /// How many body bytes to buffer for a slow consumer before the stream is paused.
    public var bufferLimit: Int
    /// What to keep of the objects in the events (not sent to the server).
    public var decoding: DecodingProfile

    public init(resourceVersion: String? = nil, allowBookmarks: Bool = true, timeoutSeconds: Int? = nil,
                labelSelector: String? = nil, fieldSelector: String? = nil, bufferLimit: Int = 1 << 20,
                decoding: DecodingProfile = .everything) {
        self.resourceVersion = resourceVersion
        self.allowBookmarks = allowBookmarks
        self.timeoutSeconds = timeoutSeconds
        self.labelSelector = labelSelector
        self.fieldSelector = fieldSelector
        self.bufferLimit = bufferLimit
        self.decoding = decoding
    }

    var query: [(String, String)] {
        var query: [(String, String)] = [("watch", "true")]
        if let resourceVersion, !resourceVersion.isEmpty { query.append(("resourceVersion", resourceVersion)) }
        if allowBookmarks { query.append(("allowWatchBookmarks", "true")) }
        if let timeoutSeconds { query.append(("timeoutSeconds", String(timeoutSeconds))) }
        if let labelSelector, !labelSelector.isEmpty { query.append(("labelSelector", labelSelector)) }
        if let fieldSelector, !fieldSelector.isEmpty { query.append(("fieldSelector", fieldSelector)) }
        return query
    }
}

/// Splits a byte stream into lines (`\n`-terminated; a final line without newline counts too).
public struct LineFramer: Sendable {
    private var pending = Data()
    /// Longest line accepted; a longer one is an error rather than unbounded memory.
    public let maxLineLength: Int

    /// Drop lines that are empty or only whitespace (watch streams); keep them for logs.
    public let skipsBlankLines: Bool

    public init(maxLineLength: Int = 64 << 20, skipsBlankLines: Bool = true) {
        self.maxLineLength = maxLineLength
        self.skipsBlankLines = skipsBlankLines
    }

    public struct LineTooLong: Error, CustomStringConvertible {
        public let limit: Int
        public var description: String { "a line of the stream is longer than \(limit) bytes" }
    }

    /// Adds bytes and returns the complete lines they finish (without the newline; empty lines skipped).
    public mutating func append(_ chunk: Data) throws -> [Data] {
        var lines: [Data] = []
        var start = chunk.startIndex
        while let newline = chunk[start...].firstIndex(of: 0x0A) {
            if pending.isEmpty {
                lines.append(chunk[start..<newline])
            } else {
                pending.append(chunk[start..<newline])
                lines.append(pending)
                pending = Data()
            }
            start = chunk.index(after: newline)
        }
        if start < chunk.endIndex {
            pending.append(chunk[start...])
            if pending.count > maxLineLength { throw LineTooLong(limit: maxLineLength) }
        }
        return skipsBlankLines ? lines.filter { !Self.isBlank($0) } : lines
    }

    private static func isBlank(_ line: Data) -> Bool {
        line.allSatisfy { $0 == 0x0D || $0 == 0x20 || $0 == 0x09 }
    }

    /// The last line if the stream ended without a newline.
    public mutating func finish() -> Data? {
        defer { pending = Data() }
        if pending.isEmpty || (skipsBlankLines && Self.isBlank(pending)) { return nil }
        return pending
    }
}

/// Iterates the lines of a streamed body.
struct BodyLineIterator: Sendable {
    var chunks: HTTPBodyStream.AsyncIterator
    var framer: LineFramer
    var ready: [Data] = []
    var readyIndex = 0
    var ended = false

    init(body: HTTPBodyStream, framer: LineFramer) {
        chunks = body.makeAsyncIterator()
        self.framer = framer
    }

    mutating func next() async throws -> Data? {
        while true {
            if readyIndex < ready.count {
                defer { readyIndex += 1 }
                return ready[readyIndex]
            }
            if ended { return nil }
            ready = []
            readyIndex = 0
            if let chunk = try await chunks.next() {
                ready = try framer.append(chunk)
            } else {
                ended = true
                if let last = framer.finish() { ready = [last] }
            }
        }
    }
}

/// Decodes one line of a watch stream.
public enum WatchEventDecoder {
    private struct Envelope<Object: Decodable & Sendable>: Decodable {
        var event: WatchEvent<Object>

        enum CodingKeys: String, CodingKey { case type, object }

        struct BookmarkObject: Decodable {
            struct Meta: Decodable { var resourceVersion: String? }
            var metadata: Meta?
        }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            let type = try container.decode(String.self, forKey: .type)
            switch type {
            case "ADDED": event = .added(try container.decode(Object.self, forKey: .object))
            case "MODIFIED": event = .modified(try container.decode(Object.self, forKey: .object))
            case "DELETED": event = .deleted(try container.decode(Object.self, forKey: .object))
            case "BOOKMARK":
                let object = try container.decode(BookmarkObject.self, forKey: .object)
                event = .bookmark(resourceVersion: object.metadata?.resourceVersion ?? "")
            case "ERROR": event = .error(try container.decode(Status.self, forKey: .object))
            default:
                throw DecodingError.dataCorruptedError(
                    forKey: .type, in: container, debugDescription: "unknown watch event type \(type)")
            }
        }
    }

    public static func decode<Object: Decodable & Sendable>(_ type: Object.Type, line: Data,
                                                            profile: DecodingProfile = .everything) throws -> WatchEvent<Object> {
        do {
            return try KubeJSON.decoder(profile: profile).decode(Envelope<Object>.self, from: line).event
        } catch let error as DecodingError {
            throw KubeClientError.decoding(type: "watch event of \(Object.self)", request: "watch", detail: describe(error))
        }
    }
}

/// The events of one watch request, as they arrive. Ends when the server closes the stream
/// cleanly (its timeout); throws when the connection fails. Dropping it stops the watch.
public struct WatchStream<Object: Decodable & Sendable>: AsyncSequence, Sendable {
    public typealias Element = WatchEvent<Object>

    let body: HTTPBodyStream
    let profile: DecodingProfile

    /// Stops the watch now.
    public func cancel() { body.cancel() }

    /// Bytes received and not yet consumed: bounded by `WatchOptions.bufferLimit` plus one chunk.
    public var bufferedBytes: Int { body.bufferedBytes }

    public struct AsyncIterator: AsyncIteratorProtocol {
        var lines: BodyLineIterator
        let profile: DecodingProfile

        public mutating func next() async throws -> WatchEvent<Object>? {
            guard let line = try await lines.next() else { return nil }
            return try WatchEventDecoder.decode(Object.self, line: line, profile: profile)
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(lines: BodyLineIterator(body: body, framer: LineFramer()), profile: profile)
    }
}

extension KubernetesClient {
    /// Starts a watch. A namespaced kind with a nil namespace is watched in every namespace.
    /// Error statuses (e.g. 410 for an expired resourceVersion) throw `APIError`; the server may
    /// also report them inside the stream as `.error` events.
    public func watch<T: Decodable & Sendable>(_ type: T.Type, resource: ResourceType, namespace: String? = nil,
                                                options: WatchOptions = WatchOptions()) async throws -> WatchStream<T> {
        let collection = resource.namespaced && namespace == nil
            ? resource.groupVersionPath + "/" + resource.plural : path(for: resource, namespace: namespace)
        // Detect a dead connection: allow the server's own timeout plus a margin.
        let timeout: Request.Timeout = options.timeoutSeconds.map { .custom(.seconds($0 + 30)) } ?? .none
        let request = Request(path: collection, query: options.query, timeout: timeout)
        let response = try await stream(request, bufferLimit: options.bufferLimit)
        return WatchStream(body: response.body, profile: options.decoding)
    }

    public func watch<T: KubeObject>(_ type: T.Type, namespace: String? = nil,
                                     options: WatchOptions = WatchOptions()) async throws -> WatchStream<T> {
        try await watch(T.self, resource: T.resourceType, namespace: namespace, options: options)
    }

    // MARK: - Pod logs

    /// The log of a pod's container (not followed). When there is no log to read — the pod was
    /// never scheduled, or the container has not started — throws `LogsUnavailable` saying why
    /// (the API itself answers such requests with an empty body).
    public func logs(pod: String, namespace: String? = nil, options: LogOptions = LogOptions()) async throws -> String {
        var options = options
        options.follow = false
        let request = Request(path: path(for: .pods, namespace: namespace, name: pod, subresource: "log"),
                              query: options.query, accept: "*/*")
        let response = try await send(request)
        if response.body.isEmpty {
            let object = try await get(Pod.self, name: pod, namespace: namespace)
            if let reason = LogsUnavailable.reason(for: object, container: options.container) {
                throw LogsUnavailable(pod: ObjectKey(namespace: namespace ?? defaultNamespace, name: pod),
                                      container: options.container, reason: reason)
            }
        }
        return String(decoding: response.body, as: UTF8.self)
    }

    /// Follows a pod's log: lines as the container writes them, until it ends.
    public func followLogs(pod: String, namespace: String? = nil,
                           options: LogOptions = LogOptions()) async throws -> LogLineStream {
        var options = options
        options.follow = true
        let request = Request(path: path(for: .pods, namespace: namespace, name: pod, subresource: "log"),
                              query: options.query, accept: "*/*", timeout: .none)
        let response = try await stream(request, bufferLimit: 256 << 10)
        return LogLineStream(body: response.body)
    }
}

/// A pod has no log to read yet, and why.
public struct LogsUnavailable: Error, Sendable, Hashable, CustomStringConvertible {
    public var pod: ObjectKey
    public var container: String?
    public var reason: String

    public var description: String {
        let subject = container.map { "container \"\($0)\" of pod \(pod)" } ?? "pod \(pod)"
        return "no log for \(subject): \(reason)"
    }

    /// Why a pod (or one of its containers) cannot have a log, or nil when it can.
    public static func reason(for pod: Pod, container: String?) -> String? {
        let phase = pod.status?.phase ?? "Pending"
        guard let node = pod.spec?.nodeName, !node.isEmpty else {
            return "it has not been scheduled to a node (phase \(phase))"
        }
        let statuses = (pod.status?.initContainerStatuses ?? []) + (pod.status?.containerStatuses ?? [])
        let status = container.flatMap { name in statuses.first { $0.name == name } } ?? statuses.first
        guard let status else { return "its containers have not been created yet (phase \(phase))" }
        if let waiting = status.state?.waiting, status.lastState?.terminated == nil {
            let detail = waiting.message.map { ": \($0)" } ?? ""
            return "it is waiting to start (\(waiting.reason ?? "Waiting")\(detail))"
        }
        return nil
    }
}

/// Log lines as they arrive (without newlines).
public struct LogLineStream: AsyncSequence, Sendable {
    public typealias Element = String
    let body: HTTPBodyStream

    public func cancel() { body.cancel() }

    public struct AsyncIterator: AsyncIteratorProtocol {
        var lines: BodyLineIterator

        public mutating func next() async throws -> String? {
            try await lines.next().map { String(decoding: $0, as: UTF8.self) }
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(lines: BodyLineIterator(body: body, framer: LineFramer(maxLineLength: 1 << 20, skipsBlankLines: false)))
    }
}
