// Operator benchmark: image-builder (the release binary, default flags) against a small kopf
// operator (the peer) and against the project's own client doing the same writes (the floor),
// on one control plane started by the test harness (etcd + kube-apiserver, no
// controller-manager: Jobs never run, the benchmark plays the kubelet) and one local registry.
// Not a test: it prints figures.
//
//   swift build -c release --product image-builder
//   swift run -c release operator-benchmark [--quick] [--workers N] [--sequential N] [--burst N]
//                                           [--cached N] [--idle-seconds N] [--no-peer] [--no-cached]
//
// The operator watches namespace `ib`, the peer (kopf `--namespace peer`) namespace `peer`, the
// floor writes in `floor`: nobody handles another's ImageSpecs.
import BenchmarkSupport
import CHeapInfo
import Crypto
import CurlHTTP
import Foundation
import ImageBuilder
import ImageBuilderReconcilers
import KubeClient
import KubeRuntime
import KubeTypes
import RegistryTestSupport
import RegistryTypes
import Synchronization
import TestHarness

#if canImport(Glibc)
import Glibc
#endif

struct Options {
    var sequential = 200
    var burst = 1_000
    var cached = 10_000
    var idleSeconds = 60
    var workers: Int?
    var peer = true
    var cachedPhase = true
    var createConcurrency = 32
    /// Where the cached phase saves the list pages it decodes (`--save-pages`).
    var savePages: String?
    /// Only decode pages saved earlier, `decodeRounds` times (`--decode-pages`): no cluster.
    var decodePages: String?
    var decodeRounds = 20

    init(arguments: [String]) {
        var arguments = BenchmarkArguments(arguments, usage: """
            usage: operator-benchmark [--quick] [--workers N (image-builder's default)] [--sequential N (200)]
                                      [--burst N (1000)] [--cached N (10000)] [--idle-seconds N (60)]
                                      [--no-peer] [--no-cached] [--save-pages DIR]
                   operator-benchmark --decode-pages DIR [--rounds N (20)]
            --quick: 20 sequential, a burst of 100, 1,000 cached, 10 idle seconds.
            --save-pages: keep the cached phase's list pages (as the API server sent them) in DIR.
            --decode-pages: no cluster; decode the pages saved in DIR as the operator's caches do,
              N rounds, and print MB/s and heap bytes per object by kind (for profiling decode).
            Needs the release image-builder: swift build -c release --product image-builder

            """)
        while let argument = arguments.next() {
            switch argument {
            case "--quick": sequential = 20; burst = 100; cached = 1_000; idleSeconds = 10
            case "--sequential": sequential = arguments.number(after: argument)
            case "--burst": burst = arguments.number(after: argument)
            case "--cached": cached = arguments.number(after: argument)
            case "--idle-seconds": idleSeconds = arguments.number(after: argument)
            case "--workers": workers = arguments.number(after: argument)
            case "--no-peer": peer = false
            case "--no-cached": cachedPhase = false
            case "--save-pages": savePages = arguments.text(after: argument)
            case "--decode-pages": decodePages = arguments.text(after: argument)
            case "--rounds": decodeRounds = arguments.number(after: argument)
            default: arguments.fail("unknown argument \(argument)")
            }
        }
    }
}

func percentile(_ values: [Double], _ p: Double) -> Double {
    guard !values.isEmpty else { return .nan }
    let sorted = values.sorted()
    let rank = Int((p / 100 * Double(sorted.count)).rounded(.up)) - 1
    return sorted[min(max(rank, 0), sorted.count - 1)]
}

func milliseconds(_ value: Double) -> String { value.isNaN ? "—" : String(format: "%.0f ms", value * 1000) }
func secondsText(_ value: Double) -> String { value.isNaN ? "—" : String(format: "%.2f s", value) }
func mebibytes(_ bytes: Int) -> String { bytes <= 0 ? "—" : String(format: "%.1f MiB", Double(bytes) / 1_048_576) }

/// Polls `condition` every few milliseconds until it holds, or fails after `timeout`. Figures
/// never come from the polling (they are the watch's timestamps); it only paces the steps.
func until(_ what: String, timeout: Duration = .seconds(120), _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while true {
        if try await condition() { return }
        if ContinuousClock.now > deadline { throw BenchmarkError("timed out after \(timeout) waiting for \(what)") }
        try await Task.sleep(for: .milliseconds(5))
    }
}

// MARK: - What the watches saw

/// When each object was first seen in a given state, by `namespace/name`.
final class Sightings: Sendable {
    private let seen = Mutex<[String: ContinuousClock.Instant]>([:])

    func mark(_ key: String, at instant: ContinuousClock.Instant = .now) {
        seen.withLock { if $0[key] == nil { $0[key] = instant } }
    }

    func time(_ key: String) -> ContinuousClock.Instant? { seen.withLock { $0[key] } }
    func count(in keys: [String]) -> Int { seen.withLock { seen in keys.filter { seen[$0] != nil }.count } }
    func latest(of keys: [String]) -> ContinuousClock.Instant? { seen.withLock { seen in keys.compactMap { seen[$0] }.max() } }

    func wait(_ key: String, timeout: Duration = .seconds(60)) async throws -> ContinuousClock.Instant {
        try await until(key, timeout: timeout) { time(key) != nil }
        return time(key)!
    }
}

/// Watches Jobs and ImageSpecs of the benchmark's namespaces: when each Job appeared, when each
/// ImageSpec first had a status phase, and when it first showed a finished phase.
final class Observer: Sendable {
    let jobs = Sightings()
    let statuses = Sightings()
    let finished = Sightings()
    private let streams = Mutex<(stopped: Bool, cancel: [@Sendable () -> Void])>((false, []))

    /// Ends the watches (and `run`).
    func stop() {
        let cancels = streams.withLock { state in
            state.stopped = true
            return state.cancel
        }
        for cancel in cancels { cancel() }
    }

    func run(client: KubernetesClient, namespaces: [String]) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for namespace in namespaces {
                group.addTask { try await self.watch(client, Job.resourceType, namespace) { key, _ in self.jobs.mark(key) } }
                group.addTask {
                    try await self.watch(client, ImageSpec.resourceType, namespace) { key, object in
                        guard let phase = object["status"]?["phase"]?.stringValue, !phase.isEmpty else { return }
                        self.statuses.mark(key)
                        if phase == "Succeeded" || phase == "Failed" { self.finished.mark(key) }
                    }
                }
            }
            try await group.next()
        }
    }

    private func watch(_ client: KubernetesClient, _ resource: ResourceType, _ namespace: String,
                       _ seen: @Sendable (String, JSONValue) -> Void) async throws {
        var resourceVersion: String?
        while !streams.withLock({ $0.stopped }) {
            let stream = try await client.watch(JSONValue.self, resource: resource, namespace: namespace,
                                                options: WatchOptions(resourceVersion: resourceVersion, timeoutSeconds: 300))
            let stopped = streams.withLock { state in
                state.cancel.append { stream.cancel() }
                return state.stopped
            }
            if stopped { stream.cancel(); return }
            do {
                for try await event in stream {
                    switch event {
                    case .added(let object), .modified(let object):
                        let name = object["metadata"]?["name"]?.stringValue ?? ""
                        resourceVersion = object["metadata"]?["resourceVersion"]?.stringValue ?? resourceVersion
                        seen("\(namespace)/\(name)", object)
                    case .bookmark(let version): resourceVersion = version
                    default: break
                    }
                }
            } catch where streams.withLock({ $0.stopped }) {
                return
            }
        }
    }
}

// MARK: - Processes

/// A process the benchmark started; stopped by its pid only.
final class Child {
    let name: String
    let process: Process
    let log: String

    init(name: String, executable: String, arguments: [String], environment: [String: String] = [:], log: String) throws {
        self.name = name
        self.log = log
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        FileManager.default.createFile(atPath: log, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        self.process = process
    }

    var pid: Int32 { process.processIdentifier }

    /// SIGTERM, then SIGKILL after 30 s.
    func stop() async {
        guard process.isRunning else { return }
        process.terminate()
        let deadline = ContinuousClock.now + .seconds(30)
        while process.isRunning, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(50)) }
        if process.isRunning { kill(pid, SIGKILL) }
    }

    /// `VmRSS` and `VmHWM` (peak) from /proc, in bytes.
    var memory: (rss: Int, peak: Int) {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return (0, 0) }
        func field(_ name: String) -> Int {
            guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(name + ":") }) else { return 0 }
            return (Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? 0) * 1024
        }
        return (field("VmRSS"), field("VmHWM"))
    }

    /// User + system CPU seconds so far.
    var cpuSeconds: Double {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")")
        else { return 0 }
        let fields = text[text.index(after: close)...].split(separator: " ")
        // After the command: state is field 3; utime and stime are fields 14 and 15.
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}

// MARK: - Objects

struct Bench: Sendable {
    let client: KubernetesClient
    let baseImage: String
    let registry: LocalRegistry

    /// The ImageSpec body: one shared base image, one apt package.
    func imageSpec(_ name: String, namespace: String) -> JSONValue {
        [
            "apiVersion": "primehub.io/v1alpha1", "kind": "ImageSpec",
            "metadata": ["name": .string(name), "namespace": .string(namespace)],
            "spec": ["baseImage": .string(baseImage), "packages": ["apt": ["curl"]]],
        ]
    }

    var hash: String {
        String(Insecure.SHA1.hash(data: Array("\(baseImage);apt:[curl]".utf8)).map { String(format: "%02x", $0) }.joined().prefix(8))
    }

    func jobName(_ spec: String) -> String { "\(spec)-\(hash)" }

    func createSpec(_ name: String, namespace: String) async throws -> JSONValue {
        try await client.create(imageSpec(name, namespace: namespace), resource: ImageSpec.resourceType, namespace: namespace)
    }

    /// Plays the kubelet and the job controller for a finished build: the build Pod ends with the
    /// digest in its termination message, then the Job completes. Returns the instant the Job's
    /// status write was sent (the status reaction is measured from it).
    func finish(job name: String, namespace: String) async throws -> ContinuousClock.Instant {
        var job = try await client.get(Job.self, name: name, namespace: namespace)
        let now = Date(timeIntervalSince1970: Date().timeIntervalSince1970.rounded(.down))
        let owner = OwnerReference(apiVersion: "batch/v1", kind: "Job", name: name, uid: job.metadata.uid ?? "",
                                   controller: true, blockOwnerDeletion: true)
        var pod = Pod(metadata: ObjectMeta(name: "\(name)-pod", namespace: namespace, labels: job.spec?.template.metadata?.labels,
                                           annotations: job.spec?.template.metadata?.annotations, ownerReferences: [owner]),
                      spec: PodSpec(containers: [Container(name: "build", image: "builder")], restartPolicy: "Never"))
        pod = try await client.create(pod)
        pod.status = PodStatus(phase: "Succeeded", containerStatuses: [
            ContainerStatus(name: "build", ready: false, state: ContainerState(terminated: ContainerStateTerminated(
                exitCode: 0, reason: "Completed", message: "sha256:" + String(repeating: "ab", count: 32), startedAt: now, finishedAt: now))),
        ])
        _ = try await client.updateStatus(pod)
        job.status = JobStatus(conditions: [JobCondition(type: "Complete", status: "True", lastProbeTime: now, lastTransitionTime: now)],
                               startTime: now, completionTime: now, active: 0, succeeded: 1, failed: 0)
        let sent = ContinuousClock.now
        _ = try await client.updateStatus(job)
        return sent
    }
}

/// Runs `body` for each of `items` with at most `width` at once.
func concurrently<T: Sendable>(_ items: [T], width: Int, _ body: @escaping @Sendable (T) async throws -> Void) async throws {
    try await withThrowingTaskGroup(of: Void.self) { group in
        var iterator = items.makeIterator()
        for _ in 0..<max(width, 1) {
            guard let item = iterator.next() else { break }
            group.addTask { try await body(item) }
        }
        while try await group.next() != nil {
            if let item = iterator.next() { group.addTask { try await body(item) } }
        }
    }
}

// MARK: - The operator's figures from outside

/// Reads image-builder's `/metrics`.
struct Metrics {
    let port: Int

    func text() async throws -> String {
        let response = try await HTTPClient.shared.send(HTTPRequest(url: "http://127.0.0.1:\(port)/metrics", timeout: .seconds(10)))
        return String(decoding: response.body, as: UTF8.self)
    }

    /// The sum of `rest_client_requests_total` over its labels.
    func apiRequests() async throws -> Double {
        sum(of: "rest_client_requests_total", in: try await text())
    }

    /// The API requests besides the leader election's (`leader_election_requests_total`), and the
    /// leader election's: the lease is renewed every 2 s however idle the operator is.
    func apiRequestsBesidesTheLease() async throws -> (others: Double, lease: Double) {
        let text = try await text()
        let lease = sum(of: "leader_election_requests_total", in: text)
        return (sum(of: "rest_client_requests_total", in: text) - lease, lease)
    }

    private func sum(of family: String, in text: String) -> Double {
        text.split(separator: "\n")
            .filter { $0.hasPrefix(family + "{") }
            .compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }
            .reduce(0, +)
    }

    /// The seconds and the count of every part of a pass (`image_builder_pass_part_seconds`), of
    /// the wait in the work queue and of the whole passes, by controller.
    func passParts() async throws -> [String: (seconds: Double, count: Double)] {
        let families = [("image_builder_pass_part_seconds", ""), ("workqueue_queue_duration_seconds", "queue wait "),
                        ("controller_runtime_reconcile_time_seconds", "whole pass ")]
        var parts: [String: (seconds: Double, count: Double)] = [:]
        for line in try await text().split(separator: "\n") {
            for (family, title) in families {
                for (suffix, isSum) in [("_sum{", true), ("_count{", false)] where line.hasPrefix(family + suffix) {
                    guard let close = line.lastIndex(of: "}"), let value = line.split(separator: " ").last.flatMap({ Double($0) })
                    else { continue }
                    let labels = line[line.index(line.startIndex, offsetBy: family.count + suffix.count)..<close]
                    let part = title.isEmpty
                        ? String(labels.dropFirst("part=\"".count).dropLast())
                        : title + "{" + labels + "}"
                    if isSum { parts[part, default: (0, 0)].seconds = value } else { parts[part, default: (0, 0)].count = value }
                }
            }
        }
        return parts
    }

    /// Where the passes between two readings of `passParts()` spent their time, one line a part,
    /// the most time first: what bounds a reaction, measured inside the operator.
    static func profile(from before: [String: (seconds: Double, count: Double)],
                        to after: [String: (seconds: Double, count: Double)], reactions: Int) -> [String] {
        let deltas = after.map { part, now in
            (part: part, seconds: now.seconds - (before[part]?.seconds ?? 0), count: now.count - (before[part]?.count ?? 0))
        }.filter { $0.count > 0 }.sorted { $0.seconds > $1.seconds }
        return deltas.map { delta in
            "  " + delta.part.padding(toLength: max(delta.part.count, 56), withPad: " ", startingAt: 0)
                + String(format: " %6.0f× %7.1f ms mean, %6.1f ms per ImageSpec", delta.count,
                         delta.seconds / delta.count * 1000, delta.seconds / Double(max(reactions, 1)) * 1000)
        }
    }

    func ready() async -> Bool {
        guard let response = try? await HTTPClient.shared.send(HTTPRequest(url: "http://127.0.0.1:\(port)/readyz", timeout: .seconds(5)))
        else { return false }
        return response.status == 200
    }
}

// MARK: - Memory per cached object

/// Heap bytes in use (glibc's `mallinfo2`).
func heapInUse() -> Int { Int(heap_info_in_use()) }

/// Lists `T` in `namespace` as the operator's watcher does, keeps the transformed objects and
/// returns (objects, JSON bytes listed, decode seconds, heap bytes per kept object).
func measureKind<T: KubeObject>(_ type: T.Type, client: KubernetesClient, namespace: String, labelSelector: String?,
                               decoding: DecodingProfile, transform: @Sendable (T) -> T,
                               saveTo directory: String?) async throws -> (count: Int, bytes: Int, decode: Double, perObject: Double) {
    var query: [(String, String)] = [("limit", "500")]
    if let labelSelector { query.append(("labelSelector", labelSelector)) }
    var pages: [Data] = []
    var next: String?
    repeat {
        var pageQuery = query
        if let next { pageQuery.append(("continue", next)) }
        let response = try await client.send(KubernetesClient.Request(
            path: client.path(for: T.resourceType, namespace: namespace), query: pageQuery))
        pages.append(response.body)
        let meta = try KubeJSON.decoder.decode(ListContinue.self, from: response.body)
        next = meta.metadata.continue.flatMap { $0.isEmpty ? nil : $0 }
    } while next != nil
    if let directory {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        for (index, page) in pages.enumerated() {
            try page.write(to: URL(fileURLWithPath: directory + String(format: "/%@-%03d.json", T.resourceType.plural, index)))
        }
    }
    // The best of three rounds: the API server and etcd, still busy with the objects just
    // created, share the machine's cores with this thread.
    var measured = try decodePages(pages, as: T.self, decoding: decoding, transform: transform)
    for _ in 0..<2 {
        let round = try decodePages(pages, as: T.self, decoding: decoding, transform: transform)
        if round.seconds < measured.seconds { measured = round }
    }
    return (measured.count, pages.reduce(0) { $0 + $1.count }, measured.seconds, measured.perObject)
}

/// Decodes list pages as a watcher does and keeps the transformed objects; returns (objects,
/// seconds, heap bytes per kept object).
func decodePages<T: KubeObject>(_ pages: [Data], as type: T.Type, decoding: DecodingProfile,
                                transform: @Sendable (T) -> T) throws -> (count: Int, seconds: Double, perObject: Double) {
    let before = heapInUse()
    let started = ContinuousClock.now
    var kept: [T] = []
    let decoder = KubeJSON.decoder(profile: decoding)
    for page in pages {
        let list = try decoder.decode(ObjectList<T>.self, from: page)
        kept.append(contentsOf: list.items.map(transform))
    }
    let decode = seconds(ContinuousClock.now - started)
    let perObject = kept.isEmpty ? 0 : Double(heapInUse() - before) / Double(kept.count)
    let count = kept.count
    withExtendedLifetime(kept) {}
    return (count, decode, perObject)
}

/// `--decode-pages DIR`: decodes the pages `--save-pages` kept, as the operator's caches do.
func decodeSavedPages(directory: String, rounds: Int) throws {
    let files = try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
    func pages(_ plural: String) throws -> [Data] {
        try files.filter { $0.hasPrefix(plural + "-") && $0.hasSuffix(".json") }
            .map { try Data(contentsOf: URL(fileURLWithPath: directory + "/" + $0)) }
    }
    func measure<T: KubeObject>(_ type: T.Type, decoding: DecodingProfile, transform: @escaping @Sendable (T) -> T) throws -> String {
        let kind = try pages(T.resourceType.plural)
        guard !kind.isEmpty else { return "\(T.resourceType.plural): no pages in \(directory)" }
        let bytes = kind.reduce(0) { $0 + $1.count }
        var best = Double.infinity, perObject = 0.0, count = 0
        for _ in 0..<max(rounds, 1) {
            let round = try decodePages(kind, as: T.self, decoding: decoding, transform: transform)
            best = min(best, round.seconds)
            perObject = round.perObject
            count = round.count
        }
        return String(format: "%@: %d objects, %.1f MB, best of %d rounds %.3f s: %.1f MB/s, %.0f heap bytes per object",
                      T.resourceType.plural, count, Double(bytes) / 1e6, rounds, best, Double(bytes) / best / 1e6, perObject)
    }
    say(try measure(ImageSpec.self, decoding: CacheDecoding.imageSpecs, transform: StoreTransforms.compact))
    say(try measure(Job.self, decoding: CacheDecoding.builds, transform: StoreTransforms.summarizeJob))
    say(try measure(Pod.self, decoding: CacheDecoding.builds, transform: StoreTransforms.summarizePod))
}

struct ListContinue: Decodable {
    struct Meta: Decodable { var `continue`: String? }
    var metadata: Meta
}

// MARK: - The run

struct Row {
    var measure: String
    var ours: String
    var peer: String
    var floor: String
    var ratio: String
    var goal: String
}

func ratio(_ ours: Double, _ other: Double) -> String {
    guard ours.isFinite, other.isFinite, other > 0 else { return "—" }
    return String(format: "%.2f×", ours / other)
}

func runBenchmark(_ options: Options) async throws {
    let executableDirectory = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent().path
    let imageBuilder = executableDirectory + "/image-builder"
    guard FileManager.default.isExecutableFile(atPath: imageBuilder) else {
        throw BenchmarkError("\(imageBuilder) not found: build it first (swift build -c release --product image-builder)")
    }
    let cache = (ProcessInfo.processInfo.environment["IMAGE_BUILDER_CACHE"] ?? "/var/cache/image-builder") + "/operator-benchmark"
    let runDirectory = NSTemporaryDirectory() + "operator-benchmark-\(getpid())"
    try FileManager.default.createDirectory(atPath: runDirectory, withIntermediateDirectories: true)
    say("operator-benchmark: logs in \(runDirectory)")

    // The peer's environment first (slow only once per machine).
    var kopf: String?
    if options.peer { kopf = try await preparePeer(cache: cache) }

    let controlPlane = try await ControlPlane.start(ControlPlane.Options(controllerManager: false, startupTimeout: .seconds(180)))
    let registry = try await LocalRegistry.start()
    var children: [Child] = []
    do {
        let result = try await measure(options, controlPlane: controlPlane, registry: registry, imageBuilder: imageBuilder,
                                       kopf: kopf, cache: cache, runDirectory: runDirectory) { children.append($0) }
        for child in children { await child.stop() }
        print(result)
    } catch {
        for child in children { await child.stop() }
        await registry.stop()
        await controlPlane.stop()
        throw error
    }
    await registry.stop()
    await controlPlane.stop()
}

/// Creates the peer's virtual environment under the cache (kopf and kubernetes from PyPI, once).
func preparePeer(cache: String) async throws -> String {
    let venv = cache + "/venv"
    let kopf = venv + "/bin/kopf"
    let marker = venv + "/.installed-kopf-\(Peer.kopfVersion)-kubernetes-\(Peer.kubernetesVersion)"
    if FileManager.default.fileExists(atPath: marker) { return kopf }
    say("installing the peer (kopf \(Peer.kopfVersion), kubernetes \(Peer.kubernetesVersion)) into \(venv)")
    try FileManager.default.createDirectory(atPath: cache, withIntermediateDirectories: true)
    var steps = [(venv + "/bin/pip", ["install", "--quiet", "kopf==\(Peer.kopfVersion)", "kubernetes==\(Peer.kubernetesVersion)"])]
    if !FileManager.default.isExecutableFile(atPath: venv + "/bin/pip") { steps.insert(("/usr/bin/env", ["python3", "-m", "venv", venv]), at: 0) }
    for (executable, arguments) in steps {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        try process.run()
        while process.isRunning { try await Task.sleep(for: .milliseconds(200)) }
        guard process.terminationStatus == 0 else {
            throw BenchmarkError("\(executable) \(arguments.joined(separator: " ")) failed (exit \(process.terminationStatus)); python3-venv is needed")
        }
    }
    FileManager.default.createFile(atPath: marker, contents: nil)
    return kopf
}

func measure(_ options: Options, controlPlane: ControlPlane, registry: LocalRegistry, imageBuilder: String, kopf: String?,
             cache: String, runDirectory: String, started: (Child) -> Void) async throws -> String {
    let client = KubernetesClient(configuration: try ClientConfiguration.load(kubeconfig: controlPlane.kubeconfig(for: .admin), environment: [:]))
    let kubeconfig = controlPlane.kubeconfig(for: .admin)
    let crds = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("crds").path
    _ = try await controlPlane.kubectl(["apply", "-k", crds])
    try await until("the CRDs are served") {
        (try? await client.list(JSONValue.self, resource: ImageSpec.resourceType, namespace: "default")) != nil
    }
    for namespace in ["ib", "peer", "floor", "cache"] {
        _ = try await client.create(Namespace(metadata: ObjectMeta(name: namespace)))
    }
    let pusher = ImagePusher(registry: registry)
    _ = try await pusher.pushImage("bench/base", tag: "latest", user: "1000", env: ["PATH=/usr/bin:/bin"])
    let bench = Bench(client: client, baseImage: "\(registry.host)/bench/base:latest", registry: registry)

    // image-builder, release, default flags (but the namespace, its config and a free probe port).
    let config = runDirectory + "/config.yaml"
    try """
        registry:
          pushRepoPrefix: \(registry.host)/bench
          insecure: true

        """.write(toFile: config, atomically: true, encoding: .utf8)
    let probePort = try freeLoopbackPort()
    func startOperator(_ label: String, namespace: String) throws -> Child {
        var arguments = ["run", "--config", config, "--kubeconfig", kubeconfig, "--namespace", namespace,
                         "--probe-address", "127.0.0.1:\(probePort)"]
        if let workers = options.workers { arguments += ["--workers", String(workers)] }
        let child = try Child(name: "image-builder", executable: imageBuilder, arguments: arguments,
                              log: runDirectory + "/image-builder-\(label).log")
        started(child)
        return child
    }
    let metrics = Metrics(port: probePort)
    var operatorProcess = try startOperator("1", namespace: "ib")
    try await until("image-builder is ready", timeout: .seconds(60)) { await metrics.ready() }

    var peerProcess: Child?
    if let kopf {
        let source = runDirectory + "/peer.py"
        try Peer.source.write(toFile: source, atomically: true, encoding: .utf8)
        let child = try Child(name: "kopf", executable: kopf,
                              arguments: ["run", "--standalone", "--namespace", "peer", "--quiet", source],
                              environment: ["KUBECONFIG": kubeconfig, "PEER_PUSH_PREFIX": "\(registry.host)/bench"],
                              log: runDirectory + "/peer.log")
        started(child)
        peerProcess = child
    }

    let observer = Observer()
    func measurePhases() async throws -> String {
        // Warm up both (first connections, the peer's start).
        for namespace in ["ib"] + (peerProcess == nil ? [] : ["peer"]) {
            _ = try await bench.createSpec("warm-up", namespace: namespace)
            _ = try await observer.jobs.wait("\(namespace)/\(bench.jobName("warm-up"))", timeout: .seconds(120))
        }
        say("warmed up")
        var rows: [Row] = []
        let sides = ["ib"] + (peerProcess == nil ? [] : ["peer"])

        // 1. Reaction: create → Job, sequential.
        var reactions: [String: [Double]] = [:]
        var profiles = ""
        func addProfile(_ title: String, since before: [String: (seconds: Double, count: Double)], reactions: Int) async throws {
            let lines = Metrics.profile(from: before, to: try await metrics.passParts(), reactions: reactions)
            profiles += "\nimage-builder's passes, \(title) (image_builder_pass_part_seconds):\n" + lines.joined(separator: "\n") + "\n"
            say("passes, \(title):\n" + lines.joined(separator: "\n"))
        }
        func profiled(_ title: String, _ body: () async throws -> Void) async throws {
            let before = try await metrics.passParts()
            try await body()
            try await addProfile(title, since: before, reactions: options.sequential)
        }
        /// The passes image-builder made during `body`, profiled; the peer's run as it is.
        func sequential(_ namespace: String, _ title: String, _ body: () async throws -> Void) async throws {
            if namespace == "ib" { try await profiled(title, body) } else { try await body() }
        }
        for namespace in sides {
            try await sequential(namespace, "create → Job, \(options.sequential) sequential") {
                for index in 0..<options.sequential {
                    let name = String(format: "r-%05d", index)
                    let start = ContinuousClock.now
                    _ = try await bench.createSpec(name, namespace: namespace)
                    let seen = try await observer.jobs.wait("\(namespace)/\(bench.jobName(name))")
                    reactions[namespace, default: []].append(seconds(seen - start))
                }
            }
            say("reaction \(namespace): p50 \(milliseconds(percentile(reactions[namespace]!, 50))) p99 \(milliseconds(percentile(reactions[namespace]!, 99)))")
        }
        // 2. Status reaction: the build ends (Pod, then Job status) → the ImageSpec's status.
        var statusReactions: [String: [Double]] = [:]
        for namespace in sides {
            try await sequential(namespace, "build ends → status, \(options.sequential) sequential") {
                for index in 0..<options.sequential {
                    let name = String(format: "r-%05d", index)
                    let start = try await bench.finish(job: bench.jobName(name), namespace: namespace)
                    let seen = try await observer.finished.wait("\(namespace)/\(name)")
                    statusReactions[namespace, default: []].append(max(seconds(seen - start), 0))
                }
            }
            say("status reaction \(namespace): p50 \(milliseconds(percentile(statusReactions[namespace]!, 50))) p99 \(milliseconds(percentile(statusReactions[namespace]!, 99)))")
        }
        func reactionRows(_ title: String, _ values: [String: [Double]]) {
            let ours = values["ib"] ?? [], peer = values["peer"] ?? []
            rows.append(Row(measure: "\(title) p50", ours: milliseconds(percentile(ours, 50)), peer: milliseconds(percentile(peer, 50)),
                            floor: "—", ratio: ratio(percentile(ours, 50), percentile(peer, 50)), goal: "—"))
            rows.append(Row(measure: "\(title) p99", ours: milliseconds(percentile(ours, 99)), peer: milliseconds(percentile(peer, 99)),
                            floor: "—", ratio: ratio(percentile(ours, 99), percentile(peer, 99)), goal: "≤ 0.5× peer"))
        }
        reactionRows("create → Job (\(options.sequential) sequential)", reactions)
        reactionRows("build ends → status (\(options.sequential) sequential)", statusReactions)

        // 3. Burst: every ImageSpec at once (created 32 at a time) → every Job, every status.
        var burstJobs: [String: Double] = [:], burstStatus: [String: Double] = [:]
        var perSpec = (api: Double.nan, registry: Double.nan)
        var afterBurst: [String: (rss: Int, peak: Int)] = [:]
        let names = (0..<options.burst).map { String(format: "b-%05d", $0) }
        for namespace in sides {
            let apiBefore = namespace == "ib" ? try await metrics.apiRequests() : 0
            let partsBefore = namespace == "ib" ? try await metrics.passParts() : [:]
            let registryBefore = registry.requestsServed
            let start = ContinuousClock.now
            try await concurrently(names, width: options.createConcurrency) { name in _ = try await bench.createSpec(name, namespace: namespace) }
            let jobKeys = names.map { "\(namespace)/\(bench.jobName($0))" }
            let specKeys = names.map { "\(namespace)/\($0)" }
            try await until("\(namespace): every Job of the burst", timeout: .seconds(600)) { observer.jobs.count(in: jobKeys) == jobKeys.count }
            try await until("\(namespace): every status of the burst", timeout: .seconds(600)) { observer.statuses.count(in: specKeys) == specKeys.count }
            burstJobs[namespace] = seconds(observer.jobs.latest(of: jobKeys)! - start)
            burstStatus[namespace] = seconds(observer.statuses.latest(of: specKeys)! - start)
            if namespace == "ib" {
                // Let the passes that follow the status write finish before counting.
                try await Task.sleep(for: .seconds(3))
                perSpec.api = (try await metrics.apiRequests() - apiBefore) / Double(options.burst)
                perSpec.registry = Double(registry.requestsServed - registryBefore) / Double(options.burst)
                afterBurst["ib"] = operatorProcess.memory
                try await addProfile("\(options.burst) at once", since: partsBefore, reactions: options.burst)
            } else {
                try await Task.sleep(for: .seconds(3))
                afterBurst["peer"] = peerProcess?.memory
            }
            say("burst \(namespace): jobs \(secondsText(burstJobs[namespace]!)) statuses \(secondsText(burstStatus[namespace]!))")
        }
        // The floor: our client writes what the peer writes — ImageSpec, then ConfigMap and Job
        // at once, then the status — with as many lanes as the operator has workers.
        let lanes = options.workers ?? 16
        let floorStart = ContinuousClock.now
        try await concurrently(names, width: max(lanes, options.createConcurrency)) { name in
            let created = try await bench.createSpec(name, namespace: "floor")
            let uid = created["metadata"]?["uid"]?.stringValue ?? ""
            let owner = OwnerReference(apiVersion: "primehub.io/v1alpha1", kind: "ImageSpec", name: name, uid: uid,
                                       controller: true, blockOwnerDeletion: true)
            let jobName = bench.jobName(name)
            async let configMap = client.create(ConfigMap(metadata: ObjectMeta(name: jobName, namespace: "floor", ownerReferences: [owner]),
                                                          data: ["Dockerfile": "FROM \(bench.baseImage)\n"]))
            async let job = client.create(Job(
                metadata: ObjectMeta(name: jobName, namespace: "floor", ownerReferences: [owner]),
                spec: JobSpec(template: PodTemplateSpec(spec: PodSpec(containers: [Container(name: "build", image: "builder")],
                                                                      restartPolicy: "Never")))))
            _ = try await (configMap, job)
            _ = try await client.patchStatus(ImageSpec.self, name: name, namespace: "floor",
                                             patch: .merge(["status": ["phase": "Pending", "jobName": .string(jobName),
                                                                           "image": .string("\(bench.registry.host)/bench/\(name):\(bench.hash)")]]))
        }
        let floor = seconds(ContinuousClock.now - floorStart)
        say("burst floor: \(secondsText(floor))")
        rows.append(Row(measure: "\(options.burst) at once → every Job", ours: secondsText(burstJobs["ib"] ?? .nan),
                        peer: secondsText(burstJobs["peer"] ?? .nan), floor: secondsText(floor),
                        ratio: "\(ratio(burstJobs["ib"] ?? .nan, floor)) floor, \(ratio(burstJobs["ib"] ?? .nan, burstJobs["peer"] ?? .nan)) peer",
                        goal: "≤ 1.5× floor, ≤ 0.33× peer"))
        rows.append(Row(measure: "\(options.burst) at once → every status", ours: secondsText(burstStatus["ib"] ?? .nan),
                        peer: secondsText(burstStatus["peer"] ?? .nan), floor: secondsText(floor),
                        ratio: "\(ratio(burstStatus["ib"] ?? .nan, floor)) floor, \(ratio(burstStatus["ib"] ?? .nan, burstStatus["peer"] ?? .nan)) peer",
                        goal: "≤ 1.5× floor, ≤ 0.33× peer"))
        rows.append(Row(measure: "RSS after the burst (peak)", ours: "\(mebibytes(afterBurst["ib"]?.rss ?? 0)) (\(mebibytes(afterBurst["ib"]?.peak ?? 0)))",
                        peer: "\(mebibytes(afterBurst["peer"]?.rss ?? 0)) (\(mebibytes(afterBurst["peer"]?.peak ?? 0)))", floor: "—",
                        ratio: ratio(Double(afterBurst["ib"]?.rss ?? 0), Double(afterBurst["peer"]?.rss ?? 0)), goal: "—"))
        rows.append(Row(measure: "API requests per ImageSpec (burst)", ours: String(format: "%.2f", perSpec.api), peer: "—",
                        floor: "3", ratio: "—", goal: "—"))
        rows.append(Row(measure: "registry requests per ImageSpec (burst)", ours: String(format: "%.3f", perSpec.registry), peer: "0",
                        floor: "0", ratio: "—", goal: "a handful per burst"))

        // 4. Cached: ImageSpecs with finished builds (their Jobs and build Pods), seen from a
        // fresh start of the operator.
        if options.cachedPhase {
            await operatorProcess.stop()
            if let peerProcess { await peerProcess.stop() }
            let cachedNames = (0..<options.cached).map { String(format: "c-%05d", $0) }
            let labels = [MetadataKeys.managedBy: MetadataKeys.managedByValue, "app": BuildSource.imageSpec.appLabel]
            let createStart = ContinuousClock.now
            try await concurrently(cachedNames, width: options.createConcurrency) { name in
                let spec = try await bench.createSpec(name, namespace: "cache")
                let owner = OwnerReference(apiVersion: "primehub.io/v1alpha1", kind: "ImageSpec", name: name,
                                           uid: spec["metadata"]?["uid"]?.stringValue ?? "", controller: true, blockOwnerDeletion: true)
                let jobName = bench.jobName(name)
                var podLabels = labels
                podLabels[MetadataKeys.imageSpecName] = name
                let annotations = [MetadataKeys.imageSpec: name]
                _ = try await client.create(Job(
                    metadata: ObjectMeta(name: jobName, namespace: "cache", labels: podLabels, annotations: annotations, ownerReferences: [owner]),
                    spec: JobSpec(template: PodTemplateSpec(
                        metadata: ObjectMeta(labels: podLabels, annotations: annotations),
                        spec: PodSpec(containers: [Container(name: "build", image: "builder", command: ["buildah"], args: ["build", "--layers", "/workspace"])],
                                      restartPolicy: "Never")))))
                // A finished build, so that nothing is left to do once the operator has seen it.
                _ = try await bench.finish(job: jobName, namespace: "cache")
            }
            say("created \(options.cached) ImageSpecs + Jobs + Pods in \(secondsText(seconds(ContinuousClock.now - createStart)))")
            let selector = "\(MetadataKeys.managedBy)=\(MetadataKeys.managedByValue),app=\(BuildSource.imageSpec.appLabel)"
            let specKind = try await measureKind(ImageSpec.self, client: client, namespace: "cache", labelSelector: nil,
                                           decoding: CacheDecoding.imageSpecs, transform: StoreTransforms.compact,
                                           saveTo: options.savePages)
            let jobKind = try await measureKind(Job.self, client: client, namespace: "cache", labelSelector: selector,
                                          decoding: CacheDecoding.builds, transform: StoreTransforms.summarizeJob,
                                          saveTo: options.savePages)
            let podKind = try await measureKind(Pod.self, client: client, namespace: "cache", labelSelector: selector,
                                          decoding: CacheDecoding.builds, transform: StoreTransforms.summarizePod,
                                          saveTo: options.savePages)
            let listBytes = specKind.bytes + jobKind.bytes + podKind.bytes
            let decodeRate = Double(listBytes) / max(specKind.decode + jobKind.decode + podKind.decode, 1e-9) / 1e6

            let startedAt = ContinuousClock.now
            operatorProcess = try startOperator("2", namespace: "cache")
            try await until("image-builder is ready again", timeout: .seconds(300)) { await metrics.ready() }
            let synced = seconds(ContinuousClock.now - startedAt)
            // Settled: no API request but the lease renewals for 5 s.
            var last = -1.0, quietSince = ContinuousClock.now
            try await until("image-builder settles", timeout: .seconds(900)) {
                let now = try await metrics.apiRequestsBesidesTheLease().others
                if now != last { last = now; quietSince = .now }
                return ContinuousClock.now - quietSince > .seconds(5)
            }
            let settled = operatorProcess.memory
            let cpuBefore = operatorProcess.cpuSeconds, requestsBefore = try await metrics.apiRequestsBesidesTheLease()
            try await Task.sleep(for: .seconds(options.idleSeconds))
            let idleCPU = (operatorProcess.cpuSeconds - cpuBefore) * 60 / Double(options.idleSeconds)
            let requestsAfter = try await metrics.apiRequestsBesidesTheLease()
            let idleRequests = requestsAfter.others - requestsBefore.others, leaseRequests = requestsAfter.lease - requestsBefore.lease
            let atRest = operatorProcess.memory
            let counts = "\(specKind.count) + \(jobKind.count) + \(podKind.count)"
            rows.append(Row(measure: "RSS at rest, \(counts) cached (peak)", ours: "\(mebibytes(atRest.rss)) (\(mebibytes(max(atRest.peak, settled.peak))))",
                            peer: "—", floor: "—", ratio: "—", goal: "≤ 80 MiB"))
            rows.append(Row(measure: "heap bytes per cached object: ImageSpec / Job / Pod",
                            ours: String(format: "%.0f / %.0f / %.0f B", specKind.perObject, jobKind.perObject, podKind.perObject),
                            peer: "—", floor: "—", ratio: "—", goal: "—"))
            // What the operator's own writes added: each ImageSpec's status, and PrimeHub's record
            // of each build (a fourth cache), decoded as its caches decode them.
            let restingSpecs = try await measureKind(ImageSpec.self, client: client, namespace: "cache", labelSelector: nil,
                                                     decoding: CacheDecoding.imageSpecs, transform: StoreTransforms.compact,
                                                     saveTo: nil)
            let records = try await measureKind(ImageSpecJob.self, client: client, namespace: "cache",
                                                labelSelector: "app=\(BuildSource.imageSpec.appLabel)",
                                                decoding: CacheDecoding.records, transform: StoreTransforms.compact,
                                                saveTo: nil)
            rows.append(Row(measure: "heap bytes per cached object at rest: ImageSpec with its status / ImageSpecJob record (\(records.count))",
                            ours: String(format: "%.0f / %.0f B", restingSpecs.perObject, records.perObject),
                            peer: "—", floor: "—", ratio: "—", goal: "—"))
            rows.append(Row(measure: "start → caches synced (\(mebibytes(listBytes)) listed)", ours: secondsText(synced),
                            peer: "—", floor: "—", ratio: "—", goal: "—"))
            // Measured in this process, on the list bodies as the API sent them (pages of 500): the
            // bytes of those bodies over the time to decode them into typed lists and apply the
            // operator's store transforms, as its caches do (`CacheDecoding`), one thread, the
            // HTTP transfer not counted; the best of three rounds.
            let decodeSeconds = specKind.decode + jobKind.decode + podKind.decode
            rows.append(Row(measure: String(format: "list decode (typed, as cached, best of 3: %.1f MB in %.2f s)", Double(listBytes) / 1e6, decodeSeconds),
                            ours: String(format: decodeRate < 10 ? "%.2f MB/s" : "%.0f MB/s", decodeRate),
                            peer: "—", floor: "—", ratio: String(format: "%.1f× client-go's ~20", decodeRate / 20), goal: "≥ 60 MB/s"))
            rows.append(Row(measure: "CPU per idle minute; API requests idle (\(options.idleSeconds) s), besides the lease's renewals",
                            ours: String(format: "%.2f s; %.0f (and %.0f renewing the lease)", idleCPU, idleRequests, leaseRequests),
                            peer: "—", floor: "—", ratio: "—", goal: "≈ 0; 0"))
        }
        return table(rows, options: options) + profiles
    }
    return try await withThrowingTaskGroup(of: String?.self) { group in
        group.addTask {
            try await observer.run(client: client, namespaces: ["ib", "peer", "floor"])
            return nil
        }
        do {
            let table = try await measurePhases()
            observer.stop()
            try await group.waitForAll()
            return table
        } catch {
            observer.stop()
            throw error
        }
    }
}

func table(_ rows: [Row], options: Options) -> String {
    var text = "\n| measure | image-builder | kopf peer | floor | ratio | goal |\n| --- | --- | --- | --- | --- | --- |\n"
    for row in rows {
        text += "| \(row.measure) | \(row.ours) | \(row.peer) | \(row.floor) | \(row.ratio) | \(row.goal) |\n"
    }
    let cores = ProcessInfo.processInfo.activeProcessorCount
    text += "\n\(cores) cores, \(ISO8601DateFormatter().string(from: Date())), workers \(options.workers.map(String.init) ?? "default")\n"
    return text
}

let options = Options(arguments: CommandLine.arguments)
do {
    if let directory = options.decodePages {
        try decodeSavedPages(directory: directory, rounds: options.decodeRounds)
        exit(0)
    }
    try await runBenchmark(options)
} catch {
    FileHandle.standardError.write(Data("operator-benchmark: \(error)\n".utf8))
    exit(1)
}
