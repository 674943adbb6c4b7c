import Foundation

/// Grammars for package strings. Each check returns nil for a valid string, or the reason it is not.
/// They accept printable ASCII only, so what reaches a build context file is exactly what was asked for.
public enum PackageGrammar {
    public static let maxAptLength = 256
    public static let maxPipLength = 2048
    public static let maxCondaLength = 512

    // MARK: Debian

    /// `name[:arch][=version|/release]`, name per Debian policy (`[a-z0-9][a-z0-9+.-]+`).
    public static func debianProblem(_ text: String) -> String? {
        if let problem = commonProblem(text, limit: maxAptLength) { return problem }
        var scanner = ByteScanner(text)
        let name = scanner.take(while: { isLowerAlnum($0) || $0 == plus || $0 == dot || $0 == minus })
        guard let first = name.first, isLowerAlnum(first) else {
            return scanner.peek.map(isUpper) == true
                ? "Debian package names are lower case"
                : "a Debian package name starts with a lower-case letter or digit"
        }
        guard name.count >= 2 else { return "a Debian package name has at least two characters" }
        guard name.last != minus else { return "a trailing '-' would make apt remove the package" }
        if scanner.take(colon) {
            let arch = scanner.take(while: { isLowerAlnum($0) || $0 == minus })
            guard let first = arch.first, isLowerAlnum(first) else { return "expected an architecture after ':' (name:amd64)" }
        }
        if scanner.take(equals) {
            let version = scanner.take(while: { isAlnum($0) || ".+~:-".utf8.contains($0) })
            guard let first = version.first, isDigit(first) else {
                return "a Debian version after '=' starts with a digit"
            }
        } else if scanner.take(slash) {
            let release = scanner.take(while: { isAlnum($0) || ".+~_-".utf8.contains($0) })
            guard let first = release.first, isAlnum(first) else { return "expected a release name after '/'" }
        }
        guard scanner.atEnd else {
            if scanner.peek.map(isUpper) == true, !text.contains("=") { return "Debian package names are lower case" }
            return "unexpected \(scanner.describeCurrent()) in a Debian package (name[:arch][=version|/release])"
        }
        return nil
    }

    // MARK: pip (PEP 508)

    /// A PEP 508 requirement: name, extras, version specifiers or `@ https://…`, markers.
    public static func pipProblem(_ text: String) -> String? {
        if let problem = commonProblem(text, limit: maxPipLength) { return problem }
        if text.contains(" -") {
            return "pip reads ' -' in a requirements file as the start of an option"
        }
        var parser = PEP508Parser(text)
        return parser.parse()
    }

    // MARK: conda

    /// A conda MatchSpec: `[channel::]name[ version[ build]]`, `name=version[=build]`,
    /// `name>=1.0,<2`, `name==1.17*`.
    public static func condaSpecProblem(_ text: String) -> String? {
        if let problem = commonProblem(text, limit: maxCondaLength) { return problem }
        var scanner = ByteScanner(text)
        if let separator = text.range(of: "::") {
            let channel = String(text[..<separator.lowerBound])
            if let problem = condaChannelNameProblem(channel) { return "channel \"\(channel)\": \(problem)" }
            scanner.index = text.utf8.distance(from: text.utf8.startIndex, to: separator.upperBound)
        }
        let name = scanner.take(while: { isAlnum($0) || $0 == underscore || $0 == dot || $0 == minus })
        guard let first = name.first, isAlnum(first) || first == underscore else {
            return "a conda spec starts with a package name (letters, digits, '_', '.', '-')"
        }
        if scanner.atEnd { return nil }
        if scanner.take(space) {
            // `name version [build]`
            guard condaVersionExpression(&scanner) else { return "expected a version after the space (\"numpy 1.11*\")" }
            if scanner.take(space) {
                guard !scanner.take(while: isCondaBuildByte).isEmpty else { return "expected a build string after the version" }
            }
        } else if scanner.peek == equals, scanner.peek(at: 1) != equals {
            // `name=version[=build]`
            scanner.index += 1
            guard !scanner.take(while: isCondaVersionByte).isEmpty else { return "expected a version after '='" }
            if scanner.take(equals) {
                guard !scanner.take(while: isCondaBuildByte).isEmpty else { return "expected a build string after the second '='" }
            }
        } else {
            guard condaVersionExpression(&scanner) else {
                return "unexpected \(scanner.describeCurrent()) after the package name; write name, name=1.2*, name>=1.0,<2 or channel::name"
            }
        }
        guard scanner.atEnd else {
            return "unexpected \(scanner.describeCurrent()) in a conda spec"
        }
        return nil
    }

    /// `constraint ((','|'|') constraint)*`, constraint = `[op]version`.
    static func condaVersionExpression(_ scanner: inout ByteScanner) -> Bool {
        repeat {
            for op in ["==", "!=", ">=", "<=", "~=", ">", "<", "="] where scanner.take(op) { break }
            guard !scanner.take(while: isCondaVersionByte).isEmpty else { return false }
        } while scanner.take(comma) || scanner.take(pipe)
        return true
    }

    /// A channel name (`conda-forge`, `pytorch/label/nightly`) or an `https://` channel URL.
    public static func condaChannelProblem(_ text: String) -> String? {
        if let problem = commonProblem(text, limit: maxCondaLength) { return problem }
        if text.hasPrefix("https://") || text.hasPrefix("http://") {
            return urlProblem(text, requireHTTPS: false)
        }
        return condaChannelNameProblem(text)
    }

    static func condaChannelNameProblem(_ text: String) -> String? {
        let segments = text.split(separator: "/", omittingEmptySubsequences: false)
        for segment in segments {
            let bytes = Array(segment.utf8)
            guard let first = bytes.first, isAlnum(first) || first == underscore,
                  bytes.allSatisfy({ isAlnum($0) || $0 == underscore || $0 == dot || $0 == minus })
            else {
                return "a channel name is letters, digits, '_', '.', '-', with '/' between parts"
            }
        }
        return nil
    }

    // MARK: shared

    /// Empty, too long, surrounding spaces, non-ASCII or control characters.
    static func commonProblem(_ text: String, limit: Int) -> String? {
        if text.isEmpty { return "must not be empty" }
        if text.utf8.count > limit { return "longer than \(limit) characters" }
        if let bad = text.unicodeScalars.first(where: { !$0.isASCII || $0.value < 0x20 || $0.value == 0x7F }) {
            return bad.isASCII
                ? "contains a control character (\(Quoting.displayed(String(bad))))"
                : "contains the non-ASCII character \(Quoting.displayed(String(bad))) (U+\(Quoting.hex(bad.value, width: 4))); package strings are ASCII"
        }
        if text.first == " " || text.last == " " { return "has leading or trailing spaces" }
        if text.first == "-" { return "starts with '-', which the installer would read as an option" }
        return nil
    }

    /// An absolute http(s) URL made of RFC 3986 characters (no spaces, quotes, braces or backslashes).
    static func urlProblem(_ text: String, requireHTTPS: Bool) -> String? {
        let schemes = requireHTTPS ? ["https://"] : ["https://", "http://"]
        guard let scheme = schemes.first(where: { text.hasPrefix($0) }) else {
            return requireHTTPS ? "a direct reference must be an https:// URL" : "a URL must start with https:// or http://"
        }
        let rest = text.dropFirst(scheme.count)
        guard let host = rest.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false).first, !host.isEmpty else {
            return "the URL has no host"
        }
        let allowed = Set("-._~:/?#[]@!$&'()*+,;=%".utf8)
        if let bad = rest.utf8.first(where: { !(isAlnum($0) || allowed.contains($0)) }) {
            return "the URL contains \(Quoting.displayed(String(UnicodeScalar(bad))))"
        }
        return nil
    }

    static let dot = UInt8(ascii: "."), minus = UInt8(ascii: "-"), plus = UInt8(ascii: "+")
    static let colon = UInt8(ascii: ":"), equals = UInt8(ascii: "="), slash = UInt8(ascii: "/")
    static let underscore = UInt8(ascii: "_"), space = UInt8(ascii: " "), comma = UInt8(ascii: ",")
    static let pipe = UInt8(ascii: "|")

    static func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }
    static func isLower(_ b: UInt8) -> Bool { b >= 0x61 && b <= 0x7A }
    static func isUpper(_ b: UInt8) -> Bool { b >= 0x41 && b <= 0x5A }
    static func isLowerAlnum(_ b: UInt8) -> Bool { isLower(b) || isDigit(b) }
    static func isAlnum(_ b: UInt8) -> Bool { isLower(b) || isUpper(b) || isDigit(b) }
    static func isCondaVersionByte(_ b: UInt8) -> Bool { isAlnum(b) || "_.*+!".utf8.contains(b) }
    static func isCondaBuildByte(_ b: UInt8) -> Bool { isAlnum(b) || "_.*+".utf8.contains(b) }
}

/// A cursor over the bytes of an ASCII string.
struct ByteScanner {
    let bytes: [UInt8]
    var index = 0

    init(_ text: String) { bytes = Array(text.utf8) }

    var atEnd: Bool { index >= bytes.count }
    var peek: UInt8? { index < bytes.count ? bytes[index] : nil }
    func peek(at offset: Int) -> UInt8? { index + offset < bytes.count ? bytes[index + offset] : nil }

    mutating func take(_ byte: UInt8) -> Bool {
        guard peek == byte else { return false }
        index += 1
        return true
    }

    mutating func take(_ literal: String) -> Bool {
        let literal = Array(literal.utf8)
        guard index + literal.count <= bytes.count, Array(bytes[index..<index + literal.count]) == literal else { return false }
        index += literal.count
        return true
    }

    mutating func take(while predicate: (UInt8) -> Bool) -> ArraySlice<UInt8> {
        let start = index
        while index < bytes.count, predicate(bytes[index]) { index += 1 }
        return bytes[start..<index]
    }

    mutating func skipSpaces() { _ = take(while: { $0 == PackageGrammar.space }) }

    /// `"x" at position N` or `end of text`, for messages.
    func describeCurrent() -> String {
        guard let byte = peek else { return "end of text" }
        return "\(Quoting.displayed(String(UnicodeScalar(byte)))) at position \(index + 1)"
    }
}

/// PEP 508, restricted to what is safe in a requirements file: quoted marker strings may not
/// contain `#`, `$`, braces, backslashes or backticks.
struct PEP508Parser {
    var scanner: ByteScanner

    init(_ text: String) { scanner = ByteScanner(text) }

    static let markerVariables: Set<String> = [
        "python_version", "python_full_version", "os_name", "sys_platform", "platform_release",
        "platform_system", "platform_version", "platform_machine", "platform_python_implementation",
        "implementation_name", "implementation_version", "extra",
    ]
    static let comparisons = ["===", "<=", "!=", "==", ">=", "~=", "<", ">"]

    mutating func parse() -> String? {
        guard identifier() else { return "a requirement starts with a project name (letters, digits, '.', '_', '-')" }
        scanner.skipSpaces()
        if scanner.take(UInt8(ascii: "[")) {
            if let problem = extras() { return problem }
            scanner.skipSpaces()
        }
        if scanner.peek == UInt8(ascii: "@") {
            scanner.index += 1
            scanner.skipSpaces()
            let start = scanner.index
            _ = scanner.take(while: { $0 != PackageGrammar.space })
            let url = String(decoding: scanner.bytes[start..<scanner.index], as: UTF8.self)
            if let problem = PackageGrammar.urlProblem(url, requireHTTPS: true) { return problem }
            guard !scanner.atEnd else { return nil }
            scanner.skipSpaces()
            guard scanner.peek == UInt8(ascii: ";") else { return "expected ';' and a marker after the URL" }
        } else if let problem = versionSpec() {
            return problem
        }
        scanner.skipSpaces()
        if scanner.take(UInt8(ascii: ";")) {
            scanner.skipSpaces()
            if let problem = markerOr() { return problem }
            scanner.skipSpaces()
        }
        guard scanner.atEnd else { return "unexpected \(scanner.describeCurrent()) in the requirement" }
        return nil
    }

    /// `[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?`
    mutating func identifier() -> Bool {
        let name = scanner.take(while: { PackageGrammar.isAlnum($0) || "._-".utf8.contains($0) })
        guard let first = name.first, let last = name.last else { return false }
        return PackageGrammar.isAlnum(first) && PackageGrammar.isAlnum(last)
    }

    mutating func extras() -> String? {
        scanner.skipSpaces()
        if scanner.take(UInt8(ascii: "]")) { return nil }
        repeat {
            scanner.skipSpaces()
            guard identifier() else { return "expected an extra name inside [ ]" }
            scanner.skipSpaces()
        } while scanner.take(PackageGrammar.comma)
        guard scanner.take(UInt8(ascii: "]")) else { return "expected ',' or ']' in the extras" }
        return nil
    }

    mutating func versionSpec() -> String? {
        let parenthesised = scanner.take(UInt8(ascii: "("))
        var first = true
        repeat {
            scanner.skipSpaces()
            guard let op = Self.comparisons.first(where: { scanner.take($0) }) else {
                if first && !parenthesised { return nil }
                return "expected a version comparison (==, >=, <=, !=, ~=, <, >, ===)"
            }
            first = false
            scanner.skipSpaces()
            let version = scanner.take(while: { PackageGrammar.isAlnum($0) || "._*+!-".utf8.contains($0) })
            guard let head = version.first, PackageGrammar.isAlnum(head) || head == UInt8(ascii: "*") else {
                return "expected a version after '\(op)'"
            }
            if let problem = PEP440.specifierProblem(op, String(decoding: version, as: UTF8.self)) { return problem }
            scanner.skipSpaces()
        } while scanner.take(PackageGrammar.comma)
        if parenthesised, !scanner.take(UInt8(ascii: ")")) { return "expected ')' after the version specifiers" }
        return nil
    }

    mutating func markerOr() -> String? {
        if let problem = markerAnd() { return problem }
        while keyword("or") {
            if let problem = markerAnd() { return problem }
        }
        return nil
    }

    mutating func markerAnd() -> String? {
        if let problem = markerExpression() { return problem }
        while keyword("and") {
            if let problem = markerExpression() { return problem }
        }
        return nil
    }

    /// A space-surrounded keyword (`and`, `or`) between marker expressions.
    mutating func keyword(_ word: String) -> Bool {
        let saved = scanner.index
        scanner.skipSpaces()
        if scanner.take(word), scanner.peek == PackageGrammar.space || scanner.peek == UInt8(ascii: "(")
            || scanner.peek == UInt8(ascii: "'") || scanner.peek == UInt8(ascii: "\"") {
            scanner.skipSpaces()
            return true
        }
        scanner.index = saved
        return false
    }

    mutating func markerExpression() -> String? {
        scanner.skipSpaces()
        if scanner.take(UInt8(ascii: "(")) {
            if let problem = markerOr() { return problem }
            scanner.skipSpaces()
            return scanner.take(UInt8(ascii: ")")) ? nil : "expected ')' in the marker"
        }
        if let problem = markerVariable() { return problem }
        scanner.skipSpaces()
        if Self.comparisons.first(where: { scanner.take($0) }) == nil {
            if scanner.take("in") {
            } else if scanner.take("not") {
                scanner.skipSpaces()
                guard scanner.take("in") else { return "expected 'in' after 'not' in the marker" }
            } else {
                return "expected a comparison in the marker (==, !=, <, >, in, not in …)"
            }
        }
        scanner.skipSpaces()
        return markerVariable()
    }

    mutating func markerVariable() -> String? {
        if let quote = scanner.peek, quote == UInt8(ascii: "'") || quote == UInt8(ascii: "\"") {
            scanner.index += 1
            let allowed = Set(" ()._-*:,/?!~@%^&=+|<>[]".utf8)
            _ = scanner.take(while: { PackageGrammar.isAlnum($0) || allowed.contains($0) })
            guard scanner.take(quote) else {
                return "a quoted marker value may contain letters, digits, spaces and ()._-*:,/?!~@%^&=+|<>[] only"
            }
            return nil
        }
        let name = scanner.take(while: { PackageGrammar.isLower($0) || $0 == PackageGrammar.underscore })
        guard Self.markerVariables.contains(String(decoding: name, as: UTF8.self)) else {
            return "unknown marker variable \(Quoting.displayed(String(decoding: name, as: UTF8.self)))"
        }
        return nil
    }
}

/// PEP 440 version specifiers, as current pip (packaging) reads them: the version grammar, `.*`
/// wildcards only with `==` and `!=`, `~=` with at least two release segments, local versions
/// (`+local`) only with `==`, `!=` and `===`.
enum PEP440 {
    static let release = "v?(?:[0-9]+!)?[0-9]+(?:\\.[0-9]+)*"
    static let suffixes = "(?:[-_.]?(?:a|b|c|rc|alpha|beta|pre|preview)[-_.]?[0-9]*)?(?:-[0-9]+|[-_.]?(?:post|rev|r)[-_.]?[0-9]*)?(?:[-_.]?dev[-_.]?[0-9]*)?"
    static let local = "(?:\\+[a-z0-9]+(?:[-_.][a-z0-9]+)*)?"
    static let version = try! NSRegularExpression(pattern: "^" + release + suffixes + local + "$", options: [.caseInsensitive])
    static let publicVersion = try! NSRegularExpression(pattern: "^" + release + suffixes + "$", options: [.caseInsensitive])
    static let wildcard = try! NSRegularExpression(pattern: "^" + release + "\\.\\*$", options: [.caseInsensitive])

    static func matches(_ regex: NSRegularExpression, _ text: String) -> Bool {
        regex.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) != nil
    }

    /// Why `op version` is not a PEP 440 specifier, or nil. `===` compares strings: anything goes.
    static func specifierProblem(_ op: String, _ text: String) -> String? {
        if op == "===" { return nil }
        let shown = Quoting.displayed(text)
        if text.contains("*") {
            guard op == "==" || op == "!=" else {
                return "a wildcard version (\(shown)) is allowed only with == and != (PEP 440)"
            }
            guard matches(wildcard, text) else {
                return "a wildcard is '.*' after the release numbers, as in \(op)1.2.* (PEP 440), not \(shown)"
            }
            return nil
        }
        guard matches(version, text) else {
            return "\(shown) is not a PEP 440 version (such as 1.2, 1.2.3, 2.0rc1, 1.0.post1, 1.0.dev2, 1.0+local)"
        }
        if text.contains("+"), op != "==", op != "!=" {
            return "a local version (\(shown)) is allowed only with ==, != and === (PEP 440)"
        }
        if op == "~=" {
            let releasePart = text.drop { $0 == "v" || $0 == "V" }.split(separator: "!").last ?? ""
            let segments = releasePart.prefix { $0.isNumber || $0 == "." }.split(separator: ".")
            guard segments.count >= 2 else {
                return "'~=' needs a version with at least two release numbers, such as ~=1.0 (PEP 440), not \(shown)"
            }
        }
        return nil
    }
}
