import DequeModule
import Foundation
import KubeClient
import KubeTypes
import Logging
import Synchronization

/// The type of an Event.
public enum EventType: String, Sendable, Hashable {
    case normal = "Normal"
    case warning = "Warning"
}

/// Records core/v1 Events about objects, aggregated the way `kubectl describe` shows them: the
/// same object, type, reason and message again increments `count` and moves `lastTimestamp` of
/// the Event already written (a patch) instead of writing a new one.
///
/// `record` never blocks and never fails: events go into a bounded buffer (repeats of a pending
/// event merge into it) and are sent by `run()`, which a `Controller` runs in its task tree. When
/// the buffer is full, new events are dropped with a log line.
public final class EventRecorder: Sendable {
    /// The same object, type, reason and message: one Event, counted.
    struct AggregationKey: Hashable, Sendable {
        var apiVersion: String?
        var kind: String?
        var namespace: String?
        var name: String?
        var uid: String?
        var type: EventType
        var reason: String
        var message: String
    }

    struct Pending: Sendable {
        var reference: ObjectReference
        var occurrences: Int
        var firstSeen: Date
        var lastSeen: Date
    }

    /// An Event already written.
    struct Written: Sendable {
        var name: String
        var namespace: String
        var count: Int
    }

    private struct State {
        var order = Deque<AggregationKey>()
        var pending: [AggregationKey: Pending] = [:]
        var written: [AggregationKey: Written] = [:]
        var writtenOrder = Deque<AggregationKey>()
        var dropped = 0
        var finishing = false
        var running = false
    }

    public let client: KubernetesClient
    /// `source.component` and `reportingComponent` of the events (e.g. the controller's name).
    public let component: String
    /// `source.host` and `reportingInstance` (the pod's name by default: the hostname).
    public let instance: String
    /// How many distinct events may wait to be sent.
    public let capacity: Int
    /// How many written events are remembered for aggregation.
    public let memory: Int
    private let state = Mutex(State())
    private let wake: AsyncStream<Void>.Continuation
    private let wakes: AsyncStream<Void>
    private let logger: Logger

    public init(client: KubernetesClient, component: String, instance: String = ProcessInfo.processInfo.hostName,
                capacity: Int = 1000, memory: Int = 4096, logger: Logger = Logger(label: "kube-runtime.events")) {
        self.client = client
        self.component = component
        self.instance = instance
        self.capacity = capacity
        self.memory = memory
        self.logger = logger
        (wakes, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    // MARK: - Recording

    /// Records an event about `object`.
    public func record<Object: KubeObject>(_ object: Object, _ type: EventType, reason: String, message: String) {
        record(about: ObjectReference(to: object), type, reason: reason, message: message)
    }

    /// Records an event about the referenced object.
    public func record(about reference: ObjectReference, _ type: EventType, reason: String, message: String) {
        // The API rejects long messages; keep the start.
        let message = message.count > 1024 ? String(message.prefix(1021)) + "..." : message
        var reference = reference
        reference.resourceVersion = nil  // the same object at another version is the same object
        let key = AggregationKey(apiVersion: reference.apiVersion, kind: reference.kind, namespace: reference.namespace,
                                 name: reference.name, uid: reference.uid, type: type, reason: reason, message: message)
        let now = Date()
        let droppedNow = state.withLock { state -> Bool in
            if state.pending[key] != nil {
                state.pending[key]!.occurrences += 1
                state.pending[key]!.lastSeen = now
                return false
            }
            guard state.order.count < capacity, !state.finishing else {
                state.dropped += 1
                return true
            }
            state.order.append(key)
            state.pending[key] = Pending(reference: reference, occurrences: 1, firstSeen: now, lastSeen: now)
            return false
        }
        if droppedNow {
            logger.warning("event buffer full; dropping event", metadata: [
                "reason": "\(reason)", "object": "\(reference.kind ?? "")/\(reference.name ?? "")",
            ])
        } else {
            wake.yield()
        }
    }

    /// Distinct events waiting to be sent.
    public var pendingCount: Int { state.withLock { $0.order.count } }

    /// Events dropped because the buffer was full.
    public var droppedCount: Int { state.withLock { $0.dropped } }

    // MARK: - Sending

    /// Sends recorded events until cancelled, or until `finish()` was called and nothing is left.
    public func run() async {
        let alreadyRunning = state.withLock { state in
            defer { state.running = true }
            return state.running
        }
        precondition(!alreadyRunning, "EventRecorder.run() is already running")
        defer { state.withLock { $0.running = false } }
        wake.yield()
        for await _ in wakes {
            while let next = takeNext() {
                if Task.isCancelled { return }
                await send(next.key, next.pending)
            }
            if state.withLock({ $0.finishing }) { return }
        }
    }

    /// Asks `run()` to send what is pending and return. Events recorded afterwards are dropped.
    public func finish() {
        state.withLock { $0.finishing = true }
        wake.yield()
    }

    private func takeNext() -> (key: AggregationKey, pending: Pending)? {
        state.withLock { state in
            guard let key = state.order.popFirst(), let pending = state.pending.removeValue(forKey: key) else {
                return nil
            }
            return (key, pending)
        }
    }

    private func send(_ key: AggregationKey, _ pending: Pending) async {
        let written = state.withLock { $0.written[key] }
        do {
            if let written {
                let count = written.count + pending.occurrences
                let patch: JSONValue = .object([
                    "count": .int(Int64(count)),
                    "lastTimestamp": .string(KubeJSON.formatTimestamp(pending.lastSeen)),
                ])
                do {
                    _ = try await client.patch(Event.self, name: written.name, namespace: written.namespace, patch: .merge(patch))
                    remember(key, Written(name: written.name, namespace: written.namespace, count: count))
                    return
                } catch let error as APIError where error.isNotFound {
                    // Expired (events live an hour by default) or deleted: start a new one.
                }
            }
            let event = makeEvent(key, pending)
            let created = try await client.createEvent(event)
            remember(key, Written(name: created.metadata.name ?? event.metadata.name ?? "",
                                  namespace: created.metadata.namespace ?? event.metadata.namespace ?? "default",
                                  count: pending.occurrences))
        } catch {
            if Task.isCancelled { return }
            logger.warning("could not write event", metadata: [
                "reason": "\(key.reason)", "object": "\(key.kind ?? "")/\(key.name ?? "")", "error": "\(error)",
            ])
        }
    }

    private func makeEvent(_ key: AggregationKey, _ pending: Pending) -> Event {
        // Cluster-scoped objects' events go to `default`, as client-go does.
        let namespace = pending.reference.namespace ?? "default"
        let stamp = String(UInt64(pending.firstSeen.timeIntervalSince1970 * 1e9), radix: 16)
        var event = Event(
            metadata: ObjectMeta(name: "\(pending.reference.name ?? "unknown").\(stamp)", namespace: namespace),
            involvedObject: pending.reference, reason: key.reason, message: key.message, type: key.type.rawValue,
            count: Int32(clamping: pending.occurrences), firstTimestamp: pending.firstSeen,
            lastTimestamp: pending.lastSeen, source: EventSource(component: component, host: instance))
        event.reportingComponent = component
        event.reportingInstance = instance
        return event
    }

    private func remember(_ key: AggregationKey, _ written: Written) {
        state.withLock { state in
            if state.written.updateValue(written, forKey: key) == nil {
                state.writtenOrder.append(key)
                while state.writtenOrder.count > memory, let oldest = state.writtenOrder.popFirst() {
                    state.written[oldest] = nil
                }
            }
        }
    }
}
