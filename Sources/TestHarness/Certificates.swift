import Foundation

/// A certificate and its private key, as PEM files.
public struct CertificateFiles: Sendable, Hashable {
    /// Path of the PEM certificate.
    public var certificateFile: String
    /// Path of the PEM private key (PKCS#8).
    public var keyFile: String

    /// The certificate's PEM bytes.
    public var certificatePEM: Data { FileManager.default.contents(atPath: certificateFile) ?? Data() }
    /// The key's PEM bytes.
    public var keyPEM: Data { FileManager.default.contents(atPath: keyFile) ?? Data() }
}

/// Test PKI made with the `openssl` CLI: ECDSA P-256 certificates, RSA service-account keys.
struct OpenSSL {
    let openssl: String
    let directory: String

    init(directory: String) throws {
        self.openssl = try requireExecutable("openssl", package: "openssl")
        self.directory = directory
    }

    /// A self-signed CA certificate.
    func makeCA(_ name: String, commonName: String) async throws -> CertificateFiles {
        let files = CertificateFiles(certificateFile: "\(directory)/\(name).crt", keyFile: "\(directory)/\(name).key")
        try await runChecked(openssl, [
            "req", "-x509", "-new", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-keyout", files.keyFile, "-out", files.certificateFile, "-days", "3650",
            "-subj", "/CN=\(commonName)",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
        ])
        return files
    }

    /// A leaf certificate signed by `ca`: a server certificate when `serverNames` is non-empty
    /// (IP addresses and DNS names as SANs), a client certificate otherwise.
    func makeCertificate(
        _ name: String, commonName: String, organizations: [String] = [], serverNames: [String] = [],
        clientAuth: Bool = false, signedBy ca: CertificateFiles
    ) async throws -> CertificateFiles {
        let files = CertificateFiles(certificateFile: "\(directory)/\(name).crt", keyFile: "\(directory)/\(name).key")
        let csr = "\(directory)/\(name).csr", extensions = "\(directory)/\(name).ext"
        let subject = organizations.map { "/O=\($0)" }.joined() + "/CN=\(commonName)"
        try await runChecked(openssl, [
            "req", "-new", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-keyout", files.keyFile, "-out", csr, "-subj", subject,
        ])
        var usages: [String] = []
        if !serverNames.isEmpty { usages.append("serverAuth") }
        if clientAuth || serverNames.isEmpty { usages.append("clientAuth") }
        var ext = [
            "basicConstraints=critical,CA:FALSE",
            "keyUsage=critical,digitalSignature",
            "extendedKeyUsage=\(usages.joined(separator: ","))",
        ]
        if !serverNames.isEmpty {
            let sans = serverNames.map { isIPAddress($0) ? "IP:\($0)" : "DNS:\($0)" }
            ext.append("subjectAltName=\(sans.joined(separator: ","))")
        }
        try ext.joined(separator: "\n").appending("\n").write(toFile: extensions, atomically: true, encoding: .utf8)
        let serial = "0x" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(30)
        try await runChecked(openssl, [
            "x509", "-req", "-in", csr, "-CA", ca.certificateFile, "-CAkey", ca.keyFile,
            "-set_serial", String(serial), "-days", "3650", "-sha256", "-extfile", extensions,
            "-out", files.certificateFile,
        ])
        try? FileManager.default.removeItem(atPath: csr)
        try? FileManager.default.removeItem(atPath: extensions)
        return files
    }

    /// An RSA key pair: (private key file, public key file).
    func makeRSAKey(_ name: String) async throws -> (privateKey: String, publicKey: String) {
        let privateKey = "\(directory)/\(name).key", publicKey = "\(directory)/\(name).pub"
        try await runChecked(openssl, ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", privateKey])
        try await runChecked(openssl, ["pkey", "-in", privateKey, "-pubout", "-out", publicKey])
        return (privateKey, publicKey)
    }

    private func isIPAddress(_ name: String) -> Bool {
        name.contains(":") || name.allSatisfy { $0.isNumber || $0 == "." }
    }
}

/// A random hex string (for tokens and passwords).
func randomHex(bytes: Int = 16) -> String {
    var generator = SystemRandomNumberGenerator()
    return (0..<bytes).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
}
