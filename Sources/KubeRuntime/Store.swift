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
/// `managedFields`), to keep memory small. Objects are also indexed by their controller's UID, so
/// that "what does this object control" costs the size of the answer, not of the cache.
public final class Store<Object: KubeObject>: Sendable {
    /// One cached object, on the heap: the dictionary then holds a reference per object rather than
    /// the object's inline bytes (hundreds for a Job) in every bucket, spare ones included.
    private final class Cached: Sendable {
        let object: Object
        init(_ object: Object) { self.object = object }
    }

    private struct State {
        var objects: [ObjectKey: Cached] = [:]
        /// The keys of the objects each controller UID controls (`ownerReferences` with `controller`).
        var byController: [String: ControlledKeys] = [:]
        var hasSynced = false

        mutating func store(_ object: Object) -> Object? {
            let key = object.key
            let old = objects.updateValue(Cached(object), forKey: key)?.object
            let oldController = old?.metadata.controllerReference?.uid
            let newController = object.metadata.controllerReference?.uid
            if oldController != newController {
                if let oldController { unindex(key, from: oldController) }
                if let newController { byController[newController] = byController[newController]?.inserting(key) ?? .one(key) }
            }
            return old
        }

        mutating func delete(_ key: ObjectKey) -> Object? {
            guard let old = objects.removeValue(forKey: key)?.object else { return nil }
            if let controller = old.metadata.controllerReference?.uid { unindex(key, from: controller) }
            return old
        }

        private mutating func unindex(_ key: ObjectKey, from controller: String) {
            byController[controller] = byController[controller]?.removing(key)
        }

        static func index(_ objects: [ObjectKey: Cached]) -> [String: ControlledKeys] {
            var index: [String: ControlledKeys] = [:]
            for (key, cached) in objects {
                if let controller = cached.object.metadata.controllerReference?.uid {
                    index[controller] = index[controller]?.inserting(key) ?? .one(key)
                }
            }
            return index
        }
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
        state.withLock { $0.objects[key]?.object }
    }

    /// The object named `name` in `namespace`.
    public func get(name: String, namespace: String?) -> Object? {
        get(ObjectKey(namespace: namespace, name: name))
    }

    /// All objects (in no particular order).
    public func list() -> [Object] {
        state.withLock { $0.objects.values.map(\.object) }
    }

    /// The objects of one namespace.
    public func list(namespace: String) -> [Object] {
        state.withLock { state in state.objects.values.lazy.map(\.object).filter { $0.metadata.namespace == namespace } }
    }

    /// The objects whose controller (the owner reference with `controller: true`) has this UID.
    public func list(controlledBy uid: String) -> [Object] {
        state.withLock { state in
            (state.byController[uid]?.keys ?? []).compactMap { state.objects[$0]?.object }
        }
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
        var fresh: [ObjectKey: Cached] = [:]
        fresh.reserveCapacity(items.count)
        for item in items {
            let object = transform(item)
            fresh[object.key] = Cached(object)
        }
        let index = State.index(fresh)
        let previous = state.withLock { state in
            let previous = state.objects
            state.objects = fresh
            state.byController = index
            state.hasSynced = true
            return previous
        }
        synced.fire()
        var changes: [StoreChange<Object>] = []
        for (key, cached) in fresh {
            let object = cached.object
            if let old = previous[key]?.object {
                if old.metadata.resourceVersion != object.metadata.resourceVersion
                    || old.metadata.uid != object.metadata.uid {
                    changes.append(.updated(old: old, new: object))
                }
            } else {
                changes.append(.added(object))
            }
        }
        for (key, old) in previous where fresh[key] == nil {
            changes.append(.deleted(old.object))
        }
        return changes
    }

    /// Stores an added or modified object and returns the change.
    @discardableResult
    public func apply(_ item: Object) -> StoreChange<Object> {
        let object = transform(item)
        let old = state.withLock { state in state.store(object) }
        return old.map { .updated(old: $0, new: object) } ?? .added(object)
    }

    /// Removes a deleted object and returns the change (carrying the object's final state).
    @discardableResult
    public func remove(_ item: Object) -> StoreChange<Object> {
        let object = transform(item)
        _ = state.withLock { state in state.delete(object.key) }
        return .deleted(object)
    }
}

/// The keys of the objects one controller UID controls: mostly a single one (a build's Job, Pod or
/// record), which is kept without the allocation of a set.
enum ControlledKeys: Sendable, Hashable {
    case one(ObjectKey)
    case many(Set<ObjectKey>)

    var keys: [ObjectKey] {
        switch self {
        case .one(let key): [key]
        case .many(let keys): Array(keys)
        }
    }

    func inserting(_ key: ObjectKey) -> ControlledKeys {
        switch self {
        case .one(let existing): return existing == key ? self : .many([existing, key])
        case .many(var keys):
            keys.insert(key)
            return .many(keys)
        }
    }

    /// nil once no key is left.
    func removing(_ key: ObjectKey) -> ControlledKeys? {
        switch self {
        case .one(let existing): return existing == key ? nil : self
        case .many(var keys):
            keys.remove(key)
            if keys.count == 1, let last = keys.first { return .one(last) }
            return keys.isEmpty ? nil : .many(keys)
        }
    }
}
