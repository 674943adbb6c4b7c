/// A location inside a document: `spec.packages.apt[2]`.
public struct FieldPath: Sendable, Hashable, Comparable, CustomStringConvertible {
    public enum Component: Sendable, Hashable {
        case key(String)
        case index(Int)
    }

    public var components: [Component]

    public init(_ components: [Component] = []) { self.components = components }

    /// Parses `spec.packages.apt[2]` (keys without dots or brackets).
    public init(_ text: String) {
        var components: [Component] = []
        for part in text.split(separator: ".", omittingEmptySubsequences: true) {
            var rest = Substring(part)
            if let bracket = rest.firstIndex(of: "[") {
                let key = rest[..<bracket]
                if !key.isEmpty { components.append(.key(String(key))) }
                rest = rest[bracket...]
                while rest.first == "[", let close = rest.firstIndex(of: "]") {
                    if let index = Int(rest[rest.index(after: rest.startIndex)..<close]) {
                        components.append(.index(index))
                    }
                    rest = rest[rest.index(after: close)...]
                }
            } else {
                components.append(.key(String(rest)))
            }
        }
        self.components = components
    }

    public static let root = FieldPath()

    public func appending(_ key: String) -> FieldPath { FieldPath(components + [.key(key)]) }
    public func appending(index: Int) -> FieldPath { FieldPath(components + [.index(index)]) }
    public static func / (path: FieldPath, key: String) -> FieldPath { path.appending(key) }
    public static func / (path: FieldPath, index: Int) -> FieldPath { path.appending(index: index) }

    /// The enclosing path, nil at the root.
    public var parent: FieldPath? {
        components.isEmpty ? nil : FieldPath(Array(components.dropLast()))
    }

    public var description: String {
        var text = ""
        for component in components {
            switch component {
            case .key(let key):
                let plain = !key.isEmpty && key.unicodeScalars.allSatisfy {
                    ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) || "-_/".unicodeScalars.contains($0)
                }
                if plain {
                    text += text.isEmpty ? key : "." + key
                } else {
                    text += "[" + Quoting.displayed(key) + "]"
                }
            case .index(let index):
                text += "[\(index)]"
            }
        }
        return text.isEmpty ? "(document)" : text
    }

    public static func < (lhs: FieldPath, rhs: FieldPath) -> Bool {
        for (left, right) in zip(lhs.components, rhs.components) where left != right {
            switch (left, right) {
            case (.index(let a), .index(let b)): return a < b
            case (.key(let a), .key(let b)): return a < b
            case (.key, .index): return true
            case (.index, .key): return false
            }
        }
        return lhs.components.count < rhs.components.count
    }
}

/// One thing wrong with an input: where, what was there, and why it is rejected.
public struct ValidationProblem: Sendable, Hashable, CustomStringConvertible, Error {
    public var path: FieldPath
    /// The offending value as written, when there is one.
    public var value: String?
    public var reason: String

    public init(_ path: FieldPath, _ reason: String, value: String? = nil) {
        self.path = path
        self.reason = reason
        self.value = value
    }

    /// `reason (got "value")`, the value shortened and with control characters escaped.
    public var message: String {
        guard let value else { return reason }
        return "\(reason) (got \(Quoting.displayed(value)))"
    }

    public var description: String { "\(path): \(message)" }
}

/// Every problem found in one input, in document order.
public struct ValidationFailure: Error, Sendable, Hashable, CustomStringConvertible {
    public var problems: [ValidationProblem]

    public init(_ problems: [ValidationProblem]) { self.problems = problems }

    public var description: String { problems.map(\.description).joined(separator: "\n") }
}
