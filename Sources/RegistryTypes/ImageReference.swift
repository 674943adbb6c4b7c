// The image reference grammar of the distribution project (the one `docker pull` accepts), as a pure
// value type: parsing, normalization and formatting, no I/O. ImageSpec validation uses it too.
//
//   reference        := name [ ":" tag ] [ "@" digest ]
//   name             := [ domain "/" ] path
//   domain           := host [ ":" port ]
//   host             := domain-name | IPv4 | "[" IPv6 "]"
//   domain-name      := component ( "." component )*       component: [A-Za-z0-9] | [A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9]
//   path             := path-component ( "/" path-component )*
//   path-component   := [a-z0-9]+ ( separator [a-z0-9]+ )*   separator: "_" | "__" | "." | "-"+
//   tag              := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
//   digest           := algorithm ":" hex                      (sha256: 64 hex, sha512: 128 hex, lowercase)
//
// The first `/`-separated component is a domain when it contains `.` or `:`, is `localhost`, or has
// an uppercase letter; otherwise the whole name is a Docker Hub path. One-word Docker Hub names get
// the `library/` prefix. A full name is at most 255 characters.

/// A content digest: `sha256:<64 lowercase hex>` or `sha512:<128 lowercase hex>`.
public struct Digest: Sendable, Hashable, CodableAsText, Comparable {
    /// `sha256` or `sha512`.
    public let algorithm: String
    /// The lowercase hex encoding.
    public let hex: String

    /// The hex length of each supported algorithm.
    public static let supportedAlgorithms: [String: Int] = ["sha256": 64, "sha512": 128]

    /// Parses `algorithm:hex`.
    public init(parsing text: String) throws(ImageReference.ParseError) {
        guard let colon = text.firstIndex(of: ":") else {
            throw .init(text, "a digest has the form algorithm:hex (sha256:…)")
        }
        let algorithm = String(text[..<colon]), hex = String(text[text.index(after: colon)...])
        guard !algorithm.isEmpty, Self.isDigestAlgorithm(algorithm) else {
            throw .init(text, "\"\(algorithm)\" is not a digest algorithm name")
        }
        guard let length = Self.supportedAlgorithms[algorithm] else {
            throw .init(text, "digest algorithm \"\(algorithm)\" is not supported (sha256 or sha512)")
        }
        guard hex.utf8.count == length, hex.utf8.allSatisfy({ ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) })
        else {
            throw .init(text, "a \(algorithm) digest is \(length) lowercase hexadecimal digits")
        }
        self.algorithm = algorithm
        self.hex = hex
    }

    /// A digest from already-computed parts (the hex must be lowercase and of the right length).
    public init?(algorithm: String, hex: String) {
        guard let digest = try? Digest(parsing: "\(algorithm):\(hex)") else { return nil }
        self = digest
    }

    public var description: String { "\(algorithm):\(hex)" }

    /// The first 12 hex digits, for messages.
    public var short: String { String(hex.prefix(12)) }

    public static func < (lhs: Digest, rhs: Digest) -> Bool { lhs.description < rhs.description }

    // digest-algorithm := component ( [+._-] component )*, component := [A-Za-z][A-Za-z0-9]*
    private static func isDigestAlgorithm(_ text: String) -> Bool {
        var expectComponentStart = true
        for byte in text.utf8 {
            if expectComponentStart {
                guard isASCIILetter(byte) else { return false }
                expectComponentStart = false
            } else if isASCIILetter(byte) || isASCIIDigit(byte) {
                continue
            } else if byte == UInt8(ascii: "+") || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_")
                || byte == UInt8(ascii: "-")
            {
                expectComponentStart = true
            } else {
                return false
            }
        }
        return !expectComponentStart
    }
}

/// A parsed image reference, normalized: `docker.io/library/ubuntu:latest` for `ubuntu`.
public struct ImageReference: Sendable, Hashable, CodableAsText {
    /// The registry as written in references: `docker.io`, `quay.io`, `127.0.0.1:5000`, `[::1]:5000`.
    public let registry: String
    /// The repository path inside the registry: `library/ubuntu`, `team/base`.
    public let repository: String
    /// The tag, if one was given.
    public let tag: String?
    /// The digest, if one was given (it wins over the tag when both are).
    public let digest: Digest?

    /// Docker Hub's name in references.
    public static let dockerHub = "docker.io"
    /// The host that serves Docker Hub's registry API.
    public static let dockerHubAPIHost = "registry-1.docker.io"
    /// The tag used when a reference has neither tag nor digest.
    public static let defaultTag = "latest"
    /// The longest full name (`registry/repository`) the grammar allows.
    public static let maxNameLength = 255

    /// Why a string is not an image reference.
    public struct ParseError: Error, Sendable, Hashable, CustomStringConvertible {
        /// The text that was parsed.
        public var input: String
        /// What is wrong with it.
        public var reason: String

        public init(_ input: String, _ reason: String) {
            self.input = input
            self.reason = reason
        }

        public var description: String {
            let shown = input.count > 80 ? String(input.prefix(77)) + "…" : input
            return "invalid image reference \"\(shown.debugEscaped)\": \(reason)"
        }
    }

    /// Builds a reference from parts that are already valid (checked again; throws if not).
    public init(registry: String = ImageReference.dockerHub, repository: String, tag: String? = nil,
                digest: Digest? = nil) throws(ParseError) {
        var text = registry + "/" + repository
        if let tag { text += ":" + tag }
        if let digest { text += "@" + digest.description }
        self = try ImageReference(parsing: text)
    }

    /// Parses a reference as `docker pull` would, normalizing Docker Hub names.
    public init(parsing text: String) throws(ParseError) {
        guard !text.isEmpty else { throw ParseError(text, "it is empty") }
        guard text.utf8.count <= 4096 else { throw ParseError(text, "it is longer than 4096 characters") }
        if let bad = text.unicodeScalars.first(where: { !$0.isASCII || $0.value < 0x21 || $0.value == 0x7f }) {
            let what = bad.value == 0x20 ? "a space" : "the character U+\(String(bad.value, radix: 16, uppercase: true))"
            throw ParseError(text, "it contains \(what)")
        }

        // Split off the digest, then the tag (a `:` after the last `/`).
        var rest = Substring(text)
        var digest: Digest?
        if let at = rest.firstIndex(of: "@") {
            let digestText = String(rest[rest.index(after: at)...])
            guard !digestText.contains("@") else { throw ParseError(text, "it has more than one \"@\"") }
            do { digest = try Digest(parsing: digestText) } catch { throw ParseError(text, error.reason) }
            rest = rest[..<at]
        }
        var tag: String?
        if let colon = rest.lastIndex(of: ":"), !rest[colon...].contains("/"), !rest[colon...].contains("]") {
            let tagText = String(rest[rest.index(after: colon)...])
            guard Self.isTag(tagText) else {
                throw ParseError(text, tagText.isEmpty
                    ? "the tag after \":\" is empty"
                    : "tag \"\(clip(tagText))\" is not valid (letters, digits, \"_\", \".\" and \"-\", not starting with \".\" or \"-\", at most 128)")
            }
            tag = tagText
            rest = rest[..<colon]
        }
        guard !rest.isEmpty else { throw ParseError(text, "the repository name is empty") }

        // Split the domain from the path.
        var registry = Self.dockerHub
        var path = rest
        if let slash = rest.firstIndex(of: "/") {
            let first = rest[..<slash]
            if first.contains(".") || first.contains(":") || first == "localhost" || first.contains(where: \.isUppercase)
                || first.hasPrefix("[")
            {
                registry = String(first)
                path = rest[rest.index(after: slash)...]
                try Self.checkDomain(registry, in: text)
            }
        }
        if registry == "index.docker.io" { registry = Self.dockerHub }
        try Self.checkPath(path, in: text)
        var repository = String(path)
        if registry == Self.dockerHub, !repository.contains("/") { repository = "library/" + repository }
        guard registry.utf8.count + 1 + repository.utf8.count <= Self.maxNameLength else {
            throw ParseError(text, "the name is longer than \(Self.maxNameLength) characters")
        }
        self.registry = registry
        self.repository = repository
        self.tag = tag
        self.digest = digest
    }

    /// Parses, returning nil for invalid text.
    public static func parse(_ text: String) -> ImageReference? { try? ImageReference(parsing: text) }

    /// `registry/repository`, the name without tag or digest.
    public var name: String { registry + "/" + repository }

    /// The full normalized form: `docker.io/library/ubuntu:22.04`, `host:5000/team/base@sha256:…`.
    /// A reference without tag and digest gets no tag here (see `withDefaultTag`).
    public var description: String {
        var text = name
        if let tag { text += ":" + tag }
        if let digest { text += "@" + digest.description }
        return text
    }

    /// The short form `docker` prints: `ubuntu:22.04`, `team/base:1`, `quay.io/org/app@sha256:…`.
    public var familiar: String {
        var text: String
        let first = repository.split(separator: "/").first ?? ""
        if registry == Self.dockerHub, !first.contains("."), first != "localhost" {
            // (A Docker Hub path whose first part reads as a domain, `docker.io/a.b/c`, keeps the registry.)
            text = repository.hasPrefix("library/") && repository.split(separator: "/").count == 2
                ? String(repository.dropFirst("library/".count)) : repository
        } else {
            text = name
        }
        if let tag { text += ":" + tag }
        if let digest { text += "@" + digest.description }
        return text
    }

    /// The tag or digest the registry is asked for: the digest when there is one, else the tag,
    /// else `latest`.
    public var manifestReference: String { digest?.description ?? tag ?? Self.defaultTag }

    /// The reference with `latest` filled in when it has neither tag nor digest.
    public var withDefaultTag: ImageReference {
        guard tag == nil, digest == nil else { return self }
        return ImageReference(registry: registry, repository: repository, tag: Self.defaultTag, digest: nil, checked: ())
    }

    /// `name@digest`: the reference pinned to a digest, tag dropped (for `FROM name@sha256:…`).
    public func pinned(to digest: Digest) -> ImageReference {
        ImageReference(registry: registry, repository: repository, tag: nil, digest: digest, checked: ())
    }

    /// The same repository with another tag (and no digest).
    public func withTag(_ tag: String) throws(ParseError) -> ImageReference {
        guard Self.isTag(tag) else { throw ParseError(name + ":" + tag, "tag \"\(tag)\" is not valid") }
        return ImageReference(registry: registry, repository: repository, tag: tag, digest: nil, checked: ())
    }

    /// The host that serves the registry API: `registry-1.docker.io` for Docker Hub, else `registry`.
    public var apiHost: String { registry == Self.dockerHub ? Self.dockerHubAPIHost : registry }

    /// True for Docker Hub (written `docker.io`, `index.docker.io` or nothing at all).
    public var isDockerHub: Bool { registry == Self.dockerHub }

    private init(registry: String, repository: String, tag: String?, digest: Digest?, checked: Void) {
        self.registry = registry
        self.repository = repository
        self.tag = tag
        self.digest = digest
    }

    // MARK: - Grammar pieces

    /// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`
    public static func isTag(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard let first = bytes.first, bytes.count <= 128, isWordByte(first) else { return false }
        return bytes.dropFirst().allSatisfy { isWordByte($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") }
    }

    /// A path component: `[a-z0-9]+` runs joined by `_`, `__`, `.` or one or more `-`.
    public static func isPathComponent(_ text: Substring) -> Bool {
        let bytes = Array(text.utf8)
        var index = 0
        func alphanumericRun() -> Bool {
            let start = index
            while index < bytes.count, isLowerAlphanumeric(bytes[index]) { index += 1 }
            return index > start
        }
        guard alphanumericRun() else { return false }
        while index < bytes.count {
            switch bytes[index] {
            case UInt8(ascii: "."):
                index += 1
            case UInt8(ascii: "_"):
                index += 1
                if index < bytes.count, bytes[index] == UInt8(ascii: "_") { index += 1 }
            case UInt8(ascii: "-"):
                while index < bytes.count, bytes[index] == UInt8(ascii: "-") { index += 1 }
            default:
                return false
            }
            guard alphanumericRun() else { return false }
        }
        return true
    }

    private static func checkDomain(_ domain: String, in text: String) throws(ParseError) {
        var host = Substring(domain)
        var port: Substring?
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]") else {
                throw ParseError(text, "registry \"\(clip(domain))\": the IPv6 address has no closing \"]\"")
            }
            let address = host[host.index(after: host.startIndex)..<close]
            guard !address.isEmpty, address.contains(":"),
                  address.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." })
            else {
                throw ParseError(text, "registry \"\(clip(domain))\": \"\(clip(address))\" is not an IPv6 address")
            }
            let after = host[host.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else {
                    throw ParseError(text, "registry \"\(clip(domain))\": unexpected text after the IPv6 address")
                }
                port = after.dropFirst()
            }
            host = host[...close]
        } else {
            if let colon = host.firstIndex(of: ":") {
                port = host[host.index(after: colon)...]
                host = host[..<colon]
            }
            guard !host.isEmpty else { throw ParseError(text, "registry \"\(clip(domain))\" has no host name") }
            for label in host.split(separator: ".", omittingEmptySubsequences: false) {
                guard let first = label.first, let last = label.last,
                      first.isASCII, first.isLetter || first.isNumber,
                      last.isASCII, last.isLetter || last.isNumber,
                      label.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") })
                else {
                    throw ParseError(text, "registry \"\(clip(domain))\" is not a valid host name")
                }
            }
        }
        if let port {
            guard !port.isEmpty, port.count <= 5, port.allSatisfy({ $0.isASCII && $0.isNumber }),
                  let number = Int(port), number > 0, number <= 65535
            else {
                throw ParseError(text, "registry \"\(clip(domain))\": port \"\(clip(port))\" is not a number from 1 to 65535")
            }
        }
    }

    private static func checkPath(_ path: Substring, in text: String) throws(ParseError) {
        guard !path.isEmpty else { throw ParseError(text, "the repository path is empty") }
        for component in path.split(separator: "/", omittingEmptySubsequences: false) {
            if component.isEmpty {
                throw ParseError(text, "the repository path \"\(path)\" has an empty component")
            }
            if component.contains(where: \.isUppercase) {
                throw ParseError(text, "repository name \"\(clip(path))\" must be lowercase")
            }
            guard isPathComponent(component) else {
                throw ParseError(text, "\"\(clip(component))\" is not a valid repository path component (lowercase letters and digits, separated by \".\", \"_\", \"__\" or dashes)")
            }
        }
    }
}

/// A value written in JSON as its text form, and read back by parsing it.
public protocol CodableAsText: Codable, CustomStringConvertible {
    init(parsing text: String) throws(ImageReference.ParseError)
}

extension CodableAsText {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        do {
            self = try Self(parsing: text)
        } catch {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: error.description)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// Long input cut for messages.
private func clip(_ text: some StringProtocol) -> String {
    text.count > 40 ? String(text.prefix(37)) + "…" : String(text)
}

private func isASCIILetter(_ byte: UInt8) -> Bool {
    (byte >= 65 && byte <= 90) || (byte >= 97 && byte <= 122)
}

private func isASCIIDigit(_ byte: UInt8) -> Bool { byte >= 48 && byte <= 57 }

private func isLowerAlphanumeric(_ byte: UInt8) -> Bool { (byte >= 97 && byte <= 122) || isASCIIDigit(byte) }

private func isWordByte(_ byte: UInt8) -> Bool { isASCIILetter(byte) || isASCIIDigit(byte) || byte == UInt8(ascii: "_") }

extension String {
    /// The text with control and non-ASCII characters escaped, for messages that quote input.
    public var debugEscaped: String {
        var out = ""
        for scalar in unicodeScalars {
            if scalar.isASCII, scalar.value >= 0x20, scalar.value != 0x7f, scalar != "\"", scalar != "\\" {
                out.unicodeScalars.append(scalar)
            } else {
                out += "\\u{\(String(scalar.value, radix: 16))}"
            }
        }
        return out
    }
}
