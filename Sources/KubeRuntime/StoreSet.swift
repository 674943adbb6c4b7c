import KubeTypes

/// Reads across the caches of several watched namespaces (one Store each) as if they were one.
public struct StoreSet<Object: KubeObject>: Sendable {
    public let stores: [Store<Object>]

    public init(_ stores: [Store<Object>]) { self.stores = stores }

    public func get(_ key: ObjectKey) -> Object? {
        for store in stores { if let object = store.get(key) { return object } }
        return nil
    }

    public func get(name: String, namespace: String?) -> Object? {
        get(ObjectKey(namespace: namespace, name: name))
    }

    public func list(namespace: String) -> [Object] {
        stores.flatMap { $0.list(namespace: namespace) }
    }

    /// The objects controlled by the object with this UID (`Store.list(controlledBy:)`).
    public func list(controlledBy uid: String) -> [Object] {
        stores.flatMap { $0.list(controlledBy: uid) }
    }
}
