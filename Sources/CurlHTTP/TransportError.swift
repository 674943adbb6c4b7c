import CCurl
import Foundation

/// A request that got no HTTP response: the connection, TLS or the transfer itself failed.
public struct TransportError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What went wrong, in the terms a caller acts on.
    public enum Kind: Sendable, Equatable {
        case hostNotFound
        case connectionRefused
        case timedOut
        case tlsVerificationFailed
        case tlsHandshakeFailed
        case clientCertificateInvalid
        case certificateAuthorityInvalid
        case connectionClosed
        case proxyFailed
        /// The body was larger than `HTTPRequest.maximumBodySize`.
        case responseTooLarge
        case invalidURL
        case cancelled
        case other
    }

    public var kind: Kind
    /// curl's result code (`CURLcode`), 0 where the failure did not come from curl.
    public var curlCode: Int
    /// The URL of the request.
    public var url: String
    /// curl's own detail ("SSL certificate problem: unable to get local issuer certificate").
    public var detail: String

    public init(kind: Kind, curlCode: Int, url: String, detail: String) {
        self.kind = kind
        self.curlCode = curlCode
        self.url = url
        self.detail = detail
    }

    /// The host and port the request went to, for messages.
    public var endpoint: String {
        guard let components = URLComponents(string: url), let host = components.host else { return url }
        if let port = components.port { return "\(host):\(port)" }
        return host
    }

    public var description: String {
        let sentence: String
        switch kind {
        case .hostNotFound: sentence = "could not resolve host \(endpoint)"
        case .connectionRefused: sentence = "connection refused by \(endpoint)"
        case .timedOut: sentence = "request to \(endpoint) timed out"
        case .tlsVerificationFailed: sentence = "TLS verification failed for host \(endpoint)"
        case .tlsHandshakeFailed: sentence = "TLS handshake with \(endpoint) failed"
        case .clientCertificateInvalid: sentence = "client certificate or key for \(endpoint) could not be used"
        case .certificateAuthorityInvalid: sentence = "certificate authority bundle for \(endpoint) could not be read"
        case .connectionClosed: sentence = "connection to \(endpoint) closed unexpectedly"
        case .proxyFailed: sentence = "proxy for \(endpoint) failed"
        case .responseTooLarge: sentence = "response from \(endpoint) too large"
        case .invalidURL: sentence = "invalid URL \(url)"
        case .cancelled: sentence = "request to \(endpoint) cancelled"
        case .other: sentence = "request to \(endpoint) failed"
        }
        let extra = detail.isEmpty ? "" : ": \(detail)"
        // Failures this side detected itself (curlCode 0) have no curl code to quote.
        return curlCode == 0 ? "\(sentence)\(extra)" : "\(sentence)\(extra) (curl error \(curlCode))"
    }

    static func from(code: CURLcode, url: String, detail: String) -> TransportError {
        let kind: Kind
        switch code {
        case CURLE_COULDNT_RESOLVE_HOST: kind = .hostNotFound
        case CURLE_COULDNT_CONNECT: kind = .connectionRefused
        case CURLE_OPERATION_TIMEDOUT: kind = .timedOut
        case CURLE_PEER_FAILED_VERIFICATION: kind = .tlsVerificationFailed
        case CURLE_SSL_CONNECT_ERROR: kind = .tlsHandshakeFailed
        case CURLE_SSL_CERTPROBLEM: kind = .clientCertificateInvalid
        case CURLE_SSL_CACERT_BADFILE: kind = .certificateAuthorityInvalid
        case CURLE_GOT_NOTHING, CURLE_RECV_ERROR, CURLE_SEND_ERROR, CURLE_PARTIAL_FILE, CURLE_HTTP2,
             CURLE_HTTP2_STREAM:
            kind = .connectionClosed
        case CURLE_COULDNT_RESOLVE_PROXY: kind = .proxyFailed
        case CURLE_URL_MALFORMAT, CURLE_UNSUPPORTED_PROTOCOL: kind = .invalidURL
        case CURLE_ABORTED_BY_CALLBACK, CURLE_WRITE_ERROR: kind = .cancelled
        default: kind = .other
        }
        var text = detail.trimmingCharacters(in: .whitespacesAndNewlines)
        if text.isEmpty, let message = curl_easy_strerror(code) {
            text = String(cString: message)
        }
        return TransportError(kind: kind, curlCode: Int(code.rawValue), url: url, detail: text)
    }
}
