import Foundation

/// Where a kind of object lives in the API: group, version, plural resource name, scope.
public struct ResourceType: Sendable, Hashable, CustomStringConvertible {
    /// API group; "" for the core group.
    public var group: String
    public var version: String
    /// The plural resource name in URLs (`configmaps`).
    public var plural: String
    public var kind: String
    public var namespaced: Bool

    public init(group: String, version: String, plural: String, kind: String, namespaced: Bool) {
        self.group = group
        self.version = version
        self.plural = plural
        self.kind = kind
        self.namespaced = namespaced
    }

    /// `v1` or `batch/v1`.
    public var apiVersion: String { group.isEmpty ? version : "\(group)/\(version)" }

    /// `/api/v1` or `/apis/batch/v1`.
    public var groupVersionPath: String { group.isEmpty ? "/api/\(version)" : "/apis/\(group)/\(version)" }

    public var description: String { group.isEmpty ? "\(plural)" : "\(plural).\(group)" }

    public static let namespaces = ResourceType(group: "", version: "v1", plural: "namespaces", kind: "Namespace", namespaced: false)
    public static let configMaps = ResourceType(group: "", version: "v1", plural: "configmaps", kind: "ConfigMap", namespaced: true)
    public static let secrets = ResourceType(group: "", version: "v1", plural: "secrets", kind: "Secret", namespaced: true)
    public static let pods = ResourceType(group: "", version: "v1", plural: "pods", kind: "Pod", namespaced: true)
    public static let events = ResourceType(group: "", version: "v1", plural: "events", kind: "Event", namespaced: true)
    public static let serviceAccounts = ResourceType(group: "", version: "v1", plural: "serviceaccounts", kind: "ServiceAccount", namespaced: true)
    public static let jobs = ResourceType(group: "batch", version: "v1", plural: "jobs", kind: "Job", namespaced: true)
    public static let leases = ResourceType(group: "coordination.k8s.io", version: "v1", plural: "leases", kind: "Lease", namespaced: true)
    public static let customResourceDefinitions = ResourceType(
        group: "apiextensions.k8s.io", version: "v1", plural: "customresourcedefinitions",
        kind: "CustomResourceDefinition", namespaced: false)
}

/// A typed Kubernetes object: it knows its resource type and carries metadata.
public protocol KubeObject: Codable, Sendable {
    static var resourceType: ResourceType { get }
    var metadata: ObjectMeta { get set }
}

extension KubeObject {
    /// `namespace/name`, or `name` for cluster-scoped objects.
    public var key: ObjectKey { ObjectKey(namespace: metadata.namespace, name: metadata.name ?? "") }
}

/// Identifies an object of a known kind: namespace (nil for cluster-scoped) and name.
public struct ObjectKey: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var namespace: String?
    public var name: String

    public init(namespace: String?, name: String) {
        self.namespace = namespace?.isEmpty == true ? nil : namespace
        self.name = name
    }

    /// Parses `namespace/name` or `name`.
    public init(_ text: String) {
        if let slash = text.firstIndex(of: "/") {
            self.init(namespace: String(text[..<slash]), name: String(text[text.index(after: slash)...]))
        } else {
            self.init(namespace: nil, name: text)
        }
    }

    public var description: String { namespace.map { "\($0)/\(name)" } ?? name }

    public static func < (lhs: ObjectKey, rhs: ObjectKey) -> Bool { lhs.description < rhs.description }
}

/// Any object, kept whole as JSON: for kinds without a model, and for round trips that must not
/// lose fields.
public struct DynamicObject: Codable, Sendable, Hashable {
    public var json: JSONValue

    public init(_ json: JSONValue) { self.json = json }

    public init(from decoder: any Decoder) throws {
        json = try JSONValue(from: decoder)
    }

    public func encode(to encoder: any Encoder) throws {
        try json.encode(to: encoder)
    }

    public var metadata: ObjectMeta {
        get { (try? json["metadata"]?.decode(as: ObjectMeta.self)) ?? ObjectMeta() }
        set { json["metadata"] = try? JSONValue(encoding: newValue) }
    }

    public var apiVersion: String? { json["apiVersion"]?.stringValue }
    public var kind: String? { json["kind"]?.stringValue }
}

/// A page of a list response.
public struct ObjectList<Item: Decodable & Sendable>: Decodable, Sendable {
    public var items: [Item]
    public var metadata: ListMeta

    enum CodingKeys: String, CodingKey { case items, metadata }

    public init(items: [Item], metadata: ListMeta) {
        self.items = items
        self.metadata = metadata
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        items = try container.decodeIfPresent([Item].self, forKey: .items) ?? []
        metadata = try container.decodeIfPresent(ListMeta.self, forKey: .metadata) ?? ListMeta()
    }
}

public struct ListMeta: Codable, Sendable, Hashable {
    public var resourceVersion: String?
    /// Set when more items remain: pass it back as `continue` for the next page.
    public var `continue`: String?
    public var remainingItemCount: Int64?

    public init(resourceVersion: String? = nil, continue: String? = nil, remainingItemCount: Int64? = nil) {
        self.resourceVersion = resourceVersion
        self.continue = `continue`
        self.remainingItemCount = remainingItemCount
    }
}
