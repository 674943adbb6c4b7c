// An example controller built from KubeRuntime: every ConfigMap labelled `example.dev/mirror=true`
// gets a copy, `<name>-mirror`, that it owns. Edit or delete the copy and it comes back; delete the
// original and Kubernetes' garbage collector removes the copy.
//
//     swift run configmap-mirror --namespace default --log-format json
import ArgumentParser
import KubeClient
import KubeRuntime
import KubeTypes
import Logging

struct MirrorReconciler: Reconciler {
    let client: KubernetesClient
    let originals: Store<ConfigMap>
    let mirrors: Store<ConfigMap>
    let events: EventRecorder

    func reconcile(_ key: ObjectKey) async throws -> ReconcileResult {
        guard let original = originals.get(key) else { return .done }  // gone: GC removes the mirror
        let name = "\(key.name)-mirror"
        if let mirror = mirrors.get(name: name, namespace: key.namespace), mirror.data == original.data { return .done }
        let mirror = ConfigMap(metadata: ObjectMeta(name: name, namespace: key.namespace,
                                                    labels: ["example.dev/mirrored": "true"],
                                                    ownerReferences: [.controller(of: original)]),
                               data: original.data)
        do {
            _ = try await client.create(mirror)
        } catch let error as APIError where error.isAlreadyExists {
            _ = try await client.modify(ConfigMap.self, name: name, namespace: key.namespace) { $0.data = original.data }
        }
        events.record(original, .normal, reason: "Mirrored", message: "copied to \(name)")
        return .done
    }
}

@main
struct ConfigMapMirror: AsyncParsableCommand {
    @Option var namespace = "default"
    @Option var logFormat = "text"
    @Option var logLevel = "info"
    @Option var probePort = 8080

    func run() async throws {
        LoggingBootstrap.bootstrap(format: LogFormat(rawValue: logFormat) ?? .text,
                                   level: LoggingBootstrap.level(named: logLevel) ?? .info)
        let registry = MetricsBootstrap.prometheus()
        let client = KubernetesClient(configuration: try ClientConfiguration.load())

        let originals = Watcher(client: client, ConfigMap.self,
                                scope: WatchScope(namespace: namespace, labelSelector: "example.dev/mirror=true"))
        let mirrors = Watcher(client: client, ConfigMap.self,
                              scope: WatchScope(namespace: namespace, labelSelector: "example.dev/mirrored=true"))
        let events = EventRecorder(client: client, component: "configmap-mirror")
        let elector = LeaderElector(client: client, configuration: .init(leaseName: "configmap-mirror", namespace: namespace))
        let reconciler = MirrorReconciler(client: client, originals: originals.store, mirrors: mirrors.store, events: events)

        let controller = Controller(name: "configmap-mirror", reconciler: reconciler, workers: 2,
                                    leaderElector: elector, eventRecorder: events)
        controller.watch(originals)
        controller.owns(mirrors, owner: ConfigMap.resourceType)

        let manager = ControllerManager(leaderElector: elector,
                                        probeServer: ProbeServer(port: probePort, registry: registry))
        manager.add(controller)
        try await manager.run()  // until SIGTERM/SIGINT; throws if leadership is lost
    }
}
