import CoreMetrics
import Foundation
import ImageBuilder
import KubeClient
import KubeRuntime
import KubeTypes
import Logging
import RegistryClient
import RegistryTypes
import Synchronization

/// Converges one ImageSpec: validates it, checks its secrets and base image, starts a build Job
/// for its spec hash, follows the build, reports progress on the ImageSpec's status (PrimeHub's
/// `phase`/`jobName`/`image` and kstatus conditions), records Events, publishes the result to
/// PrimeHub's image list and keeps the build history bounded.
///
/// Reads come from the watch caches; writes go to the API. Every decision is made from what is
/// observed now, so a restart or a missed event changes nothing.
public struct ImageSpecReconciler: Reconciler {
    public let client: KubernetesClient
    public let config: OperatorConfig
    public let registry: any RegistryInspector
    public let imageSpecs: StoreSet<ImageSpec>
    public let jobs: StoreSet<Job>
    public let pods: StoreSet<Pod>
    public let events: EventRecorder?
    let clock: @Sendable () -> Date
    /// How soon an ImageSpec stalled on something outside it is looked at again.
    let stalledRetryInterval: Duration
    let baseImageChecks: BaseImageCheckBook
    let metrics = BuildMetrics()
    let logger: Logger

    /// The Job annotation recording the base image digest a build started from.
    public static let baseDigestAnnotation = "image-builder.primehub.io/base-digest"
    /// The Job annotation recording the `spec.updateTime` a build was started for.
    public static let updateTimeAnnotation = "image-builder.primehub.io/update-time"
    /// How long a completed Job's Pod may take to show its termination message (the digest).
    public static let digestGracePeriod: TimeInterval = 30
    /// The field manager name of the operator's writes.
    public static let fieldManager = "image-builder"

    public init(client: KubernetesClient, config: OperatorConfig, registry: any RegistryInspector,
                imageSpecs: StoreSet<ImageSpec>, jobs: StoreSet<Job>, pods: StoreSet<Pod>, events: EventRecorder?,
                stalledRetryInterval: Duration = .seconds(60), clock: @escaping @Sendable () -> Date = { Date() },
                logger: Logger = Logger(label: "image-builder.reconciler")) {
        self.client = client
        self.config = config
        self.registry = registry
        self.imageSpecs = imageSpecs
        self.jobs = jobs
        self.pods = pods
        self.events = events
        self.clock = clock
        self.stalledRetryInterval = stalledRetryInterval
        self.baseImageChecks = BaseImageCheckBook(maxPerHour: config.baseImages.maxRebuildsPerHour)
        self.logger = logger
    }

    public func reconcile(_ key: ObjectKey) async throws -> ReconcileResult {
        guard let imageSpec = imageSpecs.get(key), imageSpec.metadata.deletionTimestamp == nil else {
            // Deleted: Kubernetes' garbage collector removes what it owned.
            baseImageChecks.forget(key)
            return .done
        }
        var logger = self.logger
        logger[metadataKey: "imagespec"] = "\(key)"
        var pass = Pass(reconciler: self, imageSpec: imageSpec, now: clock(), logger: logger)
        let result = try await pass.run()
        do {
            try await pass.writeStatus()
        } catch let error as APIError where error.isConflict {
            // The cache was behind: this pass worked from an older ImageSpec. Its actions stand
            // (they are idempotent); the status is computed again from the newer one.
            logger.debug("status write conflicted; reconciling again", metadata: ["error": "\(error)"])
            return .requeue(after: .milliseconds(100))
        }
        return result
    }

    /// Jobs this ImageSpec owns (any hash), newest first.
    func ownedJobs(of imageSpec: ImageSpec) -> [Job] {
        return jobs.list(namespace: imageSpec.metadata.namespace ?? "")
            .filter { $0.metadata.controllerReference?.uid == imageSpec.metadata.uid && imageSpec.metadata.uid != nil }
            .sorted { ($0.metadata.creationTimestamp ?? .distantPast) > ($1.metadata.creationTimestamp ?? .distantPast) }
    }

    /// The newest Pod of a Job. Creation times have whole seconds: among Pods of the same second,
    /// one whose containers have ended counts as the later.
    func newestPod(of job: Job) -> Pod? {
        func order(_ pod: Pod) -> (Date, Int, String) {
            let ended = pod.status?.containerStatuses?.contains { $0.state?.terminated != nil } == true
            return (pod.metadata.creationTimestamp ?? .distantPast, ended ? 1 : 0, pod.metadata.name ?? "")
        }
        return pods.list(namespace: job.metadata.namespace ?? "")
            .filter { $0.metadata.controllerReference?.uid == job.metadata.uid && job.metadata.uid != nil }
            .max { order($0) < order($1) }
    }
}

/// One reconcile of one ImageSpec: the observed object, the status being computed, and the steps.
struct Pass {
    let reconciler: ImageSpecReconciler
    let imageSpec: ImageSpec
    let now: Date
    let logger: Logger
    var status: ImageSpecStatus
    /// Events to record once the status is written (so they match what the status says).
    var pendingEvents: [(EventType, String, String)] = []

    var client: KubernetesClient { reconciler.client }
    var config: OperatorConfig { reconciler.config }
    var namespace: String { imageSpec.metadata.namespace ?? client.defaultNamespace }
    var generation: Int64? { imageSpec.metadata.generation }

    init(reconciler: ImageSpecReconciler, imageSpec: ImageSpec, now: Date, logger: Logger) {
        self.reconciler = reconciler
        self.imageSpec = imageSpec
        self.now = now
        self.logger = logger
        self.status = imageSpec.status ?? ImageSpecStatus()
    }

    // MARK: - The decision

    mutating func run() async throws -> ReconcileResult {
        let valid: ValidImageSpec
        switch ImageSpecValidator.validate(imageSpec) {
        case .failure(let failure):
            stall(.failed, reason: "InvalidSpec", message: "the spec is invalid: \(failure.summary(limit: 10))")
            return .done
        case .success(let spec):
            valid = spec
        }
        let hash = SpecHash.compute(valid.spec)
        let jobName = BuildNaming.jobName(imageSpecName: valid.name, hash: hash)
        let target: String
        do {
            target = try BuildPlanner.targetImage(name: valid.name, hash: hash, destination: config.registry.push)
        } catch {
            stall(.failed, reason: "InvalidConfiguration", message: "the operator cannot build it: \(error)")
            return .done
        }

        let owned = reconciler.ownedJobs(of: imageSpec)
        let current = owned.first { $0.metadata.name == jobName }
        if current == nil, let foreign = reconciler.jobs.get(name: jobName, namespace: namespace) {
            // A Job of that name that this ImageSpec does not own: a leftover of an earlier object of
            // the same name (the garbage collector removes it) or someone else's.
            let owner = foreign.metadata.controllerReference
            let message = "Job \(jobName) exists but is not owned by this ImageSpec"
                + (owner.map { " (its owner is \($0.kind) \($0.name), uid \($0.uid))" } ?? "")
            setState(.pending, .reconciling(reason: "WaitingForOldBuild", message: message), jobName: jobName)
            return .requeue(after: .seconds(10))
        }

        if valid.spec.cancel == true {
            return try await cancel(current, jobName: jobName, hash: hash)
        }

        if let job = current {
            if let reason = rebuildReason(job: job, spec: valid) {
                try await deleteBuild(job, reason: reason)
                setState(.pending, .reconciling(reason: "Rebuilding", message: reason), jobName: jobName)
                pendingEvents.append((.normal, "Rebuilding", reason))
                return .requeue(after: .seconds(1))
            }
            return try await follow(job, spec: valid, hash: hash, target: target)
        }

        // No Job for this hash. If this hash was already built (the Job since cleaned away), the
        // result stands unless a rebuild was asked for.
        if let record = status.builds?.first(where: { $0.jobName == jobName && $0.hash == hash }),
           let phase = BuildPhase(rawValue: record.phase), phase.isFinished, phase != .cancelled,
           !rebuildRequested(since: record.startTime, spec: valid),
           phase == .succeeded || status.observedGeneration == generation
        {
            return try await report(record: record, spec: valid, target: target)
        }
        return try await startBuild(valid, hash: hash, jobName: jobName, target: target)
    }

    /// Why an existing build of the current hash must be redone, if it must: PrimeHub's rebuild
    /// trigger, an `updateTime` newer than the one the build was started for (Jobs from before
    /// that was recorded compare with their creation time).
    func rebuildReason(job: Job, spec: ValidImageSpec) -> String? {
        guard let updateTime = spec.spec.updateTime else { return nil }
        let builtFor = job.metadata.annotations?[ImageSpecReconciler.updateTimeAnnotation].flatMap(KubeJSON.parseTimestamp)
            ?? job.metadata.creationTimestamp
        guard let builtFor, updateTime > builtFor else { return nil }
        return "spec.updateTime (\(KubeJSON.formatTimestamp(updateTime))) is newer than build \(job.metadata.name ?? ""); building again"
    }

    /// The same trigger for a build whose Job is gone, against the build's recorded start.
    func rebuildRequested(since start: Date?, spec: ValidImageSpec) -> Bool {
        guard let updateTime = spec.spec.updateTime, let start else { return false }
        return updateTime > start
    }

    // MARK: - Cancel

    mutating func cancel(_ cached: Job?, jobName: String, hash: String) async throws -> ReconcileResult {
        var job = cached
        let unfinished = status.builds?.first { $0.jobName == jobName && !(BuildPhase(rawValue: $0.phase)?.isFinished ?? true) }
        if job == nil, unfinished != nil {
            // The cache may not show a Job just created: ask the API before saying nothing runs.
            do {
                let live = try await client.get(Job.self, name: jobName, namespace: namespace)
                if live.metadata.controllerReference?.uid == imageSpec.metadata.uid { job = live }
            } catch let error as APIError where error.isNotFound {}
        }
        if let job, !job.isFinished {
            try await deleteJob(job)
            var record = latestRecord(jobName: jobName, hash: hash)
            record.phase = BuildPhase.cancelled.rawValue
            record.completionTime = now
            record.reason = "Cancelled"
            status.record(record, limit: config.historyLimit)
            reconciler.metrics.finished(result: "cancelled", start: record.startTime, end: now)
            stall(.cancelled, reason: "Cancelled", message: "build \(jobName) was cancelled (spec.cancel is true)", jobName: jobName)
            return .done
        }
        if let job, job.condition("Complete") != nil {
            // Nothing left to cancel: the build already succeeded.
            return try await follow(job, spec: nil, hash: hash, target: job.metadata.annotations?[BuildPlanner.targetImageAnnotation] ?? status.image)
        }
        if var record = unfinished {
            record.phase = BuildPhase.cancelled.rawValue
            record.completionTime = record.completionTime ?? now
            record.reason = "Cancelled"
            status.record(record, limit: config.historyLimit)
        }
        stall(.cancelled, reason: "Cancelled", message: "no build runs while spec.cancel is true", jobName: jobName)
        return .done
    }

    // MARK: - Starting a build

    mutating func startBuild(_ spec: ValidImageSpec, hash: String, jobName: String, target: String) async throws -> ReconcileResult {
        // Starting a build is the one step a stale cache must not cause (it may not show this
        // operator's own last status write yet): confirm the ImageSpec is current first.
        let live = try await client.get(ImageSpec.self, name: imageSpec.metadata.name ?? "", namespace: namespace)
        guard live.metadata.resourceVersion == imageSpec.metadata.resourceVersion else {
            return .requeue(after: .milliseconds(100))
        }
        // Secrets.
        let pullSecret: Secret?
        let pushSecret: Secret?
        do {
            (pullSecret, pushSecret) = try await buildSecrets(spec)
        } catch let missing as MissingSecret {
            stall(.failed, reason: "MissingSecret", message: missing.description, jobName: jobName)
            return .requeue(after: reconciler.stalledRetryInterval)
        }
        let credentials: RegistryCredentials
        do {
            credentials = try RegistryCredentials.merge(push: pushSecret, pull: pullSecret)
        } catch {
            stall(.failed, reason: "InvalidSecret", message: error.description, jobName: jobName)
            return .requeue(after: reconciler.stalledRetryInterval)
        }
        if let pushSecret, let host = ImageReference.parse(target)?.registry {
            let hasCredential = (try? DockerConfig(secret: pushSecret).credential(forRegistry: host)) != nil
            if !hasCredential {
                stall(.failed, reason: "MissingPushCredentials",
                      message: "push secret \(pushSecret.metadata.name ?? "") in namespace \(namespace) has no credentials for registry \(host)",
                      jobName: jobName)
                return .requeue(after: reconciler.stalledRetryInterval)
            }
        }

        // The base image, asked of its registry before anything runs.
        let facts: BaseImageFacts
        do {
            facts = try await reconciler.registry.inspectBaseImage(spec.spec.baseImage, credentials: credentials.dockerConfig)
        } catch let error as RegistryError where error.isRetryable {
            setState(.pending, .reconciling(reason: "BaseImageUnreachable", message: "\(error); retrying"), jobName: jobName)
            try await writeStatus()
            throw error  // back off and try again
        } catch {
            stall(.failed, reason: "BaseImageUnavailable", message: "base image \(spec.spec.baseImage): \(error)", jobName: jobName)
            return .requeue(after: reconciler.stalledRetryInterval)
        }
        if !spec.conda.specs.isEmpty && !facts.hasConda {
            stall(.failed, reason: "CondaUnavailable",
                  message: "conda packages are requested but base image \(spec.spec.baseImage) has no conda (no CONDA_DIR and no conda on its PATH)",
                  jobName: jobName)
            return .done
        }
        if !facts.looksJupyterReady && status.observedGeneration != generation {
            pendingEvents.append((.warning, "JobSubmissionOnly",
                                  "base image \(spec.spec.baseImage) does not look JupyterHub-ready (no notebook user or Jupyter environment); the image suits Job Submission only"))
        }

        // The push side, before any build runs.
        do {
            try await reconciler.registry.checkPushAccess(to: target, pushSecret: pushSecret)
        } catch let error as RegistryError where !error.isRetryable {
            stall(.failed, reason: "PushDenied", message: "\(error)", jobName: jobName)
            return .requeue(after: reconciler.stalledRetryInterval)
        } catch {
            logger.warning("could not check push access; building anyway", metadata: ["error": "\(error)"])
        }

        let user: ImageUser
        do {
            user = try ImageUser(parsing: facts.user)
        } catch {
            logger.warning("base image user cannot be restored; the image ends as root", metadata: ["user": "\(facts.user)"])
            user = .root
        }
        var plan: BuildPlan
        do {
            plan = try BuildPlanner.plan(BuildInputs(imageSpec: spec, config: config, baseImageUser: user,
                                                     baseImageDigest: facts.digest, credentials: credentials))
        } catch {
            stall(.failed, reason: "InvalidConfiguration", message: "the build cannot be planned: \(error)", jobName: jobName)
            return .done
        }
        plan.job.metadata.annotations?[ImageSpecReconciler.baseDigestAnnotation] = facts.digest
        if let updateTime = spec.spec.updateTime {
            plan.job.metadata.annotations?[ImageSpecReconciler.updateTimeAnnotation] = KubeJSON.formatTimestamp(updateTime)
        }

        try await createOrReplace(plan.configMap)
        if let secret = plan.registrySecret { try await createOrReplace(secret) }
        do {
            _ = try await client.create(plan.job, options: WriteOptions(fieldManager: ImageSpecReconciler.fieldManager))
        } catch let error as APIError where error.isAlreadyExists {
            // Already created (a cache behind the API), or an old build of the same name still being
            // deleted: look again shortly.
            return .requeue(after: .seconds(2))
        }

        status.baseImageDigest = facts.digest
        status.startTime = now
        status.completionTime = nil
        status.record(BuildRecord(jobName: jobName, hash: hash, phase: BuildPhase.pending.rawValue, image: target, startTime: now),
                      limit: config.historyLimit)
        let message = "building \(target) in Job \(jobName) from \(spec.spec.baseImage)@\(facts.digest)"
        setState(.pending, .reconciling(reason: "BuildStarted", message: message), jobName: jobName)
        pendingEvents.append((.normal, "BuildStarted", message))
        reconciler.metrics.started()
        return .done
    }

    /// The build's pull secret (`spec.pullSecret`) and push secret (`registry.pushSecret`); nil
    /// for one not configured, `MissingSecret` for one configured but absent.
    func buildSecrets(_ spec: ValidImageSpec) async throws -> (pull: Secret?, push: Secret?) {
        (try await secret(named: spec.spec.pullSecret, role: "pull secret (spec.pullSecret)"),
         try await secret(named: config.registry.pushSecret, role: "push secret (registry.pushSecret)"))
    }

    /// Reads a Secret in the ImageSpec's namespace; nil when no name is configured.
    func secret(named name: String?, role: String) async throws -> Secret? {
        guard let name, !name.isEmpty else { return nil }
        do {
            return try await client.get(Secret.self, name: name, namespace: namespace)
        } catch let error as APIError where error.isNotFound {
            throw MissingSecret(description: "\(role) \(name) not found in namespace \(namespace)")
        }
    }

    /// Creates a build's ConfigMap or Secret; one left over from an earlier build of the same name
    /// with other content is replaced (they are immutable).
    func createOrReplace<T: KubeObject & Equatable>(_ object: T) async throws where T: ContentComparable {
        do {
            _ = try await client.create(object, options: WriteOptions(fieldManager: ImageSpecReconciler.fieldManager))
        } catch let error as APIError where error.isAlreadyExists {
            let existing = try await client.get(T.self, name: object.metadata.name ?? "", namespace: object.metadata.namespace)
            guard !existing.hasSameContent(as: object) || existing.metadata.controllerReference?.uid != imageSpec.metadata.uid else { return }
            try await client.delete(T.self, name: object.metadata.name ?? "", namespace: object.metadata.namespace,
                                    options: DeleteOptions(preconditions: .init(uid: existing.metadata.uid)))
            _ = try await client.create(object, options: WriteOptions(fieldManager: ImageSpecReconciler.fieldManager))
        }
    }

    // MARK: - Following a build

    mutating func follow(_ job: Job, spec: ValidImageSpec?, hash: String, target: String) async throws -> ReconcileResult {
        let jobName = job.metadata.name ?? ""
        let assessment = BuildAssessment.assess(
            job: job, pod: reconciler.newestPod(of: job), now: now,
            pendingTimeout: TimeInterval(config.builder.pendingTimeoutSeconds))
        var record = latestRecord(jobName: jobName, hash: hash)
        if BuildPhase(rawValue: record.phase)?.isFinished == true, !job.isFinished,
           let created = job.metadata.creationTimestamp, created > (record.completionTime ?? record.startTime ?? .distantPast)
        {
            // A Job newer than the recorded (finished) build of that name: a new run.
            record = BuildRecord(jobName: jobName, hash: hash, phase: BuildPhase.pending.rawValue, startTime: created)
        }
        record.startTime = record.startTime ?? job.metadata.creationTimestamp
        record.image = target
        switch assessment {
        case .pending(let message):
            record.phase = BuildPhase.pending.rawValue
            status.record(record, limit: config.historyLimit)
            setState(.pending, .reconciling(reason: "BuildPending", message: message), jobName: jobName)
            // Look again when the Pod may have waited too long (Pod events bring news sooner).
            let waiting = now.timeIntervalSince(job.metadata.creationTimestamp ?? now)
            let left = TimeInterval(config.builder.pendingTimeoutSeconds) - waiting
            return .requeue(after: .seconds(min(30, max(1, left + 1))))
        case .running:
            record.phase = BuildPhase.running.rawValue
            status.record(record, limit: config.historyLimit)
            setState(.running, .reconciling(reason: "Building", message: "building \(target) in Job \(jobName)"), jobName: jobName)
            return .done
        case .stuck(let reason, let message):
            try await deleteJob(job)
            record.phase = BuildPhase.failed.rawValue
            record.reason = reason
            record.completionTime = now
            status.record(record, limit: config.historyLimit)
            status.completionTime = now
            reconciler.metrics.finished(result: "failed", start: record.startTime, end: now)
            stall(.failed, reason: reason, message: "build \(jobName) was given up: \(message)", jobName: jobName)
            return .done
        case .failed(let reason, let message, let completion):
            let firstTime = record.phase != BuildPhase.failed.rawValue
            record.phase = BuildPhase.failed.rawValue
            record.reason = reason
            record.completionTime = completion ?? now
            status.record(record, limit: config.historyLimit)
            status.completionTime = record.completionTime
            if firstTime { reconciler.metrics.finished(result: "failed", start: record.startTime, end: record.completionTime) }
            stall(.failed, reason: reason, message: "build \(jobName) failed: \(message)", jobName: jobName)
            if firstTime { try await finishBuild(job) }
            return .done
        case .succeeded(nil, let completion)
            where now.timeIntervalSince(completion ?? now) < ImageSpecReconciler.digestGracePeriod:
            // Done, but the Pod's termination message (the digest) is not in view yet: watches of
            // Jobs and Pods deliver independently. Wait a little for it.
            record.phase = BuildPhase.running.rawValue
            status.record(record, limit: config.historyLimit)
            setState(.running, .reconciling(reason: "Finishing", message: "build \(jobName) completed; reading its digest"), jobName: jobName)
            return .requeue(after: .seconds(1))
        case .succeeded(let digest, let completion):
            let firstTime = record.phase != BuildPhase.succeeded.rawValue
            record.phase = BuildPhase.succeeded.rawValue
            record.reason = nil
            record.digest = digest ?? record.digest
            record.completionTime = completion ?? now
            status.record(record, limit: config.historyLimit)
            if firstTime {
                reconciler.metrics.finished(result: "succeeded", start: record.startTime, end: record.completionTime)
                try await finishBuild(job)
                pendingEvents.append((.normal, "BuildSucceeded", "built and pushed \(target)\(digest.map { "@\($0)" } ?? "")"))
            }
            return try await report(record: record, spec: spec, target: target)
        }
    }

    /// Reports a finished build recorded in the history (its Job may be gone).
    mutating func report(record: BuildRecord, spec: ValidImageSpec?, target: String) async throws -> ReconcileResult {
        guard BuildPhase(rawValue: record.phase) == .succeeded else {
            stall(.failed, reason: record.reason ?? "BuildFailed",
                  message: status.conditions?[Condition.stalled]?.message ?? "build \(record.jobName) failed",
                  jobName: record.jobName)
            return .done
        }
        status.image = target
        status.digest = record.digest
        status.completionTime = record.completionTime
        let digestText = record.digest.map { "@\($0)" } ?? ""
        setState(.succeeded, .ready(reason: "BuildSucceeded", message: "image \(target)\(digestText) is built"), jobName: record.jobName)
        guard let spec else { return .done }
        try await publish(spec, builtImage: target, jobName: record.jobName)
        try await pruneHistory(keeping: record.jobName)
        return try await checkBaseImage(spec, record: record, target: target)
    }

    /// With the rebuild-on-base-change policy on: resolves the base tag again when a check is due,
    /// and rebuilds (rate-limited) when it moved to another digest.
    mutating func checkBaseImage(_ spec: ValidImageSpec, record: BuildRecord, target: String) async throws -> ReconcileResult {
        guard rebuildsOnBaseChange else { return .done }
        let book = reconciler.baseImageChecks
        let key = imageSpec.key
        let interval = TimeInterval(config.baseImages.checkIntervalSeconds)
        if let moved = book.pendingRebuild(key) {
            // The old build was deleted on the previous pass; start the new one.
            book.clearPendingRebuild(key)
            pendingEvents.append((.normal, "BaseImageChanged", "base image \(spec.spec.baseImage) moved to \(moved); rebuilding"))
            return try await startBuild(spec, hash: record.hash, jobName: record.jobName, target: target)
        }
        let due = (book.lastCheck(key) ?? record.completionTime ?? now).addingTimeInterval(interval)
        guard due <= now else { return .requeue(after: .seconds(max(1, due.timeIntervalSince(now)))) }

        let facts: BaseImageFacts
        do {
            let (pullSecret, pushSecret) = try await buildSecrets(spec)
            let credentials = try RegistryCredentials.merge(push: pushSecret, pull: pullSecret)
            facts = try await reconciler.registry.inspectBaseImage(spec.spec.baseImage, credentials: credentials.dockerConfig)
        } catch {
            // The built image stays good; try again at the next interval.
            logger.warning("base image check failed", metadata: ["error": "\(error)"])
            book.checked(key, at: now)
            return .requeue(after: .seconds(interval))
        }
        guard facts.digest != status.baseImageDigest else {
            book.checked(key, at: now)
            return .requeue(after: .seconds(interval))
        }
        if let free = book.takeRebuildSlot(at: now) {
            logger.info("base image moved; rebuild waits for the rate limit", metadata: ["digest": "\(facts.digest)"])
            return .requeue(after: .seconds(max(1, free.timeIntervalSince(now))))
        }
        book.checked(key, at: now)
        if let job = reconciler.ownedJobs(of: imageSpec).first(where: { $0.metadata.name == record.jobName }) {
            book.markPendingRebuild(key, digest: facts.digest)
            try await deleteBuild(job, reason: "base image moved to \(facts.digest)")
            return .requeue(after: .seconds(1))
        }
        pendingEvents.append((.normal, "BaseImageChanged", "base image \(spec.spec.baseImage) moved to \(facts.digest); rebuilding"))
        return try await startBuild(spec, hash: record.hash, jobName: record.jobName, target: target)
    }

    /// After a build ends: its registry Secret (it holds push credentials) is deleted at once. The
    /// plan names that Secret like the Job; only a Secret this ImageSpec owns is deleted.
    func finishBuild(_ job: Job) async throws {
        let name = job.metadata.name ?? ""
        do {
            let secret = try await client.get(Secret.self, name: name, namespace: job.metadata.namespace)
            guard let uid = imageSpec.metadata.uid, secret.metadata.controllerReference?.uid == uid else { return }
            try await client.delete(Secret.self, name: name, namespace: job.metadata.namespace,
                                    options: DeleteOptions(preconditions: .init(uid: secret.metadata.uid)))
        } catch let error as APIError where error.isNotFound || error.isConflict {}
    }

    // MARK: - Base image changes

    var rebuildsOnBaseChange: Bool {
        switch imageSpec.metadata.annotations?[OperatorConfig.BaseImagePolicy.annotation] {
        case "true": return true
        case "false": return false
        default: return config.baseImages.rebuildOnChange
        }
    }

    // MARK: - Publishing and history

    mutating func publish(_ spec: ValidImageSpec, builtImage: String, jobName: String) async throws {
        guard let name = ImagePublisher.imageName(of: spec) else { return }
        var existing: Image?
        do {
            existing = try await client.get(Image.self, name: name, namespace: namespace)
        } catch let error as APIError where error.isNotFound {}
        if let existing, !ImagePublisher.isPublished(existing, from: spec) {
            pendingEvents.append((.warning, "PublishSkipped",
                                  "Image \(name) exists and was not published from this ImageSpec; it was left as it is"))
            return
        }
        guard let image = ImagePublisher.publish(spec, builtImage: builtImage, jobName: jobName, config: config, existing: existing),
              image != existing
        else { return }
        do {
            if existing == nil {
                _ = try await client.create(image, options: WriteOptions(fieldManager: ImageSpecReconciler.fieldManager))
            } else {
                _ = try await client.update(image, options: WriteOptions(fieldManager: ImageSpecReconciler.fieldManager))
            }
            pendingEvents.append((.normal, "Published", "Image \(name) in PrimeHub's image list now points at \(builtImage)"))
        } catch let error as APIError where error.isConflict || error.isAlreadyExists {
            throw error  // someone else wrote it meanwhile: read again after a backoff
        }
    }

    /// Deletes the Jobs (and build ConfigMaps) of older hashes beyond the history limit.
    func pruneHistory(keeping current: String) async throws {
        let older = reconciler.ownedJobs(of: imageSpec).filter { $0.metadata.name != current && $0.isFinished }
        let keep = max(config.historyLimit - 1, 0)
        for job in older.dropFirst(keep) {
            try await deleteJob(job)
            do {
                try await client.delete(ConfigMap.self, name: job.metadata.name ?? "", namespace: job.metadata.namespace)
            } catch let error as APIError where error.isNotFound {}
        }
    }

    // MARK: - Deleting

    func deleteJob(_ job: Job) async throws {
        do {
            try await client.delete(Job.self, name: job.metadata.name ?? "", namespace: job.metadata.namespace,
                                    options: DeleteOptions(propagationPolicy: .background,
                                                           preconditions: .init(uid: job.metadata.uid)))
        } catch let error as APIError where error.isNotFound || error.isConflict {}
        try await finishBuild(job)
    }

    /// Removes a build so that it can start again under the same name.
    func deleteBuild(_ job: Job, reason: String) async throws {
        logger.info("deleting build to start again", metadata: ["job": "\(job.metadata.name ?? "")", "reason": "\(reason)"])
        try await deleteJob(job)
        do {
            try await client.delete(ConfigMap.self, name: job.metadata.name ?? "", namespace: job.metadata.namespace)
        } catch let error as APIError where error.isNotFound {}
    }

    // MARK: - Status

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

    /// Stalled: cannot progress without a change. Records a Warning event when this is news.
    mutating func stall(_ phase: BuildPhase, reason: String, message: String, jobName: String? = nil) {
        let previous = status.conditions?[Condition.stalled]
        setState(phase, .stalled(reason: reason, message: message), jobName: jobName)
        if previous?.isTrue != true || previous?.reason != reason || previous?.message != message {
            pendingEvents.append((phase == .cancelled ? .normal : .warning, reason, message))
        }
    }

    /// Records the events, then writes the status when it changed: a merge patch of `/status`
    /// conditional on the resourceVersion it was computed from, so a pass that worked from a stale
    /// cache cannot overwrite newer status (409 Conflict instead).
    mutating func writeStatus() async throws {
        recordEvents()
        let old = imageSpec.status ?? ImageSpecStatus()
        guard status != old else { return }
        var patch: JSONValue = ["status": try JSONValue(encoding: status)]
        if let resourceVersion = imageSpec.metadata.resourceVersion {
            patch["metadata"] = ["resourceVersion": .string(resourceVersion)]
        }
        _ = try await client.patchStatus(ImageSpec.self, name: imageSpec.metadata.name ?? "", namespace: namespace,
                                         patch: .merge(patch))
    }

    private mutating func recordEvents() {
        let events = pendingEvents
        pendingEvents = []
        for (type, reason, message) in events {
            reconciler.events?.record(imageSpec, type, reason: reason, message: message)
            if type == .warning {
                logger.warning("\(reason): \(message)")
            } else {
                logger.info("\(reason): \(message)")
            }
        }
    }
}

struct MissingSecret: Error, CustomStringConvertible {
    var description: String
}

/// Objects whose content (not metadata) tells whether an existing copy is the same build's.
protocol ContentComparable {
    func hasSameContent(as other: Self) -> Bool
}

extension ConfigMap: ContentComparable {
    func hasSameContent(as other: ConfigMap) -> Bool { data == other.data && binaryData == other.binaryData }
}

extension Secret: ContentComparable {
    func hasSameContent(as other: Secret) -> Bool { data == other.data && type == other.type }
}

extension ValidationFailure {
    /// The first `limit` problems, one per line, and how many more there are.
    func summary(limit: Int) -> String {
        let lines = problems.prefix(limit).map(\.description)
        let more = problems.count > limit ? "\n(and \(problems.count - limit) more)" : ""
        return lines.joined(separator: "\n") + more
    }
}

/// When each ImageSpec's base tag was last resolved again, and a rate limit for the rebuilds that
/// base changes start (kpack's lesson: unlimited, they arrive as a storm).
final class BaseImageCheckBook: Sendable {
    private struct State {
        var lastCheck: [ObjectKey: Date] = [:]
        var pendingRebuilds: [ObjectKey: String] = [:]
        var rebuilds: [Date] = []
    }

    private let state = Mutex(State())
    let maxPerHour: Int

    init(maxPerHour: Int) { self.maxPerHour = maxPerHour }

    func lastCheck(_ key: ObjectKey) -> Date? { state.withLock { $0.lastCheck[key] } }
    func checked(_ key: ObjectKey, at date: Date) { state.withLock { $0.lastCheck[key] = date } }
    func forget(_ key: ObjectKey) {
        state.withLock {
            $0.lastCheck[key] = nil
            $0.pendingRebuilds[key] = nil
        }
    }

    /// A rebuild for a moved base image whose old build is being deleted.
    func markPendingRebuild(_ key: ObjectKey, digest: String) { state.withLock { $0.pendingRebuilds[key] = digest } }
    func pendingRebuild(_ key: ObjectKey) -> String? { state.withLock { $0.pendingRebuilds[key] } }
    func clearPendingRebuild(_ key: ObjectKey) { state.withLock { $0.pendingRebuilds[key] = nil } }

    /// Takes a rebuild slot if one is free in the last hour; otherwise the time when one frees up.
    func takeRebuildSlot(at now: Date) -> Date? {
        state.withLock { state in
            state.rebuilds.removeAll { now.timeIntervalSince($0) >= 3600 }
            if state.rebuilds.count < maxPerHour {
                state.rebuilds.append(now)
                return nil
            }
            return state.rebuilds.min()?.addingTimeInterval(3600)
        }
    }
}

/// Build counters and durations by result.
struct BuildMetrics: Sendable {
    func started() {
        Counter(label: "image_builder_builds_started_total").increment()
    }

    func finished(result: String, start: Date?, end: Date?) {
        Counter(label: "image_builder_builds_total", dimensions: [("result", result)]).increment()
        if let start, let end, end >= start {
            Timer(label: "image_builder_build_duration_seconds", dimensions: [("result", result)])
                .recordNanoseconds(Int64(end.timeIntervalSince(start) * 1e9))
        }
    }
}
