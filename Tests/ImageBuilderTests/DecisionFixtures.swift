import Foundation
import ImageBuilder
import KubeTypes
import RegistryTypes
import Testing

// Builders for deciding ImageSpec passes without a server: ImageSpecs, docker-config Secrets,
// build Jobs and their Pods as the API and the kubelet show them, scripted answers to the facts
// the decision asks for, and a small simulated cluster that applies a decision (status write,
// Job creation and deletion, base-image check book) so that passes can follow one another.

/// The world every decision test lives in.
enum World {
    static let namespace = "hub"
    static let name = "demo"
    static let uid = "uid-demo"
    /// Where images are pushed, and the registry the push secret has credentials for.
    static let pushHost = "registry.example.com"
    static let pushRepository = "registry.example.com/ph/images"
    /// The base image lives on another registry, which the pull secret has credentials for.
    static let pullHost = "quay.io"
    static let baseImage = "quay.io/jupyter/base-notebook:latest"

    /// 2026-01-01T12:00:00Z.
    static let t0 = Date(timeIntervalSince1970: 1_767_268_800)
    static let baseDigest = "sha256:" + String(repeating: "1", count: 64)
    static let movedBaseDigest = "sha256:" + String(repeating: "2", count: 64)
    static let imageDigest = "sha256:" + String(repeating: "a", count: 64)
    /// When most single-pass decisions are made: 100 s after the build started.
    static let now = t0.addingTimeInterval(100)

    static func config(_ configure: (inout OperatorConfig) -> Void = { _ in }) -> OperatorConfig {
        var config = OperatorConfig()
        config.registry.push = .repository(pushRepository)
        config.registry.pushSecret = "push"
        config.registry.pullSecret = "hub-pull"
        configure(&config)
        return config
    }

    static func spec(baseImage: String = World.baseImage, pullSecret: String? = "pull", apt: [String]? = ["curl"],
                     conda: [String]? = nil, updateTime: Date? = nil, cancel: Bool? = nil, publish: Publish? = nil) -> ImageSpecSpec {
        ImageSpecSpec(baseImage: baseImage, pullSecret: pullSecret, packages: Packages(apt: apt, conda: conda),
                      updateTime: updateTime, cancel: cancel, publish: publish)
    }

    /// The ImageSpec as the cache shows it (uid, generation 1, resourceVersion "100").
    static func imageSpec(_ spec: ImageSpecSpec = World.spec(), status: ImageSpecStatus? = nil, generation: Int64 = 1,
                          resourceVersion: String = "100", annotations: [String: String]? = nil) -> ImageSpec {
        var metadata = ObjectMeta(name: name, namespace: namespace, annotations: annotations, resourceVersion: resourceVersion)
        metadata.uid = uid
        metadata.generation = generation
        metadata.creationTimestamp = t0.addingTimeInterval(-86_400)
        return ImageSpec(metadata: metadata, spec: spec, status: status)
    }

    /// The opt-in annotation for rebuilds when the base tag moves.
    static let rebuildOnBaseChange = [MetadataKeys.rebuildOnBaseChange: "true"]

    // MARK: Secrets

    /// A `kubernetes.io/dockerconfigjson` Secret with one `auths` entry.
    static func dockerSecret(_ name: String, host: String, username: String, password: String = "secret") -> Secret {
        dockerSecret(name, auths: [host: username], password: password)
    }

    /// A `kubernetes.io/dockerconfigjson` Secret with an `auths` entry per host (host → username).
    static func dockerSecret(_ name: String, auths: [String: String], password: String = "secret") -> Secret {
        let entries = auths.keys.sorted().map { host in
            let auth = Data("\(auths[host] ?? ""):\(password)".utf8).base64EncodedString()
            return #""\#(host)":{"auth":"\#(auth)"}"#
        }
        let json = #"{"auths":{"# + entries.joined(separator: ",") + "}}"
        return Secret(metadata: ObjectMeta(name: name, namespace: namespace), type: RegistryCredentials.secretType,
                      data: [RegistryCredentials.secretKey: Data(json.utf8)])
    }

    /// A Secret of the right type whose content is not a docker config.
    static func brokenSecret(_ name: String) -> Secret {
        Secret(metadata: ObjectMeta(name: name, namespace: namespace), type: RegistryCredentials.secretType,
               data: [RegistryCredentials.secretKey: Data("not json".utf8)])
    }

    static var pushSecret: Secret { dockerSecret("push", host: pushHost, username: "pusher") }
    static var pullSecret: Secret { dockerSecret("pull", host: pullHost, username: "puller") }
    static var secrets: BuildSecrets { BuildSecrets(pull: .found(pullSecret), push: .found(pushSecret)) }

    // MARK: Base images

    static func base(digest: String = baseDigest, hasConda: Bool = true, jupyter: Bool = true) -> BaseImageFacts {
        BaseImageFacts(digest: digest, user: "1000", hasConda: hasConda, looksJupyterReady: jupyter, authentication: "basic as puller")
    }

    // MARK: Identity

    static func identity(_ imageSpec: ImageSpec = World.imageSpec(), config: OperatorConfig = World.config(),
                         source: BuildSource = .imageSpec, sourceLocation: SourceLocation = #_sourceLocation) throws -> BuildIdentity {
        try #require(PreparedSpec.of(imageSpec, config: config, source: source).identity, sourceLocation: sourceLocation)
    }

    // MARK: ImageSpecJobs (PrimeHub's build records)

    /// The ImageSpecJob a start of `identity`'s build creates (no status yet), or with `status`.
    static func record(_ identity: BuildIdentity, spec: ImageSpecSpec = World.spec(), config: OperatorConfig = World.config(),
                       updateTime: Date, status: ImageSpecJob.Status? = nil) -> ImageSpecJob {
        var metadata = ObjectMeta(name: identity.recordName, namespace: namespace, labels: identity.labels,
                                  annotations: identity.recordAnnotations)
        if let owner = identity.owner { metadata.ownerReferences = [owner] }
        var prefix: String?
        if case .prefix(let value) = config.registry.push { prefix = value }
        return ImageSpecJob(metadata: metadata, spec: ImageSpecJob.Spec(
            baseImage: spec.baseImage, packages: spec.packages, pullSecret: spec.pullSecret, pushSecret: config.registry.pushSecret ?? "",
            repoPrefix: prefix, targetImage: identity.targetImage, updateTime: updateTime), status: status)
    }

    /// A record's status after its build succeeded (as PrimeHub's controller leaves it): Pod
    /// started at `start`, finished 120 s later.
    static func succeededRecordStatus(start: Date = t0, podName: String = "image-demo-x7k2") -> ImageSpecJob.Status {
        ImageSpecJob.Status(phase: BuildPhase.succeeded.rawValue, podName: podName, startTime: start,
                            finishTime: start.addingTimeInterval(120))
    }

    /// The record's status a start writes: Pending, no Pod yet, started at `start`.
    static func pendingRecordStatus(start: Date = t0) -> ImageSpecJob.Status {
        ImageSpecJob.Status(phase: BuildPhase.pending.rawValue, podName: "", startTime: start)
    }

    // MARK: Jobs and Pods

    static func complete(at time: Date) -> JobCondition {
        JobCondition(type: "Complete", status: "True", lastProbeTime: time, lastTransitionTime: time)
    }

    static func failed(_ reason: String = "BackoffLimitExceeded", at time: Date) -> JobCondition {
        JobCondition(type: "Failed", status: "True", reason: reason, message: "Job has reached the specified backoff limit",
                     lastProbeTime: time, lastTransitionTime: time)
    }

    /// A build Job as the API shows it: owned by the ImageSpec (or by `ownerUID`), created at
    /// `created`, with the build's labels and annotations and the given conditions.
    static func job(_ name: String, created: Date = t0, conditions: [JobCondition] = [], ownerUID: String = uid,
                    jobUID: String? = nil, annotations extra: [String: String] = [:], target: String? = nil) -> Job {
        var annotations = [MetadataKeys.imageSpecHash: String(name.suffix(8)), MetadataKeys.imageSpec: World.name,
                           MetadataKeys.baseDigestAnnotation: baseDigest]
        if let target { annotations[MetadataKeys.targetImage] = target }
        annotations.merge(extra) { $1 }
        var metadata = ObjectMeta(name: name, namespace: namespace,
                                  labels: [MetadataKeys.managedBy: MetadataKeys.managedByValue, MetadataKeys.imageSpecName: World.name],
                                  annotations: annotations,
                                  ownerReferences: [OwnerReference(apiVersion: "primehub.io/v1alpha1", kind: "ImageSpec", name: World.name,
                                                                   uid: ownerUID, controller: true, blockOwnerDeletion: true)])
        metadata.uid = jobUID ?? "job-\(name)"
        metadata.creationTimestamp = created
        let completion = conditions.first { $0.type == "Complete" }?.lastTransitionTime
        return Job(metadata: metadata,
                   spec: JobSpec(template: PodTemplateSpec(spec: PodSpec(containers: [Container(name: "build", image: "kaniko")])),
                                 backoffLimit: 0, activeDeadlineSeconds: 3600),
                   status: JobStatus(conditions: conditions.isEmpty ? nil : conditions, startTime: created, completionTime: completion,
                                     active: conditions.isEmpty ? 1 : 0))
    }

    /// The Job of the current build of `imageSpec` under `config`.
    static func currentJob(_ imageSpec: ImageSpec = World.imageSpec(), config: OperatorConfig = World.config(), created: Date = t0,
                           conditions: [JobCondition] = [], annotations: [String: String] = [:]) throws -> Job {
        let identity = try identity(imageSpec, config: config)
        return job(identity.jobName, created: created, conditions: conditions, annotations: annotations, target: identity.targetImage)
    }

    static func running(since time: Date = t0) -> ContainerState {
        ContainerState(running: ContainerStateRunning(startedAt: time))
    }

    static func waiting(_ reason: String, _ message: String? = nil) -> ContainerState {
        ContainerState(waiting: ContainerStateWaiting(reason: reason, message: message))
    }

    /// The builder container ended: exit 0 with kaniko's digest file as the termination message,
    /// or the log tail on error (`FallbackToLogsOnError`).
    static func terminated(_ exitCode: Int32, _ message: String?, reason: String? = nil, at time: Date = t0) -> ContainerState {
        ContainerState(terminated: ContainerStateTerminated(exitCode: exitCode, reason: reason ?? (exitCode == 0 ? "Completed" : "Error"),
                                                            message: message, startedAt: time, finishedAt: time))
    }

    /// The build Pod of `job` with the builder container in `state`.
    static func pod(of job: Job, _ state: ContainerState?, phase: String? = nil, conditions: [PodCondition]? = nil,
                    created: Date? = nil) -> Pod {
        let jobName = job.metadata.name ?? ""
        var metadata = ObjectMeta(name: "\(jobName)-x7k2p", namespace: namespace,
                                  ownerReferences: [OwnerReference(apiVersion: "batch/v1", kind: "Job", name: jobName,
                                                                   uid: job.metadata.uid ?? "", controller: true, blockOwnerDeletion: true)])
        metadata.creationTimestamp = created ?? job.metadata.creationTimestamp
        let derivedPhase = phase ?? {
            if let terminated = state?.terminated { return terminated.exitCode == 0 ? "Succeeded" : "Failed" }
            return state?.running != nil ? "Running" : "Pending"
        }()
        return Pod(metadata: metadata,
                   spec: PodSpec(containers: [Container(name: "build", image: "gcr.io/kaniko-project/executor:v1.23.2")], restartPolicy: "Never"),
                   status: PodStatus(phase: derivedPhase, conditions: conditions,
                                     containerStatuses: state.map { [ContainerStatus(name: "build", ready: $0.running != nil, state: $0)] }))
    }

    // MARK: Statuses

    /// The status a build start writes: a pending record of `identity`'s build started at `start`.
    static func startedStatus(_ identity: BuildIdentity, start: Date = t0, generation: Int64 = 1) -> ImageSpecStatus {
        var status = ImageSpecStatus(phase: BuildPhase.pending.rawValue, jobName: identity.jobName)
        status.baseImageDigest = baseDigest
        status.startTime = start
        status.record(BuildRecord(jobName: identity.jobName, hash: identity.hash, phase: BuildPhase.pending.rawValue,
                                  image: identity.targetImage, startTime: start), limit: 5)
        status.setState(.reconciling(reason: Reason.buildStarted.rawValue, message: "building"), generation: generation, now: start)
        return status
    }

    /// The status of a recorded success of `identity`'s build.
    static func succeededStatus(_ identity: BuildIdentity, start: Date = t0, completion: Date = t0.addingTimeInterval(120),
                                generation: Int64 = 1) -> ImageSpecStatus {
        var status = ImageSpecStatus(phase: BuildPhase.succeeded.rawValue, jobName: identity.jobName, image: identity.targetImage)
        status.digest = imageDigest
        status.baseImageDigest = baseDigest
        status.startTime = start
        status.completionTime = completion
        status.record(BuildRecord(jobName: identity.jobName, hash: identity.hash, phase: BuildPhase.succeeded.rawValue,
                                  image: identity.targetImage, digest: imageDigest, startTime: start, completionTime: completion), limit: 5)
        let message = "image \(identity.targetImage)@\(imageDigest) is built"
        status.setState(.ready(reason: Reason.buildSucceeded.rawValue, message: message), generation: generation, now: completion)
        return status
    }
}

// MARK: - Answering facts

/// Scripted answers to the facts a decision asks for. A nil answer was not scripted: asking for it
/// is a test failure.
struct Answers: Sendable {
    /// nil: the resourceVersion of the ImageSpec observed (the cache is current).
    var currentResourceVersion: String?? = nil
    var secrets: BuildSecrets? = World.secrets
    var baseImage: BaseImageAnswer? = .resolved(World.base())
    var pushAccess: PushAccessAnswer? = .granted
    /// `.some(nil)`: the API has no such Job.
    var liveJob: Job?? = nil
    /// `.some(nil)`: there is no such Image.
    var publishedImage: Image?? = .some(nil)
    var rebuildSlot: RebuildSlot? = .granted
    /// The builder's log tail (`.some(nil)`: it cannot be read).
    var builderLog: String?? = nil
    /// What the registry holds under the target tag (asked before the first build of a hash).
    var targetImage: TargetImageAnswer? = .absent

    static var standard: Answers { Answers() }
    /// No answers: any fact asked for fails the test (the resourceVersion, if asked, is the observed one).
    static var none: Answers {
        Answers(secrets: nil, baseImage: nil, pushAccess: nil, liveJob: nil, publishedImage: nil, rebuildSlot: nil, targetImage: nil)
    }

    func with(_ change: (inout Answers) -> Void) -> Answers {
        var copy = self
        change(&copy)
        return copy
    }
}

struct UnansweredFact: Error, CustomStringConvertible {
    var description: String
}

/// One pass: the decision and the facts asked for before it, round by round.
struct Pass {
    var decision: ImageSpecDecision
    var rounds: [Set<Fact>]

    var status: ImageSpecStatus { decision.status }
    var asked: Set<Fact> { rounds.reduce(into: []) { $0.formUnion($1) } }
    /// The action kinds, step by step; the actions after the status write last, marked so.
    var steps: [[String]] {
        decision.steps.map { $0.map(\.kind) }
            + (decision.afterStatus.isEmpty ? [] : [decision.afterStatus.map { "after status: " + $0.kind }])
    }
    var actions: [BuildAction] { decision.actions }
    var eventReasons: [Reason] { decision.events.map(\.reason) }
    var metricNames: [String] { decision.metrics.map(\.name) }

    /// The condition of `type`.
    func condition(_ type: ConditionType) -> Condition? { status.conditions?[type.rawValue] }

    /// The kstatus condition types (`Ready`, `Reconciling`, `Stalled`) that are True.
    var trueConditions: [String] {
        (status.conditions ?? []).filter { $0.isTrue && ConditionType(rawValue: $0.type) != nil }.map(\.type)
    }

    var createdJob: Job? {
        for case .createJob(let job) in actions { return job }
        return nil
    }

    /// The ImageSpecJob this pass creates (or updates).
    var ensuredRecord: ImageSpecJob? {
        for case .ensureImageSpecJob(let record) in actions { return record }
        return nil
    }

    /// The ImageSpecJob statuses this pass writes, by record name.
    var recordStatusWrites: [String: ImageSpecJob.Status] {
        var writes: [String: ImageSpecJob.Status] = [:]
        for case .writeImageSpecJobStatus(let name, _, let status) in actions { writes[name] = status }
        return writes
    }

    /// The ImageSpecJobs this pass deletes, in order.
    var deletedRecords: [String] {
        actions.compactMap { if case .deleteImageSpecJob(let name, _) = $0 { return name } else { return nil } }
    }
}

enum Decide {
    /// The most fact rounds a pass may take; the shell gives up after as many
    /// (`ImageSpecReconciler.maxFactRounds`).
    static let maxRounds = 6

    /// Decides one pass of `observation`, answering `.needs` from `answers` as the shell would
    /// (each round's answers added to the facts), at most `maxRounds` times.
    static func pass(_ observation: ImageSpecObservation, answers: Answers = .standard, source: BuildSource = .imageSpec,
                     sourceLocation: SourceLocation = #_sourceLocation) throws -> Pass {
        var observation = observation
        let prepared = PreparedSpec.of(observation.imageSpec, config: observation.config, source: source)
        var rounds: [Set<Fact>] = []
        for _ in 0..<maxRounds {
            switch ImageSpecDecider.decide(prepared, observation) {
            case .decided(let decision):
                return Pass(decision: decision, rounds: rounds)
            case .needs(let facts):
                #expect(!facts.isEmpty, "a decision that needs nothing must decide", sourceLocation: sourceLocation)
                rounds.append(facts)
                for fact in facts {
                    try answer(fact, from: answers, observed: observation.imageSpec, into: &observation.facts)
                }
            }
        }
        Issue.record("the decision kept asking for facts after \(maxRounds) rounds: \(rounds)", sourceLocation: sourceLocation)
        throw UnansweredFact(description: "unbounded fact rounds")
    }

    static func answer(_ fact: Fact, from answers: Answers, observed: ImageSpec, into facts: inout ObservedFacts) throws {
        func missing() throws -> Never { throw UnansweredFact(description: "the script has no answer for \(fact)") }
        switch fact {
        case .currentResourceVersion:
            facts.currentResourceVersion = answers.currentResourceVersion ?? .some(observed.metadata.resourceVersion)
        case .secrets:
            guard let secrets = answers.secrets else { try missing() }
            facts.secrets = secrets
        case .baseImage:
            guard let base = answers.baseImage else { try missing() }
            facts.baseImage = base
        case .pushAccess:
            guard let push = answers.pushAccess else { try missing() }
            facts.pushAccess = push
        case .liveJob:
            guard let live = answers.liveJob else { try missing() }
            facts.liveJob = .some(live)
        case .publishedImage:
            guard let image = answers.publishedImage else { try missing() }
            facts.publishedImage = .some(image)
        case .rebuildSlot:
            guard let slot = answers.rebuildSlot else { try missing() }
            facts.rebuildSlot = slot
        case .builderLog:
            guard let log = answers.builderLog else { try missing() }
            facts.builderLog = .some(log)
        case .targetImage:
            guard let target = answers.targetImage else { try missing() }
            facts.targetImage = target
        }
    }
}

extension BuildAction {
    var kind: String {
        switch self {
        case .ensureConfigMap: return "ensureConfigMap"
        case .ensureSecret: return "ensureSecret"
        case .createJob: return "createJob"
        case .deleteJob: return "deleteJob"
        case .deleteConfigMap: return "deleteConfigMap"
        case .deleteRegistrySecret: return "deleteRegistrySecret"
        case .createImage: return "createImage"
        case .updateImage: return "updateImage"
        case .ensureImageSpecJob: return "ensureImageSpecJob"
        case .writeImageSpecJobStatus: return "writeImageSpecJobStatus"
        case .deleteImageSpecJob: return "deleteImageSpecJob"
        }
    }
}

extension BuildMetric {
    /// `started`, or the result of a finished build.
    var name: String {
        switch self {
        case .started: return "started"
        case .finished(let result, _): return result
        }
    }
}

// MARK: - A simulated cluster

/// The ImageSpec, its Jobs and Pods, its ImageSpecJobs and the operator's base-image book, changed
/// by each pass as the shell and the API would: the status is written (through JSON, so times keep
/// whole seconds, and with a new resourceVersion) when it changed, created Jobs appear with a uid
/// and a creation time, deleted Jobs disappear, ImageSpecJobs are created (one of that name with
/// another spec updated, its status kept), their statuses written (through JSON) and deleted,
/// base-image check changes are applied.
struct Cluster {
    var imageSpec: ImageSpec
    var config: OperatorConfig
    var policy = ReconcilePolicy()
    /// Owned Jobs, newest first.
    var jobs: [Job] = []
    var pods: [String: Pod] = [:]
    /// ImageSpecJobs, in creation order.
    var records: [ImageSpecJob] = []
    /// Which path the decision serves.
    var source: BuildSource = .imageSpec
    var book = BaseImageCheckState()
    var now: Date
    /// Every Event and metric of the passes so far.
    var events: [DecidedEvent] = []
    var metrics: [BuildMetric] = []
    var statusWrites = 0

    init(imageSpec: ImageSpec = World.imageSpec(), config: OperatorConfig = World.config(), now: Date = World.t0) {
        self.imageSpec = imageSpec
        self.config = config
        self.now = now
    }

    /// A Job of the build's name that the ImageSpec does not own.
    var foreignJob: Job?

    var observation: ImageSpecObservation {
        ImageSpecObservation(imageSpec: imageSpec, ownedJobs: jobs, foreignJob: foreignJob, pods: pods, imageSpecJobs: records,
                             baseImageCheck: book, config: config, policy: policy, now: now)
    }

    var status: ImageSpecStatus { imageSpec.status ?? ImageSpecStatus() }

    /// Decides a pass and applies it.
    @discardableResult
    mutating func pass(_ answers: Answers = .standard, sourceLocation: SourceLocation = #_sourceLocation) throws -> Pass {
        let pass = try Decide.pass(observation, answers: answers, source: source, sourceLocation: sourceLocation)
        try apply(pass.decision)
        return pass
    }

    mutating func apply(_ decision: ImageSpecDecision) throws {
        var counter = jobs.count
        for action in decision.actions {
            switch action {
            case .createJob(var job):
                counter += 1
                job.metadata.uid = "job-uid-\(counter)-\(Int(now.timeIntervalSince1970))"
                job.metadata.creationTimestamp = now.wholeSeconds
                jobs.insert(job, at: 0)
            case .deleteJob(let job):
                jobs.removeAll { $0.metadata.uid == job.metadata.uid }
                pods[job.metadata.name ?? ""] = nil
            case .ensureImageSpecJob(var created):
                created = try JSONValue(encoding: created).decode(as: ImageSpecJob.self)
                if let index = records.firstIndex(where: { $0.metadata.name == created.metadata.name }) {
                    created.status = records[index].status
                    records[index] = created
                } else {
                    created.status = nil
                    records.append(created)
                }
            case .writeImageSpecJobStatus(let name, _, let status):
                let index = try #require(records.firstIndex { $0.metadata.name == name }, "a status write to a missing ImageSpecJob \(name)")
                records[index].status = try JSONValue(encoding: status).decode(as: ImageSpecJob.Status.self)
            case .deleteImageSpecJob(let name, _):
                records.removeAll { $0.metadata.name == name }
            default:
                break
            }
        }
        for change in decision.baseImageCheckChanges {
            switch change {
            case .checked(let date): book.lastCheck = date
            case .pendingRebuild(let digest): book.pendingRebuild = digest
            case .clearPendingRebuild: book.pendingRebuild = nil
            }
        }
        if decision.status != status {
            imageSpec.status = try JSONValue(encoding: decision.status).decode(as: ImageSpecStatus.self)
            imageSpec.metadata.resourceVersion = String((Int(imageSpec.metadata.resourceVersion ?? "0") ?? 0) + 1)
            statusWrites += 1
        }
        events += decision.events
        metrics += decision.metrics
    }

    /// The current build's Job.
    func job(_ name: String) -> Job? { jobs.first { $0.metadata.name == name } }

    /// The ImageSpecJob `name`.
    func record(_ name: String) -> ImageSpecJob? { records.first { $0.metadata.name == name } }

    /// Plays the kubelet: the build Pod of Job `name` runs.
    mutating func startRunning(_ name: String) throws {
        let job = try #require(self.job(name))
        pods[name] = World.pod(of: job, World.running(since: now.wholeSeconds), created: now.wholeSeconds)
        pods[name]?.status?.startTime = now.wholeSeconds
    }

    /// Plays the kubelet and the Job controller: the builder ended with `exitCode` and `message`.
    mutating func finish(_ name: String, exitCode: Int32 = 0, message: String?, reason: String? = nil) throws {
        let index = try #require(jobs.firstIndex { $0.metadata.name == name })
        let at = now.wholeSeconds
        let started = pods[name]?.status?.startTime
        pods[name] = World.pod(of: jobs[index], World.terminated(exitCode, message, reason: reason, at: at),
                               created: jobs[index].metadata.creationTimestamp)
        pods[name]?.status?.startTime = started
        let condition = exitCode == 0 ? World.complete(at: at) : World.failed(at: at)
        jobs[index].status = JobStatus(conditions: [condition], startTime: jobs[index].metadata.creationTimestamp,
                                       completionTime: exitCode == 0 ? at : nil, active: 0,
                                       succeeded: exitCode == 0 ? 1 : 0, failed: exitCode == 0 ? 0 : 1)
    }

    /// The user edits the spec (a new generation).
    mutating func edit(_ change: (inout ImageSpecSpec) -> Void) {
        change(&imageSpec.spec)
        imageSpec.metadata.generation = (imageSpec.metadata.generation ?? 0) + 1
        imageSpec.metadata.resourceVersion = String((Int(imageSpec.metadata.resourceVersion ?? "0") ?? 0) + 1)
    }

    mutating func advance(_ seconds: TimeInterval) { now = now.addingTimeInterval(seconds) }
}
