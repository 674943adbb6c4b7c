import Crypto
import Foundation

extension Digest {
    /// The digest of `data` with `algorithm` (`sha256` or `sha512`).
    public static func of(_ data: Data, algorithm: String = "sha256") -> Digest {
        let hex: String
        switch algorithm {
        case "sha512": hex = SHA512.hash(data: data).lowercaseHex
        default: hex = SHA256.hash(data: data).lowercaseHex
        }
        return Digest(algorithm: algorithm == "sha512" ? "sha512" : "sha256", hex: hex)!
    }

    /// Whether `data` has this digest.
    public func verifies(_ data: Data) -> Bool {
        Digest.of(data, algorithm: algorithm) == self
    }
}

extension Sequence where Element == UInt8 {
    /// The bytes as lowercase hexadecimal, two digits each: the one hex encoder of the project's
    /// digests and hashes.
    public var lowercaseHex: String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(underestimatedCount * 2)
        for byte in self {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
