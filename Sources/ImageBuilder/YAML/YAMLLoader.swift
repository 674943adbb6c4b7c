import CYaml
import Foundation
import KubeTypes
import Yams

/// A line and column in a source text, both from 1.
public struct SourcePosition: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var line: Int
    public var column: Int

    public init(line: Int, column: Int) {
        self.line = line
        self.column = column
    }

    public var description: String { "\(line):\(column)" }

    public static func < (lhs: SourcePosition, rhs: SourcePosition) -> Bool {
        (lhs.line, lhs.column) < (rhs.line, rhs.column)
    }
}

/// One YAML document as JSON, with the source position of every value.
public struct YAMLDocument: Sendable {
    public var value: JSONValue
    /// Where the document's root node starts.
    public var start: SourcePosition
    public var positions: [FieldPath: SourcePosition]

    /// The position of `path`, or of its nearest enclosing value that has one.
    public func position(of path: FieldPath) -> SourcePosition {
        var current: FieldPath? = path
        while let candidate = current {
            if let position = positions[candidate] { return position }
            current = candidate.parent
        }
        return start
    }
}

/// Why YAML text could not be read, and where.
public struct YAMLError: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String
    public var position: SourcePosition?

    public init(_ message: String, at position: SourcePosition?) {
        self.message = message
        self.position = position
    }

    public var description: String { position.map { "\($0): \(message)" } ?? message }
}

/// The documents read from a YAML stream: all those before the first error, and that error.
public struct YAMLStream: Sendable {
    public var documents: [YAMLDocument]
    public var error: YAMLError?
}

/// Reads YAML into JSON values with bounded cost. Before Yams composes a document, a pass over
/// libyaml's events counts the nodes the document expands to (each alias counts as the whole
/// subtree it names) and its nesting depth, so alias bombs ("billion laughs") and deep nesting are
/// rejected before they cost time, memory or stack.
public enum YAMLLoader {
    public struct Limits: Sendable {
        public var maxBytes: Int
        /// Nodes per document after alias expansion.
        public var maxNodes: Int
        public var maxDepth: Int

        public init(maxBytes: Int = 8 << 20, maxNodes: Int = 250_000, maxDepth: Int = 64) {
            self.maxBytes = maxBytes
            self.maxNodes = maxNodes
            self.maxDepth = maxDepth
        }

        public static let `default` = Limits()
    }

    /// Every document of `text`. Empty documents (a lone `---`) are skipped.
    public static func load(_ text: String, limits: Limits = .default) -> YAMLStream {
        guard text.utf8.count <= limits.maxBytes else {
            return YAMLStream(documents: [], error: YAMLError(
                "input is \(text.utf8.count) bytes; at most \(limits.maxBytes) are read", at: nil))
        }
        let costError = measure(text, limits: limits)
        var documents: [YAMLDocument] = []
        do {
            let parser = try Parser(yaml: text, resolver: .default)
            var index = 0
            while true {
                if let costError, costError.document == index {
                    return YAMLStream(documents: documents, error: costError.error)
                }
                guard let node = try parser.nextRoot() else { break }
                index += 1
                if case .scalar(let scalar) = node, scalar.string.isEmpty, Resolver.default.resolveTag(of: node) == .null {
                    continue
                }
                var converter = NodeConverter(maxNodes: limits.maxNodes, maxDepth: limits.maxDepth)
                let value = try converter.convert(node, at: .root, depth: 0)
                documents.append(YAMLDocument(value: value, start: node.mark.map(SourcePosition.init) ?? SourcePosition(line: 1, column: 1),
                                              positions: converter.positions))
            }
        } catch let error as YAMLError {
            return YAMLStream(documents: documents, error: error)
        } catch let error as YamlError {
            return YAMLStream(documents: documents, error: YAMLError(yamsError: error))
        } catch {
            return YAMLStream(documents: documents, error: YAMLError("\(error)", at: nil))
        }
        return YAMLStream(documents: documents, error: nil)
    }

    /// The first document (0-based) whose expanded size or depth is over the limits. Syntax errors
    /// end the pass quietly: the real parse reports them.
    static func measure(_ text: String, limits: Limits) -> (document: Int, error: YAMLError)? {
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else { return nil }
        defer { yaml_parser_delete(&parser) }
        let bytes = Array(text.utf8)
        return bytes.withUnsafeBufferPointer { buffer -> (Int, YAMLError)? in
            yaml_parser_set_input_string(&parser, buffer.baseAddress, buffer.count)
            var document = -1
            var anchors: [String: Int] = [:]
            // Open collections: their anchor and the expanded size of what they hold so far.
            var open: [(anchor: String?, size: Int)] = []
            var total = 0
            var event = yaml_event_t()
            while yaml_parser_parse(&parser, &event) == 1 {
                defer { yaml_event_delete(&event) }
                let position = SourcePosition(line: Int(event.start_mark.line) + 1, column: Int(event.start_mark.column) + 1)
                var added = 0
                var anchor: String?
                switch event.type {
                case YAML_STREAM_END_EVENT:
                    return nil
                case YAML_DOCUMENT_START_EVENT:
                    document += 1
                    anchors = [:]
                    open = []
                    total = 0
                    continue
                case YAML_SCALAR_EVENT:
                    added = 1
                    anchor = event.data.scalar.anchor.map { String(cString: $0) }
                case YAML_ALIAS_EVENT:
                    let name = event.data.alias.anchor.map { String(cString: $0) } ?? ""
                    guard let size = anchors[name] else {
                        // Anchors belong to their document; Kubernetes' YAML reader refuses such aliases.
                        return (document, YAMLError("alias *\(name) names no anchor before it in this document", at: position))
                    }
                    added = size
                case YAML_SEQUENCE_START_EVENT, YAML_MAPPING_START_EVENT:
                    let name = event.type == YAML_SEQUENCE_START_EVENT ? event.data.sequence_start.anchor : event.data.mapping_start.anchor
                    open.append((name.map { String(cString: $0) }, 1))
                    total += 1
                    if open.count > limits.maxDepth {
                        return (document, YAMLError("nesting is deeper than \(limits.maxDepth) levels", at: position))
                    }
                    continue
                case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
                    guard let closed = open.popLast() else { continue }
                    if let name = closed.anchor { anchors[name] = closed.size }
                    if !open.isEmpty { open[open.count - 1].size += closed.size }
                    continue
                default:
                    continue
                }
                if let anchor { anchors[anchor] = added }
                if !open.isEmpty { open[open.count - 1].size += added }
                total += added
                if total > limits.maxNodes {
                    return (document, YAMLError(
                        "document expands to more than \(limits.maxNodes) values (YAML aliases repeat their anchor's content)",
                        at: position))
                }
            }
            return nil
        }
    }
}

/// Turns a composed Yams node into JSON, recording positions.
struct NodeConverter {
    let maxNodes: Int
    let maxDepth: Int
    var count = 0
    var positions: [FieldPath: SourcePosition] = [:]

    init(maxNodes: Int, maxDepth: Int) {
        self.maxNodes = maxNodes
        self.maxDepth = maxDepth
    }

    mutating func convert(_ node: Node, at path: FieldPath, depth: Int) throws -> JSONValue {
        count += 1
        let position = node.mark.map(SourcePosition.init)
        guard count <= maxNodes else { throw YAMLError("document has more than \(maxNodes) values", at: position) }
        guard depth <= maxDepth else { throw YAMLError("nesting is deeper than \(maxDepth) levels", at: position) }
        if let position { positions[path] = position }
        switch node {
        case .scalar(let scalar):
            return try Self.scalarValue(scalar, position: position)
        case .sequence(let sequence):
            var items: [JSONValue] = []
            for (index, item) in sequence.enumerated() {
                items.append(try convert(item, at: path / index, depth: depth + 1))
            }
            return .array(items)
        case .mapping(let mapping):
            return .object(try members(of: mapping, at: path, depth: depth))
        case .alias:
            throw YAMLError("unresolved alias", at: position)
        }
    }

    /// Members of a mapping; `<<` merge keys fill in keys the mapping does not set itself.
    mutating func members(of mapping: Node.Mapping, at path: FieldPath, depth: Int) throws -> [String: JSONValue] {
        var members: [String: JSONValue] = [:]
        var merged: [Node] = []
        for (key, value) in mapping {
            guard case .scalar(let keyScalar) = key else {
                throw YAMLError("mapping keys must be plain text, not lists or mappings", at: key.mark.map(SourcePosition.init))
            }
            if keyScalar.style == .plain, Resolver.default.resolveTag(of: key) == .merge {
                merged.append(contentsOf: value.sequence.map { Array($0) } ?? [value])
                continue
            }
            let name = keyScalar.string
            guard members[name] == nil else {
                throw YAMLError("duplicate key \(Quoting.displayed(name))", at: key.mark.map(SourcePosition.init))
            }
            members[name] = try convert(value, at: path / name, depth: depth + 1)
        }
        for source in merged {
            guard case .mapping(let sourceMapping) = source else {
                throw YAMLError("a '<<' merge key takes a mapping or a list of mappings", at: source.mark.map(SourcePosition.init))
            }
            for (name, value) in try self.members(of: sourceMapping, at: path, depth: depth) where members[name] == nil {
                members[name] = value
            }
        }
        return members
    }

    static func scalarValue(_ scalar: Node.Scalar, position: SourcePosition?) throws -> JSONValue {
        let text = scalar.string
        switch Resolver.default.resolveTag(of: Node.scalar(scalar)) {
        case .null:
            return .null
        case .bool:
            return .bool(["true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"].contains(text))
        case .int:
            if let number = integer(text) { return .int(number) }
            return .string(text)
        case .float:
            let cleaned = text.replacingOccurrences(of: "_", with: "")
            guard let number = Double(cleaned), number.isFinite else {
                throw YAMLError("\(Quoting.displayed(text)) is not a finite number; JSON cannot hold it (quote it to make it text)", at: position)
            }
            return .double(number)
        default:
            return .string(text)
        }
    }

    /// YAML 1.1 integers: decimal, 0x, 0o, 0b, leading-zero octal, with '_' separators.
    static func integer(_ text: String) -> Int64? {
        var digits = text.replacingOccurrences(of: "_", with: "")
        var negative = false
        if let sign = digits.first, sign == "-" || sign == "+" {
            negative = sign == "-"
            digits.removeFirst()
        }
        var radix = 10
        for (prefix, base) in [("0x", 16), ("0o", 8), ("0b", 2)] where digits.hasPrefix(prefix) {
            radix = base
            digits.removeFirst(2)
        }
        if radix == 10, digits.count > 1, digits.hasPrefix("0") { radix = 8 }
        guard let magnitude = UInt64(digits, radix: radix) else { return nil }
        if negative {
            return magnitude <= UInt64(Int64.max) + 1 ? Int64(truncatingIfNeeded: 0 &- magnitude) : nil
        }
        return Int64(exactly: magnitude)
    }
}

extension SourcePosition {
    init(_ mark: Mark) { self.init(line: mark.line, column: mark.column) }
}

extension YAMLError {
    /// A Yams error as message and position.
    init(yamsError error: YamlError) {
        switch error {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
             .composer(let context, let problem, let mark, _):
            let message = context.map { "\(problem) (\($0.text))" } ?? problem
            self.init(message, at: SourcePosition(mark))
        case .duplicatedKeysInMapping(let duplicates, let context):
            self.init("duplicate key " + duplicates.map { Quoting.displayed($0) }.joined(separator: ", "), at: SourcePosition(context.mark))
        case .reader(let problem, _, _, _):
            self.init("cannot read the text: \(problem)", at: nil)
        default:
            self.init("\(error)", at: nil)
        }
    }
}
