/// A container image reference, parsed by the distribution reference grammar:
/// `[host[:port]/]path-component(/path-component)*[:tag][@algorithm:hex]`.
public struct ImageReference: Sendable, Hashable, CustomStringConvertible {
    /// Registry host with optional port, nil when the reference names none (Docker Hub).
    public var domain: String?
    /// Repository path below the domain (`jupyter/base-notebook`).
    public var path: String
    public var tag: String?
    public var digest: String?

    public static let maxNameLength = 255
    public static let maxTagLength = 128

    /// The repository without tag or digest (`quay.io/jupyter/base-notebook`).
    public var repository: String { domain.map { "\($0)/\(path)" } ?? path }

    /// The registry host the reference resolves to (`docker.io` when none is named).
    public var registry: String { domain ?? "docker.io" }

    public var description: String {
        repository + (tag.map { ":" + $0 } ?? "") + (digest.map { "@" + $0 } ?? "")
    }

    /// Parses `text`, or throws the reason it is not a valid reference.
    public init(parsing text: String) throws(ReferenceError) {
        guard !text.isEmpty else { throw ReferenceError("must not be empty") }
        guard text.unicodeScalars.allSatisfy({ $0.isASCII && $0.value > 0x20 && $0.value < 0x7F }) else {
            throw ReferenceError("may contain only printable ASCII characters, no spaces")
        }
        var rest = Substring(text)
        if let at = rest.firstIndex(of: "@") {
            let digest = rest[rest.index(after: at)...]
            try Self.checkDigest(digest)
            self.digest = String(digest)
            rest = rest[..<at]
        } else {
            digest = nil
        }
        // A tag follows the last ':' unless that ':' belongs to a host:port (a '/' comes after it).
        if let colon = rest.lastIndex(of: ":"), !rest[colon...].contains("/") {
            let tag = rest[rest.index(after: colon)...]
            try Self.checkTag(tag)
            self.tag = String(tag)
            rest = rest[..<colon]
        } else {
            tag = nil
        }
        guard rest.count <= Self.maxNameLength else {
            throw ReferenceError("repository name is longer than \(Self.maxNameLength) characters")
        }
        var components = rest.split(separator: "/", omittingEmptySubsequences: false)
        if components.count > 1, Self.looksLikeDomain(components[0]) {
            try Self.checkDomain(components[0])
            domain = String(components[0])
            components.removeFirst()
        } else {
            domain = nil
        }
        for component in components {
            try Self.checkPathComponent(component)
        }
        path = components.joined(separator: "/")
    }

    /// The first component names a registry when it has a '.' or ':', is `localhost`, or has
    /// upper-case letters (which repository paths may not).
    static func looksLikeDomain(_ component: Substring) -> Bool {
        component.contains(".") || component.contains(":") || component == "localhost"
            || component.contains(where: { $0.isUppercase }) || component.hasPrefix("[")
    }

    static func checkDomain(_ domain: Substring) throws(ReferenceError) {
        var host = domain
        if host.hasPrefix("[") {
            // IPv6 literal: [hex:hex…] with an optional port after the bracket.
            guard let close = host.firstIndex(of: "]") else { throw ReferenceError("registry host \"\(domain)\": unclosed '['") }
            let inner = host[host.index(after: host.startIndex)..<close]
            guard !inner.isEmpty, inner.allSatisfy({ $0.isHexDigit || $0 == ":" }) else {
                throw ReferenceError("registry host \"\(domain)\" is not a valid IPv6 literal")
            }
            let after = host[host.index(after: close)...]
            if !after.isEmpty {
                guard after.first == ":" else { throw ReferenceError("registry host \"\(domain)\": unexpected text after ']'") }
                try checkPort(after.dropFirst(), domain)
            }
            return
        }
        if let colon = host.firstIndex(of: ":") {
            try checkPort(host[host.index(after: colon)...], domain)
            host = host[..<colon]
        }
        for label in host.split(separator: ".", omittingEmptySubsequences: false) {
            let ok = !label.isEmpty && label.allSatisfy { ($0.isASCII && ($0.isLetter || $0.isNumber)) || $0 == "-" }
                && label.first != "-" && label.last != "-"
            guard ok else {
                throw ReferenceError("registry host \"\(domain)\": each dot-separated part must be letters, digits and inner '-'")
            }
        }
    }

    static func checkPort(_ port: Substring, _ domain: Substring) throws(ReferenceError) {
        guard !port.isEmpty, port.count <= 5, port.allSatisfy({ $0.isASCII && $0.isNumber }), let number = Int(port), number <= 65535 else {
            throw ReferenceError("registry host \"\(domain)\": the port must be a number up to 65535")
        }
    }

    /// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
    static func checkPathComponent(_ component: Substring) throws(ReferenceError) {
        guard !component.isEmpty else { throw ReferenceError("repository path has an empty component ('//', or a leading or trailing '/')") }
        let bytes = Array(component.utf8)
        func isAlnum(_ b: UInt8) -> Bool { (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39) }
        var index = 0
        func alnumRun() -> Bool {
            let start = index
            while index < bytes.count, isAlnum(bytes[index]) { index += 1 }
            return index > start
        }
        var valid = alnumRun()
        while valid, index < bytes.count {
            switch bytes[index] {
            case UInt8(ascii: "."):
                index += 1
            case UInt8(ascii: "_"):
                index += 1
                if index < bytes.count, bytes[index] == UInt8(ascii: "_") { index += 1 }
            case UInt8(ascii: "-"):
                while index < bytes.count, bytes[index] == UInt8(ascii: "-") { index += 1 }
            default:
                valid = false
                continue
            }
            valid = alnumRun()
        }
        guard valid else {
            if component.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) }),
               component.contains(where: { $0.isUppercase }) {
                throw ReferenceError("repository path \"\(component)\" must be lower case")
            }
            throw ReferenceError("repository path component \"\(component)\" must be lower-case letters and digits, separated by '.', '_', '__' or '-'")
        }
    }

    /// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`
    static func checkTag(_ tag: Substring) throws(ReferenceError) {
        func isWord(_ c: Character) -> Bool { c.isASCII && (c.isLetter || c.isNumber || c == "_") }
        guard let first = tag.first, isWord(first) else {
            throw ReferenceError("tag must start with a letter, digit or '_'")
        }
        guard tag.count <= maxTagLength else { throw ReferenceError("tag is longer than \(maxTagLength) characters") }
        guard tag.allSatisfy({ isWord($0) || $0 == "." || $0 == "-" }) else {
            throw ReferenceError("tag \"\(tag)\" may contain only letters, digits, '_', '.' and '-'")
        }
    }

    /// `algorithm:hex`, hex at least 32 digits.
    static func checkDigest(_ digest: Substring) throws(ReferenceError) {
        guard let colon = digest.firstIndex(of: ":") else {
            throw ReferenceError("digest must be algorithm:hex (sha256:…)")
        }
        let algorithm = digest[..<colon]
        let hex = digest[digest.index(after: colon)...]
        // Components separated by one of -_+. and each starting with a letter: `sha256`, `multihash+base58`.
        let components = algorithm.split(omittingEmptySubsequences: false, whereSeparator: { "-_+.".contains($0) })
        let algorithmOK = components.allSatisfy { component in
            component.first.map { $0.isASCII && $0.isLetter } == true
                && component.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber) }
        }
        guard algorithmOK else { throw ReferenceError("digest algorithm \"\(algorithm)\" is not valid") }
        guard hex.count >= 32, hex.allSatisfy({ ("0"..."9").contains($0) || ("a"..."f").contains($0) }) else {
            throw ReferenceError("digest must have at least 32 lower-case hexadecimal digits after \"\(algorithm):\"")
        }
        if algorithm == "sha256", hex.count != 64 {
            throw ReferenceError("a sha256 digest has 64 hexadecimal digits")
        }
    }
}

public struct ReferenceError: Error, Sendable, Hashable, CustomStringConvertible {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}
