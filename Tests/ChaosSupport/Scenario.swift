import Foundation
import ImageBuilder
import KubeClient
import KubeTypes
import Synchronization
import TestHarness

/// The fault a chaos scenario injects in the middle of a burst of ImageSpecs.
public enum ChaosFault: String, CaseIterable, Sendable {
    /// No fault: the baseline the others' extra cost is measured against.
    case none
    /// kube-apiserver SIGKILLed a third into the burst, started again after `ChaosOptions.outage`.
    case apiServerKill = "apiserver-sigkill"
    /// etcd compacted at a third and two thirds of the burst (watch cache off), then kube-apiserver
    /// restarted at once, so that every watch resumes from a compacted revision: 410, relist.
    case etcdCompaction = "etcd-compaction"
    /// Two operator processes with leader election; the leader SIGKILLed a third into the burst.
    case leaderKill = "leader-sigkill"
    /// The (only) operator SIGKILLed a third into the burst and started again a second later.
    case operatorKill = "operator-sigkill"
    /// A second client rewriting every ImageSpec's labels and annotations as fast as it can, from a
    /// third into the burst until `ChaosOptions.rewriteAfterBurst` after it.
    case labelRewriter = "label-rewriter"
    /// The operator talks to kube-apiserver through a `FaultProxy` that answers 429 (Retry-After:
    /// 1) to everything for 4 s, then 500 for 4 s.
    case apiErrors = "api-429-500"
    /// The same proxy cuts every answer short after 200 body bytes for 3 s, then answers with
    /// 100 MiB bodies for 3 s, then sends answers at 4 KiB/s for 4 s.
    case badResponses = "api-truncated-oversized-slow"
    /// The ImageSpecs' base image is on a registry behind a fault proxy that drops every connection
    /// for 5 s, then answers at 8 KiB/s for 4 s.
    case registryOutage = "registry-down-then-slow"

    /// Runs on a control plane without the watch cache (its watches see compactions).
    public var needsWatchCacheOff: Bool { self == .etcdCompaction }

    /// The operator's connection goes through a fault proxy.
    var usesProxy: Bool { self == .apiErrors || self == .badResponses }
}

/// How big and how long a scenario is.
public struct ChaosOptions: Sendable {
    /// ImageSpecs in the burst.
    public var specs: Int
    /// Concurrent creating clients.
    public var creators: Int
    /// The operator's `--workers`.
    public var workers: Int
    /// How long kube-apiserver stays down (`apiServerKill`).
    public var outage: Duration
    /// How long the label rewriter goes on after the last create.
    public var rewriteAfterBurst: Duration
    /// After convergence, play the kubelet: complete every build Job, and check that every status
    /// follows (Succeeded, Ready).
    public var finishBuilds: Bool
    /// The longest any wait may take (a failure, never a timing assertion).
    public var timeout: Duration

    public init(specs: Int = 150, creators: Int = 16, workers: Int = 4, outage: Duration = .seconds(3),
                rewriteAfterBurst: Duration = .seconds(5), finishBuilds: Bool = true, timeout: Duration = .seconds(240)) {
        self.specs = specs
        self.creators = creators
        self.workers = workers
        self.outage = outage
        self.rewriteAfterBurst = rewriteAfterBurst
        self.finishBuilds = finishBuilds
        self.timeout = timeout
    }
}

/// What a scenario measured.
public struct ChaosReport: Sendable, CustomStringConvertible {
    public var fault: ChaosFault
    /// What was done, with its timing.
    public var faultDescription = ""
    public var specs = 0
    /// From the first create to the last.
    public var createsTook = Duration.zero
    /// From the end of the fault (server ready again, process started again, rewriter stopped,
    /// last create for `none`) until every ImageSpec had its one build Job and a status true to it.
    public var convergedAfterFault = Duration.zero
    /// From the last create until then.
    public var convergedAfterCreates = Duration.zero
    /// From the last build Job's completion until every status said Succeeded and Ready.
    public var settledAfterCompletion: Duration?
    /// Fewest and most build Jobs any ImageSpec had, counted after the end (must both be 1).
    public var buildsPerSpec = 0...0
    /// imagespec reconciles, all operator processes together (a killed one's counted up to just
    /// before its kill), divided by `specs`.
    public var reconcilesPerSpec = 0.0
    /// Reconciles from 3 s to 6 s after convergence (a hot loop shows here).
    public var quietReconciles = 0
    /// Scenario-specific figures: relists on 410, rewrites, takeover time.
    public var notes: [String] = []
    /// What did not hold; empty when the scenario passed.
    public var problems: [String] = []

    public var description: String {
        var line = "\(fault.rawValue): \(specs) ImageSpecs; \(faultDescription); creates \(format(createsTook)); "
            + "converged \(format(convergedAfterFault)) after the fault ended (\(format(convergedAfterCreates)) after the last create); "
            + "builds per spec \(buildsPerSpec.lowerBound == buildsPerSpec.upperBound ? "\(buildsPerSpec.lowerBound)" : "\(buildsPerSpec)"); "
            + "reconciles per spec \(String(format: "%.2f", reconcilesPerSpec)); \(quietReconciles) reconciles 3–6 s after"
        if let settledAfterCompletion { line += "; Succeeded+Ready \(format(settledAfterCompletion)) after the Jobs completed" }
        if !notes.isEmpty { line += "; " + notes.joined(separator: "; ") }
        if !problems.isEmpty { line += "\n  PROBLEMS (\(problems.count)): " + problems.prefix(10).joined(separator: "\n  ") }
        return line
    }
}

func format(_ duration: Duration) -> String { String(format: "%.1f s", duration.seconds) }

extension Duration {
    var seconds: Double {
        let (whole, attoseconds) = components
        return Double(whole) + Double(attoseconds) / 1e18
    }
}

extension ChaosWorld {
    /// Runs one scenario in a fresh namespace: starts the operator process(es), creates the burst,
    /// injects the fault, waits until every ImageSpec has exactly one build Job and a status true to
    /// it, watches 3 s more, then (optionally) completes every Job and waits for every status to
    /// follow. Throws only when the scenario could not run; what did not hold is in `problems`.
    public func run(_ fault: ChaosFault, options: ChaosOptions = ChaosOptions()) async throws -> ChaosReport {
        var report = ChaosReport(fault: fault)
        report.specs = options.specs
        let (namespace, configFile) = try await prepareNamespace("chaos-\(fault.rawValue)")
        let proxy = fault.usesProxy ? try FaultProxy.start(in: controlPlane) : nil
        defer { proxy?.stop() }
        let kubeconfig = try proxy.map { try controlPlane.kubeconfig(server: $0.url, name: "proxy-\(namespace)") }
            ?? controlPlane.kubeconfig(for: .admin)
        let operators = try (0..<(fault == .leaderKill ? 2 : 1)).map {
            try makeOperator("operator-\(namespace)-\($0)", namespace: namespace, configFile: configFile, kubeconfig: kubeconfig,
                             workers: options.workers)
        }
        for process in operators { try await process.start() }
        do {
            try await drive(fault, options: options, namespace: namespace, operators: operators, proxy: proxy, report: &report)
        } catch {
            for process in operators { await process.stop() }
            throw ChaosError("\(fault.rawValue): \(error)\n" + operators.map { "\($0.process.name):\n\($0.process.logTail(lines: 15))" }
                .joined(separator: "\n"))
        }
        for process in operators { await process.stop() }
        return report
    }

    private func drive(_ fault: ChaosFault, options: ChaosOptions, namespace: String, operators: [OperatorProcess],
                       proxy: FaultProxy?, report: inout ChaosReport) async throws {
        let clock = ContinuousClock()
        try await until("the operator is ready (caches synced)", timeout: options.timeout) {
            for process in operators where await process.isReady { return true }
            return false
        }
        if fault == .leaderKill {
            try await until("one operator leads", timeout: options.timeout) {
                await leader(of: operators) != nil
            }
        }
        // Play the kubelet's restart policy: an operator that exits (it does when it loses its
        // lease, as a replica must) is started again; one the scenario kills itself is left to it.
        let handled = Locked<Set<String>>([])
        let lostReconciles = Locked(0)
        let restarts = Locked(0)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                var lastSeen: [String: Int] = [:]
                while !Task.isCancelled {
                    for process in operators where !handled.withLock({ $0.contains(process.process.name) }) {
                        if process.process.isRunning {
                            if let count = await process.reconciles() { lastSeen[process.process.name] = count }
                        } else if process.process.exitStatus != nil {
                            lostReconciles.withLock { $0 += lastSeen[process.process.name] ?? 0 }
                            lastSeen[process.process.name] = 0
                            restarts.withLock { $0 += 1 }
                            try? await process.start()
                        }
                    }
                    try? await Task.sleep(for: .milliseconds(500))
                }
            }
            try await burst(fault, options: options, namespace: namespace, operators: operators, proxy: proxy,
                            handled: handled, lostReconciles: lostReconciles, report: &report)
            group.cancelAll()
        }
        let restarted = restarts.withLock { $0 }
        if restarted > 0 { report.notes.append("the operator exited and was started again \(restarted) times (as a kubelet would)") }
    }

    private func burst(_ fault: ChaosFault, options: ChaosOptions, namespace: String, operators: [OperatorProcess],
                       proxy: FaultProxy?, handled: Locked<Set<String>>, lostReconciles: Locked<Int>,
                       report: inout ChaosReport) async throws {
        let clock = ContinuousClock()
        let names = (0..<options.specs).map { String(format: "spec-%04d", $0) }
        let created = Locked(0)
        let burstStart = clock.now

        // The burst and the fault run side by side; each returns when it is over.
        let (createsDone, faultEnd, faultNotes) = try await withThrowingTaskGroup(of: Phase.self) { group in
            let base = fault == .registryOutage ? self.proxiedBaseImage : self.baseImage
            group.addTask {
                try await self.createAll(names, namespace: namespace, base: base, creators: options.creators,
                                         created: created, timeout: options.timeout)
                return .createsDone(clock.now)
            }
            group.addTask {
                try await until("a third of the burst is created", timeout: options.timeout) {
                    created.withLock { $0 } >= options.specs / 3
                }
                let notes = try await self.inject(fault, options: options, namespace: namespace, names: names,
                                                  operators: operators, proxy: proxy, created: created,
                                                  handled: handled, lostReconciles: lostReconciles)
                return .faultEnded(clock.now, notes)
            }
            var createsDone: ContinuousClock.Instant?
            var faultEnd: ContinuousClock.Instant?
            var notes: [String] = []
            for try await phase in group {
                switch phase {
                case .createsDone(let at): createsDone = at
                case .faultEnded(let at, let more): faultEnd = at; notes = more
                }
            }
            return (createsDone!, faultEnd!, notes)
        }
        report.createsTook = createsDone - burstStart
        let effectiveFaultEnd = fault == .none ? createsDone : faultEnd
        report.faultDescription = faultNotes.first ?? ""
        report.notes = Array(faultNotes.dropFirst())

        // Converge: every ImageSpec with its one build Job and a status that says it is pending.
        let survivors = fault == .operatorKill ? operators : operators.filter { $0.process.isRunning }
        var lastProblems: [String] = []
        var takeover: Duration?
        do {
            try await until("every ImageSpec has one build Job and a pending status: \(lastProblems.prefix(5))",
                            timeout: options.timeout) {
                if fault == .leaderKill || fault == .operatorKill, takeover == nil, await leader(of: survivors) != nil {
                    takeover = clock.now - faultEnd
                }
                guard let problems = try? await check(namespace: namespace, names: names, expecting: .pending) else { return false }
                lastProblems = problems
                return problems.isEmpty
            }
        } catch {
            report.problems = lastProblems.isEmpty ? ["\(error)"] : lastProblems
            return
        }
        let converged = clock.now
        report.convergedAfterFault = converged - effectiveFaultEnd
        report.convergedAfterCreates = converged - createsDone
        if let takeover {
            if fault == .leaderKill {
                // The follower cannot take the lease before it expires: 15 s after it last saw a renewal.
                report.notes.append("the other replica led \(format(takeover)) after the kill (lease 15 s: \(format(takeover - .seconds(15))) after it expired at the earliest)")
            } else {
                report.notes.append("the restarted operator (same --leader-identity) led \(format(takeover)) after it was started again")
            }
        }

        // Settle: nothing doubles, nothing loops. The queue may still work off events that came
        // before convergence for 3 s; the 3 s after that must be quiet.
        try await Task.sleep(for: .seconds(3))
        let before = await reconciles(of: survivors)
        try await Task.sleep(for: .seconds(3))
        let after = await reconciles(of: survivors)
        report.quietReconciles = after - before
        let settled = try await check(namespace: namespace, names: names, expecting: .pending)
        if !settled.isEmpty { report.problems += ["after settling: "] + settled }

        if options.finishBuilds {
            try await finishAll(names: names, namespace: namespace, creators: options.creators, timeout: options.timeout)
            let completed = clock.now
            do {
                try await until("every ImageSpec says Succeeded and Ready: \(lastProblems.prefix(5))", timeout: options.timeout) {
                    guard let problems = try? await check(namespace: namespace, names: names, expecting: .succeeded) else { return false }
                    lastProblems = problems
                    return problems.isEmpty
                }
                report.settledAfterCompletion = clock.now - completed
            } catch {
                report.problems += lastProblems.isEmpty ? ["\(error)"] : lastProblems
            }
        }

        let jobs = try await client.listAll(Job.self, namespace: namespace).items
        let counts = try await buildCounts(namespace: namespace, names: names, jobs: jobs)
        report.buildsPerSpec = (counts.min() ?? 0)...(counts.max() ?? 0)
        report.reconcilesPerSpec = Double(await reconciles(of: survivors) + lostReconciles.withLock { $0 }) / Double(options.specs)
        for process in survivors where !process.process.isRunning {
            report.problems.append("\(process.process.name) exited (status \(process.process.exitStatus.map(String.init) ?? "?"))")
        }
        if fault == .badResponses {
            let peaks = survivors.compactMap { $0.process.pid.flatMap(peakResidentMiB) }
            report.notes.append("operator peak RSS \(peaks.map { "\($0) MiB" }.joined(separator: ", "))")
            if let peak = peaks.max(), peak > 512 { report.problems.append("the operator's memory peaked at \(peak) MiB") }
            let log = survivors.map { (try? String(contentsOfFile: $0.process.logFile, encoding: .utf8)) ?? "" }.joined()
            // Informational: which requests got the oversized answers depends on timing (a watch's
            // stream is not a buffered body); FaultProxyTests checks the error itself.
            let tooLarge = log.components(separatedBy: "larger than the limit").count - 1
            report.notes.append("\(tooLarge) log lines name an oversized answer")
        }
        if fault == .etcdCompaction {
            let relists = survivors.map { (try? String(contentsOfFile: $0.process.logFile, encoding: .utf8)) ?? "" }
                .map { $0.components(separatedBy: "resourceVersion expired; relisting").count - 1 }.reduce(0, +)
            report.notes.append("\(relists) relists after 410 in the operator's log")
            if relists == 0 { report.problems.append("no watch saw a 410: the compaction tested nothing") }
        }
    }

    private enum Phase: Sendable {
        case createsDone(ContinuousClock.Instant)
        case faultEnded(ContinuousClock.Instant, [String])
    }

    /// Injects `fault`; returns its description (first) and notes.
    private func inject(_ fault: ChaosFault, options: ChaosOptions, namespace: String, names: [String],
                        operators: [OperatorProcess], proxy: FaultProxy?, created: Locked<Int>,
                        handled: Locked<Set<String>>, lostReconciles: Locked<Int>) async throws -> [String] {
        let clock = ContinuousClock()
        let at = created.withLock { $0 }
        switch fault {
        case .none:
            return ["no fault"]

        case .apiServerKill:
            await controlPlane.killAPIServer()
            try await Task.sleep(for: options.outage)
            let restart = clock.now
            try await controlPlane.startAPIServer()
            return ["kube-apiserver SIGKILLed after \(at) creates, started again \(format(options.outage)) later, ready \(format(clock.now - restart)) after that"]

        case .etcdCompaction:
            let first = try await controlPlane.compactEtcd()
            try await until("two thirds of the burst are created", timeout: options.timeout) {
                created.withLock { $0 } >= 2 * options.specs / 3
            }
            let second = try await controlPlane.compactEtcd()
            await controlPlane.killAPIServer()
            try await controlPlane.startAPIServer()
            return ["etcd compacted after \(at) creates (revision \(first)) and after \(2 * options.specs / 3) (revision \(second)), then kube-apiserver restarted (watch cache off)"]

        case .operatorKill:
            let process = operators[0]
            handled.withLock { _ = $0.insert(process.process.name) }
            let counted = await process.reconciles() ?? 0
            await process.kill()
            try await Task.sleep(for: .seconds(1))
            try await process.start()
            lostReconciles.withLock { $0 += counted }
            handled.withLock { _ = $0.remove(process.process.name) }
            return ["the operator SIGKILLed after \(at) creates, started again 1 s later"]

        case .leaderKill:
            guard let leader = await leader(of: operators) else { throw ChaosError("no operator leads") }
            handled.withLock { _ = $0.insert(leader.process.name) }
            let counted = await leader.reconciles() ?? 0
            await leader.kill()
            lostReconciles.withLock { $0 += counted }
            return ["the leader of 2 replicas SIGKILLed after \(at) creates (lease 15 s)"]

        case .apiErrors:
            guard let proxy else { throw ChaosError("no proxy") }
            proxy.setFault(.status(429, retryAfterSeconds: 1))
            proxy.breakConnections()
            try await Task.sleep(for: .seconds(4))
            proxy.setFault(.status(500, retryAfterSeconds: nil))
            try await Task.sleep(for: .seconds(4))
            proxy.setFault(.none)
            return ["the API answered 429 (Retry-After: 1) for 4 s after \(at) creates, then 500 for 4 s",
                    "\(proxy.statistics.faulted) requests answered with an error"]

        case .badResponses:
            guard let proxy else { throw ChaosError("no proxy") }
            proxy.setFault(.truncate(afterBodyBytes: 200))
            proxy.breakConnections()
            try await Task.sleep(for: .seconds(3))
            let truncated = proxy.statistics.faulted
            proxy.setFault(.oversized(bytes: 100 << 20))
            try await Task.sleep(for: .seconds(3))
            let oversized = proxy.statistics.faulted - truncated
            proxy.setFault(.slow(bytesPerSecond: 4096))
            try await Task.sleep(for: .seconds(4))
            proxy.setFault(.none)
            return ["answers cut after 200 body bytes for 3 s after \(at) creates, then 100 MiB answers for 3 s, then answers at 4 KiB/s for 4 s",
                    "\(truncated) answers cut, \(oversized) oversized, \(proxy.statistics.faulted - truncated - oversized) slowed"]

        case .registryOutage:
            registryProxy.setFault(.drop)
            registryProxy.breakConnections()
            try await Task.sleep(for: .seconds(5))
            let specs = (try? await client.listAll(ImageSpec.self, namespace: namespace).items) ?? []
            let unreachable = specs.filter { spec in
                (spec.status?.conditions ?? []).contains { $0.reason == "BaseImageUnreachable" }
            }.count
            registryProxy.setFault(.slow(bytesPerSecond: 8192))
            try await Task.sleep(for: .seconds(4))
            registryProxy.setFault(.none)
            return ["the registry dropped every connection for 5 s after \(at) creates, then answered at 8 KiB/s for 4 s",
                    "\(unreachable) ImageSpecs said BaseImageUnreachable at the end of the outage"]

        case .labelRewriter:
            let rewrites = Locked(0)
            let stop = Locked<ContinuousClock.Instant?>(nil)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for worker in 0..<4 {
                    group.addTask {
                        var index = worker
                        var round = 0
                        while true {
                            if let end = stop.withLock({ $0 }), clock.now >= end { return }
                            let name = names[index % names.count]
                            index += 4
                            if index >= names.count { index = worker; round += 1 }
                            let value = JSONValue.string("\(worker)-\(round)")
                            let patch = JSONValue.object(["metadata": .object([
                                "labels": .object(["chaos-rewrite": value]),
                                "annotations": .object(["chaos.example/rewrite": value]),
                            ])])
                            if (try? await self.client.patch(ImageSpec.self, name: name, namespace: namespace, patch: .merge(patch))) != nil {
                                rewrites.withLock { $0 += 1 }
                            }
                        }
                    }
                }
                group.addTask {
                    try await until("the burst is created", timeout: options.timeout) {
                        created.withLock { $0 } >= options.specs
                    }
                    stop.withLock { $0 = clock.now + options.rewriteAfterBurst }
                }
                try await group.waitForAll()
            }
            let total = rewrites.withLock { $0 }
            return ["labels and annotations rewritten by 4 clients from \(at) creates until \(format(options.rewriteAfterBurst)) after the last",
                    "\(total) rewrites (\(String(format: "%.1f", Double(total) / Double(options.specs))) per spec)"]
        }
    }

    /// The peak resident memory of a process (`VmHWM`), in MiB.
    private func peakResidentMiB(_ pid: Int32) -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
              let kilobytes = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first.flatMap({ Int($0) })
        else { return nil }
        return kilobytes / 1024
    }

    private func leader(of operators: [OperatorProcess]) async -> OperatorProcess? {
        for process in operators where process.process.isRunning {
            if await process.isLeader() { return process }
        }
        return nil
    }

    private func reconciles(of operators: [OperatorProcess]) async -> Int {
        var total = 0
        for process in operators where process.process.isRunning { total += await process.reconciles() ?? 0 }
        return total
    }

    // MARK: - The burst

    private func createAll(_ names: [String], namespace: String, base: String, creators: Int, created: Locked<Int>,
                           timeout: Duration) async throws {
        try await forEach(names, concurrently: creators) { name in
            try await self.createRetrying(name, namespace: namespace, base: base, timeout: timeout)
            created.withLock { $0 += 1 }
        }
    }

    /// Creates one ImageSpec, trying again while the API server is away; an AlreadyExists answer
    /// means an earlier attempt got through.
    private func createRetrying(_ name: String, namespace: String, base: String, timeout: Duration) async throws {
        let spec = ImageSpec(metadata: ObjectMeta(name: name, namespace: namespace),
                             spec: ImageSpecSpec(baseImage: base, packages: Packages(apt: ["curl"], pip: ["flask>=2"])))
        let deadline = ContinuousClock.now + timeout
        while true {
            do {
                _ = try await client.create(spec)
                return
            } catch let error as APIError where error.isAlreadyExists {
                return
            } catch {
                if ContinuousClock.now > deadline { throw ChaosError("creating \(name): \(error)") }
                try await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    // MARK: - Playing the kubelet

    /// Completes every ImageSpec's build Job the way its Pod would: a Pod whose `build` container
    /// ended with the digest as its termination message, then the Job's Complete condition.
    private func finishAll(names: [String], namespace: String, creators: Int, timeout: Duration) async throws {
        let specs = try await client.listAll(ImageSpec.self, namespace: namespace).items
        let jobNames = specs.compactMap { $0.status?.jobName }.filter { !$0.isEmpty }
        try await forEach(jobNames, concurrently: creators) { try await self.complete($0, namespace: namespace) }
    }

    private func complete(_ jobName: String, namespace: String) async throws {
        var job = try await client.get(Job.self, name: jobName, namespace: namespace)
        let now = Date(timeIntervalSince1970: Date().timeIntervalSince1970.rounded(.down))
        let owner = OwnerReference(apiVersion: "batch/v1", kind: "Job", name: jobName, uid: job.metadata.uid ?? "",
                                   controller: true, blockOwnerDeletion: true)
        var pod = try await client.create(Pod(
            metadata: ObjectMeta(name: "\(jobName)-pod", namespace: namespace, labels: job.spec?.template.metadata?.labels,
                                 annotations: job.spec?.template.metadata?.annotations, ownerReferences: [owner]),
            spec: PodSpec(containers: [Container(name: "build", image: job.spec?.template.spec?.containers.first?.image)],
                          restartPolicy: "Never")))
        pod.status = PodStatus(phase: "Succeeded", containerStatuses: [
            ContainerStatus(name: "build", ready: false, state: ContainerState(terminated: ContainerStateTerminated(
                exitCode: 0, reason: "Completed", message: "sha256:" + String(repeating: "7", count: 64),
                startedAt: now, finishedAt: now))),
        ])
        _ = try await client.updateStatus(pod)
        job.status = JobStatus(conditions: [JobCondition(type: "Complete", status: "True", lastProbeTime: now, lastTransitionTime: now)],
                               startTime: now, completionTime: now, active: 0, succeeded: 1, failed: 0)
        _ = try await client.updateStatus(job)
    }

    // MARK: - Checking

    enum Expectation { case pending, succeeded }

    /// Build Jobs per ImageSpec (by controller owner uid), in the order of `names`.
    private func buildCounts(namespace: String, names: [String], jobs: [Job]) async throws -> [Int] {
        let specs = try await client.listAll(ImageSpec.self, namespace: namespace).items
        let uids = Dictionary(specs.map { ($0.metadata.name ?? "", $0.metadata.uid ?? "") }, uniquingKeysWith: { first, _ in first })
        return names.map { name in
            jobs.filter { $0.metadata.controllerReference?.uid == uids[name] }.count
        }
    }

    /// What is not as it should be: per ImageSpec, exactly one build Job owned by it, and a status
    /// true to that Job (phase, `jobName`, conditions for the current generation).
    func check(namespace: String, names: [String], expecting expectation: Expectation) async throws -> [String] {
        let specs = try await client.listAll(ImageSpec.self, namespace: namespace).items
        let jobs = try await client.listAll(Job.self, namespace: namespace).items
        let byName = Dictionary(specs.map { ($0.metadata.name ?? "", $0) }, uniquingKeysWith: { first, _ in first })
        var jobsByOwner: [String: [Job]] = [:]
        for job in jobs {
            if let owner = job.metadata.controllerReference, owner.kind == "ImageSpec" { jobsByOwner[owner.uid, default: []].append(job) }
        }
        var problems: [String] = []
        for name in names {
            guard let spec = byName[name] else { problems.append("\(name): lost"); continue }
            let owned = jobsByOwner[spec.metadata.uid ?? ""] ?? []
            if owned.count > 1 { problems.append("\(name): \(owned.count) build Jobs"); continue }
            guard let job = owned.first else { problems.append("\(name): no build Job yet"); continue }
            guard let status = spec.status else { problems.append("\(name): no status"); continue }
            let conditions = status.conditions ?? []
            let ready = conditions.first { $0.type == Condition.ready }
            let reconciling = conditions.first { $0.type == Condition.reconciling }
            if status.jobName != job.metadata.name { problems.append("\(name): jobName \(status.jobName) ≠ \(job.metadata.name ?? "")") }
            let generation = spec.metadata.generation
            if conditions.contains(where: { $0.observedGeneration != generation }) {
                problems.append("\(name): conditions observed another generation than \(generation.map(String.init) ?? "?")")
            }
            switch expectation {
            case .pending:
                if status.phase != "Pending" { problems.append("\(name): phase \(status.phase), the Job has no Pod") }
                if reconciling?.isTrue != true { problems.append("\(name): Reconciling not True while the build is pending") }
                if ready?.isTrue == true { problems.append("\(name): Ready before the build") }
            case .succeeded:
                if status.phase != "Succeeded" { problems.append("\(name): phase \(status.phase), the Job completed") }
                if ready?.isTrue != true { problems.append("\(name): Ready not True after the build succeeded") }
                if reconciling?.isTrue == true { problems.append("\(name): still Reconciling after the build") }
                if status.image.isEmpty { problems.append("\(name): no image after the build") }
            }
        }
        return problems
    }
}

/// Runs `body` for every item, `width` at a time, in order of the items.
func forEach<Item: Sendable>(_ items: [Item], concurrently width: Int,
                             _ body: @escaping @Sendable (Item) async throws -> Void) async throws {
    let next = Locked(0)
    try await withThrowingTaskGroup(of: Void.self) { group in
        for _ in 0..<max(width, 1) {
            group.addTask {
                while true {
                    let index = next.withLock { value in
                        defer { value += 1 }
                        return value
                    }
                    guard index < items.count else { return }
                    try await body(items[index])
                }
            }
        }
        try await group.waitForAll()
    }
}

/// A value behind a lock that escaping closures (child tasks) can share.
final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>

    init(_ value: Value) { mutex = Mutex(value) }

    func withLock<T: Sendable>(_ body: (inout sending Value) throws -> sending T) rethrows -> T {
        try mutex.withLock(body)
    }
}
