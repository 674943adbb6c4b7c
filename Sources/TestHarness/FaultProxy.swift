import COpenSSL
import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// An HTTPS proxy on 127.0.0.1 in front of a control plane's kube-apiserver that injects faults:
/// it terminates TLS with the apiserver's own serving certificate (so clients keep verifying it
/// against the harness CA), forwards each request over a fresh TLS connection to the apiserver
/// (verified against the harness CA) and streams the answer back — or, while a fault is set,
/// answers with an error status, drops the connection, cuts the answer short, sends an oversized
/// body, or sends it slowly. `startPlain(to:)` is the same in plain HTTP (a registry).
///
/// A small blocking design on threads of its own: one thread accepts, one thread per connection.
/// Every answer ends its connection (`Connection: close`), so a fault set now applies to every
/// later request; `breakConnections()` ends the open ones too (watches reconnect through the fault).
public final class FaultProxy: Sendable {
    /// What the proxy does to the requests a fault applies to.
    public enum Fault: Sendable, Hashable {
        /// Forward unchanged.
        case none
        /// End the connection without an answer (as a server that went away).
        case drop
        /// Answer with this status and a `Status` body (with `Retry-After` when given), without
        /// asking the apiserver.
        case status(Int, retryAfterSeconds: Int?)
        /// Forward, then end the connection after this many bytes of the answer's body.
        case truncate(afterBodyBytes: Int)
        /// Answer 200 with a JSON-looking body of this many bytes (announced in `Content-Length`).
        case oversized(bytes: Int)
        /// Forward, sending the answer at this many bytes per second.
        case slow(bytesPerSecond: Int)
    }

    /// What the proxy saw.
    public struct Statistics: Sendable, Hashable {
        public var connections = 0
        public var requests = 0
        /// Requests a fault other than `.none` applied to.
        public var faulted = 0
    }

    private struct State {
        var fault = Fault.none
        /// The fault applies to requests whose path (with query) contains this; nil: all.
        var pathFragment: String?
        var statistics = Statistics()
        var open: Set<Int32> = []
        var stopped = false
    }

    /// OpenSSL contexts: thread-safe for use from many connections once configured. nil: plain.
    private struct Contexts: @unchecked Sendable {
        let server: OpaquePointer
        let client: OpaquePointer
    }

    public let port: Int
    /// `https://127.0.0.1:PORT` (`http://` for a plain one).
    public var url: String { "\(contexts == nil ? "http" : "https")://127.0.0.1:\(port)" }
    /// `127.0.0.1:PORT`.
    public var host: String { "127.0.0.1:\(port)" }
    private let upstreamPort: Int
    private let listener: Int32
    private let contexts: Contexts?
    private let state = Mutex(State())

    /// Starts a proxy in front of `controlPlane`'s kube-apiserver.
    public static func start(in controlPlane: ControlPlane) throws -> FaultProxy {
        try FaultProxy(upstreamPort: controlPlane.port, contexts: makeContexts(
            certificate: controlPlane.servingCertificate, caFile: controlPlane.caFile))
    }

    /// Starts a plain-HTTP proxy in front of a plain-HTTP server on 127.0.0.1:`port` (a registry).
    public static func startPlain(to port: Int) throws -> FaultProxy {
        try FaultProxy(upstreamPort: port, contexts: nil)
    }

    private static func makeContexts(certificate: CertificateFiles, caFile: String) throws -> Contexts {
        guard let server = SSL_CTX_new(TLS_server_method()), let client = SSL_CTX_new(TLS_client_method()) else {
            throw HarnessError("fault proxy: cannot create TLS contexts")
        }
        guard SSL_CTX_use_certificate_chain_file(server, certificate.certificateFile) == 1,
              SSL_CTX_use_PrivateKey_file(server, certificate.keyFile, SSL_FILETYPE_PEM) == 1,
              SSL_CTX_load_verify_locations(client, caFile, nil) == 1
        else {
            SSL_CTX_free(server)
            SSL_CTX_free(client)
            throw HarnessError("fault proxy: cannot load \(certificate.certificateFile), its key or \(caFile)")
        }
        SSL_CTX_set_verify(client, SSL_VERIFY_PEER, nil)
        return Contexts(server: server, client: client)
    }

    private init(upstreamPort: Int, contexts: Contexts?) throws {
        // A peer that goes away must not kill the process with SIGPIPE.
        signal(SIGPIPE, SIG_IGN)
        self.contexts = contexts
        self.upstreamPort = upstreamPort

        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw HarnessError("fault proxy: socket: \(String(cString: strerror(errno)))") }
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = Self.loopback(port: 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 128) == 0 else {
            close(fd)
            throw HarnessError("fault proxy: bind/listen: \(String(cString: strerror(errno)))")
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        port = Int(UInt16(bigEndian: address.sin_port))
        listener = fd
        let proxy = self
        Thread.detachNewThread { proxy.acceptLoop() }
    }

    // MARK: - Control

    /// Sets the fault for every later request whose path contains `pathFragment` (all requests when
    /// nil). `.none` ends it.
    public func setFault(_ fault: Fault, matching pathFragment: String? = nil) {
        state.withLock {
            $0.fault = fault
            $0.pathFragment = pathFragment
        }
    }

    /// Ends every open connection (open watches break; their clients connect again).
    public func breakConnections() {
        let open = state.withLock { $0.open }
        for fd in open { shutdown(fd, Int32(SHUT_RDWR)) }
    }

    public var statistics: Statistics { state.withLock { $0.statistics } }

    /// Stops accepting and ends every open connection.
    public func stop() {
        let first = state.withLock { state -> Bool in
            defer { state.stopped = true }
            return !state.stopped
        }
        guard first else { return }
        shutdown(listener, Int32(SHUT_RDWR))
        breakConnections()
    }

    // MARK: - Connections

    private func acceptLoop() {
        while true {
            let fd = accept(listener, nil, nil)
            if fd < 0 {
                if errno == EINTR { continue }
                close(listener)
                return
            }
            let accepted = state.withLock { state -> Bool in
                guard !state.stopped else { return false }
                state.open.insert(fd)
                state.statistics.connections += 1
                return true
            }
            guard accepted else {
                close(fd)
                continue
            }
            Thread.detachNewThread { [self] in
                serve(fd)
                state.withLock { _ = $0.open.remove(fd) }
                close(fd)
            }
        }
    }

    /// One client connection: the TLS handshake, one request, its answer.
    private func serve(_ fd: Int32) {
        guard let client = ProxyStream(fd: fd, context: contexts?.server, accepting: true) else { return }
        defer { client.close() }
        guard let (head, rest) = client.readHead(), let request = RequestHead(head) else { return }
        var body = rest
        while body.count < request.contentLength {
            guard let more = client.read() else { return }
            body.append(more)
        }
        let fault = state.withLock { state -> Fault in
            state.statistics.requests += 1
            let fault = Self.fault(for: request.target, in: state)
            if fault != .none { state.statistics.faulted += 1 }
            return fault
        }
        switch fault {
        case .drop:
            return
        case .status(let code, let retryAfter):
            let status = #"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"injected by the fault proxy","reason":"\#(code == 429 ? "TooManyRequests" : "InternalError")","code":\#(code)}"#
            var answer = "HTTP/1.1 \(code) Injected\r\nContent-Type: application/json\r\nContent-Length: \(status.utf8.count)\r\n"
            if let retryAfter { answer += "Retry-After: \(retryAfter)\r\n" }
            answer += "Connection: close\r\n\r\n" + status
            _ = client.write(Data(answer.utf8))
        case .oversized(let bytes):
            let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: \(bytes)\r\nConnection: close\r\n\r\n"
            guard client.write(Data(head.utf8)) else { return }
            let chunk = Data(("{\"items\":[" + String(repeating: "{\"a\":1},", count: 8000)).utf8)
            var sent = 0
            while sent < bytes {
                let piece = chunk.prefix(bytes - sent)
                guard client.write(piece) else { return }
                sent += piece.count
            }
        case .none, .truncate, .slow:
            forward(head: head, body: body, request: request, to: client, fault: fault)
        }
    }

    /// Sends the request to kube-apiserver on a fresh connection and streams its answer back,
    /// applying `fault` (`.truncate`, `.slow`) to the answer.
    private func forward(head: Data, body: Data, request: RequestHead, to client: ProxyStream, fault: Fault) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return }
        state.withLock { _ = $0.open.insert(fd) }
        defer {
            state.withLock { _ = $0.open.remove(fd) }
            close(fd)
        }
        var address = Self.loopback(port: upstreamPort)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            // The apiserver is down: the client sees its connection end, as it would without the proxy.
            return
        }
        guard let upstream = ProxyStream(fd: fd, context: contexts?.client, accepting: false) else { return }
        defer { upstream.close() }
        guard upstream.write(request.rewritten(head)), body.isEmpty || upstream.write(body) else { return }

        guard let (answerHead, answerRest) = upstream.readHead() else { return }
        if case .slow(let rate) = currentFault(for: request.target) {
            guard Self.writeSlowly(Self.closing(answerHead), rate: rate, to: client) else { return }
        } else {
            guard client.write(Self.closing(answerHead)) else { return }
        }
        var budget: Int? = nil
        if case .truncate(let bytes) = fault { budget = bytes }
        var pending = answerRest
        while true {
            if !pending.isEmpty {
                if let left = budget {
                    if pending.count >= left {
                        _ = client.write(pending.prefix(left))
                        return
                    }
                    budget = left - pending.count
                }
                // Slowness is looked up again for every piece: when it ends, the stream speeds up.
                if case .slow(let rate) = currentFault(for: request.target) {
                    guard Self.writeSlowly(pending, rate: rate, to: client) else { return }
                } else {
                    guard client.write(pending) else { return }
                }
            }
            guard let more = upstream.read() else { return }
            pending = more
        }
    }

    private func currentFault(for target: String) -> Fault {
        state.withLock { Self.fault(for: target, in: $0) }
    }

    private static func fault(for target: String, in state: State) -> Fault {
        let applies = state.pathFragment.map { target.contains($0) } ?? true
        return applies ? state.fault : .none
    }

    private static func writeSlowly(_ data: Data, rate: Int, to client: ProxyStream) -> Bool {
        let piece = max(rate / 10, 1)
        var offset = data.startIndex
        while offset < data.endIndex {
            let end = data.index(offset, offsetBy: piece, limitedBy: data.endIndex) ?? data.endIndex
            guard client.write(data[offset..<end]) else { return false }
            offset = end
            usleep(100_000)
        }
        return true
    }

    /// The answer's head with `Connection: close` instead of whatever it said.
    private static func closing(_ head: Data) -> Data {
        let lines = String(decoding: head, as: UTF8.self).components(separatedBy: "\r\n")
            .filter { !$0.isEmpty && !$0.lowercased().hasPrefix("connection:") }
        return Data((lines.joined(separator: "\r\n") + "\r\nConnection: close\r\n\r\n").utf8)
    }

    private static func loopback(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return address
    }
}

/// A request's head: what the proxy needs of it.
private struct RequestHead {
    var target: String
    var contentLength: Int

    init?(_ head: Data) {
        let lines = String(decoding: head, as: UTF8.self).components(separatedBy: "\r\n")
        let parts = lines.first?.split(separator: " ") ?? []
        guard parts.count == 3 else { return nil }
        target = String(parts[1])
        contentLength = 0
        for line in lines.dropFirst() {
            let pair = line.split(separator: ":", maxSplits: 1)
            guard pair.count == 2 else { continue }
            let name = pair[0].lowercased()
            if name == "content-length" { contentLength = Int(pair[1].trimmingCharacters(in: .whitespaces)) ?? 0 }
            // Chunked request bodies are not forwarded: the clients here send Content-Length.
            if name == "transfer-encoding" { return nil }
        }
    }

    /// The head as sent on: `Connection: close`, everything else unchanged.
    func rewritten(_ head: Data) -> Data {
        let lines = String(decoding: head, as: UTF8.self).components(separatedBy: "\r\n")
            .filter { !$0.isEmpty && !$0.lowercased().hasPrefix("connection:") }
        return Data((lines.joined(separator: "\r\n") + "\r\nConnection: close\r\n\r\n").utf8)
    }
}

/// Blocking reads and writes on one connection, TLS or plain (one thread at a time; the caller
/// owns and closes the socket).
private struct ProxyStream {
    let fd: Int32
    let ssl: OpaquePointer?

    /// With a context, the TLS handshake (as the server when `accepting`); nil when it fails.
    init?(fd: Int32, context: OpaquePointer?, accepting: Bool) {
        self.fd = fd
        guard let context else {
            ssl = nil
            return
        }
        guard let ssl = SSL_new(context) else { return nil }
        SSL_set_fd(ssl, fd)
        guard (accepting ? SSL_accept(ssl) : SSL_connect(ssl)) == 1 else {
            SSL_free(ssl)
            return nil
        }
        self.ssl = ssl
    }

    func close() {
        guard let ssl else { return }
        SSL_shutdown(ssl)
        SSL_free(ssl)
    }

    /// Up to 64 KiB, nil at the end of the stream or on an error.
    func read() -> Data? {
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        let count = buffer.withUnsafeMutableBytes { bytes -> Int in
            if let ssl { return Int(SSL_read(ssl, bytes.baseAddress, Int32(bytes.count))) }
            return recv(fd, bytes.baseAddress, bytes.count, 0)
        }
        guard count > 0 else { return nil }
        return Data(buffer.prefix(count))
    }

    /// Everything up to the blank line ending a head (at most 1 MiB), and what came after it.
    func readHead() -> (head: Data, rest: Data)? {
        var data = Data()
        let separator = Data("\r\n\r\n".utf8)
        while true {
            if let range = data.range(of: separator) {
                return (data[data.startIndex..<range.upperBound], data[range.upperBound...])
            }
            guard data.count < 1 << 20, let more = read() else { return nil }
            data.append(more)
        }
    }

    func write(_ data: some DataProtocol) -> Bool {
        let bytes = [UInt8](data)
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { chunk -> Int in
                if let ssl { return Int(SSL_write(ssl, chunk.baseAddress, Int32(chunk.count))) }
                return send(fd, chunk.baseAddress, chunk.count, Int32(MSG_NOSIGNAL))
            }
            guard written > 0 else { return false }
            offset += written
        }
        return true
    }
}
