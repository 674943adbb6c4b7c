import KubeTestSupport
import KubeClient
import KubeTypes
import Testing

@testable import KubeRuntime

@Suite("Store")
struct StoreTests {
    func configMap(_ name: String, version: String, namespace: String = "ns") -> ConfigMap {
        var meta = ObjectMeta(name: name, namespace: namespace, resourceVersion: version)
        meta.managedFields = [.object(["manager": "kubectl"])]
        return ConfigMap(metadata: meta, data: ["v": version])
    }

    @Test func replaceReportsWhatChangedAndMarksSynced() {
        let store = Store<ConfigMap>()
        #expect(!store.hasSynced)
        let first = store.replace(with: [configMap("a", version: "1"), configMap("b", version: "1")])
        #expect(store.hasSynced)
        #expect(first.count == 2)
        let second = store.replace(with: [configMap("a", version: "1"), configMap("b", version: "2"), configMap("c", version: "3")])
        let summary = second.map { change -> String in
            switch change {
            case .added(let object): return "added \(object.metadata.name!)"
            case .updated(let old, let new): return "updated \(new.metadata.name!) \(old.metadata.resourceVersion!)→\(new.metadata.resourceVersion!)"
            case .deleted(let object): return "deleted \(object.metadata.name!)"
            }
        }.sorted()
        #expect(summary == ["added c", "updated b 1→2"])
        let third = store.replace(with: [configMap("c", version: "3")])
        #expect(Set(third.map { $0.object.metadata.name! }) == ["a", "b"])
        #expect(store.keys == [ObjectKey(namespace: "ns", name: "c")])
    }

    @Test func watchEventsApplyAndRemove() {
        let store = Store<ConfigMap>()
        if case .added = store.apply(configMap("a", version: "1")) {} else { Issue.record("expected added") }
        if case .updated(let old, _) = store.apply(configMap("a", version: "2")) {
            #expect(old.metadata.resourceVersion == "1")
        } else {
            Issue.record("expected updated")
        }
        #expect(store.get(name: "a", namespace: "ns")?.data?["v"] == "2")
        if case .deleted = store.remove(configMap("a", version: "3")) {} else { Issue.record("expected deleted") }
        #expect(store.get(name: "a", namespace: "ns") == nil)
        #expect(store.count == 0)
    }

    @Test func objectsAreFoundByTheirControllersUID() {
        func owned(_ name: String, by uid: String?, controller: Bool = true, namespace: String = "ns") -> ConfigMap {
            var object = configMap(name, version: "1", namespace: namespace)
            object.metadata.ownerReferences = uid.map {
                [OwnerReference(apiVersion: "v1", kind: "Owner", name: "owner", uid: $0, controller: controller)]
            }
            return object
        }
        func names(_ objects: [ConfigMap]) -> [String] { objects.compactMap(\.metadata.name).sorted() }
        let store = Store<ConfigMap>()
        store.replace(with: [owned("a", by: "u1"), owned("b", by: "u1", namespace: "other"), owned("c", by: "u2"),
                             owned("d", by: "u1", controller: false), owned("e", by: nil)])
        #expect(names(store.list(controlledBy: "u1")) == ["a", "b"])
        #expect(names(store.list(controlledBy: "u2")) == ["c"])
        // A watch event that moves an object to another controller moves it in the index.
        store.apply(owned("a", by: "u2"))
        #expect(names(store.list(controlledBy: "u1")) == ["b"])
        #expect(names(store.list(controlledBy: "u2")) == ["a", "c"])
        store.apply(owned("d", by: "u1"))
        #expect(names(store.list(controlledBy: "u1")) == ["b", "d"])
        store.remove(owned("b", by: "u1", namespace: "other"))
        store.apply(owned("c", by: nil))
        #expect(names(store.list(controlledBy: "u1")) == ["d"])
        #expect(names(store.list(controlledBy: "u2")) == ["a"])
        // A relist rebuilds the index from what the list holds.
        store.replace(with: [owned("x", by: "u3")])
        #expect(store.list(controlledBy: "u1").isEmpty && store.list(controlledBy: "u2").isEmpty)
        #expect(names(store.list(controlledBy: "u3")) == ["x"])
        #expect(names(StoreSet([store, Store<ConfigMap>()]).list(controlledBy: "u3")) == ["x"])
    }

    @Test func managedFieldsAreDroppedByDefault() {
        let store = Store<ConfigMap>()
        store.apply(configMap("a", version: "1"))
        #expect(store.get(name: "a", namespace: "ns")?.metadata.managedFields == nil)
        let keeping = Store<ConfigMap>(transform: StoreTransforms.identity)
        keeping.apply(configMap("a", version: "1"))
        #expect(keeping.get(name: "a", namespace: "ns")?.metadata.managedFields != nil)
    }

    @Test func jobsKeepOnlyASummaryOfTheirPodTemplate() {
        var container = Container(name: "build", image: "builder:1", command: ["sh", "-c", "long script"], args: ["x"])
        container.env = [EnvVar(name: "SECRET", value: "value")]
        var podSpec = PodSpec(containers: [container], volumes: [Volume(name: "work")], restartPolicy: "Never")
        podSpec.serviceAccountName = "builder"
        var meta = ObjectMeta(name: "job", namespace: "ns")
        meta.managedFields = [.object(["manager": "x"])]
        let job = Job(metadata: meta, spec: JobSpec(
            template: PodTemplateSpec(metadata: ObjectMeta(labels: ["app": "build"]), spec: podSpec), backoffLimit: 0),
            status: JobStatus(active: 1))
        var selected = job
        selected.spec?.selector = ["matchLabels": ["controller-uid": "u"]]
        let summary = StoreTransforms.summarizeJob(selected)
        #expect(summary.metadata.managedFields == nil)
        #expect(summary.status == job.status)
        #expect(summary.spec?.backoffLimit == 0)
        #expect(summary.spec?.template.metadata == nil)
        #expect(summary.spec?.selector == nil)
        let kept = summary.spec?.template.spec
        #expect(kept?.containers == [Container(name: "build", image: "builder:1")])
        #expect(kept?.restartPolicy == "Never")
        #expect(kept?.volumes == nil)
        #expect(kept?.serviceAccountName == nil)
    }

    @Test func waitUntilSyncedReturnsAfterTheFirstList() async throws {
        let store = Store<ConfigMap>()
        let waiting = Task { await store.waitUntilSynced() }
        defer { waiting.cancel() }
        store.replace(with: [])
        try await withTimeout(.seconds(10), "waitUntilSynced() returns after the first list") { await waiting.value }
        #expect(store.hasSynced)
        try await withTimeout(.seconds(10), "waitUntilSynced() of a synced store returns at once") {
            await store.waitUntilSynced()
        }
    }
}
