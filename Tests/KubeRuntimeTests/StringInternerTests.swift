import KubeRuntime
import KubeTypes
import Testing

/// Cached objects share one copy of the strings they repeat, and only those.
@Suite struct StringInternerTests {
    /// Where a native string keeps its bytes: equal for two strings that share one allocation.
    static func storage(_ text: String) -> UInt? {
        var text = text
        return text.withUTF8 { $0.baseAddress.map { UInt(bitPattern: $0) } }
    }

    static func fresh(_ text: String) -> String { String(decoding: Array(text.utf8), as: UTF8.self) }

    @Test func equalLongStringsShareOneCopy() {
        let interner = StringInterner(capacity: 10)
        let first = Self.fresh("app.kubernetes.io/managed-by"), second = Self.fresh("app.kubernetes.io/managed-by")
        #expect(Self.storage(first) != Self.storage(second))
        let a = interner.intern(first), b = interner.intern(second)
        #expect(a == second && b == second)
        #expect(Self.storage(a) == Self.storage(b))
        #expect(interner.count == 1)
    }

    @Test func shortStringsAreLeftAlone() {
        let interner = StringInterner(capacity: 10)
        #expect(interner.intern("batch/v1") == "batch/v1")
        #expect(interner.count == 0)
    }

    @Test func aFullTableStillSharesWhatItHoldsAndPassesTheRestThrough() {
        let interner = StringInterner(capacity: 2)
        let kept = interner.intern(Self.fresh("first-long-label-key-0001"))
        _ = interner.intern(Self.fresh("second-long-label-key-002"))
        let third = Self.fresh("third-long-label-key-0003")
        let passed = interner.intern(third)
        #expect(passed == third && Self.storage(passed) == Self.storage(third))
        #expect(interner.count == 2)
        #expect(Self.storage(interner.intern(Self.fresh("first-long-label-key-0001"))) == Self.storage(kept))
    }

    @Test func metadataKeepsItsValues() {
        let interner = StringInterner(capacity: 100)
        var metadata = ObjectMeta(name: "b", namespace: "ns",
                                  labels: ["app.kubernetes.io/managed-by": "image-builder", "imagespecs.primehub.io/name": "b"],
                                  annotations: ["image-builder.primehub.io/target-image": "registry.example/x:1"],
                                  ownerReferences: [OwnerReference(apiVersion: "primehub.io/v1alpha1", kind: "ImageSpec", name: "b", uid: "u")])
        metadata.managedFields = [["manager": "x"]]
        let interned = interner.intern(metadata)
        #expect(interned == metadata)
        #expect(interner.count == 4)
        let again = interner.intern(ObjectMeta(labels: [Self.fresh("app.kubernetes.io/managed-by"): "image-builder"]))
        let key = again.labels!.keys.first!
        #expect(Self.storage(key) == Self.storage(interned.labels!.keys.first { $0 == key }!))
    }

    @Test func compactIsStripManagedFieldsWithTheSameValues() {
        var meta = ObjectMeta(name: "c", namespace: "ns", labels: ["a-long-enough-label-key": "v"])
        meta.managedFields = [["manager": "x"]]
        let configMap = ConfigMap(metadata: meta, data: ["k": "v"])
        #expect(StoreTransforms.compact(configMap) == StoreTransforms.stripManagedFields(configMap))
    }
}
