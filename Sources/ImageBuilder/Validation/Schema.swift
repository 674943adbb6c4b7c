import KubeTypes

/// The shape of a resource, described once: it checks JSON in Swift (reporting every problem) and
/// renders the structural OpenAPI schema of the CustomResourceDefinition.
public struct Schema: Sendable {
    public enum Kind: String, Sendable { case object, array, string, boolean, integer, intOrString }

    /// What characters a string may hold.
    public enum TextPolicy: Sendable {
        /// No control, format or line-separator characters (the default).
        case singleLine
        /// Anything but NUL.
        case anyButNUL
    }

    /// Checks beyond the OpenAPI schema's reach, run in Swift only.
    public enum Check: Sendable {
        case imageReference, aptPackage, pipRequirement, condaList, envName
        case dnsSubdomain, dnsLabel, dateTime
        /// A resource quantity (`500m`, `2Gi`, `1`).
        case quantity
        /// A duration (`90s`, `1h30m`) or a number of seconds.
        case duration
        /// An image repository without tag or digest (`registry.example.com/team/images`).
        case repository
        /// A repository prefix: `<prefix>/<name>` must be a repository (`registry.example.com:5000/team`).
        case repositoryPrefix
        /// A registry host with an optional port (`registry.example.com:5000`).
        case registryHost
        /// A command-line option (`--flag` or `--flag=value`).
        case commandLineOption
        /// Array items are objects whose `key` member must be unique.
        case uniqueKey(String)
    }

    public struct Property: Sendable {
        public var name: String
        public var schema: Schema
    }

    public var kind: Kind
    public var description: String?
    public var properties: [Property] = []
    public var required: [String] = []
    /// The item schema of an array, or the value schema of a map (an object without properties).
    public var element: [Schema] = []
    public var maxItems: Int?
    public var minLength: Int?
    public var maxLength: Int?
    public var minimum: Int?
    public var pattern: String?
    public var enumValues: [String]?
    public var format: String?
    public var text: TextPolicy = .singleLine
    public var checks: [Check] = []
    /// Unknown members are kept (and not reported).
    public var preservesUnknownFields = false
    /// In the CRD, only `type: object` (as Kubernetes wants for `metadata`).
    public var opaqueInCRD = false
    /// Extra OpenAPI keys for the CRD (`x-kubernetes-list-type` …).
    public var extensions: [String: JSONValue] = [:]

    public init(kind: Kind) { self.kind = kind }

    // MARK: builders

    public static func object(_ description: String? = nil, required: [String] = [], _ properties: KeyValuePairs<String, Schema>) -> Schema {
        var schema = Schema(kind: .object)
        schema.description = description
        schema.required = required
        schema.properties = properties.map { Property(name: $0.key, schema: $0.value) }
        return schema
    }

    public static func object(_ properties: KeyValuePairs<String, Schema>) -> Schema {
        object(nil, properties)
    }

    /// An object with arbitrary keys whose values follow `value`.
    public static func map(of value: Schema, _ description: String? = nil) -> Schema {
        var schema = Schema(kind: .object)
        schema.description = description
        schema.element = [value]
        return schema
    }

    public static func array(of item: Schema, maxItems: Int? = nil, _ description: String? = nil, checks: [Check] = []) -> Schema {
        var schema = Schema(kind: .array)
        schema.element = [item]
        schema.maxItems = maxItems
        schema.description = description
        schema.checks = checks
        return schema
    }

    public static func string(_ description: String? = nil, maxLength: Int? = nil, minLength: Int? = nil,
                              pattern: String? = nil, enum values: [String]? = nil, format: String? = nil,
                              text: TextPolicy = .singleLine, checks: [Check] = []) -> Schema {
        var schema = Schema(kind: .string)
        schema.description = description
        schema.maxLength = maxLength
        schema.minLength = minLength
        schema.pattern = pattern
        schema.enumValues = values
        schema.format = format
        schema.text = text
        schema.checks = checks
        return schema
    }

    public static func boolean(_ description: String? = nil) -> Schema {
        var schema = Schema(kind: .boolean)
        schema.description = description
        return schema
    }

    public static func intOrString(_ description: String? = nil, checks: [Check] = []) -> Schema {
        var schema = Schema(kind: .intOrString)
        schema.description = description
        schema.checks = checks
        return schema
    }

    public static func integer(_ description: String? = nil, minimum: Int? = nil, format: String? = "int64") -> Schema {
        var schema = Schema(kind: .integer)
        schema.description = description
        schema.minimum = minimum
        schema.format = format
        return schema
    }

    /// Any object, members unchecked.
    public static func freeform(_ description: String? = nil) -> Schema {
        var schema = Schema(kind: .object)
        schema.description = description
        schema.preservesUnknownFields = true
        return schema
    }

    public func with(_ change: (inout Schema) -> Void) -> Schema {
        var copy = self
        change(&copy)
        return copy
    }

    public func property(_ name: String) -> Schema? { properties.first { $0.name == name }?.schema }
}

// MARK: - validation

extension Schema {
    /// Every problem in `value`, in document order.
    public func problems(in value: JSONValue, at path: FieldPath = .root) -> [ValidationProblem] {
        var problems: [ValidationProblem] = []
        collect(value, path, &problems)
        return problems
    }

    func collect(_ value: JSONValue, _ path: FieldPath, _ problems: inout [ValidationProblem]) {
        switch (kind, value) {
        case (.object, .object(let members)):
            collectObject(members, path, &problems)
        case (.array, .array(let items)):
            if let maxItems, items.count > maxItems {
                problems.append(ValidationProblem(path, "has \(items.count) items; at most \(maxItems) are allowed"))
            }
            let before = problems.count
            for (index, item) in items.enumerated() {
                element.first?.collect(item, path / index, &problems)
            }
            // List-wide checks add nothing about an item already reported on.
            let reported = Set(problems[before...].map(\.path))
            var listProblems: [ValidationProblem] = []
            for check in checks { SchemaChecks.run(check, on: value, at: path, &listProblems) }
            problems += listProblems.filter { !reported.contains($0.path) }
        case (.string, .string(let text)):
            collectString(text, path, &problems)
        case (.boolean, .bool):
            break
        case (.intOrString, .string(let text)):
            collectString(text, path, &problems)
        case (.intOrString, .int):
            for check in checks { SchemaChecks.run(check, on: value, at: path, &problems) }
        case (.integer, _) where value.intValue != nil:
            if let minimum, let number = value.intValue, number < minimum {
                problems.append(ValidationProblem(path, "must be at least \(minimum)", value: String(number)))
            }
        default:
            problems.append(ValidationProblem(path, "expected \(kind.article), got \(value.typeDescription)", value: value.scalarText))
        }
    }

    func collectObject(_ members: [String: JSONValue], _ path: FieldPath, _ problems: inout [ValidationProblem]) {
        for name in required where members[name] == nil || members[name] == .null {
            problems.append(ValidationProblem(path / name, "required field is missing"))
        }
        if properties.isEmpty, let valueSchema = element.first {
            for key in members.keys.sorted() {
                valueSchema.collect(members[key] ?? .null, path / key, &problems)
            }
            return
        }
        for property in properties {
            guard let member = members[property.name], member != .null else { continue }
            property.schema.collect(member, path / property.name, &problems)
        }
        if !preservesUnknownFields {
            let known = Set(properties.map(\.name))
            for key in members.keys.sorted() where !known.contains(key) {
                let suggestion = properties.map(\.name).first { SchemaChecks.isNearMiss(key, $0) }
                problems.append(ValidationProblem(
                    path / key, "unknown field" + (suggestion.map { " (did you mean \"\($0)\"?)" } ?? "")))
            }
        }
    }

    func collectString(_ text: String, _ path: FieldPath, _ problems: inout [ValidationProblem]) {
        switch self.text {
        case .singleLine:
            if let bad = CharacterPolicy.firstInvisible(in: text) {
                problems.append(ValidationProblem(
                    path, "contains the control or invisible character U+\(Quoting.hex(bad.value, width: 4)); line breaks and control characters are not allowed here",
                    value: text))
                return
            }
        case .anyButNUL:
            if text.unicodeScalars.contains("\u{0}") {
                problems.append(ValidationProblem(path, "contains a NUL character", value: text))
                return
            }
        }
        let length = text.unicodeScalars.count
        if let maxLength, length > maxLength {
            problems.append(ValidationProblem(path, "is \(length) characters long; at most \(maxLength) are allowed", value: text))
            return
        }
        if let minLength, length < minLength {
            problems.append(ValidationProblem(path, minLength == 1 ? "must not be empty" : "must be at least \(minLength) characters long", value: text))
            return
        }
        if let enumValues, !enumValues.contains(text) {
            problems.append(ValidationProblem(path, "must be one of " + enumValues.joined(separator: ", "), value: text))
            return
        }
        for check in checks { SchemaChecks.run(check, on: .string(text), at: path, &problems) }
    }
}

extension Schema.Kind {
    var article: String {
        switch self {
        case .object: return "an object"
        case .array: return "a list"
        case .string: return "a string"
        case .boolean: return "true or false"
        case .integer: return "an integer"
        case .intOrString: return "an integer or a string"
        }
    }
}

extension JSONValue {
    /// `a string`, `a number`, … for messages.
    var typeDescription: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .int, .double: return "a number"
        case .string: return "a string"
        case .array: return "a list"
        case .object: return "an object"
        }
    }

    /// The text of a scalar, nil for lists and objects.
    var scalarText: String? {
        switch self {
        case .null: return "null"
        case .bool(let value): return String(value)
        case .int(let value): return String(value)
        case .double(let value): return String(value)
        case .string(let value): return value
        case .array, .object: return nil
        }
    }
}

// MARK: - OpenAPI

extension Schema {
    /// The structural OpenAPI v3 schema for a CustomResourceDefinition.
    public var openAPIV3: JSONValue {
        var out: [String: JSONValue] = kind == .intOrString
            ? ["x-kubernetes-int-or-string": .bool(true)] : ["type": .string(kind.rawValue)]
        if let description { out["description"] = .string(description) }
        if opaqueInCRD { return .object(out) }
        if !properties.isEmpty {
            out["properties"] = .object(Dictionary(uniqueKeysWithValues: properties.map { ($0.name, $0.schema.openAPIV3) }))
        }
        if !required.isEmpty { out["required"] = .array(required.sorted().map(JSONValue.string)) }
        if let item = element.first {
            out[kind == .array ? "items" : "additionalProperties"] = item.openAPIV3
        }
        if let maxItems { out["maxItems"] = .int(Int64(maxItems)) }
        if let maxLength { out["maxLength"] = .int(Int64(maxLength)) }
        if let minLength { out["minLength"] = .int(Int64(minLength)) }
        if let minimum { out["minimum"] = .int(Int64(minimum)) }
        if let pattern { out["pattern"] = .string(pattern) }
        if let enumValues { out["enum"] = .array(enumValues.map(JSONValue.string)) }
        if let format { out["format"] = .string(format) }
        if preservesUnknownFields { out["x-kubernetes-preserve-unknown-fields"] = .bool(true) }
        for (key, value) in extensions { out[key] = value }
        return .object(out)
    }
}
