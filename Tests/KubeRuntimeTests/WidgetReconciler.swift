import KubeTestSupport
import KubeClient
import KubeRuntime
import KubeTypes

/// The test controller's logic: each Widget gets `status.observedSize = spec.size`, and (when
/// asked) an owned ConfigMap `<name>-config` holding the size.
struct WidgetReconciler: Reconciler {
    let client: KubernetesClient
    let widgets: Store<Widget>
    var configMaps: Store<ConfigMap>?
    var events: EventRecorder?
    /// How often each key was reconciled.
    let counts = Shared<[ObjectKey: Int]>([:])

    func reconcile(_ key: ObjectKey) async throws -> ReconcileResult {
        counts.withLock { $0[key, default: 0] += 1 }
        guard let widget = widgets.get(key), let spec = widget.spec, let namespace = key.namespace else { return .done }
        if let configMaps {
            try await ensureConfigMap(for: widget, size: spec.size, namespace: namespace, cached: configMaps)
        }
        if widget.status?.observedSize != spec.size {
            let status: JSONValue = .object(["status": .object([
                "observedSize": .int(Int64(spec.size)), "observedGeneration": .int(widget.metadata.generation ?? 0),
            ])])
            _ = try await client.patchStatus(Widget.self, name: key.name, namespace: namespace, patch: .merge(status))
            events?.record(widget, .normal, reason: "Converged", message: "size is \(spec.size)")
        }
        return .done
    }

    private func ensureConfigMap(for widget: Widget, size: Int, namespace: String, cached: Store<ConfigMap>) async throws {
        let name = "\(widget.metadata.name ?? "")-config"
        let wanted = ["size": String(size)]
        if let existing = cached.get(name: name, namespace: namespace) {
            guard existing.data != wanted else { return }
            _ = try await client.patch(ConfigMap.self, name: name, namespace: namespace,
                                       patch: .merge(.object(["data": .object(["size": .string(String(size))])])))
            return
        }
        let configMap = ConfigMap(metadata: ObjectMeta(name: name, namespace: namespace,
                                                       ownerReferences: [.controller(of: widget)]),
                                  data: wanted)
        do {
            _ = try await client.create(configMap)
        } catch let error as APIError where error.isAlreadyExists {
            // Deterministic name: it exists already (the cache lags); the next event converges it.
        }
    }
}
