// Client benchmark: our KubeClient against `kubectl`, on a local control plane started by the
// test harness. Not a test: it prints figures.
//
//   swift run -c release client-benchmark [--objects N] [--concurrency C] [--kubectl-create-sample N]
import Foundation
import KubeClient
import TestHarness

struct Options {
    var objects = 1_000
    var concurrency = 32
    var kubectlCreateSample = 100

    init(arguments: [String]) {
        var iterator = arguments.dropFirst().makeIterator()
        while let argument = iterator.next() {
            switch argument {
            case "--objects": objects = iterator.next().flatMap(Int.init) ?? objects
            case "--concurrency": concurrency = iterator.next().flatMap(Int.init) ?? concurrency
            case "--kubectl-create-sample": kubectlCreateSample = iterator.next().flatMap(Int.init) ?? kubectlCreateSample
            default:
                FileHandle.standardError.write(Data("unknown argument \(argument)\n".utf8))
                exit(2)
            }
        }
    }
}

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

func measure<T>(_ body: @Sendable () async throws -> T) async rethrows -> (T, Double) {
    let start = ContinuousClock.now
    let result = try await body()
    return (result, seconds(ContinuousClock.now - start))
}

func configMap(_ index: Int, namespace: String) -> ConfigMap {
    ConfigMap(metadata: ObjectMeta(name: "bench-\(index)", namespace: namespace, labels: ["bench": "yes"]),
              data: ["index": String(index), "payload": String(repeating: "p", count: 256)])
}

/// Runs `work` for 0..<count with at most `concurrency` in flight.
func forEachConcurrently(_ count: Int, concurrency: Int, _ work: @escaping @Sendable (Int) async throws -> Void) async throws {
    try await withThrowingTaskGroup(of: Void.self) { group in
        var next = 0
        while next < min(concurrency, count) {
            let index = next
            group.addTask { try await work(index) }
            next += 1
        }
        while try await group.next() != nil {
            if next < count {
                let index = next
                group.addTask { try await work(index) }
                next += 1
            }
        }
    }
}

@main
struct ClientBenchmark {
    static func main() async throws {
        let options = Options(arguments: CommandLine.arguments)
        print("Starting a local control plane (etcd + kube-apiserver)…")
        let cp = try await ControlPlane.start()
        do {
            try await run(cp, options)
        } catch {
            await cp.stop()
            throw error
        }
        await cp.stop()
    }
}

nonisolated func run(_ cp: ControlPlane, _ options: Options) async throws {
        let n = options.objects
        do {
            let client = KubernetesClient(configuration: try ClientConfiguration.load(kubeconfig: cp.kubeconfig(for: .admin), environment: [:]))
            func namespace(_ name: String) async throws -> String {
                _ = try await client.create(Namespace(metadata: ObjectMeta(name: name)))
                return name
            }
            let version = try await client.send(KubernetesClient.Request(path: "/version"))
            print("kube-apiserver ready at \(cp.serverURL) (HTTP/\(version.httpVersion)); \(n) ConfigMaps, \(options.concurrency) requests in flight\n")

            // 1. Create with our client.
            let ours = try await namespace("bench-client")
            let start = try await client.list(ConfigMap.self, namespace: ours).metadata.resourceVersion
            let watch = try await client.watch(ConfigMap.self, namespace: ours,
                                               options: WatchOptions(resourceVersion: start, allowBookmarks: false, timeoutSeconds: 600))
            let (_, createTime) = try await measure {
                try await forEachConcurrently(n, concurrency: options.concurrency) { index in
                    _ = try await client.create(configMap(index, namespace: ours))
                }
            }
            // 2. The watch opened before the creates sees every one of them.
            let (events, watchTime) = try await measure { () -> Int in
                var received = 0
                for try await event in watch {
                    if case .added = event { received += 1 }
                    if received == n { break }
                }
                return received
            }
            // 3. Watch updates: a fresh watch, then N updates, timed until the last event arrives.
            let listed = try await client.listAll(ConfigMap.self, namespace: ours)
            let updateWatch = try await client.watch(ConfigMap.self, namespace: ours,
                                                     options: WatchOptions(resourceVersion: listed.resourceVersion, allowBookmarks: false, timeoutSeconds: 600))
            let ((_, updates), updateTime) = try await measure {
                try await withThrowingTaskGroup(of: Int.self) { group in
                    group.addTask {
                        var received = 0
                        for try await event in updateWatch {
                            if case .modified = event { received += 1 }
                            if received == n { break }
                        }
                        return received
                    }
                    try await forEachConcurrently(n, concurrency: options.concurrency) { index in
                        _ = try await client.patch(ConfigMap.self, name: "bench-\(index)", namespace: ours,
                                                   patch: .merge(["data": ["index": .string("updated-\(index)")]]))
                    }
                    let received = try await group.next() ?? 0
                    return ((), received)
                }
            }
            // 4. List: all at once, and paged by 500.
            let (whole, listTime) = try await measure { try await client.list(ConfigMap.self, namespace: ours) }
            let (paged, pagedTime) = try await measure { try await client.listAll(ConfigMap.self, namespace: ours, options: ListOptions(limit: 500)) }
            // Many small GETs, for request rate.
            let (_, getTime) = try await measure {
                try await forEachConcurrently(n, concurrency: options.concurrency) { index in
                    _ = try await client.get(ConfigMap.self, name: "bench-\(index)", namespace: ours)
                }
            }

            // 5. kubectl apply -f of one file with the same N objects.
            let applyNamespace = try await namespace("bench-kubectl-apply")
            let file = cp.directory + "/bench-apply.json"
            let items = try (0..<n).map { try JSONValue(encoding: configMap($0, namespace: applyNamespace)) }
            try KubeJSON.encoder.encode(JSONValue.object(["apiVersion": "v1", "kind": "List", "items": .array(items)]))
                .write(to: URL(fileURLWithPath: file))
            let (_, applyTime) = try await measure { try await cp.kubectl(["apply", "-f", file]) }

            // 6. One `kubectl create` process per object, on a sample.
            let createNamespace = try await namespace("bench-kubectl-create")
            let sample = min(options.kubectlCreateSample, n)
            let (_, kubectlCreateTime) = try await measure {
                for index in 0..<sample {
                    try await cp.kubectl(["create", "configmap", "bench-\(index)", "-n", createNamespace,
                                          "--from-literal=index=\(index)"])
                }
            }

            func rate(_ count: Int, _ time: Double) -> String { String(format: "%8.0f/s", Double(count) / time) }
            func row(_ what: String, _ count: Int, _ time: Double) {
                print("  \(what.padding(toLength: 52, withPad: " ", startingAt: 0)) \(String(format: "%7.2f s", time))  \(rate(count, time))")
            }
            print("Results (\(n) ConfigMaps):")
            row("image-builder client: create (POST)", n, createTime)
            row("image-builder client: watch events for the creates", events, watchTime + createTime)
            row("image-builder client: merge-patch + watch MODIFIED", updates, updateTime)
            row("image-builder client: GET one object", n, getTime)
            row("image-builder client: list all (1 request, objects)", whole.items.count, listTime)
            row("image-builder client: list paged by 500 (objects)", paged.items.count, pagedTime)
            row("kubectl apply -f one file (objects)", n, applyTime)
            row("kubectl create, one process per object (\(sample) sampled)", sample, kubectlCreateTime)
            let ourRate = Double(n) / createTime
            print(String(format: "\n  create: %.1fx kubectl apply -f, %.1fx one kubectl create per object",
                         ourRate / (Double(n) / applyTime), ourRate / (Double(sample) / kubectlCreateTime)))
        }
}
