import Foundation

/// Any JSON value. Used for objects whose shape the client does not model (or models only in
/// part), so that reading and writing them back never loses a field.
public enum JSONValue: Sendable, Hashable, Codable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        // Every failed attempt costs a thrown DecodingError (with its coding path), so the
        // likeliest kinds come first: Kubernetes objects are mostly objects (managedFields'
        // `fieldsV1` is nothing else), then strings. A YAML scalar decodes as a String whatever
        // it holds, so strings come first only where scalars are typed (JSON, see
        // `CodingUserInfoKey.typedScalars`); otherwise after Bool, Int64 and Double, as always.
        let single = try decoder.singleValueContainer()
        if single.decodeNil() {
            self = .null
            return
        }
        if let object = try? decoder.container(keyedBy: MemberKey.self) {
            let keys = object.allKeys
            var members = [String: JSONValue](minimumCapacity: keys.count)
            for key in keys {
                members[key.stringValue] = try object.decode(JSONValue.self, forKey: key)
            }
            self = .object(members)
            return
        }
        let typedScalars = decoder.userInfo[.typedScalars] as? Bool == true
        if typedScalars, let value = try? single.decode(String.self) {
            self = .string(value)
        } else if var array = try? decoder.unkeyedContainer() {
            var elements: [JSONValue] = []
            if let count = array.count { elements.reserveCapacity(count) }
            while !array.isAtEnd {
                elements.append(try array.decode(JSONValue.self))
            }
            self = .array(elements)
        } else if let value = try? single.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? single.decode(Int64.self) {
            self = .int(value)
        } else if typedScalars {
            self = .double(try single.decode(Double.self))
        } else if let value = try? single.decode(Double.self) {
            self = .double(value)
        } else {
            self = .string(try single.decode(String.self))
        }
    }

    /// Any member name of a JSON object.
    private struct MemberKey: CodingKey {
        let stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { return nil }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .int(let value): try container.encode(value)
        case .double(let value):
            // An integral Double that fits Int64 is written as that integer. Foundation writes
            // those from 1e16 on in exponent form (`6.666666666666667e+18`), which its decoder
            // then reads back as an Int64: the value would change kind on every write-back.
            // Below 1e16 Foundation already writes them without a fraction (`2.0` as `2`).
            if value.rounded() == value, let integer = Int64(exactly: value) {
                try container.encode(integer)
            } else {
                try container.encode(value)
            }
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }

    /// The member of an object, nil for anything else or a missing key.
    public subscript(key: String) -> JSONValue? {
        get {
            if case .object(let members) = self { return members[key] }
            return nil
        }
        set {
            guard case .object(var members) = self else { return }
            members[key] = newValue
            self = .object(members)
        }
    }

    public var stringValue: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    public var intValue: Int64? {
        switch self {
        case .int(let value): return value
        case .double(let value) where value.rounded() == value: return Int64(exactly: value)
        default: return nil
        }
    }

    public var boolValue: Bool? {
        if case .bool(let value) = self { return value }
        return nil
    }

    public var arrayValue: [JSONValue]? {
        if case .array(let value) = self { return value }
        return nil
    }

    public var objectValue: [String: JSONValue]? {
        if case .object(let value) = self { return value }
        return nil
    }

    /// The value at a path of object keys.
    public func value(at path: String...) -> JSONValue? {
        var current: JSONValue? = self
        for key in path { current = current?[key] }
        return current
    }
}

extension JSONValue {
    /// Encodes a value to a `JSONValue` tree.
    public init<T: Encodable>(encoding value: T) throws {
        let data = try KubeJSON.encoder.encode(value)
        self = try KubeJSON.decoder.decode(JSONValue.self, from: data)
    }

    /// Decodes this tree as a typed value.
    public func decode<T: Decodable>(as type: T.Type) throws -> T {
        try KubeJSON.decoder.decode(T.self, from: try KubeJSON.encoder.encode(self))
    }

    /// Applies the change between two encodings of a typed model (`before` → `after`) to the full
    /// object it was read from (`self`). Fields the model does not know stay as they were, also
    /// inside objects within arrays whose length did not change; fields the model removed are removed.
    public func applyingChange(from before: JSONValue, to after: JSONValue) -> JSONValue {
        if before == after { return self }
        switch (self, before, after) {
        case (.object(var full), .object(let old), .object(let new)):
            for (key, newValue) in new {
                if let oldValue = old[key], let fullValue = full[key] {
                    full[key] = fullValue.applyingChange(from: oldValue, to: newValue)
                } else {
                    full[key] = newValue
                }
            }
            for key in old.keys where new[key] == nil {
                full[key] = nil
            }
            return .object(full)
        case (.array(let full), .array(let old), .array(let new))
            where full.count == old.count && old.count == new.count:
            return .array(zip(full, zip(old, new)).map { $0.applyingChange(from: $1.0, to: $1.1) })
        default:
            return after
        }
    }

    /// A JSON merge patch (RFC 7386) that turns `before` into `after`. Arrays are replaced whole.
    public static func mergePatch(from before: JSONValue, to after: JSONValue) -> JSONValue? {
        if before == after { return nil }
        guard case .object(let old) = before, case .object(let new) = after else { return after }
        var patch: [String: JSONValue] = [:]
        for (key, newValue) in new {
            if let oldValue = old[key] {
                if let change = mergePatch(from: oldValue, to: newValue) { patch[key] = change }
            } else {
                patch[key] = newValue
            }
        }
        for key in old.keys where new[key] == nil {
            patch[key] = .null
        }
        return .object(patch)
    }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(nilLiteral: ()) { self = .null }

    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }
}

extension CodingUserInfoKey {
    /// Set (to `true`) by decoders whose scalars carry their type, as JSON's do: `JSONValue`
    /// then tries String before the numbers, which saves failed attempts.
    public static let typedScalars = CodingUserInfoKey(rawValue: "io.image-builder.typedScalars")!
}

/// The JSON coders used for the Kubernetes API: RFC 3339 timestamps, sorted keys (reproducible
/// output), no escaped slashes.
public enum KubeJSON {
    public static var encoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(formatTimestamp(date))
        }
        return encoder
    }

    public static var decoder: JSONDecoder { decoder(profile: .everything) }

    /// A decoder that keeps what `profile` says of the objects it reads.
    public static func decoder(profile: DecodingProfile) -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.userInfo[.typedScalars] = true
        if profile != .everything { decoder.userInfo[.decodingProfile] = profile }
        decoder.dateDecodingStrategy = .custom { decoder in
            let container = try decoder.singleValueContainer()
            let text = try container.decode(String.self)
            guard let date = parseTimestamp(text) else {
                throw DecodingError.dataCorruptedError(
                    in: container, debugDescription: "not an RFC 3339 timestamp: \(text)")
            }
            return date
        }
        return decoder
    }

    /// `2024-01-02T03:04:05Z` (Kubernetes `Time`, whole seconds, UTC).
    public static func formatTimestamp(_ date: Date) -> String {
        let (fields, _) = utcFields(date)
        return fields
    }

    /// `2024-01-02T03:04:05.123456Z` (Kubernetes `MicroTime`).
    public static func formatMicroTimestamp(_ date: Date) -> String {
        let (fields, micros) = utcFields(date)
        return fields.dropLast() + "." + String(format: "%06d", micros) + "Z"
    }

    private static func utcFields(_ date: Date) -> (String, Int) {
        let interval = date.timeIntervalSince1970
        let whole = interval.rounded(.down)
        var seconds = time_t(whole)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        let text = String(
            format: "%04d-%02d-%02dT%02d:%02d:%02dZ", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1,
            Int(parts.tm_mday), Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec))
        return (text, min(999_999, Int(((interval - whole) * 1_000_000).rounded())))
    }

    /// The instants a timestamp may name: years 0000 to 9999 in UTC, the ones `formatTimestamp`
    /// writes back in the same form (as Kubernetes' own marshalling allows).
    static let timestampRange: ClosedRange<Double> = -62_167_219_200 ... 253_402_300_799

    /// Parses RFC 3339 (`2024-01-02T03:04:05Z`, with optional fraction and a `Z` or `±hh:mm` offset).
    /// A time whose UTC year is outside 0000–9999 (`9999-12-31T23:59:59-01:00`) is rejected, since it
    /// could not be written back.
    public static func parseTimestamp(_ text: String) -> Date? {
        let bytes = Array(text.utf8)
        func number(_ from: Int, _ count: Int) -> Int? {
            guard from + count <= bytes.count else { return nil }
            var value = 0
            for byte in bytes[from..<from + count] {
                guard byte >= 48 && byte <= 57 else { return nil }
                value = value * 10 + Int(byte - 48)
            }
            return value
        }
        guard bytes.count >= 20, bytes[4] == 45, bytes[7] == 45, bytes[10] == 84 || bytes[10] == 116,
              bytes[13] == 58, bytes[16] == 58,
              let year = number(0, 4), let month = number(5, 2), let day = number(8, 2),
              let hour = number(11, 2), let minute = number(14, 2), let second = number(17, 2),
              (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61
        else { return nil }
        var index = 19
        var fraction = 0.0
        if index < bytes.count, bytes[index] == 46 {
            index += 1
            var scale = 0.1
            let start = index
            while index < bytes.count, bytes[index] >= 48, bytes[index] <= 57 {
                fraction += Double(bytes[index] - 48) * scale
                scale /= 10
                index += 1
            }
            if index == start { return nil }
        }
        var offset = 0
        guard index < bytes.count else { return nil }
        if bytes[index] == 90 || bytes[index] == 122 {
            index += 1
        } else if bytes[index] == 43 || bytes[index] == 45, let hours = number(index + 1, 2),
                  index + 3 < bytes.count, bytes[index + 3] == 58, let minutes = number(index + 4, 2)
        {
            offset = (hours * 60 + minutes) * 60 * (bytes[index] == 43 ? 1 : -1)
            index += 6
        } else {
            return nil
        }
        guard index == bytes.count else { return nil }
        var parts = tm()
        parts.tm_year = Int32(year - 1900)
        parts.tm_mon = Int32(month - 1)
        parts.tm_mday = Int32(day)
        parts.tm_hour = Int32(hour)
        parts.tm_min = Int32(minute)
        parts.tm_sec = Int32(second)
        let seconds = Double(timegm(&parts) - offset)
        guard timestampRange.contains(seconds) else { return nil }
        return Date(timeIntervalSince1970: seconds + fraction)
    }
}
