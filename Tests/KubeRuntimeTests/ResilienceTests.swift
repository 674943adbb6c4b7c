import KubeTestSupport
import Foundation
import KubeClient
import KubeRuntime
import KubeTypes
import TestHarness
import Testing

/// Tests that disturb their control plane: each starts its own, one at a time.
@Suite("Watchers and controllers through compaction and API server restarts", .serialized)
struct ResilienceTests {
    @Test func compactionDuringAWatchRelistsAndMissesNoChange() async throws {
        // Without the watch cache, watching from a compacted revision is answered with 410.
        try await ControlPlane.withControlPlane(.init(watchCache: false)) { cp in
            let client = try cp.client()
            let namespace = try await cp.makeNamespace("compaction")
            for index in 0..<5 {
                _ = try await client.create(ConfigMap(metadata: ObjectMeta(name: "c\(index)", namespace: namespace), data: ["v": "0"]))
            }
            // A long reconnect delay, so the changes below most likely happen while the watcher is away.
            let configuration = WatcherStateMachine.Configuration(
                backoff: Backoff(initial: .seconds(10), maximum: .seconds(10), jitter: 0.1))
            let watcher = Watcher(client: client, ConfigMap.self, scope: WatchScope(namespace: namespace),
                                  configuration: configuration)
            let deletions = Shared<[String]>([])
            watcher.addHandler { change in
                if case .deleted(let object) = change { deletions.withLock { $0.append(object.metadata.name ?? "") } }
            }
            try await whileRunning([{ await watcher.run() }]) {
                try await eventually("the watcher syncs") { watcher.hasSynced && watcher.store.count == 5 }
                try await update(client, "c0", namespace, to: "1")
                try await eventually("a live change arrives") { watcher.store.get(name: "c0", namespace: namespace)?.data?["v"] == "1" }

                // Move etcd's revision past the watcher's with a write it does not watch, then compact
                // while the API server is down: the watcher's resourceVersion is gone when it comes back.
                _ = try await client.create(ConfigMap(metadata: ObjectMeta(name: "elsewhere-\(namespace)", namespace: "default")))
                await cp.stopAPIServer()
                let compacted = try await cp.compactEtcd()
                try await cp.startAPIServer()

                try await update(client, "c1", namespace, to: "2")
                try await client.delete(ConfigMap.self, name: "c2", namespace: namespace)
                _ = try await client.create(ConfigMap(metadata: ObjectMeta(name: "c9", namespace: namespace), data: ["v": "9"]))

                try await eventually(timeout: .seconds(90), "the cache matches the server after the relist") {
                    try await sameContent(watcher.store, try await client.list(ConfigMap.self, namespace: namespace).items)
                }
                let statistics = watcher.statistics
                #expect(statistics.expired >= 1, "expected a 410 after compaction at \(compacted): \(statistics)")
                #expect(statistics.lists >= 2, "expected a relist: \(statistics)")
                #expect(deletions.value.contains("c2"), "the relist reports the deletion it found")

                // And it watches again.
                try await update(client, "c3", namespace, to: "3")
                try await eventually("changes after the relist arrive") {
                    watcher.store.get(name: "c3", namespace: namespace)?.data?["v"] == "3"
                }
            }
        }
    }

    @Test func controllerResumesAndConvergesAfterTheAPIServerIsKilledAndRestarted() async throws {
        try await ControlPlane.withControlPlane { cp in
            try await Widget.install(on: cp)
            let client = try cp.client()
            let namespace = try await cp.makeNamespace("restart")
            for index in 0..<10 { _ = try await client.create(Widget(name: "w\(index)", namespace: namespace, size: index)) }
            let widgets = Watcher(client: client, Widget.self, scope: WatchScope(namespace: namespace))
            let controller = Controller(name: "restart-\(namespace)",
                                        reconciler: WidgetReconciler(client: client, widgets: widgets.store), workers: 2)
            controller.watch(widgets)
            try await whileRunning([{ try await controller.run() }]) {
                try await eventually("widgets converge") { try await allConverged(client, namespace, count: 10) }
                // Changes in flight when the server dies.
                for index in 0..<10 {
                    _ = try await client.patch(Widget.self, name: "w\(index)", namespace: namespace,
                                               patch: .merge(.object(["spec": .object(["size": .int(Int64(50 + index))])])))
                }
                await cp.killAPIServer()
                try await Task.sleep(for: .seconds(1))
                try await cp.startAPIServer()
                for index in 10..<15 {
                    _ = try await client.create(Widget(name: "w\(index)", namespace: namespace, size: index))
                }
                try await eventually(timeout: .seconds(120), "widgets converge after the restart") {
                    try await allConverged(client, namespace, count: 15)
                }
                #expect(widgets.statistics.failures >= 1, "the watch should have noticed the outage")
            }
        }
    }
}

private func update(_ client: KubernetesClient, _ name: String, _ namespace: String, to value: String) async throws {
    _ = try await client.patch(ConfigMap.self, name: name, namespace: namespace,
                               patch: .merge(.object(["data": .object(["v": .string(value)])])))
}

/// The store holds exactly these objects, at these versions.
private func sameContent(_ store: Store<ConfigMap>, _ objects: [ConfigMap]) async throws -> Bool {
    let cached = Dictionary(uniqueKeysWithValues: store.list().map { ($0.key, $0.metadata.resourceVersion) })
    let actual = Dictionary(uniqueKeysWithValues: objects.map { ($0.key, $0.metadata.resourceVersion) })
    return cached == actual
}

private func allConverged(_ client: KubernetesClient, _ namespace: String, count: Int) async throws -> Bool {
    do {
        let listed = try await client.list(Widget.self, namespace: namespace).items
        return listed.count == count && listed.allSatisfy(\.isConverged)
    } catch {
        return false  // the server may still be coming back
    }
}
