import Foundation

/// A core/v1 Event (`kubectl describe` shows these).
public struct Event: KubeObject, Hashable {
    public static let resourceType = ResourceType.events
    public var apiVersion: String? = "v1"
    public var kind: String? = "Event"
    public var metadata: ObjectMeta
    public var involvedObject: ObjectReference
    public var reason: String?
    public var message: String?
    /// `Normal` or `Warning`.
    public var type: String?
    public var count: Int32?
    public var firstTimestamp: Date?
    public var lastTimestamp: Date?
    public var eventTime: MicroTime?
    public var source: EventSource?
    public var reportingComponent: String?
    public var reportingInstance: String?
    public var action: String?

    public init(metadata: ObjectMeta, involvedObject: ObjectReference, reason: String?, message: String?,
                type: String?, count: Int32? = 1, firstTimestamp: Date? = nil, lastTimestamp: Date? = nil,
                source: EventSource? = nil) {
        self.metadata = metadata
        self.involvedObject = involvedObject
        self.reason = reason
        self.message = message
        self.type = type
        self.count = count
        self.firstTimestamp = firstTimestamp
        self.lastTimestamp = lastTimestamp
        self.source = source
    }
}

public struct ObjectReference: Codable, Sendable, Hashable {
    public var apiVersion: String?
    public var kind: String?
    public var name: String?
    public var namespace: String?
    public var uid: String?
    public var resourceVersion: String?
    public var fieldPath: String?

    public init(apiVersion: String? = nil, kind: String? = nil, name: String? = nil, namespace: String? = nil,
                uid: String? = nil, resourceVersion: String? = nil) {
        self.apiVersion = apiVersion
        self.kind = kind
        self.name = name
        self.namespace = namespace
        self.uid = uid
        self.resourceVersion = resourceVersion
    }

    /// A reference to a typed object.
    public init<Object: KubeObject>(to object: Object) {
        self.init(
            apiVersion: Object.resourceType.apiVersion, kind: Object.resourceType.kind,
            name: object.metadata.name, namespace: object.metadata.namespace, uid: object.metadata.uid,
            resourceVersion: object.metadata.resourceVersion)
    }
}

public struct EventSource: Codable, Sendable, Hashable {
    public var component: String?
    public var host: String?

    public init(component: String? = nil, host: String? = nil) {
        self.component = component
        self.host = host
    }
}

/// One event of a watch stream.
public enum WatchEvent<Object: Sendable>: Sendable {
    case added(Object)
    case modified(Object)
    case deleted(Object)
    /// Only the resourceVersion moved on.
    case bookmark(resourceVersion: String)
    /// The server reported an error in the stream (e.g. 410 Expired).
    case error(Status)
}
