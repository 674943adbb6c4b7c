import Foundation
import KubeTypes
import RegistryTypes

// The reconcile of an ImageSpec as a pure decision: what was observed (the ImageSpec, its Jobs
// and Pods, and facts the shell looked up on request) goes in; the status to write, the actions
// to take, the Events, the metrics and when to look again come out. The shell
// (`ImageSpecReconciler`) reads the caches, performs the actions, writes the status once and
// records the Events; it decides nothing.

/// What a registry said about the base image.
public enum BaseImageAnswer: Sendable, Hashable {
    case resolved(BaseImageFacts)
    /// A failure that retrying may fix (connection refused, timeout, 5xx).
    case unreachable(String)
    /// A failure that needs a change (not found, denied, invalid reference).
    case unavailable(String)
}

/// What a registry said about pushing to the target.
public enum PushAccessAnswer: Sendable, Hashable {
    case granted
    case denied(String)
    /// The check itself failed; the build goes ahead.
    case unknown(String)
}

/// What the registry holds under a build's target tag, for adopting a build done before the
/// operator ran it.
public enum TargetImageAnswer: Sendable, Hashable {
    case present(TargetImageFacts)
    /// The tag does not exist.
    case absent
    /// The registry could not tell (unreachable, denied); nothing is adopted from it.
    case unknown(String)
}

/// A target tag found in the registry: its digest, its config's labels and creation time.
public struct TargetImageFacts: Sendable, Hashable {
    public var digest: String
    public var labels: [String: String]
    public var created: Date?

    public init(digest: String, labels: [String: String] = [:], created: Date? = nil) {
        self.digest = digest
        self.labels = labels
        self.created = created
    }
}

/// A Secret the build names: none configured, configured but absent, or found.
public enum SecretLookup: Sendable, Hashable {
    case notConfigured
    case missing(String)
    case found(Secret)

    public var secret: Secret? {
        if case .found(let secret) = self { return secret }
        return nil
    }
}

/// The pull secret (`spec.pullSecret`) and push secret (`registry.pushSecret`) of a build, read
/// once per pass.
public struct BuildSecrets: Sendable, Hashable {
    public var pull: SecretLookup
    public var push: SecretLookup
    /// The operator's `registry.pullSecret`: pull-only credentials for its own registry, which a
    /// build step that never sees the push secret pulls with. Optional: missing, it is left out.
    public var registryPull: SecretLookup

    public init(pull: SecretLookup, push: SecretLookup, registryPull: SecretLookup = .notConfigured) {
        self.pull = pull
        self.push = push
        self.registryPull = registryPull
    }

    /// The build's credentials merged (see `RegistryCredentials.merge`).
    public func credentials() throws(CredentialsError) -> RegistryCredentials {
        try RegistryCredentials.merge(push: push.secret, pull: pull.secret, registryPull: registryPull.secret)
    }
}

/// Whether a rebuild caused by a moved base image may start now (a rate limit across specs).
public enum RebuildSlot: Sendable, Hashable {
    case granted
    case fullUntil(Date)
}

/// A fact the decision needs and the shell fetches.
public enum Fact: Sendable, Hashable {
    /// The ImageSpec's resourceVersion as the API has it now (a build is only started from a
    /// current ImageSpec: the cache may not show the operator's own last status write yet).
    case currentResourceVersion
    /// The build's pull and push secrets.
    case secrets
    /// The base image, resolved in its registry with the build's merged credentials.
    case baseImage(reference: String, credentials: DockerConfig)
    /// Push access to the target repository with the push secret's credential for its registry.
    case pushAccess(target: String, credential: RegistryCredential?)
    /// The current build's Job as the API has it (the cache may not show a Job just created).
    case liveJob(name: String)
    /// The Image named so in the ImageSpec's namespace, for publishing.
    case publishedImage(String)
    /// A slot in the base-change rebuild rate limit (taking it is the fetch).
    case rebuildSlot
    /// The last lines of a build container's log, for a failure its termination message does not
    /// explain.
    case builderLog(pod: String, container: String)
    /// The target tag in its registry, read with the push secret's credential for it (asked before
    /// the first build of a hash: a build done before, by PrimeHub or an earlier operator, is adopted).
    case targetImage(reference: String, credential: RegistryCredential?)
}

/// Facts the shell looked up. A nil field was not asked for yet.
public struct ObservedFacts: Sendable, Hashable {
    public var currentResourceVersion: String??
    public var secrets: BuildSecrets?
    public var baseImage: BaseImageAnswer?
    public var pushAccess: PushAccessAnswer?
    public var liveJob: Job??
    /// The Image looked up for publishing (`.some(nil)`: there is none).
    public var publishedImage: Image??
    public var rebuildSlot: RebuildSlot?
    /// The builder's log tail (`.some(nil)`: the log could not be read).
    public var builderLog: String??
    public var targetImage: TargetImageAnswer?

    public init() {}
}

/// What the operator remembers between passes about base-image checks (in memory only: after a
/// restart a check is simply due again).
public struct BaseImageCheckState: Sendable, Hashable {
    public var lastCheck: Date?
    /// A moved base digest whose rebuild waits for the old build's deletion.
    public var pendingRebuild: String?

    public init(lastCheck: Date? = nil, pendingRebuild: String? = nil) {
        self.lastCheck = lastCheck
        self.pendingRebuild = pendingRebuild
    }
}

/// Changes to `BaseImageCheckState` the shell applies.
public enum BaseImageCheckChange: Sendable, Hashable {
    case checked(Date)
    case pendingRebuild(String)
    case clearPendingRebuild
}

/// Timing the decision follows.
public struct ReconcilePolicy: Sendable, Hashable {
    /// How soon an ImageSpec stalled on something outside it (a secret, a base image) is looked at again.
    public var stalledRetryInterval: Duration
    /// How long a completed Job's Pod may take to show its termination message (the digest).
    public var digestGracePeriod: TimeInterval

    public init(stalledRetryInterval: Duration = .seconds(60), digestGracePeriod: TimeInterval = 30) {
        self.stalledRetryInterval = stalledRetryInterval
        self.digestGracePeriod = digestGracePeriod
    }
}

/// Everything one decision is made from.
public struct ImageSpecObservation: Sendable {
    public var imageSpec: ImageSpec
    /// Jobs this ImageSpec owns (any hash), newest first.
    public var ownedJobs: [Job]
    /// A Job named like the current build that this ImageSpec does not own.
    public var foreignJob: Job?
    /// The newest Pod of each owned Job, by Job name.
    public var pods: [String: Pod]
    /// ImageSpecJobs (PrimeHub's build records) this ImageSpec owns.
    public var imageSpecJobs: [ImageSpecJob]
    /// The names of the Pods of every owned Job (a record naming another Pod was written by
    /// another controller).
    public var buildPodNames: Set<String>
    public var baseImageCheck: BaseImageCheckState
    public var facts: ObservedFacts
    public var config: OperatorConfig
    public var policy: ReconcilePolicy
    public var now: Date

    public init(imageSpec: ImageSpec, ownedJobs: [Job] = [], foreignJob: Job? = nil, pods: [String: Pod] = [:],
                imageSpecJobs: [ImageSpecJob] = [], buildPodNames: Set<String>? = nil, baseImageCheck: BaseImageCheckState = BaseImageCheckState(), facts: ObservedFacts = ObservedFacts(),
                config: OperatorConfig, policy: ReconcilePolicy = ReconcilePolicy(), now: Date) {
        self.imageSpec = imageSpec
        self.ownedJobs = ownedJobs
        self.foreignJob = foreignJob
        self.pods = pods
        self.imageSpecJobs = imageSpecJobs
        self.buildPodNames = buildPodNames ?? Set(pods.values.compactMap(\.metadata.name))
        self.baseImageCheck = baseImageCheck
        self.facts = facts
        self.config = config
        self.policy = policy
        self.now = now
    }
}

/// A write the shell performs.
public enum BuildAction: Sendable, Hashable {
    /// Creates the build's ConfigMap; one of that name with other content (a leftover) is replaced.
    case ensureConfigMap(ConfigMap)
    /// The same for the build's registry Secret.
    case ensureSecret(Secret)
    /// Creates the build Job. AlreadyExists means the cache is behind or an old build of that
    /// name is still being deleted: the pass ends without writing status and looks again soon.
    case createJob(Job)
    /// Deletes a build Job (background propagation, preconditioned on its uid) and the build's
    /// registry Secret.
    case deleteJob(Job)
    /// Deletes a build's ConfigMap.
    case deleteConfigMap(name: String, namespace: String?)
    /// Deletes a build's registry Secret (it holds push credentials) if the ImageSpec owns it.
    case deleteRegistrySecret(name: String, namespace: String?)
    /// Creates PrimeHub's record of a build; one of that name with another spec is updated.
    case ensureImageSpecJob(ImageSpecJob)
    /// Writes an ImageSpecJob's status (phase, podName, startTime, finishTime) through `/status`.
    case writeImageSpecJobStatus(name: String, namespace: String?, status: ImageSpecJob.Status)
    case deleteImageSpecJob(name: String, namespace: String?)
    case createImage(Image)
    /// Updates an Image (whole object; a conflict retries the pass after a backoff).
    case updateImage(Image)
}

/// An Event to record: one about a status transition once that status is written (a pass whose
/// write conflicts records none; the next pass decides again); one about an action once the
/// actions are performed (an action that was done stays done whatever the status write says).
public struct DecidedEvent: Sendable, Hashable {
    public var warning: Bool
    public var reason: Reason
    public var message: String
    /// Recorded after the actions rather than after the status write.
    public var aboutActions: Bool

    public init(warning: Bool, reason: Reason, message: String, aboutActions: Bool = false) {
        self.warning = warning
        self.reason = reason
        self.message = message
        self.aboutActions = aboutActions
    }
}

/// A build metric, counted once the status that records the transition is written.
public enum BuildMetric: Sendable, Hashable {
    case started
    /// `result`: `succeeded`, `failed` or `cancelled`.
    case finished(result: String, duration: TimeInterval?)
}

/// When to look again.
public enum NextLook: Sendable, Hashable {
    case done
    case after(Duration)
    /// Retry with the controller's per-key backoff (something outside is failing).
    case backoff(String)
}

/// The decision of one pass.
public struct ImageSpecDecision: Sendable, Hashable {
    /// The status to write (the shell writes it only when it differs from the observed one).
    public var status: ImageSpecStatus
    /// Actions in order: the actions of one step are independent and may run concurrently; a
    /// step starts when the one before it has finished.
    public var steps: [[BuildAction]]
    /// Bookkeeping the status does not depend on (ImageSpecJob status writes), run concurrently
    /// once the status is written, so that they do not delay it. Only actions that every pass
    /// decides again from what it observes go here: a pass whose status write conflicts leaves
    /// them to the next one.
    public var afterStatus: [BuildAction]
    public var events: [DecidedEvent]
    public var metrics: [BuildMetric]
    public var baseImageCheckChanges: [BaseImageCheckChange]
    /// Things worth a log line that change nothing.
    public var notes: [String]
    public var next: NextLook

    /// Every action, in order.
    public var actions: [BuildAction] { steps.flatMap { $0 } + afterStatus }
}

/// The outcome of deciding: a decision, or the facts still needed before one can be made.
public enum DecisionOutcome: Sendable, Hashable {
    case needs(Set<Fact>)
    case decided(ImageSpecDecision)
}

/// The ImageSpec as the decision sees it: invalid (with why), or valid with its build identity.
/// Computed once per pass; the shell reads the caches for the identity's Job name.
public enum PreparedSpec: Sendable, Hashable {
    case invalid(Reason, String)
    case valid(ValidImageSpec, BuildIdentity)

    public static func of(_ imageSpec: ImageSpec, config: OperatorConfig, source: BuildSource = .imageSpec) -> PreparedSpec {
        switch ImageSpecValidator.validate(imageSpec) {
        case .failure(let failure):
            return .invalid(.invalidSpec, "the spec is invalid: \(failure.summary(limit: 10))")
        case .success(let spec):
            do {
                return .valid(spec, try BuildIdentity.of(spec, config: config, source: source))
            } catch {
                return .invalid(.invalidConfiguration, "the operator cannot build it: \(error)")
            }
        }
    }

    public var identity: BuildIdentity? {
        if case .valid(_, let identity) = self { return identity }
        return nil
    }
}

extension ValidationFailure {
    /// The first `limit` problems, one per line, and how many more there are.
    public func summary(limit: Int) -> String {
        let lines = problems.prefix(limit).map(\.description)
        let more = problems.count > limit ? "\n(and \(problems.count - limit) more)" : ""
        return lines.joined(separator: "\n") + more
    }
}

/// The decision function.
public enum ImageSpecDecider {
    /// Decides one pass of `prepared` (from `PreparedSpec.of(observation.imageSpec, …)`).
    public static func decide(_ prepared: PreparedSpec, _ observation: ImageSpecObservation) -> DecisionOutcome {
        var decider = Decider(observation)
        let step = decider.run(prepared)
        switch step {
        case .need(let facts): return .needs(facts)
        case .stale(let after):
            return decide(stale: observation, after: after)
        case .next(let next):
            // Starting or removing a build is decided from a current ImageSpec only: the cache may
            // not show the operator's own last status write yet, and a status write that then
            // conflicts would lose what the action meant (a build given up would start again).
            if decider.steps.joined().contains(where: \.startsOrRemovesBuild) {
                guard let current = observation.facts.currentResourceVersion else { return .needs([.currentResourceVersion]) }
                guard current == observation.imageSpec.metadata.resourceVersion else {
                    return decide(stale: observation, after: .milliseconds(100))
                }
            }
            return .decided(ImageSpecDecision(
                status: decider.status, steps: decider.steps.filter { !$0.isEmpty }, afterStatus: decider.afterStatus, events: decider.events,
                metrics: decider.metrics, baseImageCheckChanges: decider.checkChanges, notes: decider.notes, next: next))
        }
    }
}

extension ImageSpecDecider {
    /// Nothing of this pass stands: it worked from a stale cache.
    static func decide(stale observation: ImageSpecObservation, after: Duration) -> DecisionOutcome {
        .decided(ImageSpecDecision(
            status: observation.imageSpec.status ?? ImageSpecStatus(), steps: [], afterStatus: [], events: [], metrics: [],
            baseImageCheckChanges: [], notes: [], next: .after(after)))
    }
}

extension Fact {
    /// The fact's kind, without its arguments (a metric label).
    public var kindName: String {
        switch self {
        case .currentResourceVersion: "currentResourceVersion"
        case .secrets: "secrets"
        case .baseImage: "baseImage"
        case .pushAccess: "pushAccess"
        case .liveJob: "liveJob"
        case .publishedImage: "publishedImage"
        case .rebuildSlot: "rebuildSlot"
        case .builderLog: "builderLog"
        case .targetImage: "targetImage"
        }
    }
}

extension BuildAction {
    /// The action's kind, without its object (a metric label).
    public var kindName: String {
        switch self {
        case .ensureConfigMap: "ensureConfigMap"
        case .ensureSecret: "ensureSecret"
        case .createJob: "createJob"
        case .deleteJob: "deleteJob"
        case .deleteConfigMap: "deleteConfigMap"
        case .deleteRegistrySecret: "deleteRegistrySecret"
        case .ensureImageSpecJob: "ensureImageSpecJob"
        case .writeImageSpecJobStatus: "writeImageSpecJobStatus"
        case .deleteImageSpecJob: "deleteImageSpecJob"
        case .createImage: "createImage"
        case .updateImage: "updateImage"
        }
    }

    /// Creates or deletes a build Job.
    var startsOrRemovesBuild: Bool {
        switch self {
        case .createJob, .deleteJob: return true
        default: return false
        }
    }
}

/// One decision in progress.
private struct Decider {
    enum Step {
        case need(Set<Fact>)
        case stale(Duration)
        case next(NextLook)
    }

    let observation: ImageSpecObservation
    var status: ImageSpecStatus
    var steps: [[BuildAction]] = []
    var afterStatus: [BuildAction] = []
    var events: [DecidedEvent] = []
    var metrics: [BuildMetric] = []
    var checkChanges: [BaseImageCheckChange] = []
    var notes: [String] = []

    init(_ observation: ImageSpecObservation) {
        self.observation = observation
        self.status = observation.imageSpec.status ?? ImageSpecStatus()
    }

    var imageSpec: ImageSpec { observation.imageSpec }
    var config: OperatorConfig { observation.config }
    var facts: ObservedFacts { observation.facts }
    var now: Date { observation.now }
    var generation: Int64? { imageSpec.metadata.generation }
    var namespace: String? { imageSpec.metadata.namespace }
    var stalledRetry: NextLook { .after(observation.policy.stalledRetryInterval) }

    // MARK: - The decision

    mutating func run(_ prepared: PreparedSpec) -> Step {
        let spec: ValidImageSpec
        let identity: BuildIdentity
        switch prepared {
        case .invalid(let reason, let message):
            stall(.failed, reason, message)
            return .next(.done)
        case .valid(let valid, let id):
            (spec, identity) = (valid, id)
        }
        let jobName = identity.jobName
        let current = observation.ownedJobs.first { $0.metadata.name == jobName }
        if current == nil, let foreign = observation.foreignJob {
            // A Job of that name that this ImageSpec does not own: a leftover of an earlier object of
            // the same name (the garbage collector removes it) or someone else's.
            let owner = foreign.metadata.controllerReference
            let message = "Job \(jobName) exists but is not owned by this ImageSpec"
                + (owner.map { " (its owner is \($0.kind) \($0.name), uid \($0.uid))" } ?? "")
            setState(.pending, .reconciling(reason: Reason.waitingForOldBuild.rawValue, message: message), jobName: jobName)
            return .next(.after(.seconds(10)))
        }

        if spec.spec.cancel == true {
            return cancel(current, identity: identity)
        }

        if let job = current {
            if let reason = rebuildReason(job: job, spec: spec) {
                deleteBuild(job, identity: identity)
                setState(.pending, .reconciling(reason: Reason.rebuilding.rawValue, message: reason), jobName: jobName)
                events.append(DecidedEvent(warning: false, reason: .rebuilding, message: reason))
                return .next(.after(.seconds(1)))
            }
            return follow(job, spec: spec, identity: identity)
        }

        // No Job for this hash. If this hash was already built (the Job since cleaned away), the
        // result stands unless a rebuild was asked for.
        if let record = status.builds?.first(where: { $0.jobName == jobName && $0.hash == identity.hash }),
           let phase = BuildPhase(rawValue: record.phase), phase.isFinished, phase != .cancelled,
           !rebuildRequested(since: record.startTime, spec: spec),
           phase == .succeeded || status.observedGeneration == generation
        {
            return report(record: record, spec: spec, identity: identity)
        }
        return startBuild(spec, identity: identity)
    }

    // MARK: - Adoption

    /// Whether a build of the current hash done before this operator ran it may be adopted: only
    /// when the history has no build of this hash (the first start after a cutover, or a status
    /// that was lost).
    func mayAdopt(_ identity: BuildIdentity) -> Bool {
        !(status.builds ?? []).contains { $0.hash == identity.hash }
    }

    /// PrimeHub's record of a successful build of exactly this target, if it has one.
    func succeededRecord(_ identity: BuildIdentity) -> ImageSpecJob? {
        observation.imageSpecJobs.first { record in
            record.metadata.name == identity.recordName && record.spec.targetImage == identity.targetImage
                && identity.recordAnnotations.allSatisfy { record.metadata.annotations?[$0.key] == $0.value }
                && record.status?.phase == BuildPhase.succeeded.rawValue
        }
    }

    /// The build adopted from PrimeHub's succeeded record (the tag still in the registry, or the
    /// registry unable to say), or from the target tag labelled with this spec hash; nil when there
    /// is none or a rebuild was asked for since (a newer `updateTime`).
    func adoption(_ spec: ValidImageSpec, identity: BuildIdentity, target: TargetImageAnswer) -> (BuildRecord, String)? {
        var present: TargetImageFacts?
        if case .present(let facts) = target { present = facts }
        if let record = succeededRecord(identity), target != .absent,
           !rebuildRequested(since: record.spec.updateTime ?? record.status?.startTime, spec: spec)
        {
            let adopted = BuildRecord(
                jobName: identity.jobName, hash: identity.hash, phase: BuildPhase.succeeded.rawValue, image: identity.targetImage,
                digest: present?.digest, startTime: record.status?.startTime, completionTime: record.status?.finishTime,
                reason: Reason.adopted.rawValue)
            return (adopted, "ImageSpecJob \(record.metadata.name ?? "") succeeded for this spec")
        }
        if let present, present.labels[MetadataKeys.specHashImageLabel] == identity.hash,
           spec.spec.updateTime == nil || present.created.map({ !rebuildRequested(since: $0, spec: spec) }) == true
        {
            let adopted = BuildRecord(
                jobName: identity.jobName, hash: identity.hash, phase: BuildPhase.succeeded.rawValue, image: identity.targetImage,
                digest: present.digest, startTime: present.created, completionTime: present.created, reason: Reason.adopted.rawValue)
            return (adopted, "the registry has it, labelled \(MetadataKeys.specHashImageLabel)=\(identity.hash)")
        }
        return nil
    }

    /// Records an adopted build as built and reports it (no Job, no push).
    mutating func adopt(_ adopted: BuildRecord, how: String, spec: ValidImageSpec, identity: BuildIdentity) -> Step {
        status.record(adopted, limit: config.historyLimit)
        let digest = adopted.digest.map { "@\($0)" } ?? ""
        events.append(DecidedEvent(warning: false, reason: .adopted,
                                   message: "adopted \(identity.targetImage)\(digest), built before (\(how)); not rebuilt"))
        return report(record: adopted, spec: spec, identity: identity)
    }

    /// Why an existing build of the current hash must be redone, if it must: PrimeHub's rebuild
    /// trigger, an `updateTime` newer than the one the build was started for (Jobs from before
    /// that was recorded compare with their creation time). Both sides are compared at the
    /// precision recorded (whole seconds): a fractional `updateTime` (`…00.5Z`, as JavaScript
    /// writes it) must not rebuild for ever.
    func rebuildReason(job: Job, spec: ValidImageSpec) -> String? {
        guard let updateTime = spec.spec.updateTime?.wholeSeconds else { return nil }
        let builtFor = job.metadata.annotations?[MetadataKeys.updateTimeAnnotation].flatMap(KubeJSON.parseTimestamp)
            ?? job.metadata.creationTimestamp
        guard let builtFor, updateTime > builtFor.wholeSeconds else { return nil }
        return "spec.updateTime (\(KubeJSON.formatTimestamp(updateTime))) is newer than build \(job.metadata.name ?? ""); building again"
    }

    /// The same trigger for a build whose Job is gone, against the build's recorded start.
    func rebuildRequested(since start: Date?, spec: ValidImageSpec) -> Bool {
        guard let updateTime = spec.spec.updateTime?.wholeSeconds, let start else { return false }
        return updateTime > start.wholeSeconds
    }

    // MARK: - Cancel

    mutating func cancel(_ cached: Job?, identity: BuildIdentity) -> Step {
        let jobName = identity.jobName
        var job = cached
        let unfinished = status.builds?.first { $0.jobName == jobName && !(BuildPhase(rawValue: $0.phase)?.isFinished ?? true) }
        if job == nil, unfinished != nil {
            // The cache may not show a Job just created: ask the API before saying nothing runs.
            guard let live = facts.liveJob else { return .need([.liveJob(name: jobName)]) }
            if let live, live.metadata.controllerReference?.uid == imageSpec.metadata.uid { job = live }
        }
        if let job, !job.isFinished {
            act([.deleteJob(job)])
            var record = latestRecord(jobName: jobName, hash: identity.hash)
            // A pass before the cache shows the deletion sees this Job again: its cancel is recorded
            // and counted once.
            let recorded = record.phase == BuildPhase.cancelled.rawValue
                && (job.metadata.creationTimestamp ?? .distantPast) <= (record.completionTime ?? .distantFuture)
            if !recorded {
                record.phase = BuildPhase.cancelled.rawValue
                record.completionTime = now
                record.reason = Reason.cancelled.rawValue
                status.record(record, limit: config.historyLimit)
                finished("cancelled", record)
            }
            keepImageSpecJob(record, pod: observation.pods[jobName], spec: nil, identity: identity)
            stall(.cancelled, .cancelled, "build \(jobName) was cancelled (spec.cancel is true)", jobName: jobName)
            return .next(.done)
        }
        if let job, job.condition("Complete") != nil {
            // Nothing left to cancel: the build already succeeded.
            return follow(job, spec: nil, identity: identity)
        }
        if var record = unfinished {
            record.phase = BuildPhase.cancelled.rawValue
            record.completionTime = record.completionTime ?? now
            record.reason = Reason.cancelled.rawValue
            status.record(record, limit: config.historyLimit)
            finished("cancelled", record)
            // No Job to delete (gone, or not ours): PrimeHub's record still says the build ended.
            keepImageSpecJob(record, pod: observation.pods[jobName], spec: nil, identity: identity)
        }
        stall(.cancelled, .cancelled, "no build runs while spec.cancel is true", jobName: jobName)
        return .next(.done)
    }

    // MARK: - Starting a build

    mutating func startBuild(_ spec: ValidImageSpec, identity: BuildIdentity) -> Step {
        let jobName = identity.jobName
        guard let current = facts.currentResourceVersion, let secrets = facts.secrets else {
            return .need([.currentResourceVersion, .secrets])
        }
        // Starting a build is the one step a stale cache must not cause.
        guard current == imageSpec.metadata.resourceVersion else { return .stale(.milliseconds(100)) }

        if case .missing(let message) = secrets.pull {
            stall(.failed, .missingSecret, message, jobName: jobName)
            return .next(stalledRetry)
        }
        if case .missing(let message) = secrets.push {
            stall(.failed, .missingSecret, message, jobName: jobName)
            return .next(stalledRetry)
        }
        let credentials: RegistryCredentials
        do {
            credentials = try secrets.credentials()
        } catch {
            stall(.failed, .invalidSecret, error.description, jobName: jobName)
            return .next(stalledRetry)
        }
        if let pushSecret = secrets.push.secret, let host = ImageReference.parse(identity.targetImage)?.registry,
           credentials.pushCredential(forRegistry: host) == nil
        {
            stall(.failed, .missingPushCredentials,
                  "push secret \(pushSecret.metadata.name ?? "") in namespace \(namespace ?? "") has no credentials for registry \(host)",
                  jobName: jobName)
            return .next(stalledRetry)
        }

        // The base image and the push side, asked of their registries before anything runs; and,
        // before the first build of this hash, whether it was built already.
        let adoptable = mayAdopt(identity)
        guard let base = facts.baseImage, let push = facts.pushAccess, !adoptable || facts.targetImage != nil else {
            let registry = ImageReference.parse(identity.targetImage)?.registry
            let pushCredential = registry.flatMap(credentials.pushCredential(forRegistry:))
            var needed: Set<Fact> = [.baseImage(reference: spec.spec.baseImage, credentials: credentials.dockerConfig),
                                     .pushAccess(target: identity.targetImage, credential: pushCredential)]
            if adoptable { needed.insert(.targetImage(reference: identity.targetImage, credential: pushCredential)) }
            return .need(needed)
        }
        if adoptable, let target = facts.targetImage, let (adopted, how) = adoption(spec, identity: identity, target: target) {
            return adopt(adopted, how: how, spec: spec, identity: identity)
        }
        let baseFacts: BaseImageFacts
        switch base {
        case .resolved(let resolved):
            baseFacts = resolved
        case .unreachable(let message):
            setState(.pending, .reconciling(reason: Reason.baseImageUnreachable.rawValue, message: "\(message); retrying"), jobName: jobName)
            return .next(.backoff(message))
        case .unavailable(let message):
            stall(.failed, .baseImageUnavailable, "base image \(spec.spec.baseImage): \(message)", jobName: jobName)
            return .next(stalledRetry)
        }
        if !spec.conda.specs.isEmpty && !baseFacts.hasConda {
            stall(.failed, .condaUnavailable,
                  "conda packages are requested but base image \(spec.spec.baseImage) has no conda (no CONDA_DIR and no conda on its PATH)",
                  jobName: jobName)
            return .next(.done)
        }
        switch push {
        case .granted: break
        case .denied(let message):
            stall(.failed, .pushDenied, message, jobName: jobName)
            return .next(stalledRetry)
        case .unknown(let message):
            notes.append("could not check push access; building anyway: \(message)")
        }
        if !baseFacts.looksJupyterReady && status.observedGeneration != generation {
            events.append(DecidedEvent(warning: true, reason: .jobSubmissionOnly, message:
                "base image \(spec.spec.baseImage) does not look JupyterHub-ready (no notebook user or Jupyter environment); the image suits Job Submission only"))
        }

        let user: ImageUser
        do {
            user = try ImageUser(parsing: baseFacts.user)
        } catch {
            notes.append("base image user \(baseFacts.user) cannot be restored; the image ends as root")
            user = .root
        }
        let plan: BuildPlan
        do {
            plan = try BuildPlanner.plan(BuildInputs(imageSpec: spec, config: config, baseImageUser: user,
                                                     baseImageDigest: baseFacts.digest, credentials: credentials,
                                                     identity: identity))
        } catch {
            stall(.failed, .invalidConfiguration, "the build cannot be planned: \(error)", jobName: jobName)
            return .next(.done)
        }
        let record = buildRecordObject(spec, identity: identity)
        // The Job's Pod mounts the ConfigMap and the Secret, so they come first; PrimeHub's record
        // is created beside the Job, and its status once the ImageSpec's is written.
        act([.ensureConfigMap(plan.configMap)] + (plan.registrySecret.map { [.ensureSecret($0)] } ?? []))
        act([.createJob(plan.job), .ensureImageSpecJob(record)])
        afterStatus.append(.writeImageSpecJobStatus(name: identity.recordName, namespace: namespace,
                                                    status: ImageSpecJob.Status(phase: BuildPhase.pending.rawValue, podName: "", startTime: now)))

        clearForeignController()
        status.baseImageDigest = baseFacts.digest
        status.startTime = now
        status.completionTime = nil
        status.record(BuildRecord(jobName: jobName, hash: identity.hash, phase: BuildPhase.pending.rawValue,
                                  image: identity.targetImage, startTime: now),
                      limit: config.historyLimit)
        let message = "building \(identity.targetImage) in Job \(jobName) from \(spec.spec.baseImage)@\(baseFacts.digest)"
        setState(.pending, .reconciling(reason: Reason.buildStarted.rawValue, message: message), jobName: jobName)
        events.append(DecidedEvent(warning: false, reason: .buildStarted, message: message))
        metrics.append(.started)
        return .next(.done)
    }

    // MARK: - Following a build

    mutating func follow(_ job: Job, spec: ValidImageSpec?, identity: BuildIdentity) -> Step {
        let step = followJob(job, spec: spec, identity: identity)
        let jobName = job.metadata.name ?? ""
        if let record = status.builds?.first(where: { $0.jobName == jobName }) {
            keepImageSpecJob(record, pod: observation.pods[jobName], spec: spec, identity: identity)
        }
        return step
    }

    mutating func followJob(_ job: Job, spec: ValidImageSpec?, identity: BuildIdentity) -> Step {
        let jobName = job.metadata.name ?? ""
        let target = job.metadata.annotations?[MetadataKeys.targetImage] ?? identity.targetImage
        var record = latestRecord(jobName: jobName, hash: identity.hash)
        if BuildPhase(rawValue: record.phase)?.isFinished == true, !job.isFinished,
           let created = job.metadata.creationTimestamp, created > (record.completionTime ?? record.startTime ?? .distantPast)
        {
            // A Job newer than the recorded (finished) build of that name: a new run.
            record = BuildRecord(jobName: jobName, hash: identity.hash, phase: BuildPhase.pending.rawValue, startTime: created)
        }
        let pod = observation.pods[jobName]
        var logTail: String?
        if record.phase != BuildPhase.failed.rawValue, let wanted = BuildAssessment.logNeeded(pod: pod) {
            // The failure is about to be recorded and the Pod does not say why: read the log once.
            guard let fetched = observation.facts.builderLog else {
                return .need([.builderLog(pod: wanted.pod, container: wanted.container)])
            }
            logTail = fetched
        }
        let assessment = BuildAssessment.assess(
            job: job, pod: pod, now: now,
            pendingTimeout: TimeInterval(config.builder.pendingTimeoutSeconds), logTail: logTail)
        record.startTime = record.startTime ?? job.metadata.creationTimestamp
        record.image = target
        let wasFinished = BuildPhase(rawValue: record.phase)?.isFinished == true
        switch assessment {
        case .pending(let message):
            record.phase = BuildPhase.pending.rawValue
            status.record(record, limit: config.historyLimit)
            setState(.pending, .reconciling(reason: Reason.buildPending.rawValue, message: message), jobName: jobName)
            // Look again when the Pod may have waited too long (Pod events bring news sooner).
            let waiting = now.timeIntervalSince(job.metadata.creationTimestamp ?? now)
            let left = TimeInterval(config.builder.pendingTimeoutSeconds) - waiting
            return .next(.after(.seconds(min(30, max(1, left + 1)))))
        case .running:
            record.phase = BuildPhase.running.rawValue
            status.record(record, limit: config.historyLimit)
            setState(.running, .reconciling(reason: Reason.building.rawValue, message: "building \(target) in Job \(jobName)"),
                     jobName: jobName)
            return .next(.done)
        case .stuck(let text, let message):
            let reason = Reason(buildFailure: text)
            act([.deleteJob(job)])
            record.phase = BuildPhase.failed.rawValue
            record.reason = reason.rawValue
            record.completionTime = now
            status.record(record, limit: config.historyLimit)
            status.completionTime = now
            if !wasFinished { finished("failed", record) }
            stall(.failed, reason, "build \(jobName) was given up: \(message)", jobName: jobName)
            return .next(.done)
        case .failed(let text, let message, let completion):
            let reason = Reason(buildFailure: text)
            let firstTime = record.phase != BuildPhase.failed.rawValue
            record.phase = BuildPhase.failed.rawValue
            record.reason = reason.rawValue
            record.completionTime = completion ?? now
            status.record(record, limit: config.historyLimit)
            status.completionTime = record.completionTime
            if firstTime {
                finished("failed", record)
                act([.deleteRegistrySecret(name: jobName, namespace: job.metadata.namespace)])
            }
            // A recorded failure keeps the sentence it was recorded with (it may quote a log that
            // is not read again).
            let previous = status.conditions?[Condition.stalled]
            let recorded = !firstTime && previous?.reason == reason.rawValue ? previous?.message : nil
            stall(.failed, reason, recorded ?? "build \(jobName) failed: \(message)", jobName: jobName)
            return .next(.done)
        case .succeeded(nil, let completion)
            where now.timeIntervalSince(completion ?? now) < observation.policy.digestGracePeriod:
            // Done, but the Pod's termination message (the digest) is not in view yet: watches of
            // Jobs and Pods deliver independently. Wait a little for it.
            record.phase = BuildPhase.running.rawValue
            status.record(record, limit: config.historyLimit)
            setState(.running, .reconciling(reason: Reason.finishing.rawValue, message: "build \(jobName) completed; reading its digest"),
                     jobName: jobName)
            return .next(.after(.seconds(1)))
        case .succeeded(let digest, let completion):
            let firstTime = record.phase != BuildPhase.succeeded.rawValue
            record.phase = BuildPhase.succeeded.rawValue
            record.reason = nil
            record.digest = digest ?? record.digest
            record.completionTime = completion ?? now
            status.record(record, limit: config.historyLimit)
            if firstTime {
                finished("succeeded", record)
                act([.deleteRegistrySecret(name: jobName, namespace: job.metadata.namespace)])
                events.append(DecidedEvent(warning: false, reason: .buildSucceeded,
                                           message: "built and pushed \(target)\(digest.map { "@\($0)" } ?? "")"))
            }
            return report(record: record, spec: spec, identity: identity, target: target)
        }
    }

    /// Reports a finished build recorded in the history (its Job may be gone).
    mutating func report(record: BuildRecord, spec: ValidImageSpec?, identity: BuildIdentity, target: String? = nil) -> Step {
        let target = target ?? identity.targetImage
        guard BuildPhase(rawValue: record.phase) == .succeeded else {
            stall(.failed, Reason(buildFailure: record.reason),
                  status.conditions?[Condition.stalled]?.message ?? "build \(record.jobName) failed", jobName: record.jobName)
            return .next(.done)
        }
        status.image = target
        status.digest = record.digest
        status.completionTime = record.completionTime
        let digestText = record.digest.map { "@\($0)" } ?? ""
        setState(.succeeded, .ready(reason: Reason.buildSucceeded.rawValue, message: "image \(target)\(digestText) is built"),
                 jobName: record.jobName)
        guard let spec else { return .next(.done) }
        if case .need(let needed) = publish(spec, builtImage: target, jobName: record.jobName) { return .need(needed) }
        pruneHistory(keeping: record.jobName)
        return checkBaseImage(spec, record: record, identity: identity)
    }

    /// With the rebuild-on-base-change policy on: resolves the base tag again when a check is due,
    /// and rebuilds (rate-limited) when it moved to another digest.
    mutating func checkBaseImage(_ spec: ValidImageSpec, record: BuildRecord, identity: BuildIdentity) -> Step {
        guard rebuildsOnBaseChange else { return .next(.done) }
        let book = observation.baseImageCheck
        let interval = TimeInterval(config.baseImages.checkIntervalSeconds)
        if let moved = book.pendingRebuild {
            // The old build was deleted on the previous pass; start the new one.
            checkChanges.append(.clearPendingRebuild)
            events.append(DecidedEvent(warning: false, reason: .baseImageChanged,
                                       message: "base image \(spec.spec.baseImage) moved to \(moved); rebuilding"))
            return startBuild(spec, identity: identity)
        }
        let due = (book.lastCheck ?? record.completionTime ?? now).addingTimeInterval(interval)
        guard due <= now else { return .next(.after(.seconds(max(1, due.timeIntervalSince(now))))) }

        guard let secrets = facts.secrets else { return .need([.secrets]) }
        let checkAgain = NextLook.after(.seconds(interval))
        let credentials: RegistryCredentials
        switch (secrets.pull, secrets.push) {
        case (.missing(let message), _), (_, .missing(let message)):
            // The built image stays good; try again at the next interval.
            notes.append("base image check failed: \(message)")
            checkChanges.append(.checked(now))
            return .next(checkAgain)
        default:
            do {
                credentials = try secrets.credentials()
            } catch {
                notes.append("base image check failed: \(error)")
                checkChanges.append(.checked(now))
                return .next(checkAgain)
            }
        }
        guard let base = facts.baseImage else {
            return .need([.baseImage(reference: spec.spec.baseImage, credentials: credentials.dockerConfig)])
        }
        guard case .resolved(let resolved) = base else {
            notes.append("base image check failed: \(base)")
            checkChanges.append(.checked(now))
            return .next(checkAgain)
        }
        guard resolved.digest != status.baseImageDigest else {
            checkChanges.append(.checked(now))
            return .next(checkAgain)
        }
        let job = observation.ownedJobs.first { $0.metadata.name == record.jobName }
        // This pass deletes the old build or starts the rebuild, both decided from a current
        // ImageSpec only: that, and what starting needs, is asked before a slot is taken (taking it
        // is the fetch), so a pass that cannot go ahead takes none, and the pass stays within the
        // shell's fact rounds.
        var needed: Set<Fact> = []
        if facts.currentResourceVersion == nil { needed.insert(.currentResourceVersion) }
        if job == nil, facts.pushAccess == nil {
            let registry = ImageReference.parse(identity.targetImage)?.registry
            needed.insert(.pushAccess(target: identity.targetImage,
                                      credential: registry.flatMap(credentials.pushCredential(forRegistry:))))
        }
        if !needed.isEmpty { return .need(needed) }
        guard let current = facts.currentResourceVersion, current == imageSpec.metadata.resourceVersion else {
            return .stale(.milliseconds(100))
        }
        guard let slot = facts.rebuildSlot else { return .need([.rebuildSlot]) }
        if case .fullUntil(let free) = slot {
            notes.append("base image moved to \(resolved.digest); the rebuild waits for the rate limit")
            return .next(.after(.seconds(max(1, free.timeIntervalSince(now)))))
        }
        checkChanges.append(.checked(now))
        if let job {
            checkChanges.append(.pendingRebuild(resolved.digest))
            deleteBuild(job, identity: identity)
            return .next(.after(.seconds(1)))
        }
        events.append(DecidedEvent(warning: false, reason: .baseImageChanged,
                                   message: "base image \(spec.spec.baseImage) moved to \(resolved.digest); rebuilding"))
        return startBuild(spec, identity: identity)
    }

    var rebuildsOnBaseChange: Bool {
        switch imageSpec.metadata.annotations?[MetadataKeys.rebuildOnBaseChange] {
        case "true": return true
        case "false": return false
        default: return config.baseImages.rebuildOnChange
        }
    }

    // MARK: - Publishing and history

    mutating func publish(_ spec: ValidImageSpec, builtImage: String, jobName: String) -> Step {
        guard let name = ImagePublisher.imageName(of: spec) else { return .next(.done) }
        guard let lookedUp = facts.publishedImage else { return .need([.publishedImage(name)]) }
        let existing = lookedUp
        if let existing, !ImagePublisher.isPublished(existing, from: spec) {
            events.append(DecidedEvent(warning: true, reason: .publishSkipped,
                                       message: "Image \(name) exists and was not published from this ImageSpec; it was left as it is",
                                       aboutActions: true))
            return .next(.done)
        }
        guard let image = ImagePublisher.publish(spec, builtImage: builtImage, jobName: jobName, config: config, existing: existing),
              image != existing
        else { return .next(.done) }
        act([existing == nil ? .createImage(image) : .updateImage(image)])
        events.append(DecidedEvent(warning: false, reason: .published,
                                   message: "Image \(name) in PrimeHub's image list now points at \(builtImage)", aboutActions: true))
        return .next(.done)
    }

    /// Deletes the Jobs (and build ConfigMaps) of older hashes beyond the history limit.
    mutating func pruneHistory(keeping current: String) {
        let older = observation.ownedJobs.filter { $0.metadata.name != current && $0.isFinished }
        let keep = max(config.historyLimit - 1, 0)
        var deletions: [BuildAction] = []
        for job in older.dropFirst(keep) {
            let name = job.metadata.name ?? ""
            deletions.append(.deleteJob(job))
            deletions.append(.deleteConfigMap(name: name, namespace: job.metadata.namespace))
            // A record named like the Job, where there is one (the Image path keeps one record, named
            // after the Image, for all its builds).
            if observation.imageSpecJobs.contains(where: { $0.metadata.name == name }) {
                deletions.append(.deleteImageSpecJob(name: name, namespace: job.metadata.namespace))
            }
        }
        act(deletions)
    }

    /// Removes a build so that it can start again under the same name.
    mutating func deleteBuild(_ job: Job, identity: BuildIdentity) {
        let name = job.metadata.name ?? ""
        act([.deleteJob(job), .deleteConfigMap(name: name, namespace: job.metadata.namespace),
             .deleteImageSpecJob(name: recordName(ofJob: name, identity: identity), namespace: job.metadata.namespace)])
    }

    // MARK: - PrimeHub's build records (ImageSpecJobs)

    /// PrimeHub's record of the build of `identity`, as PrimeHub's controller writes it: named like
    /// the build, its labels and hash annotation, the spec fields its console reads, owned by the
    /// ImageSpec so that it goes with it.
    func buildRecordObject(_ spec: ValidImageSpec?, identity: BuildIdentity) -> ImageSpecJob {
        var metadata = ObjectMeta(name: identity.recordName, namespace: namespace)
        metadata.labels = identity.labels
        metadata.annotations = identity.recordAnnotations
        if let owner = identity.owner { metadata.ownerReferences = [owner] }
        let prefix: String? = {
            if case .prefix(let prefix) = config.registry.push { return prefix }
            return nil
        }()
        let source = spec?.spec ?? imageSpec.spec
        return ImageSpecJob(metadata: metadata, spec: ImageSpecJob.Spec(
            baseImage: source.baseImage, packages: source.packages, pullSecret: source.pullSecret,
            pushSecret: config.registry.pushSecret ?? "", repoPrefix: prefix, targetImage: identity.targetImage,
            updateTime: (source.updateTime ?? now).wholeSeconds))
    }

    /// Keeps the ImageSpecJob of `record`'s build current: created when missing (a build started
    /// before records were kept), its status following the build and its Pod.
    mutating func keepImageSpecJob(_ record: BuildRecord, pod: Pod?, spec: ValidImageSpec?, identity: BuildIdentity) {
        let name = recordName(ofJob: record.jobName, identity: identity)
        let existing = observation.imageSpecJobs.first { $0.metadata.name == name }
        if existing == nil, record.jobName == identity.jobName {
            act([.ensureImageSpecJob(buildRecordObject(spec, identity: identity))])
        } else if existing == nil {
            return
        }
        let container = pod?.status?.containerStatuses?.first { $0.name == BuildPlanner.containerName }
        let finished = BuildPhase(rawValue: record.phase)?.isFinished == true
        let old = existing?.status
        // The job controller names a Job's Pods `<job>-<random>`; PrimeHub's builder names its own
        // `image-<record>-<random>`.
        if let written = old?.podName, !written.isEmpty, !observation.buildPodNames.contains(written),
           !written.hasPrefix(record.jobName + "-"), observation.ownedJobs.contains(where: { $0.metadata.name == record.jobName })
        {
            reportForeignController(
                "ImageSpecJob \(name) names Pod \(written), which is not a Pod of build Job \(record.jobName): another controller "
                    + "(PrimeHub's ImageSpecJob controller?) is building it too; stop PrimeHub's builder (see the README)")
        }
        var wanted = ImageSpecJob.Status(
            phase: record.phase, podName: pod?.metadata.name ?? old?.podName ?? "",
            startTime: pod?.status?.startTime ?? old?.startTime ?? record.startTime,
            finishTime: finished ? (container?.state?.terminated?.finishedAt ?? old?.finishTime ?? record.completionTime) : nil)
        if let start = wanted.startTime { wanted.startTime = start.wholeSeconds }
        if let finish = wanted.finishTime { wanted.finishTime = finish.wholeSeconds }
        if old != wanted {
            afterStatus.append(.writeImageSpecJobStatus(name: name, namespace: namespace, status: wanted))
        }
    }

    /// The ImageSpecJob of a build Job: named like it, except the current build of the Image path.
    func recordName(ofJob jobName: String, identity: BuildIdentity) -> String {
        jobName == identity.jobName ? identity.recordName : jobName
    }

    /// Reports another controller writing this build's objects: the `ForeignController` condition
    /// (kept until the next build starts) and a Warning Event when this is news.
    mutating func reportForeignController(_ message: String) {
        let previous = status.conditions?[Condition.foreignController]
        guard previous?.isTrue != true || previous?.message != message else { return }
        var conditions = status.conditions ?? []
        conditions.set(Condition(type: Condition.foreignController, status: "True", reason: Reason.anotherController.rawValue,
                                 message: message, observedGeneration: generation), now: now)
        status.conditions = conditions
        events.append(DecidedEvent(warning: true, reason: .anotherController, message: message))
    }

    /// A new build starts with no other controller seen.
    mutating func clearForeignController() {
        guard status.conditions?[Condition.foreignController]?.isTrue == true, var conditions = status.conditions else { return }
        conditions.set(Condition(type: Condition.foreignController, status: "False", reason: Reason.buildStarted.rawValue,
                                 message: "no other controller has written this build's objects", observedGeneration: generation),
                       now: now)
        status.conditions = conditions
    }

    mutating func act(_ actions: [BuildAction]) {
        if !actions.isEmpty { steps.append(actions) }
    }

    // MARK: - Status

    mutating func finished(_ result: String, _ record: BuildRecord) {
        let duration = record.startTime.flatMap { start in record.completionTime.map { $0.timeIntervalSince(start) } }
        metrics.append(.finished(result: result, duration: duration.flatMap { $0 >= 0 ? $0 : nil }))
    }

    func latestRecord(jobName: String, hash: String) -> BuildRecord {
        status.builds?.first { $0.jobName == jobName && !(BuildPhase(rawValue: $0.phase)?.isFinished ?? false) }
            ?? status.builds?.first { $0.jobName == jobName }
            ?? BuildRecord(jobName: jobName, hash: hash, phase: BuildPhase.pending.rawValue, startTime: now)
    }

    mutating func setState(_ phase: BuildPhase, _ state: ReconcileState, jobName: String? = nil) {
        status.phase = phase.rawValue
        if let jobName { status.jobName = jobName }
        status.setState(state, generation: generation, now: now)
    }

    /// Stalled: cannot progress without a change. Records an Event when this is news.
    mutating func stall(_ phase: BuildPhase, _ reason: Reason, _ message: String, jobName: String? = nil) {
        let previous = status.conditions?[Condition.stalled]
        setState(phase, .stalled(reason: reason.rawValue, message: message), jobName: jobName)
        if previous?.isTrue != true || previous?.reason != reason.rawValue || previous?.message != message {
            events.append(DecidedEvent(warning: phase != .cancelled, reason: reason, message: message))
        }
    }
}
