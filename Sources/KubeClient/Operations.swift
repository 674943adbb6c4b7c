import CurlHTTP
import Foundation
import KubeTypes

/// Options of a list request.
public struct ListOptions: Sendable, Hashable {
    public var labelSelector: String?
    public var fieldSelector: String?
    /// Page size; nil for everything at once.
    public var limit: Int?
    /// The token from the previous page's `metadata.continue`.
    public var continueToken: String?
    /// "" or nil: the latest; "0": any (cache); otherwise at least this version.
    public var resourceVersion: String?
    /// What to keep of the listed objects (not sent to the server).
    public var decoding: DecodingProfile

    public init(labelSelector: String? = nil, fieldSelector: String? = nil, limit: Int? = nil,
                continueToken: String? = nil, resourceVersion: String? = nil, decoding: DecodingProfile = .everything) {
        self.labelSelector = labelSelector
        self.fieldSelector = fieldSelector
        self.limit = limit
        self.continueToken = continueToken
        self.resourceVersion = resourceVersion
        self.decoding = decoding
    }

    var query: [(String, String)] {
        var query: [(String, String)] = []
        if let labelSelector, !labelSelector.isEmpty { query.append(("labelSelector", labelSelector)) }
        if let fieldSelector, !fieldSelector.isEmpty { query.append(("fieldSelector", fieldSelector)) }
        if let limit { query.append(("limit", String(limit))) }
        if let continueToken, !continueToken.isEmpty { query.append(("continue", continueToken)) }
        if let resourceVersion { query.append(("resourceVersion", resourceVersion)) }
        return query
    }
}

/// Options of create, update and patch requests.
public struct WriteOptions: Sendable, Hashable {
    /// Validate and return the result without persisting it.
    public var dryRun: Bool
    /// The field manager name recorded in managedFields (required for server-side apply).
    public var fieldManager: String?

    public init(dryRun: Bool = false, fieldManager: String? = nil) {
        self.dryRun = dryRun
        self.fieldManager = fieldManager
    }

    var query: [(String, String)] {
        var query: [(String, String)] = []
        if dryRun { query.append(("dryRun", "All")) }
        if let fieldManager { query.append(("fieldManager", fieldManager)) }
        return query
    }
}

/// A patch body and its type.
public enum Patch: Sendable, Hashable {
    /// RFC 7386 JSON merge patch.
    case merge(JSONValue)
    /// RFC 6902 JSON patch: an array of operations.
    case json([JSONValue])
    /// Strategic merge patch (built-in kinds only).
    case strategicMerge(JSONValue)
    /// Server-side apply of a full intent (requires `fieldManager`); `force` takes over conflicting fields.
    case apply(JSONValue, force: Bool)

    var contentType: String {
        switch self {
        case .merge: return "application/merge-patch+json"
        case .json: return "application/json-patch+json"
        case .strategicMerge: return "application/strategic-merge-patch+json"
        case .apply: return "application/apply-patch+yaml"
        }
    }

    func body() throws -> Data {
        switch self {
        case .merge(let value), .strategicMerge(let value), .apply(let value, _):
            return try KubeJSON.encoder.encode(value)
        case .json(let operations):
            return try KubeJSON.encoder.encode(operations)
        }
    }

    /// One JSON patch operation (`op`, `path`, optional `value`/`from`).
    public static func operation(_ op: String, _ path: String, _ value: JSONValue? = nil) -> JSONValue {
        var object: [String: JSONValue] = ["op": .string(op), "path": .string(path)]
        if let value { object["value"] = value }
        return .object(object)
    }
}

/// Options of a delete request.
public struct DeleteOptions: Sendable, Hashable, Encodable {
    public enum PropagationPolicy: String, Sendable, Hashable, Encodable {
        case foreground = "Foreground"
        case background = "Background"
        case orphan = "Orphan"
    }

    public struct Preconditions: Sendable, Hashable, Encodable {
        public var uid: String?
        public var resourceVersion: String?

        public init(uid: String? = nil, resourceVersion: String? = nil) {
            self.uid = uid
            self.resourceVersion = resourceVersion
        }
    }

    public var propagationPolicy: PropagationPolicy?
    public var preconditions: Preconditions?
    public var gracePeriodSeconds: Int64?
    public var dryRun: [String]?
    public var kind = "DeleteOptions"
    public var apiVersion = "v1"

    public init(propagationPolicy: PropagationPolicy? = nil, preconditions: Preconditions? = nil,
                gracePeriodSeconds: Int64? = nil, dryRun: Bool = false) {
        self.propagationPolicy = propagationPolicy
        self.preconditions = preconditions
        self.gracePeriodSeconds = gracePeriodSeconds
        self.dryRun = dryRun ? ["All"] : nil
    }
}

/// Options of a pod log request.
public struct LogOptions: Sendable, Hashable {
    public var container: String?
    public var tailLines: Int?
    public var follow: Bool
    public var previous: Bool
    public var limitBytes: Int?
    public var timestamps: Bool

    public init(container: String? = nil, tailLines: Int? = nil, follow: Bool = false, previous: Bool = false,
                limitBytes: Int? = nil, timestamps: Bool = false) {
        self.container = container
        self.tailLines = tailLines
        self.follow = follow
        self.previous = previous
        self.limitBytes = limitBytes
        self.timestamps = timestamps
    }

    var query: [(String, String)] {
        var query: [(String, String)] = []
        if let container { query.append(("container", container)) }
        if let tailLines { query.append(("tailLines", String(tailLines))) }
        if follow { query.append(("follow", "true")) }
        if previous { query.append(("previous", "true")) }
        if let limitBytes { query.append(("limitBytes", String(limitBytes))) }
        if timestamps { query.append(("timestamps", "true")) }
        return query
    }
}

// MARK: - Requests on any resource

extension KubernetesClient {
    /// Reads one object.
    public func get<T: Decodable & Sendable>(_ type: T.Type, resource: ResourceType, name: String,
                                              namespace: String? = nil, subresource: String? = nil) async throws -> T {
        let request = Request(path: path(for: resource, namespace: namespace, name: name, subresource: subresource))
        let response = try await send(request)
        return try decode(T.self, from: response.body, request: request.summary)
    }

    /// Reads one page of a list. For a namespaced kind, a nil namespace lists every namespace.
    public func list<T: Decodable & Sendable>(_ type: T.Type, resource: ResourceType, namespace: String? = nil,
                                               options: ListOptions = ListOptions()) async throws -> ObjectList<T> {
        // A namespaced kind without a namespace: every namespace.
        let collection = resource.namespaced && namespace == nil
            ? resource.groupVersionPath + "/" + resource.plural : path(for: resource, namespace: namespace)
        let request = Request(path: collection, query: options.query)
        let response = try await send(request)
        return try decode(ObjectList<T>.self, from: response.body, request: request.summary, profile: options.decoding)
    }

    /// Reads a whole list, page by page (`limit`/`continue`). Returns the items and the list's
    /// resourceVersion (the point to start a watch from).
    public func listAll<T: Decodable & Sendable>(_ type: T.Type, resource: ResourceType, namespace: String? = nil,
                                                  options: ListOptions = ListOptions(limit: 500)) async throws -> (items: [T], resourceVersion: String) {
        var options = options
        var items: [T] = []
        var resourceVersion = ""
        repeat {
            let page = try await list(T.self, resource: resource, namespace: namespace, options: options)
            items += page.items
            resourceVersion = page.metadata.resourceVersion ?? resourceVersion
            options.continueToken = page.metadata.continue
            // Later pages must not name a resourceVersion: the continue token carries it.
            options.resourceVersion = nil
        } while options.continueToken?.isEmpty == false
        return (items, resourceVersion)
    }

    /// Creates an object (POST to its collection).
    public func create<T: Codable & Sendable>(_ object: T, resource: ResourceType, namespace: String?,
                                               options: WriteOptions = WriteOptions()) async throws -> T {
        let request = Request(method: "POST", path: path(for: resource, namespace: namespace), query: options.query,
                              body: try encode(object), contentType: "application/json")
        let response = try await send(request)
        return try decode(T.self, from: response.body, request: request.summary)
    }

    /// Replaces an object (PUT). The object's `metadata.resourceVersion` makes it conditional: a
    /// stale version fails with 409 Conflict.
    public func replace<T: Codable & Sendable>(_ object: T, resource: ResourceType, name: String, namespace: String?,
                                                subresource: String? = nil,
                                                options: WriteOptions = WriteOptions()) async throws -> T {
        let request = Request(method: "PUT", path: path(for: resource, namespace: namespace, name: name, subresource: subresource),
                              query: options.query, body: try encode(object), contentType: "application/json")
        let response = try await send(request)
        return try decode(T.self, from: response.body, request: request.summary)
    }

    /// Patches an object (or its subresource).
    public func patch<T: Decodable & Sendable>(_ type: T.Type, resource: ResourceType, name: String, namespace: String?,
                                                patch: Patch, subresource: String? = nil,
                                                options: WriteOptions = WriteOptions()) async throws -> T {
        var query = options.query
        if case .apply(_, let force) = patch {
            guard options.fieldManager?.isEmpty == false else {
                throw KubeClientError.configuration("server-side apply needs a fieldManager")
            }
            if force { query.append(("force", "true")) }
        }
        let request = Request(method: "PATCH", path: path(for: resource, namespace: namespace, name: name, subresource: subresource),
                              query: query, body: try patch.body(), contentType: patch.contentType)
        let response = try await send(request)
        return try decode(T.self, from: response.body, request: request.summary)
    }

    /// Deletes an object. Returns the API's answer (the object while it is being finalised, or a Status).
    @discardableResult
    public func delete(resource: ResourceType, name: String, namespace: String?,
                       options: DeleteOptions = DeleteOptions()) async throws -> JSONValue {
        let request = Request(method: "DELETE", path: path(for: resource, namespace: namespace, name: name),
                              body: try encode(options), contentType: "application/json")
        let response = try await send(request)
        return (try? KubeJSON.decoder.decode(JSONValue.self, from: response.body)) ?? .null
    }
}

// MARK: - Typed convenience

extension KubernetesClient {
    public func get<T: KubeObject>(_ type: T.Type, name: String, namespace: String? = nil) async throws -> T {
        try await get(T.self, resource: T.resourceType, name: name, namespace: namespace)
    }

    /// Reads an object through its `/status` subresource.
    public func getStatus<T: KubeObject>(_ type: T.Type, name: String, namespace: String? = nil) async throws -> T {
        try await get(T.self, resource: T.resourceType, name: name, namespace: namespace, subresource: "status")
    }

    /// Lists one page; with no namespace, namespaced kinds are listed across all namespaces.
    public func list<T: KubeObject>(_ type: T.Type, namespace: String? = nil,
                                    options: ListOptions = ListOptions()) async throws -> ObjectList<T> {
        try await list(T.self, resource: T.resourceType, namespace: namespace, options: options)
    }

    public func listAll<T: KubeObject>(_ type: T.Type, namespace: String? = nil,
                                       options: ListOptions = ListOptions(limit: 500)) async throws -> (items: [T], resourceVersion: String) {
        try await listAll(T.self, resource: T.resourceType, namespace: namespace, options: options)
    }

    public func create<T: KubeObject>(_ object: T, options: WriteOptions = WriteOptions()) async throws -> T {
        try await create(object, resource: T.resourceType, namespace: object.metadata.namespace, options: options)
    }

    /// PUT of the whole object, conditional on its resourceVersion.
    public func update<T: KubeObject>(_ object: T, options: WriteOptions = WriteOptions()) async throws -> T {
        try await replace(object, resource: T.resourceType, name: try requireName(object), namespace: object.metadata.namespace,
                          options: options)
    }

    /// PUT of the object's `/status`, conditional on its resourceVersion.
    public func updateStatus<T: KubeObject>(_ object: T, options: WriteOptions = WriteOptions()) async throws -> T {
        try await replace(object, resource: T.resourceType, name: try requireName(object), namespace: object.metadata.namespace,
                          subresource: "status", options: options)
    }

    public func patch<T: KubeObject>(_ type: T.Type, name: String, namespace: String? = nil, patch: Patch,
                                     options: WriteOptions = WriteOptions()) async throws -> T {
        try await self.patch(T.self, resource: T.resourceType, name: name, namespace: namespace, patch: patch, options: options)
    }

    public func patchStatus<T: KubeObject>(_ type: T.Type, name: String, namespace: String? = nil, patch: Patch,
                                           options: WriteOptions = WriteOptions()) async throws -> T {
        try await self.patch(T.self, resource: T.resourceType, name: name, namespace: namespace, patch: patch,
                             subresource: "status", options: options)
    }

    @discardableResult
    public func delete<T: KubeObject>(_ type: T.Type, name: String, namespace: String? = nil,
                                      options: DeleteOptions = DeleteOptions()) async throws -> JSONValue {
        try await delete(resource: T.resourceType, name: name, namespace: namespace, options: options)
    }

    /// Creates an Event (in the involved object's namespace unless the event names one).
    public func createEvent(_ event: Event) async throws -> Event {
        var event = event
        if event.metadata.namespace == nil { event.metadata.namespace = event.involvedObject.namespace ?? defaultNamespace }
        return try await create(event)
    }

    private func requireName<T: KubeObject>(_ object: T) throws -> String {
        guard let name = object.metadata.name, !name.isEmpty else {
            throw KubeClientError.configuration("\(T.resourceType.kind): metadata.name is required")
        }
        return name
    }
}

// MARK: - Round trips that keep unknown fields

/// An object read for editing: the typed value to change, plus the full JSON it was read from.
/// Writing it back applies only what changed in the typed value to the full JSON, so fields the
/// model does not know (someone else's) survive.
public struct Editable<T: KubeObject>: Sendable {
    public var object: T
    public let raw: JSONValue
    let original: JSONValue

    public init(raw: JSONValue) throws {
        self.raw = raw
        self.object = try raw.decode(as: T.self)
        self.original = try JSONValue(encoding: object)
    }

    /// The full object with the typed changes applied.
    public func merged() throws -> JSONValue {
        raw.applyingChange(from: original, to: try JSONValue(encoding: object))
    }
}

extension KubernetesClient {
    /// Reads an object for editing without losing fields the model does not know.
    public func getEditable<T: KubeObject>(_ type: T.Type, name: String, namespace: String? = nil) async throws -> Editable<T> {
        try Editable(raw: try await get(JSONValue.self, resource: T.resourceType, name: name, namespace: namespace))
    }

    /// Writes an edited object back (PUT, conditional on the resourceVersion it was read at).
    public func update<T: KubeObject>(_ editable: Editable<T>, subresource: String? = nil,
                                      options: WriteOptions = WriteOptions()) async throws -> Editable<T> {
        let name = editable.object.metadata.name ?? ""
        let result = try await replace(try editable.merged(), resource: T.resourceType, name: name,
                                       namespace: editable.object.metadata.namespace, subresource: subresource,
                                       options: options)
        return try Editable(raw: result)
    }

    /// Reads, changes and writes back an object, re-reading and retrying on 409 Conflict.
    /// Returns the stored object. `change` may run more than once.
    public func modify<T: KubeObject>(_ type: T.Type, name: String, namespace: String? = nil, subresource: String? = nil,
                                      attempts: Int = 5,
                                      _ change: (inout T) throws -> Void) async throws -> T {
        var attempt = 0
        while true {
            attempt += 1
            var editable = try await getEditable(T.self, name: name, namespace: namespace)
            try change(&editable.object)
            do {
                return try await update(editable, subresource: subresource).object
            } catch let error as APIError where error.isConflict && attempt < attempts {
                continue
            }
        }
    }
}
