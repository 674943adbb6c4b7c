import CCurl
import CCurlShim
import DequeModule
import Foundation
import Synchronization

/// One request in flight: the curl easy handle and the state its callbacks fill in.
///
/// Callbacks run on the engine thread; the consumer side (`nextChunk`) runs anywhere. Shared state
/// lives behind `state`'s lock.
final class Transfer: @unchecked Sendable {
    enum Mode {
        /// Collect the whole body and hand back one response.
        case buffered
        /// Hand back the head as soon as it arrives, then the body chunk by chunk.
        case streaming(bufferLimit: Int)
    }

    struct State {
        var status = 0
        var httpVersion = "1.1"
        var headers = HTTPHeaders()
        /// The first Content-Length of the current header block.
        var contentLength: Int?
        var headComplete = false
        var body = Data()
        /// Streaming: chunks not yet taken by the consumer.
        var chunks = Deque<Data>()
        var bufferedBytes = 0
        var paused = false
        var cancelled = false
        /// Buffered: the body went past `request.maximumBodySize`.
        var tooLarge = false
        /// Set once the transfer has ended (successfully or not).
        var finished: Result<Void, TransportError>?
        var headWaiter: CheckedContinuation<Void, any Error>?
        var bodyWaiter: CheckedContinuation<Data?, any Error>?
        var responseWaiter: CheckedContinuation<HTTPResponse, any Error>?
    }

    let request: HTTPRequest
    let mode: Mode
    let state = Mutex(State())
    private(set) var easy: UnsafeMutableRawPointer?
    private var headerList: UnsafeMutablePointer<curl_slist>?
    private var connectToList: UnsafeMutablePointer<curl_slist>?
    private let errorBuffer: UnsafeMutablePointer<CChar>
    unowned let engine: CurlEngine

    init(request: HTTPRequest, mode: Mode, engine: CurlEngine) {
        self.request = request
        self.mode = mode
        self.engine = engine
        errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
    }

    deinit {
        errorBuffer.deallocate()
    }

    // MARK: - Engine thread

    /// Creates and configures the easy handle. Returns an error when an option is refused.
    func makeHandle() -> TransportError? {
        guard let handle = curl_easy_init() else {
            return TransportError(kind: .other, curlCode: 0, url: request.url, detail: "curl_easy_init failed")
        }
        easy = handle
        let context = Unmanaged.passUnretained(self).toOpaque()
        var failure: CURLcode = CURLE_OK
        func set(_ code: CURLcode) { if code != CURLE_OK && failure == CURLE_OK { failure = code } }

        var url = request.url
        if let serverName = request.tls.serverName, var components = URLComponents(string: url),
           let host = components.host
        {
            // Verify and send SNI for `serverName`, but connect to the URL's real host.
            let port = components.port ?? (components.scheme == "http" ? 80 : 443)
            components.host = serverName
            url = components.string ?? url
            connectToList = curl_slist_append(connectToList, "\(serverName):\(port):\(host):\(port)")
            set(ccurl_easy_setopt_slist(handle, CURLOPT_CONNECT_TO, connectToList))
        }
        set(ccurl_easy_setopt_string(handle, CURLOPT_URL, url))
        set(ccurl_easy_setopt_long(handle, CURLOPT_NOSIGNAL, 1))
        set(ccurl_easy_setopt_pointer(handle, CURLOPT_ERRORBUFFER, errorBuffer))
        set(ccurl_easy_setopt_callback(handle, CURLOPT_WRITEFUNCTION, transferWriteCallback))
        set(ccurl_easy_setopt_pointer(handle, CURLOPT_WRITEDATA, context))
        set(ccurl_easy_setopt_callback(handle, CURLOPT_HEADERFUNCTION, transferHeaderCallback))
        set(ccurl_easy_setopt_pointer(handle, CURLOPT_HEADERDATA, context))
        if engine.http2 {
            set(ccurl_easy_setopt_long(handle, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_2TLS))
            set(ccurl_easy_setopt_long(handle, CURLOPT_PIPEWAIT, 1))
        } else {
            set(ccurl_easy_setopt_long(handle, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1))
        }
        set(ccurl_easy_setopt_long(handle, CURLOPT_TCP_KEEPALIVE, 1))
        set(ccurl_easy_setopt_long(handle, CURLOPT_TCP_KEEPIDLE, 30))
        set(ccurl_easy_setopt_long(handle, CURLOPT_TCP_KEEPINTVL, 15))
        set(ccurl_easy_setopt_long(handle, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1))
        set(ccurl_easy_setopt_string(handle, CURLOPT_ACCEPT_ENCODING, ""))
        set(ccurl_easy_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, request.connectTimeout.milliseconds))
        if let timeout = request.timeout {
            set(ccurl_easy_setopt_long(handle, CURLOPT_TIMEOUT_MS, timeout.milliseconds))
        }
        if let proxy = request.proxy {
            set(ccurl_easy_setopt_string(handle, CURLOPT_PROXY, proxy))
        }

        // Method and body.
        let method = request.method.uppercased()
        if let body = request.body {
            set(ccurl_easy_setopt_off_t(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(body.count)))
            body.withUnsafeBytes { raw in
                set(ccurl_easy_setopt_pointer(handle, CURLOPT_COPYPOSTFIELDS, UnsafeMutableRawPointer(mutating: raw.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!)))
            }
            if method != "POST" { set(ccurl_easy_setopt_string(handle, CURLOPT_CUSTOMREQUEST, method)) }
        } else if method == "HEAD" {
            set(ccurl_easy_setopt_long(handle, CURLOPT_NOBODY, 1))
        } else if method == "GET" {
            set(ccurl_easy_setopt_long(handle, CURLOPT_HTTPGET, 1))
        } else {
            set(ccurl_easy_setopt_string(handle, CURLOPT_CUSTOMREQUEST, method))
        }

        // Headers. "Expect:" off: curl would otherwise wait for 100-continue on large bodies.
        var headers = request.headers
        if request.body != nil, headers["Expect"] == nil { headers.add("Expect", "") }
        for (name, value) in headers {
            let line = value.isEmpty ? "\(name):" : "\(name): \(value)"
            headerList = curl_slist_append(headerList, line)
        }
        if headerList != nil { set(ccurl_easy_setopt_slist(handle, CURLOPT_HTTPHEADER, headerList)) }

        // TLS.
        let tls = request.tls
        if tls.insecureSkipVerify {
            set(ccurl_easy_setopt_long(handle, CURLOPT_SSL_VERIFYPEER, 0))
            set(ccurl_easy_setopt_long(handle, CURLOPT_SSL_VERIFYHOST, 0))
        }
        if let caData = tls.caData {
            caData.withUnsafeBytes { set(ccurl_easy_setopt_blob(handle, CURLOPT_CAINFO_BLOB, $0.baseAddress, $0.count)) }
        } else if let caFile = tls.caFile {
            set(ccurl_easy_setopt_string(handle, CURLOPT_CAINFO, caFile))
        }
        if let certData = tls.clientCertificateData {
            set(ccurl_easy_setopt_string(handle, CURLOPT_SSLCERTTYPE, "PEM"))
            certData.withUnsafeBytes { set(ccurl_easy_setopt_blob(handle, CURLOPT_SSLCERT_BLOB, $0.baseAddress, $0.count)) }
        } else if let certFile = tls.clientCertificateFile {
            set(ccurl_easy_setopt_string(handle, CURLOPT_SSLCERT, certFile))
        }
        if let keyData = tls.clientKeyData {
            set(ccurl_easy_setopt_string(handle, CURLOPT_SSLKEYTYPE, "PEM"))
            keyData.withUnsafeBytes { set(ccurl_easy_setopt_blob(handle, CURLOPT_SSLKEY_BLOB, $0.baseAddress, $0.count)) }
        } else if let keyFile = tls.clientKeyFile {
            set(ccurl_easy_setopt_string(handle, CURLOPT_SSLKEY, keyFile))
        }

        if failure != CURLE_OK {
            return TransportError.from(code: failure, url: request.url, detail: errorText)
        }
        return nil
    }

    /// Frees the easy handle and lists. The handle must already be out of the multi handle.
    func releaseHandle() {
        if let easy { curl_easy_cleanup(easy) }
        easy = nil
        if let headerList { curl_slist_free_all(headerList) }
        headerList = nil
        if let connectToList { curl_slist_free_all(connectToList) }
        connectToList = nil
    }

    var errorText: String {
        String(cString: errorBuffer)
    }

    /// Body bytes from curl. Returns the count taken, the pause value, or 0 to abort.
    func receiveBody(_ bytes: UnsafeRawBufferPointer) -> Int {
        let count = bytes.count
        switch mode {
        case .buffered:
            return state.withLock { state -> Int in
                if state.cancelled { return 0 }
                if state.tooLarge { return 0 }
                if let limit = request.maximumBodySize, state.body.count + count > limit {
                    state.tooLarge = true
                    return 0
                }
                state.body.append(bytes.bindMemory(to: UInt8.self))
                return count
            }
        case .streaming(let limit):
            var waiter: CheckedContinuation<Data?, any Error>?
            let result = state.withLock { state -> Int in
                if state.cancelled { return 0 }
                if let pending = state.bodyWaiter {
                    state.bodyWaiter = nil
                    waiter = pending
                    return count
                }
                if state.bufferedBytes >= limit {
                    state.paused = true
                    return ccurl_writefunc_pause()
                }
                state.chunks.append(Data(bytes.bindMemory(to: UInt8.self)))
                state.bufferedBytes += count
                return count
            }
            waiter?.resume(returning: Data(bytes.bindMemory(to: UInt8.self)))
            return result
        }
    }

    /// One header line from curl (status lines and the blank line that ends a header block included).
    /// Parsed as bytes: only the field's name and value become Strings.
    func receiveHeader(_ bytes: UnsafeRawBufferPointer) {
        let line = HeaderLine(bytes)
        var headWaiter: CheckedContinuation<Void, any Error>?
        state.withLock { state in
            if let (version, status) = line.statusLine() {
                // A new header block (after a 100 Continue, the final one).
                state.httpVersion = version
                state.status = status
                state.headers = HTTPHeaders()
                state.contentLength = nil
            } else if line.isEmpty {
                if state.status >= 200 && !state.headComplete {
                    state.headComplete = true
                    if case .buffered = mode, let length = state.contentLength, length > 0 {
                        if let limit = request.maximumBodySize, length > limit {
                            // Announced too large: refuse at the first byte of the body.
                            state.tooLarge = true
                        } else if length < 256 << 20 {
                            state.body.reserveCapacity(length)
                        }
                    }
                    headWaiter = state.headWaiter
                    state.headWaiter = nil
                }
            } else if let (name, value) = line.field() {
                if state.contentLength == nil, HeaderLine.equalsIgnoringASCIICase(name, "content-length") {
                    state.contentLength = Int(value)
                }
                state.headers.add(name, value)
            }
        }
        headWaiter?.resume()
    }

    /// The transfer ended (engine thread, handle already removed from the multi handle).
    func finish(_ result: Result<Void, TransportError>) {
        var headWaiter: CheckedContinuation<Void, any Error>?
        var bodyWaiter: CheckedContinuation<Data?, any Error>?
        var responseWaiter: CheckedContinuation<HTTPResponse, any Error>?
        var response: HTTPResponse?
        // What the waiters get: curl's own result, or the real cause when this side ended the
        // transfer (a body over the limit makes curl report only a write error, code 23).
        let outcome = state.withLock { state -> Result<Void, TransportError> in
            if let finished = state.finished { return finished }
            var outcome = result
            if state.tooLarge {
                outcome = .failure(TransportError(
                    kind: .responseTooLarge, curlCode: 0, url: request.url,
                    detail: "the response body is larger than the limit of \(request.maximumBodySize ?? 0) bytes"))
            } else if case .success = result, !state.headComplete {
                outcome = .failure(TransportError(
                    kind: .connectionClosed, curlCode: 0, url: request.url, detail: "no response head received"))
            }
            state.finished = outcome
            headWaiter = state.headWaiter
            state.headWaiter = nil
            bodyWaiter = state.bodyWaiter
            state.bodyWaiter = nil
            responseWaiter = state.responseWaiter
            state.responseWaiter = nil
            if case .success = outcome, responseWaiter != nil {
                // Hand the body over; when nobody waits yet, `waitForResponse` takes it from `state`.
                response = HTTPResponse(
                    status: state.status, headers: state.headers, body: state.body, httpVersion: state.httpVersion)
                state.body = Data()
            }
            return outcome
        }
        switch outcome {
        case .success:
            headWaiter?.resume()
            bodyWaiter?.resume(returning: nil)
            if let responseWaiter {
                if let response {
                    responseWaiter.resume(returning: response)
                } else {
                    responseWaiter.resume(throwing: TransportError(
                        kind: .connectionClosed, curlCode: 0, url: request.url, detail: "no response head received"))
                }
            }
        case .failure(let error):
            headWaiter?.resume(throwing: error)
            bodyWaiter?.resume(throwing: error)
            responseWaiter?.resume(throwing: error)
        }
    }

    // MARK: - Any thread

    /// Asks the engine to stop this transfer; waiters get a cancellation error.
    func cancel() {
        let alreadyDone = state.withLock { state -> Bool in
            if state.finished != nil || state.cancelled { return true }
            state.cancelled = true
            return false
        }
        if !alreadyDone { engine.submit(.cancel(self)) }
    }

    /// Waits for the response head (streaming mode).
    func waitForHead() async throws {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let ready = state.withLock { state -> Result<Void, TransportError>? in
                    if state.headComplete { return .success(()) }
                    if let finished = state.finished { return finished }
                    state.headWaiter = continuation
                    return nil
                }
                if let ready { continuation.resume(with: ready.mapError { $0 as any Error }) }
            }
        } onCancel: {
            cancel()
        }
    }

    /// Waits for the whole response (buffered mode).
    func waitForResponse() async throws -> HTTPResponse {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<HTTPResponse, any Error>) in
                let ready = state.withLock { state -> Result<HTTPResponse, TransportError>? in
                    if let finished = state.finished {
                        let body = state.body
                        state.body = Data()
                        return finished.map {
                            HTTPResponse(status: state.status, headers: state.headers, body: body,
                                         httpVersion: state.httpVersion)
                        }
                    }
                    state.responseWaiter = continuation
                    return nil
                }
                if let ready { continuation.resume(with: ready.mapError { $0 as any Error }) }
            }
        } onCancel: {
            cancel()
        }
    }

    /// The next body chunk (streaming mode), nil at the end of the body.
    func nextChunk() async throws -> Data? {
        guard case .streaming(let limit) = mode else { return nil }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Data?, any Error>) in
                var resumeUnpaused = false
                let ready = state.withLock { state -> Result<Data?, TransportError>? in
                    if let chunk = state.chunks.popFirst() {
                        state.bufferedBytes -= chunk.count
                        if state.paused && state.bufferedBytes <= limit / 2 {
                            state.paused = false
                            resumeUnpaused = true
                        }
                        return .success(chunk)
                    }
                    if let finished = state.finished { return finished.map { nil } }
                    if state.cancelled {
                        return .failure(TransportError(kind: .cancelled, curlCode: 0, url: request.url, detail: ""))
                    }
                    if state.paused {
                        state.paused = false
                        resumeUnpaused = true
                    }
                    state.bodyWaiter = continuation
                    return nil
                }
                if resumeUnpaused { engine.submit(.resume(self)) }
                if let ready { continuation.resume(with: ready.mapError { $0 as any Error }) }
            }
        } onCancel: {
            cancel()
        }
    }
}

/// One header line as curl delivers it, without its surrounding whitespace (CR LF included).
struct HeaderLine {
    let bytes: UnsafeRawBufferPointer

    init(_ raw: UnsafeRawBufferPointer) {
        var start = 0, end = raw.count
        while start < end, Self.isSpace(raw[start]) { start += 1 }
        while end > start, Self.isSpace(raw[end - 1]) { end -= 1 }
        bytes = UnsafeRawBufferPointer(rebasing: raw[start..<end])
    }

    static func isSpace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09 || byte == 0x0D || byte == 0x0A || byte == 0x0B || byte == 0x0C
    }

    var isEmpty: Bool { bytes.isEmpty }

    /// `HTTP/1.1 200 OK` → ("1.1", 200); nil for any other line.
    func statusLine() -> (version: String, status: Int)? {
        guard bytes.count >= 5, bytes[0] == 0x48, bytes[1] == 0x54, bytes[2] == 0x54, bytes[3] == 0x50, bytes[4] == 0x2F
        else { return nil }
        var index = 5
        while index < bytes.count, bytes[index] != 0x20 { index += 1 }
        let version = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[5..<index]), as: UTF8.self)
        while index < bytes.count, bytes[index] == 0x20 { index += 1 }
        var status = 0, digits = 0
        while index < bytes.count, bytes[index] != 0x20 {
            let digit = bytes[index] &- 0x30
            guard digit <= 9 else { status = 0; break }
            status = status * 10 + Int(digit)
            digits += 1
            index += 1
        }
        return (version, digits > 0 ? status : 0)
    }

    /// `Name: value` → ("Name", "value"); nil without a colon.
    func field() -> (name: String, value: String)? {
        guard let colon = bytes.firstIndex(of: 0x3A) else { return nil }
        var start = colon + 1
        while start < bytes.count, bytes[start] == 0x20 || bytes[start] == 0x09 { start += 1 }
        return (String(decoding: UnsafeRawBufferPointer(rebasing: bytes[..<colon]), as: UTF8.self),
                String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start...]), as: UTF8.self))
    }

    /// ASCII case-insensitive equality (`lowercase` must be lower case ASCII).
    static func equalsIgnoringASCIICase(_ text: String, _ lowercase: StaticString) -> Bool {
        var utf8 = text.utf8.makeIterator()
        let expected = UnsafeBufferPointer(start: lowercase.utf8Start, count: lowercase.utf8CodeUnitCount)
        for byte in expected {
            guard var actual = utf8.next() else { return false }
            if actual >= 0x41 && actual <= 0x5A { actual += 0x20 }
            if actual != byte { return false }
        }
        return utf8.next() == nil
    }
}

extension Duration {
    /// Whole milliseconds, at least 1 for a positive duration (curl reads 0 as "no timeout").
    var milliseconds: Int {
        let (seconds, attoseconds) = components
        let value = Int(seconds) * 1000 + Int(attoseconds / 1_000_000_000_000_000)
        return value == 0 && (seconds > 0 || attoseconds > 0) ? 1 : value
    }
}

private let transferWriteCallback: ccurl_data_callback = { data, size, count, context in
    guard let context else { return 0 }
    let transfer = Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue()
    return transfer.receiveBody(UnsafeRawBufferPointer(start: data, count: size * count))
}

private let transferHeaderCallback: ccurl_data_callback = { data, size, count, context in
    guard let context else { return 0 }
    let transfer = Unmanaged<Transfer>.fromOpaque(context).takeUnretainedValue()
    transfer.receiveHeader(UnsafeRawBufferPointer(start: data, count: size * count))
    return size * count
}
