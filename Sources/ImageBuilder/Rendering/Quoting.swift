/// Quoting and escaping for the places spec text ends up in.
public enum Quoting {
    /// A JSON string literal with a canonical escaping: `"`, `\` and C0 controls escaped, the rest as is.
    public static func json(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            if let escaped = commonEscape(scalar) {
                out += escaped
                continue
            }
            switch scalar {
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                if scalar.value < 0x20 {
                    out += "\\u" + hex(scalar.value, width: 4)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    /// A value shown to a person: quoted, invisible and control characters escaped, at most `limit`
    /// characters of it.
    public static func displayed(_ text: String, limit: Int = 120) -> String {
        var out = "\""
        var count = 0
        for scalar in text.unicodeScalars {
            if count == limit {
                out += "…"
                break
            }
            count += 1
            if let escaped = commonEscape(scalar) {
                out += escaped
            } else if CharacterPolicy.isInvisible(scalar) {
                out += scalar.value <= 0xFF ? "\\x" + hex(scalar.value, width: 2) : "\\u{" + hex(scalar.value, width: 4) + "}"
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    /// A word for a Dockerfile instruction (ENV, LABEL) that the Dockerfile lexer reads back as exactly
    /// `text`: single-quoted runs, each `'` written as `"'"`. No escape character is involved, so
    /// every version of the lexer agrees. Nil for text with a backslash, a line break or another
    /// control character, which cannot be written this way (see `CharacterPolicy.isDockerfileInline`).
    public static func dockerfileWord(_ text: String) -> String? {
        guard CharacterPolicy.isDockerfileInline(text) else { return nil }
        return "'" + text.replacingOccurrences(of: "'", with: "'\"'\"'") + "'"
    }

    /// The escape both `json` and `displayed` use for quotes, backslashes and common controls.
    static func commonEscape(_ scalar: Unicode.Scalar) -> String? {
        switch scalar {
        case "\"": return "\\\""
        case "\\": return "\\\\"
        case "\n": return "\\n"
        case "\r": return "\\r"
        case "\t": return "\\t"
        default: return nil
        }
    }

    static func hex(_ value: UInt32, width: Int) -> String {
        let digits = String(value, radix: 16, uppercase: true)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }
}

/// Which characters may appear where.
public enum CharacterPolicy {
    /// Control, format (bidirectional overrides, zero-width), line and paragraph separators,
    /// private-use and unassigned code points.
    public static func isInvisible(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.properties.generalCategory {
        case .control, .format, .lineSeparator, .paragraphSeparator, .privateUse, .unassigned, .surrogate:
            return true
        default:
            return false
        }
    }

    /// The first character not allowed in single-line text, if any.
    public static func firstInvisible(in text: String) -> Unicode.Scalar? {
        text.unicodeScalars.first(where: isInvisible)
    }

    /// Text that can be written inline in a Dockerfile word: printable, no backslash, and no
    /// character the Dockerfile parser treats as a line break.
    public static func isDockerfileInline(_ text: String) -> Bool {
        text.unicodeScalars.allSatisfy { scalar in
            scalar == "\t" || (scalar != "\\" && !isInvisible(scalar))
        }
    }
}
