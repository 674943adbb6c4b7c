import KubeTypes
import Synchronization

/// Shares one copy of the strings that many cached objects repeat: label and annotation keys,
/// owner API versions, container images. Swift keeps each decoded string of more than 15 UTF-8
/// bytes in an allocation of its own, so 10,000 cached Jobs would otherwise hold 10,000 copies of
/// `app.kubernetes.io/managed-by`.
///
/// The table is bounded: once it holds `capacity` strings, strings it does not know pass through
/// unchanged (kept, not shared), so a stream of distinct keys cannot grow it without limit.
public final class StringInterner: Sendable {
    /// The table the store transforms use.
    public static let shared = StringInterner(capacity: 16_384)

    public let capacity: Int
    private let table = Mutex(Set<String>())

    public init(capacity: Int) {
        self.capacity = max(capacity, 0)
    }

    /// The shared copy of `text` (equal to it); `text` itself when it is short enough to be stored
    /// inline, or when the table is full and does not hold it.
    public func intern(_ text: String) -> String {
        guard text.utf8.count > 15 else { return text }
        return table.withLock { table in
            if table.count < capacity { return table.insert(text).memberAfterInsert }
            return table.firstIndex(of: text).map { table[$0] } ?? text
        }
    }

    /// How many strings the table holds.
    public var count: Int { table.withLock { $0.count } }

    /// `metadata` with its label and annotation keys and its owners' API versions and kinds shared.
    public func intern(_ metadata: ObjectMeta) -> ObjectMeta {
        var metadata = metadata
        if let labels = metadata.labels { metadata.labels = internKeys(labels) }
        if let annotations = metadata.annotations { metadata.annotations = internKeys(annotations) }
        if let owners = metadata.ownerReferences {
            metadata.ownerReferences = owners.map { owner in
                var owner = owner
                owner.apiVersion = intern(owner.apiVersion)
                owner.kind = intern(owner.kind)
                return owner
            }
        }
        return metadata
    }

    private func internKeys(_ dictionary: [String: String]) -> [String: String] {
        var shared = [String: String](minimumCapacity: dictionary.count)
        for (key, value) in dictionary { shared[intern(key)] = value }
        return shared
    }
}
