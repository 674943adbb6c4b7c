import KubeClient
import KubeTypes

/// What a reconcile asks for next.
public enum ReconcileResult: Sendable, Hashable {
    /// Converged; nothing to do until something changes.
    case done
    /// Look again after this long (polling something the watches do not show, or waiting).
    case requeue(after: Duration)
}

/// Converges one object: reads the current state (from caches), makes the world match the
/// desired state, writes status. Level-triggered: it is given only a key, and may be called any
/// number of times for the same key. An object that no longer exists is `.done`.
///
/// A thrown error requeues the key with per-key exponential backoff; a `TerminalError` is
/// recorded (logged, counted) and not retried until the object changes again.
public protocol Reconciler: Sendable {
    func reconcile(_ key: ObjectKey) async throws -> ReconcileResult
}

/// A reconciler made of a closure.
public struct ReconcilerFunction: Reconciler {
    private let body: @Sendable (ObjectKey) async throws -> ReconcileResult

    public init(_ body: @escaping @Sendable (ObjectKey) async throws -> ReconcileResult) {
        self.body = body
    }

    public func reconcile(_ key: ObjectKey) async throws -> ReconcileResult {
        try await body(key)
    }
}

/// An error that retrying will not fix (invalid spec, forbidden by policy): the controller records
/// it and does not requeue the key.
public struct TerminalError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var underlying: (any Error)?

    public init(_ message: String, underlying: (any Error)? = nil) {
        self.message = message
        self.underlying = underlying
    }

    /// Marks an error as terminal.
    public init(_ error: any Error) {
        self.message = String(describing: error)
        self.underlying = error
    }

    public var description: String { message }
}
