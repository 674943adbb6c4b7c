import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Issues registry bearer tokens: RS256 JWTs whose header carries the signing certificate (`x5c`),
/// which chains to the CA the registry is given as `rootcertbundle`. Signing uses the `openssl` CLI.
struct TokenIssuer: Sendable {
    let service: String
    let issuer: String
    let rootCertificateFile: String
    let signingKeyFile: String
    let signingCertificateDER: Data
    let openssl: String
    let directory: String

    static func make(directory: String, service: String) async throws -> TokenIssuer {
        let pki = try OpenSSL(directory: directory)
        let ca = try await pki.makeCA("token-ca", commonName: "image-builder-test-token-ca")
        let key = directory + "/token-signer.key", csr = directory + "/token-signer.csr"
        let certificate = directory + "/token-signer.crt", ext = directory + "/token-signer.ext"
        try await runChecked(pki.openssl, [
            "req", "-new", "-nodes", "-newkey", "rsa:2048", "-keyout", key, "-out", csr,
            "-subj", "/CN=image-builder-test-token-signer",
        ])
        try "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
            .write(toFile: ext, atomically: true, encoding: .utf8)
        try await runChecked(pki.openssl, [
            "x509", "-req", "-in", csr, "-CA", ca.certificateFile, "-CAkey", ca.keyFile, "-set_serial", "0x1f2e3d",
            "-days", "3650", "-sha256", "-extfile", ext, "-out", certificate,
        ])
        let derFile = directory + "/token-signer.der"
        try await runChecked(pki.openssl, ["x509", "-in", certificate, "-outform", "DER", "-out", derFile])
        guard let der = FileManager.default.contents(atPath: derFile) else {
            throw HarnessError("cannot read \(derFile)")
        }
        return TokenIssuer(
            service: service, issuer: "image-builder-test-token-issuer", rootCertificateFile: ca.certificateFile,
            signingKeyFile: key, signingCertificateDER: der, openssl: pki.openssl, directory: directory)
    }

    /// A signed token for `subject` granting every scope in `scopes` (`type:name:action,action`).
    /// Blocking (runs openssl); called on the token server's thread.
    func issue(subject: String, scopes: [String], lifetime: Int = 300) throws -> String {
        let now = Int(Date().timeIntervalSince1970)
        let access: [[String: Any]] = scopes.compactMap { scope in
            guard let first = scope.firstIndex(of: ":"), let last = scope.lastIndex(of: ":"), first < last else {
                return nil
            }
            return [
                "type": String(scope[..<first]),
                "name": String(scope[scope.index(after: first)..<last]),
                "actions": scope[scope.index(after: last)...].split(separator: ",").map(String.init),
            ]
        }
        let header: [String: Any] = ["typ": "JWT", "alg": "RS256", "x5c": [signingCertificateDER.base64EncodedString()]]
        let claims: [String: Any] = [
            "iss": issuer, "sub": subject, "aud": service, "exp": now + lifetime, "nbf": now - 30, "iat": now,
            "jti": randomHex(), "access": access,
        ]
        let signingInput = try base64URL(JSONSerialization.data(withJSONObject: header)) + "."
            + base64URL(JSONSerialization.data(withJSONObject: claims))
        let name = randomHex(bytes: 8)
        let input = "\(directory)/jwt-\(name).in", output = "\(directory)/jwt-\(name).sig"
        defer {
            try? FileManager.default.removeItem(atPath: input)
            try? FileManager.default.removeItem(atPath: output)
        }
        try Data(signingInput.utf8).write(to: URL(fileURLWithPath: input))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: openssl)
        process.arguments = ["dgst", "-sha256", "-sign", signingKeyFile, "-out", output, input]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0, let signature = FileManager.default.contents(atPath: output) else {
            throw HarnessError("openssl dgst -sign failed with status \(process.terminationStatus)")
        }
        return signingInput + "." + base64URL(signature)
    }

    private func base64URL(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}

/// A minimal HTTP/1.1 token endpoint (`GET /token?service=…&scope=…`, HTTP basic credentials) on
/// one address (127.0.0.1 unless told). With `pushGrantedTo`, only clients connecting from those
/// addresses get `push` (the rest get what they asked for without it): a registry that refuses
/// one client's push while it grants another's. It serves one connection at a time on its own thread — a dedicated `Thread`, not a
/// task, because `accept`/`recv` block; `stop()` shuts the socket down and waits for the thread.
final class TokenServer: Sendable {
    let realm: URL
    private let socketFD: Int32
    private let issuer: TokenIssuer
    private let username: String
    private let password: String
    private let pushGrantedTo: Set<String>?
    private let finished = DispatchSemaphore(value: 0)
    private let stopped = Mutex(false)

    init(issuer: TokenIssuer, username: String, password: String, address listenAddress: String = "127.0.0.1",
         pushGrantedTo: Set<String>? = nil) throws {
        #if canImport(Glibc)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw HarnessError("token server: socket() failed: errno \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr(listenAddress)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                bind(fd, sa, length) == 0 && getsockname(fd, sa, &length) == 0 && listen(fd, 16) == 0
            }
        }
        guard ok else {
            close(fd)
            throw HarnessError("token server: cannot listen on \(listenAddress): errno \(errno)")
        }
        self.socketFD = fd
        self.realm = URL(string: "http://\(listenAddress):\(UInt16(bigEndian: address.sin_port))/token")!
        self.pushGrantedTo = pushGrantedTo
        self.issuer = issuer
        self.username = username
        self.password = password
        let thread = Thread { [self] in
            serve()
            finished.signal()
        }
        thread.name = "registry-token-server"
        thread.start()
    }

    func stop() {
        let first = stopped.withLock { stopped in
            defer { stopped = true }
            return !stopped
        }
        guard first else { return }
        shutdown(socketFD, Int32(SHUT_RDWR))
        _ = finished.wait(timeout: .now() + 5)
        close(socketFD)
    }

    private func serve() {
        while !stopped.withLock({ $0 }) {
            let connection = accept(socketFD, nil, nil)
            if connection < 0 {
                if errno == EINTR { continue }
                return
            }
            handle(connection)
            close(connection)
        }
    }

    private func handle(_ connection: Int32) {
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var request = Data()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while request.range(of: Data("\r\n\r\n".utf8)) == nil && request.count < 64 * 1024 {
            let count = recv(connection, &buffer, buffer.count, 0)
            if count <= 0 { return }
            request.append(contentsOf: buffer[0..<count])
        }
        let head = String(decoding: request, as: UTF8.self)
        let lines = head.components(separatedBy: "\r\n")
        let parts = lines.first?.split(separator: " ") ?? []
        guard parts.count >= 2, parts[0] == "GET" else {
            respond(connection, status: "404 Not Found", body: #"{"error":"only GET is supported"}"#)
            return
        }
        let components = URLComponents(string: String(parts[1]))
        guard components?.path == "/token" else {
            respond(connection, status: "404 Not Found", body: #"{"error":"not found"}"#)
            return
        }
        let expected = "Basic " + Data("\(username):\(password)".utf8).base64EncodedString()
        let authorized = lines.dropFirst().contains { line in
            guard let colon = line.firstIndex(of: ":") else { return false }
            return line[..<colon].lowercased() == "authorization"
                && line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces) == expected
        }
        guard authorized else {
            respond(
                connection, status: "401 Unauthorized", body: #"{"error":"invalid credentials"}"#,
                extraHeaders: ["WWW-Authenticate: Basic realm=\"image-builder-test-token\""])
            return
        }
        var scopes = (components?.queryItems ?? []).filter { $0.name == "scope" }.compactMap(\.value)
            .flatMap { $0.split(separator: " ").map(String.init) }
        if let pushGrantedTo, !pushGrantedTo.contains(Self.peerAddress(of: connection) ?? "") {
            scopes = scopes.map(Self.withoutPush)
        }
        do {
            let token = try issuer.issue(subject: username, scopes: scopes)
            let issuedAt = ISO8601DateFormatter().string(from: Date())
            let body = #"{"token":"\#(token)","access_token":"\#(token)","expires_in":300,"issued_at":"\#(issuedAt)"}"#
            respond(connection, status: "200 OK", body: body)
        } catch {
            respond(connection, status: "500 Internal Server Error", body: #"{"error":"signing failed"}"#)
        }
    }

    /// The IPv4 address a connection comes from.
    private static func peerAddress(of connection: Int32) -> String? {
        var peer = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &peer) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(connection, $0, &length) == 0 }
        }
        guard ok else { return nil }
        var text = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
        guard inet_ntop(AF_INET, &peer.sin_addr, &text, socklen_t(text.count)) != nil else { return nil }
        return String(cString: text)
    }

    /// `repository:name:pull,push` → `repository:name:pull` (and `*` dropped).
    static func withoutPush(_ scope: String) -> String {
        guard let last = scope.lastIndex(of: ":") else { return scope }
        let actions = scope[scope.index(after: last)...].split(separator: ",").filter { $0 != "push" && $0 != "*" }
        return scope[...last] + actions.joined(separator: ",")
    }

    private func respond(_ connection: Int32, status: String, body: String, extraHeaders: [String] = []) {
        let headers = ["HTTP/1.1 \(status)", "Content-Type: application/json", "Content-Length: \(body.utf8.count)",
                       "Connection: close"] + extraHeaders
        let response = Data((headers.joined(separator: "\r\n") + "\r\n\r\n" + body).utf8)
        response.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let sent = send(connection, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
                if sent <= 0 { return }
                offset += sent
            }
        }
    }
}
