import Foundation

/// `coordination.k8s.io/v1` Lease, used for leader election.
public struct Lease: KubeObject, Hashable {
    public static let resourceType = ResourceType.leases
    public var apiVersion: String? = "coordination.k8s.io/v1"
    public var kind: String? = "Lease"
    public var metadata: ObjectMeta
    public var spec: LeaseSpec?

    public init(metadata: ObjectMeta, spec: LeaseSpec? = nil) {
        self.metadata = metadata
        self.spec = spec
    }
}

public struct LeaseSpec: Codable, Sendable, Hashable {
    public var holderIdentity: String?
    public var leaseDurationSeconds: Int32?
    /// MicroTime on the wire.
    public var acquireTime: MicroTime?
    public var renewTime: MicroTime?
    public var leaseTransitions: Int32?

    public init(holderIdentity: String? = nil, leaseDurationSeconds: Int32? = nil, acquireTime: MicroTime? = nil,
                renewTime: MicroTime? = nil, leaseTransitions: Int32? = nil) {
        self.holderIdentity = holderIdentity
        self.leaseDurationSeconds = leaseDurationSeconds
        self.acquireTime = acquireTime
        self.renewTime = renewTime
        self.leaseTransitions = leaseTransitions
    }
}

/// A timestamp with microseconds (`2024-01-02T03:04:05.123456Z`), as Leases and Events use.
public struct MicroTime: Codable, Sendable, Hashable, Comparable {
    public var date: Date

    public init(_ date: Date) { self.date = date }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let date = KubeJSON.parseTimestamp(text) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "not an RFC 3339 timestamp: \(text)")
        }
        self.date = date
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(KubeJSON.formatMicroTimestamp(date))
    }

    public static func < (lhs: MicroTime, rhs: MicroTime) -> Bool { lhs.date < rhs.date }
}
