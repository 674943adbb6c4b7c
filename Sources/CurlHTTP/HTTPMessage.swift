import Foundation

/// Header fields of a request or response, in order; names compare case-insensitively.
public struct HTTPHeaders: Sendable, Equatable, Sequence, ExpressibleByDictionaryLiteral {
    public private(set) var entries: [(name: String, value: String)]

    public init() { entries = [] }

    public init(dictionaryLiteral elements: (String, String)...) {
        entries = elements.map { (name: $0.0, value: $0.1) }
    }

    /// Appends a field (keeps any existing field of the same name).
    public mutating func add(_ name: String, _ value: String) {
        entries.append((name: name, value: value))
    }

    /// Replaces every field of this name with one field.
    public mutating func set(_ name: String, _ value: String) {
        remove(name)
        add(name, value)
    }

    public mutating func remove(_ name: String) {
        entries.removeAll { Self.namesMatch($0.name, name) }
    }

    /// The first value of a field, if present.
    public subscript(name: String) -> String? {
        entries.first { Self.namesMatch($0.name, name) }?.value
    }

    /// Every value of a field, in order.
    public func values(for name: String) -> [String] {
        entries.filter { Self.namesMatch($0.name, name) }.map(\.value)
    }

    /// Case-insensitive name comparison: byte by byte for ASCII names (all real ones), Foundation's
    /// comparison otherwise.
    static func namesMatch(_ a: String, _ b: String) -> Bool {
        var left = a.utf8.makeIterator(), right = b.utf8.makeIterator()
        while true {
            switch (left.next(), right.next()) {
            case (nil, nil):
                return true
            case (var x?, var y?):
                if x >= 0x80 || y >= 0x80 { return a.caseInsensitiveCompare(b) == .orderedSame }
                if x >= 0x41 && x <= 0x5A { x += 0x20 }
                if y >= 0x41 && y <= 0x5A { y += 0x20 }
                if x != y { return false }
            default:
                // Different lengths: equal only if folding non-ASCII characters could change that.
                return !a.utf8.allSatisfy({ $0 < 0x80 }) || !b.utf8.allSatisfy({ $0 < 0x80 })
                    ? a.caseInsensitiveCompare(b) == .orderedSame : false
            }
        }
    }

    public func makeIterator() -> IndexingIterator<[(name: String, value: String)]> {
        entries.makeIterator()
    }

    public static func == (lhs: HTTPHeaders, rhs: HTTPHeaders) -> Bool {
        lhs.entries.elementsEqual(rhs.entries) { $0.name == $1.name && $0.value == $1.value }
    }
}

/// TLS settings for one request. Transfers with equal settings share connections.
public struct TLSOptions: Sendable, Hashable {
    /// PEM file with the certificate authorities to trust (instead of the system store).
    public var caFile: String?
    /// PEM bytes with the certificate authorities to trust.
    public var caData: Data?
    /// PEM client certificate, as a file or as bytes.
    public var clientCertificateFile: String?
    public var clientCertificateData: Data?
    /// PEM client private key, as a file or as bytes.
    public var clientKeyFile: String?
    public var clientKeyData: Data?
    /// Skip verification of the server's certificate and host name.
    public var insecureSkipVerify: Bool
    /// Verify the server certificate against this name (and send it as SNI) instead of the URL's host.
    public var serverName: String?

    public init(
        caFile: String? = nil, caData: Data? = nil,
        clientCertificateFile: String? = nil, clientCertificateData: Data? = nil,
        clientKeyFile: String? = nil, clientKeyData: Data? = nil,
        insecureSkipVerify: Bool = false, serverName: String? = nil
    ) {
        self.caFile = caFile
        self.caData = caData
        self.clientCertificateFile = clientCertificateFile
        self.clientCertificateData = clientCertificateData
        self.clientKeyFile = clientKeyFile
        self.clientKeyData = clientKeyData
        self.insecureSkipVerify = insecureSkipVerify
        self.serverName = serverName
    }
}

/// One HTTP request.
public struct HTTPRequest: Sendable {
    public var method: String
    /// The absolute URL, already percent-encoded.
    public var url: String
    public var headers: HTTPHeaders
    public var body: Data?
    public var tls: TLSOptions
    /// A proxy URL (`http://`, `https://`, `socks5://`); nil uses the environment (`https_proxy`, `no_proxy`).
    public var proxy: String?
    /// Give up connecting after this long.
    public var connectTimeout: Duration
    /// Give up on the whole transfer after this long; nil waits for ever (watches, followed logs).
    public var timeout: Duration?
    /// `send` only: a body larger than this ends the transfer with `TransportError.Kind.responseTooLarge`
    /// (nothing beyond it is held in memory); nil: no limit.
    public var maximumBodySize: Int?

    public init(
        method: String = "GET", url: String, headers: HTTPHeaders = [:], body: Data? = nil,
        tls: TLSOptions = TLSOptions(), proxy: String? = nil,
        connectTimeout: Duration = .seconds(10), timeout: Duration? = .seconds(60), maximumBodySize: Int? = nil
    ) {
        self.maximumBodySize = maximumBodySize
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.tls = tls
        self.proxy = proxy
        self.connectTimeout = connectTimeout
        self.timeout = timeout
    }
}

/// A complete response: status, headers and the whole body.
public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: HTTPHeaders
    public var body: Data
    /// The protocol version curl used ("1.1", "2").
    public var httpVersion: String

    public init(status: Int, headers: HTTPHeaders, body: Data, httpVersion: String = "1.1") {
        self.status = status
        self.headers = headers
        self.body = body
        self.httpVersion = httpVersion
    }
}

/// The head of a streamed response and its body, delivered as it arrives.
public struct HTTPStreamingResponse: Sendable {
    public var status: Int
    public var headers: HTTPHeaders
    public var httpVersion: String
    /// The body, chunk by chunk. At most a bounded number of bytes are buffered: when the consumer
    /// is slow, the transfer is paused until it catches up.
    public let body: HTTPBodyStream

    /// Reads the rest of the body into memory (for error responses, which are small).
    public func collectBody(limit: Int = 4 << 20) async throws -> Data {
        var data = Data()
        for try await chunk in body {
            data.append(chunk)
            if data.count >= limit { break }
        }
        return data
    }
}
