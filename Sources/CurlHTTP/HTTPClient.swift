import Foundation

/// An HTTP client on libcurl: every request of one client shares a connection pool driven by one
/// dedicated thread. Cheap to share; create one per process (or use `shared`).
///
/// HTTP/1.1 by default: each transfer in flight has a connection of its own, and idle ones are
/// reused. HTTP/2 (one multiplexed connection) is available with `http2: true`, but libcurl 7.88
/// (Debian 12) stalls multiplexed transfers: when a stream's data is read off the connection by
/// another transfer and overflows the stream's 16 KiB buffer, curl pauses nghttp2 in the middle
/// of that frame and, once the stream has drained, does not resume it until more bytes arrive
/// on the connection. A response whose last frame is caught so (a list with an idle watch on the
/// same connection) hangs until its timeout. Over HTTP/1.1 a transfer only ever reads its own
/// socket, and a paused watch only stops reading its own.
public final class HTTPClient: Sendable {
    /// The process-wide client.
    public static let shared = HTTPClient()

    private let engine: CurlEngine

    /// - Parameters:
    ///   - maxConnectionsPerHost: a cap on connections per host (0: no cap); transfers beyond it
    ///     wait for a free connection. Over HTTP/1.1 every transfer in flight, open watches
    ///     included, holds a connection.
    ///   - http2: ask for HTTP/2 and multiplex every transfer to a host on one connection (see
    ///     above for why this is not the default with libcurl 7.88).
    public init(maxConnectionsPerHost: Int = 0, http2: Bool = false) {
        engine = CurlEngine(maxConnectionsPerHost: maxConnectionsPerHost, http2: http2)
    }

    /// True when this client asks for HTTP/2.
    public var prefersHTTP2: Bool { engine.http2 }

    /// Transfers currently in flight (requests and open streams).
    public var transfersInFlight: Int { engine.transfersInFlight }

    /// TCP connections opened so far by this client (connection reuse keeps this small: with
    /// HTTP/2, one per server and set of TLS settings).
    public var connectionsOpened: Int { engine.connectionsOpened }

    /// Requests (and streams) started so far by this client.
    public var transfersStarted: Int { engine.transfersStarted }

    /// Sends a request and returns the whole response. Any HTTP status is a response; only
    /// transport failures throw (`TransportError`), and cancellation of the calling task.
    public func send(_ request: HTTPRequest) async throws -> HTTPResponse {
        let transfer = Transfer(request: request, mode: .buffered, engine: engine)
        engine.submit(.add(transfer))
        return try await transfer.waitForResponse()
    }

    /// Sends a request and returns once the response head has arrived; the body follows as a
    /// stream. At most about `bufferLimit` bytes are held for a slow consumer: beyond that the
    /// transfer pauses until the consumer catches up. Dropping the body stream stops the transfer.
    public func stream(_ request: HTTPRequest, bufferLimit: Int = 1 << 20) async throws -> HTTPStreamingResponse {
        let transfer = Transfer(request: request, mode: .streaming(bufferLimit: max(bufferLimit, 1)), engine: engine)
        let body = HTTPBodyStream(transfer: transfer)
        engine.submit(.add(transfer))
        try await transfer.waitForHead()
        let head = transfer.state.withLock { ($0.status, $0.headers, $0.httpVersion) }
        return HTTPStreamingResponse(status: head.0, headers: head.1, httpVersion: head.2, body: body)
    }
}

/// A response body delivered as it arrives. Iterate it once. When the last reference to it goes
/// away before the end, the transfer is cancelled.
public final class HTTPBodyStream: AsyncSequence, Sendable {
    public typealias Element = Data

    private let transfer: Transfer

    init(transfer: Transfer) {
        self.transfer = transfer
    }

    deinit {
        transfer.cancel()
    }

    /// Stops the transfer now.
    public func cancel() {
        transfer.cancel()
    }

    /// Bytes received but not yet taken by the consumer (bounded by the stream's buffer limit
    /// plus one network chunk).
    public var bufferedBytes: Int { transfer.state.withLock { $0.bufferedBytes } }

    /// True while the transfer is paused because the consumer is behind.
    public var isPaused: Bool { transfer.state.withLock { $0.paused } }

    public struct AsyncIterator: AsyncIteratorProtocol, Sendable {
        let stream: HTTPBodyStream

        public mutating func next() async throws -> Data? {
            try await stream.transfer.nextChunk()
        }
    }

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(stream: self)
    }
}
