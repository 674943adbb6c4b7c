import KubeClient
import KubeTypes
import Synchronization

/// A change to a store, as handed to event handlers.
public enum StoreChange<Object: KubeObject>: Sendable {
    /// An object appeared (watch ADDED, or new in a relist).
    case added(Object)
    /// An object changed (watch MODIFIED, or a different resourceVersion in a relist).
    case updated(old: Object, new: Object)
    /// An object went away (watch DELETED, or missing from a relist).
    case deleted(Object)

    /// The object as it is now (or was last, for deletions).
    public var object: Object {
        switch self {
        case .added(let object), .deleted(let object), .updated(_, let object): return object
        }
    }

    /// The previous state of an updated object.
    public var oldObject: Object? {
        if case .updated(let old, _) = self { return old }
        return nil
    }
}

/// The local copy of one kind of object, keyed by namespace/name, filled by a watcher.
///
/// Reads are synchronous and cheap (a lock, a dictionary). After each (re)list the whole content
/// is swapped at once, so readers never see half a list. `hasSynced` turns true after the first
/// list. An optional transform runs on every object before it is stored (e.g. to drop
/// `managedFields`), to keep memory small.
public final class Store<Object: KubeObject>: Sendable {
    private struct State {
        var objects: [ObjectKey: Object] = [:]
        var hasSynced = false
    }

    private let state = Mutex(State())
    private let synced = OneShotSignal()
    private let transform: @Sendable (Object) -> Object

    /// - Parameter transform: applied to each object as it is stored; defaults to dropping `managedFields`.
    public init(transform: @escaping @Sendable (Object) -> Object = StoreTransforms.stripManagedFields) {
        self.transform = transform
    }

    // MARK: - Reads

    /// The object with this key, if present.
    public func get(_ key: ObjectKey) -> Object? {
        state.withLock { $0.objects[key] }
    }

    /// The object named `name` in `namespace`.
    public func get(name: String, namespace: String?) -> Object? {
        get(ObjectKey(namespace: namespace, name: name))
    }

    /// All objects (in no particular order).
    public func list() -> [Object] {
        state.withLock { Array($0.objects.values) }
    }

    /// The objects of one namespace.
    public func list(namespace: String) -> [Object] {
        state.withLock { state in state.objects.values.filter { $0.metadata.namespace == namespace } }
    }

    /// The objects that satisfy `predicate`.
    public func list(where predicate: (Object) -> Bool) -> [Object] {
        list().filter(predicate)
    }

    /// All keys.
    public var keys: [ObjectKey] {
        state.withLock { Array($0.objects.keys) }
    }

    public var count: Int {
        state.withLock { $0.objects.count }
    }

    /// True once the first complete list has been stored.
    public var hasSynced: Bool {
        state.withLock { $0.hasSynced }
    }

    /// Returns once the store has synced (at once if it has). Cancellation ends the wait early.
    public func waitUntilSynced() async {
        await synced.wait()
    }

    // MARK: - Writes (by the watcher)

    /// Replaces the whole content with the result of a list and returns what changed compared to
    /// before: new, changed (by resourceVersion) and vanished objects. Marks the store synced.
    @discardableResult
    public func replace(with items: [Object]) -> [StoreChange<Object>] {
        var fresh: [ObjectKey: Object] = [:]
        fresh.reserveCapacity(items.count)
        for item in items {
            let object = transform(item)
            fresh[object.key] = object
        }
        let previous = state.withLock { state in
            let previous = state.objects
            state.objects = fresh
            state.hasSynced = true
            return previous
        }
        synced.fire()
        var changes: [StoreChange<Object>] = []
        for (key, object) in fresh {
            if let old = previous[key] {
                if old.metadata.resourceVersion != object.metadata.resourceVersion
                    || old.metadata.uid != object.metadata.uid {
                    changes.append(.updated(old: old, new: object))
                }
            } else {
                changes.append(.added(object))
            }
        }
        for (key, old) in previous where fresh[key] == nil {
            changes.append(.deleted(old))
        }
        return changes
    }

    /// Stores an added or modified object and returns the change.
    @discardableResult
    public func apply(_ item: Object) -> StoreChange<Object> {
        let object = transform(item)
        let old = state.withLock { state in
            state.objects.updateValue(object, forKey: object.key)
        }
        return old.map { .updated(old: $0, new: object) } ?? .added(object)
    }

    /// Removes a deleted object and returns the change (carrying the object's final state).
    @discardableResult
    public func remove(_ item: Object) -> StoreChange<Object> {
        let object = transform(item)
        _ = state.withLock { state in
            state.objects.removeValue(forKey: object.key)
        }
        return .deleted(object)
    }
}
