import Foundation

/// A status condition in the Kubernetes convention, as kstatus readers (Flux, kpt, `kubectl wait`)
/// expect it.
public struct Condition: Codable, Sendable, Hashable {
    /// `Ready`, `Reconciling` or `Stalled` here.
    public var type: String
    /// `True`, `False` or `Unknown`.
    public var status: String
    /// A CamelCase word saying why.
    public var reason: String?
    public var message: String?
    /// The `metadata.generation` this condition was computed for.
    public var observedGeneration: Int64?
    /// When `status` last changed.
    public var lastTransitionTime: Date?

    public init(type: String, status: String, reason: String? = nil, message: String? = nil,
                observedGeneration: Int64? = nil, lastTransitionTime: Date? = nil) {
        self.type = type
        self.status = status
        self.reason = reason
        self.message = message
        self.observedGeneration = observedGeneration
        self.lastTransitionTime = lastTransitionTime
    }

    public static let ready = "Ready"
    public static let reconciling = "Reconciling"
    public static let stalled = "Stalled"
    /// True when another controller writes this build's objects (PrimeHub's builder still running).
    public static let foreignController = "ForeignController"

    public var isTrue: Bool { status == "True" }
}

extension Array where Element == Condition {
    public subscript(type: String) -> Condition? { first { $0.type == type } }

    /// Sets the condition of `condition.type`. `lastTransitionTime` becomes `now` when the status
    /// changed and stays as it was otherwise.
    public mutating func set(_ condition: Condition, now: Date) {
        var updated = condition
        if let index = firstIndex(where: { $0.type == condition.type }) {
            updated.lastTransitionTime = self[index].status == condition.status
                ? self[index].lastTransitionTime ?? now : now
            self[index] = updated
        } else {
            updated.lastTransitionTime = now
            append(updated)
        }
    }
}

/// Where an ImageSpec stands, as kstatus sees it. Each case sets `Ready`, `Reconciling` and
/// `Stalled` together so they never contradict one another.
public enum ReconcileState: Sendable, Hashable {
    /// A built image for the current generation is available.
    case ready(reason: String, message: String)
    /// Work in progress (build pending or running).
    case reconciling(reason: String, message: String)
    /// Cannot progress without a change (invalid spec, missing secret, failed build).
    case stalled(reason: String, message: String)
}

extension ImageSpecStatus {
    /// Writes the three kstatus conditions and `observedGeneration` for `state`.
    public mutating func setState(_ state: ReconcileState, generation: Int64?, now: Date) {
        let (ready, reconciling, stalled, reason, message): (Bool, Bool, Bool, String, String)
        switch state {
        case .ready(let r, let m): (ready, reconciling, stalled, reason, message) = (true, false, false, r, m)
        case .reconciling(let r, let m): (ready, reconciling, stalled, reason, message) = (false, true, false, r, m)
        case .stalled(let r, let m): (ready, reconciling, stalled, reason, message) = (false, false, true, r, m)
        }
        var list = conditions ?? []
        for (type, isTrue) in [(Condition.ready, ready), (Condition.reconciling, reconciling), (Condition.stalled, stalled)] {
            list.set(
                Condition(type: type, status: isTrue ? "True" : "False", reason: reason, message: message,
                          observedGeneration: generation),
                now: now)
        }
        conditions = list
        observedGeneration = generation
    }
}
