import KubeTestSupport
import Foundation
import KubeClient
import KubeRuntime
import KubeTypes
import TestHarness
import Testing

@Suite("Controller against a real kube-apiserver")
struct ControllerIntegrationTests {
    @Test func convergesManyObjectsAndCountsReconciles() async throws {
        let registry = MetricsBootstrap.prometheus()
        let cp = try await ControlPlane.shared()
        try await Widget.install(on: cp)
        let client = try cp.client()
        let namespace = try await cp.makeNamespace("converge")
        let count = 25
        for index in 0..<count {
            _ = try await client.create(Widget(name: "w\(index)", namespace: namespace, size: index))
        }
        let widgets = Watcher(client: client, Widget.self, scope: WatchScope(namespace: namespace))
        let reconciler = WidgetReconciler(client: client, widgets: widgets.store)
        let controllerName = "converge-\(namespace)"
        let controller = Controller(name: controllerName, reconciler: reconciler, workers: 3)
        controller.watch(widgets)

        try await whileRunning([{ try await controller.run() }]) {
            try await eventually("all widgets converge") {
                let listed = try await client.list(Widget.self, namespace: namespace).items
                return listed.count == count && listed.allSatisfy(\.isConverged)
            }
            // Changes converge too, and the cache follows.
            for index in stride(from: 0, to: count, by: 5) {
                _ = try await client.patch(Widget.self, name: "w\(index)", namespace: namespace,
                                           patch: .merge(.object(["spec": .object(["size": .int(Int64(100 + index))])])))
            }
            try await eventually("changed widgets converge") {
                let listed = try await client.list(Widget.self, namespace: namespace).items
                return listed.allSatisfy(\.isConverged) && listed.filter { ($0.spec?.size ?? 0) >= 100 }.count == count / 5
            }
            try await eventually("the cache sees the converged state") {
                widgets.store.count == count && widgets.store.list().allSatisfy(\.isConverged)
            }
        }
        #expect(controller.hasSynced)
        let metrics = registry.emitToString()
        let successes = try #require(sample(metrics, "controller_runtime_reconcile_total{controller=\"\(controllerName)\",result=\"success\"}"))
        #expect(successes >= Double(count))
        #expect(sample(metrics, "workqueue_adds_total{name=\"\(controllerName)\"}") ?? 0 >= Double(count))
        #expect(metrics.contains("controller_runtime_reconcile_time_seconds_bucket{controller=\"\(controllerName)\""))
        #expect(metrics.contains("workqueue_queue_duration_seconds_bucket{name=\"\(controllerName)\""))
        #expect(metrics.contains("rest_client_requests_total{"))
    }

    @Test func eventsOnOwnedObjectsEnqueueTheirOwner() async throws {
        let cp = try await ControlPlane.shared()
        try await Widget.install(on: cp)
        let client = try cp.client()
        let namespace = try await cp.makeNamespace("owned")
        let widgets = Watcher(client: client, Widget.self, scope: WatchScope(namespace: namespace))
        let configMaps = Watcher(client: client, ConfigMap.self, scope: WatchScope(namespace: namespace))
        let reconciler = WidgetReconciler(client: client, widgets: widgets.store, configMaps: configMaps.store)
        let controller = Controller(name: "owned-\(namespace)", reconciler: reconciler, workers: 2)
        controller.watch(widgets)
        controller.owns(configMaps, owner: Widget.resourceType)

        try await whileRunning([{ try await controller.run() }]) {
            for name in ["a", "b"] { _ = try await client.create(Widget(name: name, namespace: namespace, size: 3)) }
            try await eventually("owned ConfigMaps exist") {
                ["a", "b"].allSatisfy { configMaps.store.get(name: "\($0)-config", namespace: namespace)?.data?["size"] == "3" }
            }
            let owned = try await client.get(ConfigMap.self, name: "a-config", namespace: namespace)
            #expect(owned.metadata.controllerReference?.name == "a")
            #expect(owned.metadata.controllerReference?.kind == "Widget")
            try await eventually("reconciles settle") { await settled(reconciler.counts) }
            let before = reconciler.counts.value
            // Someone changes the owned object: its owner is reconciled and repairs it.
            _ = try await client.patch(ConfigMap.self, name: "a-config", namespace: namespace,
                                       patch: .merge(.object(["data": .object(["size": "999"])])))
            try await eventually("the owner repairs its ConfigMap") {
                let current = try await client.get(ConfigMap.self, name: "a-config", namespace: namespace)
                return current.data?["size"] == "3"
            }
            let after = reconciler.counts.value
            let a = ObjectKey(namespace: namespace, name: "a"), b = ObjectKey(namespace: namespace, name: "b")
            #expect(after[a, default: 0] > before[a, default: 0])
            #expect(after[b, default: 0] == before[b, default: 0], "an unrelated owner is not reconciled")
            // A ConfigMap without an owner enqueues nothing.
            _ = try await client.create(ConfigMap(metadata: ObjectMeta(name: "loose", namespace: namespace), data: [:]))
            try await eventually("the loose ConfigMap is cached") { configMaps.store.get(name: "loose", namespace: namespace) != nil }
            #expect(reconciler.counts.value[ObjectKey(namespace: namespace, name: "loose")] == nil)
        }
    }

    @Test func eventsAreRecordedAndAggregated() async throws {
        let cp = try await ControlPlane.shared()
        let client = try cp.client()
        let namespace = try await cp.makeNamespace("events")
        let subject = try await client.create(ConfigMap(metadata: ObjectMeta(name: "subject", namespace: namespace), data: [:]))
        let recorder = EventRecorder(client: client, component: "test-controller")
        try await whileRunning([{ await recorder.run() }]) {
            recorder.record(subject, .warning, reason: "Broken", message: "it broke")
            try await eventually("the first event is written") { try await events(client, namespace).count == 1 }
            // Two more of the same: one Event, counted, not three.
            recorder.record(subject, .warning, reason: "Broken", message: "it broke")
            try await eventually("the repeat is counted") { try await events(client, namespace).first?.count == 2 }
            recorder.record(subject, .warning, reason: "Broken", message: "it broke")
            recorder.record(subject, .normal, reason: "Fixed", message: "it works")
            try await eventually("the count and the other event arrive") {
                let all = try await events(client, namespace)
                return all.count == 2 && all.first { $0.reason == "Broken" }?.count == 3
            }
        }
        let all = try await events(client, namespace)
        let broken = try #require(all.first { $0.reason == "Broken" })
        #expect(broken.type == "Warning")
        #expect(broken.message == "it broke")
        #expect(broken.involvedObject.name == "subject")
        #expect(broken.involvedObject.kind == "ConfigMap")
        #expect(broken.involvedObject.uid == subject.metadata.uid)
        #expect(broken.source?.component == "test-controller")
        let first = try #require(broken.firstTimestamp), last = try #require(broken.lastTimestamp)
        #expect(first <= last)
        #expect(recorder.droppedCount == 0)
    }

    @Test func aFullEventBufferDropsInsteadOfBlocking() async throws {
        let cp = try await ControlPlane.shared()
        let client = try cp.client()
        let recorder = EventRecorder(client: client, component: "test", capacity: 3)
        let reference = ObjectReference(apiVersion: "v1", kind: "ConfigMap", name: "x", namespace: "default")
        // Nothing sends (run() is not running): the buffer fills, repeats merge, the rest is dropped.
        for index in 0..<10 { recorder.record(about: reference, .normal, reason: "R", message: "m\(index)") }
        recorder.record(about: reference, .normal, reason: "R", message: "m0")
        #expect(recorder.pendingCount == 3)
        #expect(recorder.droppedCount == 7)
    }

    @Test func readyzFlipsOnceCachesSyncAndMetricsAreServed() async throws {
        let registry = MetricsBootstrap.prometheus()
        let cp = try await ControlPlane.shared()
        try await Widget.install(on: cp)
        let client = try cp.client()
        let namespace = try await cp.makeNamespace("probes")
        _ = try await client.create(Widget(name: "one", namespace: namespace, size: 1))
        let widgets = Watcher(client: client, Widget.self, scope: WatchScope(namespace: namespace))
        let controller = Controller(name: "probes-\(namespace)", reconciler: WidgetReconciler(client: client, widgets: widgets.store))
        controller.watch(widgets)
        let probes = ProbeServer(host: "127.0.0.1", port: 0, registry: registry)
        probes.addHealthCheck("ping") { true }
        probes.addReadinessCheck("controller/\(controller.name)") { controller.hasSynced }

        try await whileRunning([{ try await probes.run() }]) {
            let port = try #require(await probes.waitUntilListening())
            let base = "http://127.0.0.1:\(port)"
            #expect(try await httpGet(base + "/healthz").status == 200)
            let notReady = try await httpGet(base + "/readyz")
            #expect(notReady.status == 503)
            #expect(notReady.body.contains("[-]controller/\(controller.name) failed"))
            try await whileRunning([{ try await controller.run() }]) {
                try await eventually("/readyz turns 200") { try await httpGet(base + "/readyz").status == 200 }
                let verbose = try await httpGet(base + "/readyz?verbose")
                #expect(verbose.body.contains("[+]controller/\(controller.name) ok"))
                try await eventually("the widget converges") {
                    try await client.get(Widget.self, name: "one", namespace: namespace).isConverged
                }
                try await eventually("/metrics shows the reconcile") {
                    let metrics = try await httpGet(base + "/metrics")
                    return metrics.status == 200
                        && metrics.body.contains("controller_runtime_reconcile_total{controller=\"\(controller.name)\",result=\"success\"}")
                }
                let metrics = try await httpGet(base + "/metrics").body
                for name in ["controller_runtime_reconcile_errors_total", "controller_runtime_reconcile_time_seconds",
                             "workqueue_depth", "workqueue_adds_total", "workqueue_queue_duration_seconds",
                             "workqueue_work_duration_seconds", "workqueue_retries_total", "rest_client_requests_total"] {
                    #expect(metrics.contains(name), "\(name) missing from /metrics")
                }
            }
            #expect(try await httpGet(base + "/nothing").status == 404)
        }
    }

    @Test func errorsBackOffAndTerminalErrorsAreNotRetried() async throws {
        let cp = try await ControlPlane.shared()
        try await Widget.install(on: cp)
        let client = try cp.client()
        let namespace = try await cp.makeNamespace("errors")
        _ = try await client.create(Widget(name: "flaky", namespace: namespace, size: 1))
        _ = try await client.create(Widget(name: "hopeless", namespace: namespace, size: 1))
        let widgets = Watcher(client: client, Widget.self, scope: WatchScope(namespace: namespace))
        let attempts = Shared<[String: Int]>([:])
        struct Flaky: Error {}
        let reconciler = ReconcilerFunction { key in
            let attempt = attempts.withLock { counts -> Int in
                counts[key.name, default: 0] += 1
                return counts[key.name]!
            }
            if key.name == "hopeless" { throw TerminalError("spec can never work") }
            if attempt < 4 { throw Flaky() }
            return .done
        }
        let controller = Controller(name: "errors-\(namespace)", reconciler: reconciler)
        controller.watch(widgets)
        try await whileRunning([{ try await controller.run() }]) {
            try await eventually("the flaky key succeeds after retries") { attempts.value["flaky"] == 4 }
            #expect(controller.queue.failures(of: ObjectKey(namespace: namespace, name: "flaky")) == 0)
            try await Task.sleep(for: .milliseconds(500))
            #expect(attempts.value["hopeless"] == 1, "a terminal error is not retried")
            #expect(attempts.value["flaky"] == 4, "success is not retried")
        }
    }
}

/// The Events in a namespace.
func events(_ client: KubernetesClient, _ namespace: String) async throws -> [Event] {
    try await client.list(Event.self, namespace: namespace).items
}

/// True when the counts did not change over a short while.
func settled(_ counts: Shared<[ObjectKey: Int]>) async -> Bool {
    let before = counts.value
    try? await Task.sleep(for: .milliseconds(700))
    return counts.value == before
}

/// The value of one sample line (`name{labels} value`) in Prometheus text.
func sample(_ text: String, _ series: String) -> Double? {
    for line in text.split(separator: "\n") where line.hasPrefix(series + " ") {
        return Double(line.dropFirst(series.count + 1))
    }
    return nil
}
