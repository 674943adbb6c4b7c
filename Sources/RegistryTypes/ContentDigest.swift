import Crypto
import Foundation

extension Digest {
    /// The digest of `data` with `algorithm` (`sha256` or `sha512`).
    public static func of(_ data: Data, algorithm: String = "sha256") -> Digest {
        let hex: String
        switch algorithm {
        case "sha512": hex = SHA512.hash(data: data).map { String(format: "%02x", $0) }.joined()
        default: hex = SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
        }
        return Digest(algorithm: algorithm == "sha512" ? "sha512" : "sha256", hex: hex)!
    }

    /// Whether `data` has this digest.
    public func verifies(_ data: Data) -> Bool {
        Digest.of(data, algorithm: algorithm) == self
    }
}
