import Foundation
import Testing
@testable import CurlHTTP

/// A loopback socket that accepts connections (the kernel's backlog does) but never answers.
final class SilentServer: @unchecked Sendable {
    let descriptor: Int32
    let port: Int

    init() throws {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.descriptor = descriptor
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(descriptor, 16) == 0 else {
            close(descriptor)
            throw POSIXError(.EADDRINUSE)
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    deinit { close(descriptor) }
}

@Suite struct TransportTests {
    @Test func timeoutIsReportedAsTimedOut() async throws {
        let server = try SilentServer()
        let client = HTTPClient()
        await #expect {
            _ = try await client.send(HTTPRequest(url: "http://127.0.0.1:\(server.port)/", timeout: .milliseconds(300)))
        } throws: { error in
            guard let transport = error as? TransportError else { return false }
            return transport.kind == .timedOut && "\(transport)".contains("request to 127.0.0.1:\(server.port) timed out")
        }
        #expect(client.transfersInFlight == 0)
    }

    @Test func cancellingTheTaskStopsTheTransfer() async throws {
        let server = try SilentServer()
        let client = HTTPClient()
        let task = Task {
            try await client.send(HTTPRequest(url: "http://127.0.0.1:\(server.port)/", timeout: nil))
        }
        for _ in 0..<250 where client.transfersInFlight == 0 { try await Task.sleep(for: .milliseconds(20)) }
        #expect(client.transfersInFlight == 1)
        task.cancel()
        let result = await task.result
        #expect(throws: TransportError.self) { try result.get() }
        // The engine thread removes the handle right after.
        for _ in 0..<250 where client.transfersInFlight != 0 { try await Task.sleep(for: .milliseconds(20)) }
        #expect(client.transfersInFlight == 0)
    }

    @Test func refusedConnection() async throws {
        let port: Int
        do {
            let server = try SilentServer()
            port = server.port
        }  // closed again: nothing listens there now
        await #expect {
            _ = try await HTTPClient.shared.send(HTTPRequest(url: "http://127.0.0.1:\(port)/"))
        } throws: { error in
            (error as? TransportError)?.kind == .connectionRefused && "\(error)".contains("connection refused by 127.0.0.1:\(port)")
        }
    }

    @Test func invalidURL() async throws {
        await #expect {
            _ = try await HTTPClient.shared.send(HTTPRequest(url: "notascheme://x"))
        } throws: { error in
            (error as? TransportError)?.kind == .invalidURL
        }
    }

    @Test func unreadableCABundle() async throws {
        await #expect {
            _ = try await HTTPClient.shared.send(HTTPRequest(url: "https://127.0.0.1:1/", tls: TLSOptions(caFile: "/nonexistent/ca.pem")))
        } throws: { error in
            guard let transport = error as? TransportError else { return false }
            return transport.kind == .certificateAuthorityInvalid || transport.kind == .connectionRefused
        }
    }

    @Test func headersCompareCaseInsensitively() {
        var headers: HTTPHeaders = ["Content-Type": "a"]
        headers.add("content-type", "b")
        #expect(headers["CONTENT-TYPE"] == "a")
        #expect(headers.values(for: "Content-type") == ["a", "b"])
        headers.set("Content-Type", "c")
        #expect(headers.values(for: "content-type") == ["c"])
        headers.remove("CONTENT-TYPE")
        #expect(headers["content-type"] == nil)
    }

    @Test func headerNamesCompareBeyondASCII() {
        #expect(HTTPHeaders.namesMatch("X-Trace", "x-TRACE"))
        #expect(!HTTPHeaders.namesMatch("X-Trace", "X-Traces"))
        #expect(!HTTPHeaders.namesMatch("Accept", "Accept-Encoding"))
        #expect(HTTPHeaders.namesMatch("Größe", "GRÖSSE") == ("Größe".caseInsensitiveCompare("GRÖSSE") == .orderedSame))
        #expect(HTTPHeaders.namesMatch("Éa", "éA"))
    }

    @Test func headerLinesParseAsCurlDeliversThem() {
        func status(_ text: String) -> (String, Int)? {
            Array(text.utf8).withUnsafeBytes { HeaderLine($0).statusLine() }
        }
        func field(_ text: String) -> (String, String)? {
            Array(text.utf8).withUnsafeBytes { HeaderLine($0).field() }
        }
        #expect(status("HTTP/1.1 200 OK\r\n")! == ("1.1", 200))
        #expect(status("HTTP/2 404 \r\n")! == ("2", 404))
        #expect(status("HTTP/1.1 100 Continue\r\n")! == ("1.1", 100))
        #expect(status("HTTP/1.1 abc\r\n")! == ("1.1", 0))
        #expect(status("Content-Type: text/plain\r\n") == nil)
        #expect(field("Content-Type:  text/plain \r\n")! == ("Content-Type", "text/plain"))
        #expect(field("X-Empty:\r\n")! == ("X-Empty", ""))
        #expect(field("Location: http://a/b:c\r\n")! == ("Location", "http://a/b:c"))
        #expect(field("no colon\r\n") == nil)
        #expect(Array("\r\n".utf8).withUnsafeBytes { HeaderLine($0).isEmpty })
        #expect(HeaderLine.equalsIgnoringASCIICase("Content-LENGTH", "content-length"))
        #expect(!HeaderLine.equalsIgnoringASCIICase("Content-Lengths", "content-length"))
    }

    @Test func durationsBecomeWholeMilliseconds() {
        #expect(Duration.seconds(2).milliseconds == 2_000)
        #expect(Duration.milliseconds(1_500).milliseconds == 1_500)
        // Never 0 for a positive duration: curl reads 0 as "no timeout".
        #expect(Duration.nanoseconds(1).milliseconds == 1)
        #expect(Duration.zero.milliseconds == 0)
    }
}
