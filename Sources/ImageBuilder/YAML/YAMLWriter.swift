import KubeTypes
import Yams

/// Writes JSON values as YAML for people and `kubectl apply`: `apiVersion`, `kind`, `metadata`
/// and `name` first, other keys sorted; multi-line strings as literal blocks; strings that would
/// read back as another type quoted.
public enum YAMLWriter {
    static let leadingKeys = ["apiVersion", "kind", "metadata", "name", "namespace"]

    /// One document, without a `---` line.
    public static func document(_ value: JSONValue) throws -> String {
        let text = try Yams.serialize(node: node(value), width: -1, allowUnicode: true)
        return text.hasSuffix("\n") ? text : text + "\n"
    }

    /// Several documents separated by `---` lines.
    public static func stream(_ values: [JSONValue]) throws -> String {
        try values.map { "---\n" + (try document($0)) }.joined()
    }

    static func node(_ value: JSONValue) -> Node {
        switch value {
        case .null: return Node("null", Tag(.null))
        case .bool(let flag): return Node(flag ? "true" : "false", Tag(.bool))
        case .int(let number): return Node(String(number), Tag(.int))
        case .double(let number): return Node(String(number), Tag(.float))
        case .string(let text):
            var scalar = text.represented()
            if text.contains("\n") { scalar.style = .literal }
            return .scalar(scalar)
        case .array(let items): return Node(items.map(node))
        case .object(let members):
            let keys = members.keys.sorted { a, b in
                let ia = leadingKeys.firstIndex(of: a) ?? leadingKeys.count
                let ib = leadingKeys.firstIndex(of: b) ?? leadingKeys.count
                return ia != ib ? ia < ib : a < b
            }
            return Node(keys.map { (Node.scalar($0.represented()), node(members[$0] ?? .null)) })
        }
    }
}
