// Client benchmark: our KubeClient against `kubectl`, on a local control plane started by the
// test harness. Not a test: it prints figures.
//
//   swift run -c release client-benchmark [--runs N] [--objects N] [--concurrency C]
//                                         [--kubectl-create-sample N] [--no-kubectl] [--http2]
//
// Every run uses fresh namespaces (one per client and phase), so the runs see the same work; the
// table shows the median of the runs. "client CPU" is the CPU time of the client alone: this
// process for our client, the kubectl processes for kubectl (the apiserver and etcd, which share
// the machine's cores, are not counted).
import BenchmarkSupport
import CurlHTTP
import Foundation
import KubeClient
import KubeTypes
import TestHarness

struct Options {
    var objects = 1_000
    var concurrency = 32
    var kubectlCreateSample = 50
    var runs = 3
    var kubectl = true
    var http2 = false

    init(arguments: [String]) {
        var arguments = BenchmarkArguments(arguments, usage: """
            usage: client-benchmark [--runs N (3)] [--objects N (1000)] [--concurrency C (32)]
                                    [--kubectl-create-sample N (50)] [--no-kubectl] [--http2]

            """)
        while let argument = arguments.next() {
            switch argument {
            case "--objects": objects = arguments.number(after: argument)
            case "--concurrency": concurrency = arguments.number(after: argument)
            case "--kubectl-create-sample": kubectlCreateSample = arguments.number(after: argument)
            case "--runs": runs = arguments.number(after: argument)
            case "--no-kubectl": kubectl = false
            case "--http2": http2 = true
            default: arguments.fail("unknown argument \(argument)")
            }
        }
    }
}

/// Runs one step of the benchmark; its errors name the step.
func step<T>(_ name: String, _ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let error as BenchmarkError {
        throw error
    } catch {
        throw BenchmarkError("\(name): \(error)")
    }
}

// MARK: - Measuring


/// User + system CPU seconds of this process (`RUSAGE_SELF`) or of its finished children (`RUSAGE_CHILDREN`).
func cpuSeconds(_ who: Int32) -> Double {
    var usage = rusage()
    getrusage(__rusage_who_t(who), &usage)
    func value(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1e6 }
    return value(usage.ru_utime) + value(usage.ru_stime)
}

/// Peak resident set size of this process so far, in MiB.
func maxRSSMiB() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_maxrss) / 1024  // Linux reports KiB.
}

/// Current resident set size, in MiB (from /proc/self/statm).
func currentRSSMiB() -> Double {
    guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
    let fields = text.split(separator: " ")
    guard fields.count > 1, let pages = Double(fields[1]) else { return 0 }
    return pages * Double(sysconf(Int32(_SC_PAGESIZE))) / 1_048_576
}

/// One measurement: `count` things in `time` seconds, costing the client `cpu` seconds.
struct Sample {
    var count: Int
    var time: Double
    var cpu: Double
    var rate: Double { Double(count) / time }
}

/// Samples by row, in the order rows were first recorded.
final class Results: @unchecked Sendable {
    private(set) var rows: [String] = []
    private(set) var samples: [String: [Sample]] = [:]

    func record(_ row: String, _ sample: Sample) {
        if samples[row] == nil { rows.append(row) }
        samples[row, default: []].append(sample)
    }

    /// The run with the median rate.
    func median(_ row: String) -> Sample? {
        guard let all = samples[row]?.sorted(by: { $0.rate < $1.rate }), !all.isEmpty else { return nil }
        return all[(all.count - 1) / 2]
    }
}

/// Times `body`; `cpuOf` says whose CPU time counts (this process, or the child processes it runs).
func measure<T>(cpuOf who: Int32 = RUSAGE_SELF.rawValue, _ body: () async throws -> T) async rethrows -> (T, time: Double, cpu: Double) {
    let cpuStart = cpuSeconds(who)
    let start = ContinuousClock.now
    let result = try await body()
    return (result, seconds(ContinuousClock.now - start), cpuSeconds(who) - cpuStart)
}

// MARK: - Work

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

/// Reads `stream` until `count` events of the wanted kind arrived; fails if the stream ends first.
func receive(_ count: Int, _ wanted: String, from stream: WatchStream<ConfigMap>) async throws -> Int {
    var received = 0
    for try await event in stream {
        switch event {
        case .added where wanted == "ADDED", .modified where wanted == "MODIFIED": received += 1
        case .error(let status): throw BenchmarkError("watch error: \(status.message ?? "?")")
        default: break
        }
        if received == count { return received }
    }
    throw BenchmarkError("the watch ended after \(received) of \(count) \(wanted) events")
}

@main
struct ClientBenchmark {
    static func main() async throws {
        let options = Options(arguments: CommandLine.arguments)
        say("Starting a local control plane (etcd + kube-apiserver)…")
        let cp = try await ControlPlane.start()
        do {
            try await Benchmark(cp: cp, options: options).run()
        } catch {
            await cp.stop()
            FileHandle.standardError.write(Data("client-benchmark: \(error)\n".utf8))
            exit(1)
        }
        await cp.stop()
    }
}

struct Benchmark {
    let cp: ControlPlane
    let options: Options
    let http: HTTPClient
    let client: KubernetesClient
    let results = Results()

    init(cp: ControlPlane, options: Options) throws {
        self.cp = cp
        self.options = options
        http = HTTPClient(http2: options.http2)
        client = KubernetesClient(configuration: try ClientConfiguration.load(kubeconfig: cp.kubeconfig(for: .admin), environment: [:]),
                                  http: http)
    }

    func namespace(_ name: String) async throws -> String {
        _ = try await step("namespace") { try await client.create(Namespace(metadata: ObjectMeta(name: name))) }
        return name
    }

    func run() async throws {
        let n = options.objects
        let version = try await client.send(KubernetesClient.Request(path: "/version"))
        let kubectlVersion = options.kubectl
            ? (try? await cp.kubectl(["version", "--client", "-o", "json"]))
                .flatMap { try? KubeJSON.decoder.decode(JSONValue.self, from: Data($0.utf8)) }
                .flatMap { $0["clientVersion"]?["gitVersion"]?.stringValue } ?? "unknown"
            : "not run"
        say("""
            kube-apiserver \(cp.serverURL), \(ProcessInfo.processInfo.activeProcessorCount) cores; \
            our client speaks HTTP/\(version.httpVersion); kubectl \(kubectlVersion)
            \(n) ConfigMaps, \(options.concurrency) requests in flight, \(options.runs) run(s)

            """)

        for run in 1...options.runs {
            let connections = http.connectionsOpened, transfers = http.transfersStarted
            let (_, time, _) = try await measure { try await oneRun(run) }
            say(String(format: "run %d: %.1f s; our client: %d requests and watches over %d new TCP connection(s)",
                         run, time, http.transfersStarted - transfers, http.connectionsOpened - connections))
        }
        let afterRuns = maxRSSMiB()
        let memory = try await watchMemory(namespace: "bench-1-client")

        func row(_ label: String) {
            guard let median = results.median(label), let all = results.samples[label] else { return }
            let rates = all.map(\.rate)
            let spread = all.count > 1
                ? String(format: "%6.0f–%-6.0f", rates.min() ?? 0, rates.max() ?? 0) : String(repeating: " ", count: 13)
            say("  \(label.padding(toLength: 62, withPad: " ", startingAt: 0))"
                  + String(format: "%6d %7.2f s %7.0f/s  %@ %7.2f s", median.count, median.time, median.rate, spread, median.cpu))
        }
        say("\nResults, median of \(options.runs) run(s) (\(n) ConfigMaps; the rate range is over the runs):")
        say("  \("".padding(toLength: 62, withPad: " ", startingAt: 0))  count    time      rate     range (/s)   client CPU")
        for label in results.rows { row(label) }

        let ours = results.median(createRow)!, sequential = results.median(Row.createSequential)!
        if let apply = results.median(Row.kubectlApply), let create = results.median(kubectlCreateRow(validate: false)),
           let validating = results.median(kubectlCreateRow(validate: true))
        {
            say(String(format: """

                  create, %d in flight: %.1f× kubectl apply -f (goal ≥ 1×), %.1f× one kubectl create --validate=false per object (goal ≥ 5×)
                  create, 1 in flight:  %.1f× kubectl apply -f, %.1f× one kubectl create --validate=false per object
                  client CPU per object created: ours %.2f ms (%d in flight), %.2f ms (1 in flight); kubectl apply -f %.2f ms; \
                kubectl create %.1f ms (%.1f ms validating)
                """,
                options.concurrency, ours.rate / apply.rate, ours.rate / create.rate,
                sequential.rate / apply.rate, sequential.rate / create.rate,
                ours.cpu / Double(ours.count) * 1000, options.concurrency, sequential.cpu / Double(sequential.count) * 1000,
                apply.cpu / Double(apply.count) * 1000, create.cpu / Double(create.count) * 1000,
                validating.cpu / Double(validating.count) * 1000))
        }
        say(String(format: """

              Our client opened %d TCP connection(s) in all, for %d requests and watches.
              Memory: peak RSS %.1f MiB after the runs, %.1f MiB after the stalled watch.
              Stalled watch of %d ConfigMaps (%.0f KiB of JSON) with a %d KiB buffer: %.0f KiB buffered while \
            stalled (RSS %+.1f MiB), then %d ADDED events read.
              Meanwhile, on the same client, %d GETs at %.0f/s.
            """,
            http.connectionsOpened, http.transfersStarted, afterRuns, maxRSSMiB(), memory.objects, Double(memory.listBytes) / 1024, memory.bufferLimit >> 10,
            Double(memory.bufferedWhileStalled) / 1024, memory.rssGrowth, memory.received, n, memory.getRate))
    }

    enum Row {
        static let createSequential = "our client: create (POST), 1 in flight"
        static let kubectlApply = "kubectl apply -f of one file"
    }
    var createRow: String { "our client: create (POST), \(options.concurrency) in flight" }
    /// One kubectl process per object; `validate: false` skips the OpenAPI schema download that
    /// kubectl makes before creating from a file (the cheapest kubectl can be).
    func kubectlCreateRow(validate: Bool) -> String {
        (validate ? "kubectl create -f, a process per object" : "kubectl create -f --validate=false, same")
            + (options.kubectlCreateSample < options.objects ? " (\(options.kubectlCreateSample) sampled)" : "")
    }

    func oneRun(_ run: Int) async throws {
        let n = options.objects
        let c = options.concurrency

        // Create with our client, a watch open since before the first POST.
        let ours = try await namespace("bench-\(run)-client")
        let start = try await step("list before the creates") { try await client.list(ConfigMap.self, namespace: ours).metadata.resourceVersion }
        let watch = try await step("watch before the creates") { try await client.watch(ConfigMap.self, namespace: ours,
                                           options: WatchOptions(resourceVersion: start, allowBookmarks: false, timeoutSeconds: 600)) }
        let (_, createTime, createCPU) = try await measure {
            try await forEachConcurrently(n, concurrency: c) { index in
                _ = try await step("create \(index)") { try await client.create(configMap(index, namespace: ours)) }
            }
        }
        results.record(createRow, Sample(count: n, time: createTime, cpu: createCPU))
        let (added, drainTime, drainCPU) = try await measure { try await receive(n, "ADDED", from: watch) }
        watch.cancel()
        results.record("our client: watch ADDED events, first POST to last event",
                       Sample(count: added, time: createTime + drainTime, cpu: createCPU + drainCPU))

        // The same creates one at a time, as kubectl does them.
        let serial = try await namespace("bench-\(run)-client-serial")
        let (_, serialTime, serialCPU) = try await measure {
            for index in 0..<n { _ = try await step("serial create \(index)") { try await client.create(configMap(index, namespace: serial)) } }
        }
        results.record(Row.createSequential, Sample(count: n, time: serialTime, cpu: serialCPU))

        // Merge-patch every object; time until the last MODIFIED event arrives on a fresh watch.
        let listed = try await step("list before the patches") { try await client.listAll(ConfigMap.self, namespace: ours) }
        let updateWatch = try await step("watch before the patches") { try await client.watch(ConfigMap.self, namespace: ours,
                                                 options: WatchOptions(resourceVersion: listed.resourceVersion, allowBookmarks: false, timeoutSeconds: 600)) }
        let (modified, updateTime, updateCPU) = try await measure {
            try await withThrowingTaskGroup(of: Int.self) { group in
                group.addTask { try await receive(n, "MODIFIED", from: updateWatch) }
                try await forEachConcurrently(n, concurrency: c) { index in
                    _ = try await step("patch \(index)") {
                        try await client.patch(ConfigMap.self, name: "bench-\(index)", namespace: ours,
                                               patch: .merge(["data": ["index": .string("updated-\(index)")]]))
                    }
                }
                return try await group.next() ?? 0
            }
        }
        results.record("our client: merge-patch (PATCH), last MODIFIED event", Sample(count: modified, time: updateTime, cpu: updateCPU))

        let (_, getTime, getCPU) = try await measure {
            try await forEachConcurrently(n, concurrency: c) { index in
                _ = try await step("get \(index)") { try await client.get(ConfigMap.self, name: "bench-\(index)", namespace: ours) }
            }
        }
        results.record("our client: get (GET)", Sample(count: n, time: getTime, cpu: getCPU))

        let (whole, listTime, listCPU) = try await measure { try await step("list") { try await client.list(ConfigMap.self, namespace: ours) } }
        results.record("our client: list, one request (objects)", Sample(count: whole.items.count, time: listTime, cpu: listCPU))
        let (paged, pagedTime, pagedCPU) = try await measure {
            try await step("paged list") { try await client.listAll(ConfigMap.self, namespace: ours, options: ListOptions(limit: 500)) }
        }
        results.record("our client: list, pages of 500 (objects)", Sample(count: paged.items.count, time: pagedTime, cpu: pagedCPU))
        guard whole.items.count == n, paged.items.count == n else {
            throw BenchmarkError("listed \(whole.items.count) and \(paged.items.count) objects, expected \(n)")
        }

        guard options.kubectl else { return }
        let children = RUSAGE_CHILDREN.rawValue

        // kubectl apply -f of one file holding the same N objects.
        let applyNamespace = try await namespace("bench-\(run)-kubectl-apply")
        let file = cp.directory + "/bench-apply-\(run).json"
        let items = try (0..<n).map { try JSONValue(encoding: configMap($0, namespace: applyNamespace)) }
        try KubeJSON.encoder.encode(JSONValue.object(["apiVersion": "v1", "kind": "List", "items": .array(items)]))
            .write(to: URL(fileURLWithPath: file))
        let (_, applyTime, applyCPU) = try await measure(cpuOf: children) { try await cp.kubectl(["apply", "-f", file]) }
        results.record(Row.kubectlApply, Sample(count: n, time: applyTime, cpu: applyCPU))
        let applied = try await client.list(ConfigMap.self, namespace: applyNamespace).items.count
        guard applied == n else { throw BenchmarkError("kubectl apply created \(applied) objects, expected \(n)") }

        // One `kubectl create -f` process per object (the same objects, one file each), on a sample;
        // as kubectl does it by default, and without schema validation.
        for validate in [true, false] {
            let createNamespace = try await namespace("bench-\(run)-kubectl-create\(validate ? "" : "-novalidate")")
            let sample = min(options.kubectlCreateSample, n)
            let files = try (0..<sample).map { index -> String in
                let path = cp.directory + "/bench-create-\(run)-\(validate)-\(index).json"
                try KubeJSON.encoder.encode(configMap(index, namespace: createNamespace)).write(to: URL(fileURLWithPath: path))
                return path
            }
            let (_, time, cpu) = try await measure(cpuOf: children) {
                for path in files { try await cp.kubectl(["create", "-f", path] + (validate ? [] : ["--validate=false"])) }
            }
            results.record(kubectlCreateRow(validate: validate), Sample(count: sample, time: time, cpu: cpu))
            let created = try await client.list(ConfigMap.self, namespace: createNamespace).items.count
            guard created == sample else { throw BenchmarkError("kubectl create made \(created) objects, expected \(sample)") }
        }
    }

    struct WatchMemory {
        var objects: Int
        var listBytes: Int
        var bufferLimit: Int
        var bufferedWhileStalled: Int
        var rssGrowth: Double
        var received: Int
        var getRate: Double
    }

    /// A watch whose consumer stalls: it starts with an ADDED event for every object in `namespace`
    /// (about N × 700 bytes), far more than its buffer. The transfer must pause with at most the
    /// buffer (plus a network chunk) held, and other requests on the same connection must go on.
    func watchMemory(namespace: String) async throws -> WatchMemory {
        let n = options.objects
        let path = client.path(for: ConfigMap.resourceType, namespace: namespace)
        let listBytes = try await client.send(KubernetesClient.Request(path: path)).body.count
        let limit = 64 << 10
        let rssBefore = currentRSSMiB()
        let watch = try await client.watch(ConfigMap.self, namespace: namespace,
                                           options: WatchOptions(allowBookmarks: false, timeoutSeconds: 600, bufferLimit: limit))
        var iterator = watch.makeAsyncIterator()
        guard case .added = try await iterator.next() else { throw BenchmarkError("the watch did not start with ADDED") }
        try await Task.sleep(for: .seconds(1))
        let buffered = watch.bufferedBytes
        let rssStalled = currentRSSMiB()
        let (_, getTime, _) = try await measure {
            try await forEachConcurrently(n, concurrency: options.concurrency) { index in
                _ = try await client.get(ConfigMap.self, name: "bench-\(index)", namespace: namespace)
            }
        }
        var received = 1
        while received < n, let event = try await iterator.next() {
            if case .added = event { received += 1 }
        }
        watch.cancel()
        guard received == n else { throw BenchmarkError("the stalled watch delivered \(received) of \(n) objects") }
        return WatchMemory(objects: n, listBytes: listBytes, bufferLimit: limit, bufferedWhileStalled: buffered,
                           rssGrowth: rssStalled - rssBefore, received: received, getRate: Double(n) / getTime)
    }
}
