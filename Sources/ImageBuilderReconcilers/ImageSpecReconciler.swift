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

/// Converges one ImageSpec: a thin I/O shell around `ImageSpecDecider`. Each pass reads the
/// ImageSpec, its Jobs and the current build's Pod from the watch caches, fetches the facts the
/// decision asks for (secrets, registry answers), performs the decided actions, writes the status
/// once (a merge patch of `/status` conditional on the resourceVersion it was decided from: a
/// conflict means "decide again"), then records the Events and metrics of the transition it wrote
/// and performs the bookkeeping decided to follow the status (ImageSpecJob status writes).
public struct ImageSpecReconciler: Reconciler {
    public let imageSpecs: StoreSet<ImageSpec>
    let shell: BuildShell

    /// The field manager name of the operator's writes.
    public static let fieldManager = BuildShell.fieldManager

    public var jobs: StoreSet<Job> { shell.jobs }

    public init(client: KubernetesClient, config: OperatorConfig, registry: any RegistryInspector,
                imageSpecs: StoreSet<ImageSpec>, jobs: StoreSet<Job>, pods: StoreSet<Pod>,
                imageSpecJobs: StoreSet<ImageSpecJob> = StoreSet([]), events: EventRecorder?,
                stalledRetryInterval: Duration = .seconds(60), clock: @escaping @Sendable () -> Date = { Date() },
                logger: Logger = Logger(label: "image-builder.reconciler")) {
        self.imageSpecs = imageSpecs
        self.shell = BuildShell(client: client, config: config, registry: registry, jobs: jobs, pods: pods,
                                imageSpecJobs: imageSpecJobs, events: events, clock: clock,
                                policy: ReconcilePolicy(stalledRetryInterval: stalledRetryInterval), logger: logger)
    }

    public func reconcile(_ key: ObjectKey) async throws -> ReconcileResult {
        guard let cached = imageSpecs.get(key), cached.metadata.deletionTimestamp == nil else {
            // Deleted: Kubernetes' garbage collector removes what it owned.
            shell.forget(key)
            return .done
        }
        let shell = self.shell
        let imageSpec = BuildStateAnnotation.restored(cached)
        return try await shell.reconcile(
            imageSpec, prepared: PreparedSpec.of(imageSpec, config: shell.config, source: .imageSpec), about: ObjectReference(to: imageSpec),
            currentVersion: {
                try await shell.client.get(ImageSpec.self, name: imageSpec.metadata.name ?? "", namespace: imageSpec.metadata.namespace)
                    .metadata.resourceVersion
            },
            writeStatus: { status in try await shell.patchStatus(status, of: imageSpec) })
    }
}

/// The I/O shell every build path shares: it reads the caches, asks `ImageSpecDecider` (again
/// while it needs facts), performs the actions, writes the status once through the path's writer,
/// records what the written status says happened and performs the actions that follow it.
struct BuildShell: Sendable {
    let client: KubernetesClient
    let config: OperatorConfig
    let registry: any RegistryInspector
    let jobs: StoreSet<Job>
    let pods: StoreSet<Pod>
    let imageSpecJobs: StoreSet<ImageSpecJob>
    let events: EventRecorder?
    let clock: @Sendable () -> Date
    let policy: ReconcilePolicy
    let baseImageChecks: BaseImageCheckBook
    let ownWrites = OwnWriteBook()
    let logger: Logger

    static let fieldManager = "image-builder"
    /// Most fact-fetching rounds in one pass (the decision asks for at most a few in sequence).
    static let maxFactRounds = 6

    init(client: KubernetesClient, config: OperatorConfig, registry: any RegistryInspector, jobs: StoreSet<Job>,
         pods: StoreSet<Pod>, imageSpecJobs: StoreSet<ImageSpecJob>, events: EventRecorder?,
         clock: @escaping @Sendable () -> Date, policy: ReconcilePolicy, logger: Logger) {
        self.client = client
        self.config = config
        self.registry = registry
        self.jobs = jobs
        self.pods = pods
        self.imageSpecJobs = imageSpecJobs
        self.events = events
        self.clock = clock
        self.policy = policy
        self.baseImageChecks = BaseImageCheckBook(maxPerHour: config.baseImages.maxRebuildsPerHour)
        self.logger = logger
    }

    /// One pass over `imageSpec` (an ImageSpec, or an Image's build request seen as one), prepared
    /// (validated, its build identity computed) once by the caller as `prepared`.
    /// `currentVersion` reads the source object's resourceVersion from the API (asked only when
    /// the cache may not show this process's last write, see `OwnWriteBook`); `writeStatus`
    /// writes the decided status, returns the object's resourceVersion after the write (nil when
    /// it wrote nothing) and throws a Conflict when the object changed.
    func reconcile(_ imageSpec: ImageSpec, prepared: PreparedSpec, about target: ObjectReference,
                   currentVersion: @escaping @Sendable () async throws -> String?,
                   writeStatus: @Sendable (ImageSpecStatus) async throws -> String?) async throws -> ReconcileResult {
        let key = imageSpec.key
        var logger = self.logger
        logger[metadataKey: target.kind == "Image" ? "image" : "imagespec"] = "\(key)"

        // Read: decide, fetch what the decision asks for, decide again.
        var observation = observe(imageSpec, identity: prepared.identity)
        var decision: ImageSpecDecision?
        for _ in 0..<Self.maxFactRounds {
            switch ImageSpecDecider.decide(prepared, observation) {
            case .decided(let decided):
                decision = decided
            case .needs(let facts):
                observation.facts = try await PassTiming.timed("fetch " + PassTiming.label(facts.map(\.kindName))) {
                    try await fetch(facts, into: observation.facts, for: imageSpec, currentVersion: currentVersion)
                }
            }
            if decision != nil { break }
        }
        guard let decision else {
            throw ReconcileLoopError(message: "the decision kept asking for facts after \(Self.maxFactRounds) rounds")
        }
        logger.debug("decided", metadata: [
            "resourceVersion": "\(imageSpec.metadata.resourceVersion ?? "")", "jobs": "\(observation.ownedJobs.count)",
            "actions": "\(decision.actions.map { "\($0)".prefix(40) })", "next": "\(decision.next)"])

        // Act.
        for step in decision.steps {
            let result = try await PassTiming.timed("act " + PassTiming.label(step.map(\.kindName))) {
                try await perform(step, owner: imageSpec)
            }
            if result == .retryLater {
                return .requeue(after: .seconds(2))
            }
        }
        baseImageChecks.apply(decision.baseImageCheckChanges, for: key)
        for note in decision.notes { logger.warning("\(note)") }
        record(decision.events.filter(\.aboutActions), about: target, logger: logger)

        // Write the status once; then what it records happened.
        if decision.status != (imageSpec.status ?? ImageSpecStatus()) {
            do {
                let written = try await PassTiming.timed("write status") { try await writeStatus(decision.status) }
                if let written { ownWrites.remember(key, version: written) }
            } catch let error as APIError where error.isConflict {
                // The cache was behind: this pass worked from an older object. Its actions stand
                // (they are idempotent); the decision is made again from the newer one.
                logger.debug("status write conflicted; deciding again", metadata: ["error": "\(error)"])
                return .requeue(after: .milliseconds(100))
            }
        }
        record(decision.events.filter { !$0.aboutActions }, about: target, logger: logger)
        if let targetImage = prepared.identity?.targetImage, decision.events.contains(where: { $0.reason == .pushFailed }) {
            // The registry refused what a remembered push check allowed: the next build asks again.
            registry.forgetPushAccess(to: targetImage)
        }
        for metric in decision.metrics { BuildMetrics.record(metric) }
        if !decision.afterStatus.isEmpty {
            // Decided again by every pass: one that fails here leaves them to the retry.
            _ = try await PassTiming.timed("act after status " + PassTiming.label(decision.afterStatus.map(\.kindName))) {
                try await perform(decision.afterStatus, owner: imageSpec)
            }
        }

        switch decision.next {
        case .done: return .done
        case .after(let delay): return .requeue(after: delay)
        case .backoff(let message): throw RetryableFailure(message: message)
        }
    }

    /// Forgets what the shell keeps about a deleted source object.
    func forget(_ key: ObjectKey) {
        baseImageChecks.forget(key)
        ownWrites.forget(key)
    }

    // MARK: - Reading

    /// What the caches show of `imageSpec`'s builds.
    func observe(_ imageSpec: ImageSpec, identity: BuildIdentity?) -> ImageSpecObservation {
        let namespace = imageSpec.metadata.namespace ?? ""
        let uid = imageSpec.metadata.uid
        let owned = (uid.map { jobs.list(controlledBy: $0) } ?? [])
            .filter { $0.metadata.namespace == namespace }
            .sorted { ($0.metadata.creationTimestamp ?? .distantPast) > ($1.metadata.creationTimestamp ?? .distantPast) }
        var foreign: Job?
        var pods: [String: Pod] = [:]
        // Each owned Job's Pods, read from the cache once.
        var podsOfJob: [String: [Pod]] = [:]
        for uid in Set(owned.compactMap(\.metadata.uid)) {
            podsOfJob[uid] = self.pods.list(controlledBy: uid).filter { $0.metadata.namespace == namespace }
        }
        let buildPodNames = Set(podsOfJob.values.joined().compactMap(\.metadata.name))
        if let identity {
            if let current = owned.first(where: { $0.metadata.name == identity.jobName }) {
                pods[identity.jobName] = current.metadata.uid.flatMap { podsOfJob[$0] }.flatMap(BuildLogs.newestPod)
            } else if let named = jobs.get(name: identity.jobName, namespace: namespace) {
                foreign = named
            }
        }
        let records = (uid.map { imageSpecJobs.list(controlledBy: $0) } ?? [])
            .filter { $0.metadata.namespace == namespace }
        return ImageSpecObservation(
            imageSpec: imageSpec, ownedJobs: owned, foreignJob: foreign, pods: pods, imageSpecJobs: records,
            buildPodNames: buildPodNames, baseImageCheck: baseImageChecks.state(imageSpec.key), config: config, policy: policy, now: clock())
    }

    /// Fetches `needed` concurrently and adds the answers to `facts`.
    func fetch(_ needed: Set<Fact>, into facts: ObservedFacts, for imageSpec: ImageSpec,
               currentVersion: @escaping @Sendable () async throws -> String?) async throws -> ObservedFacts {
        var facts = facts
        let answers = try await withThrowingTaskGroup(of: FetchedFact.self) { group in
            for fact in needed {
                group.addTask { try await fetch(fact, for: imageSpec, currentVersion: currentVersion) }
            }
            var answers: [FetchedFact] = []
            for try await answer in group { answers.append(answer) }
            return answers
        }
        for answer in answers {
            switch answer {
            case .currentResourceVersion(let version): facts.currentResourceVersion = .some(version)
            case .secrets(let secrets): facts.secrets = secrets
            case .baseImage(let answer): facts.baseImage = answer
            case .pushAccess(let answer): facts.pushAccess = answer
            case .liveJob(let job): facts.liveJob = .some(job)
            case .publishedImage(let image): facts.publishedImage = .some(image)
            case .rebuildSlot(let slot): facts.rebuildSlot = slot
            case .builderLog(let log): facts.builderLog = .some(log)
            case .targetImage(let answer): facts.targetImage = answer
            }
        }
        return facts
    }

    enum FetchedFact: Sendable {
        case currentResourceVersion(String?)
        case secrets(BuildSecrets)
        case baseImage(BaseImageAnswer)
        case pushAccess(PushAccessAnswer)
        case liveJob(Job?)
        case publishedImage(Image?)
        case rebuildSlot(RebuildSlot)
        case builderLog(String?)
        case targetImage(TargetImageAnswer)
    }

    func fetch(_ fact: Fact, for imageSpec: ImageSpec,
               currentVersion: @Sendable () async throws -> String?) async throws -> FetchedFact {
        let namespace = imageSpec.metadata.namespace
        switch fact {
        case .currentResourceVersion:
            let cached = imageSpec.metadata.resourceVersion
            if ownWrites.cacheShowsOwnWrites(imageSpec.key, cachedVersion: cached) { return .currentResourceVersion(cached) }
            let current = try await currentVersion()
            if let current, current == cached { ownWrites.remember(imageSpec.key, version: current) }
            return .currentResourceVersion(current)
        case .secrets:
            async let pull = secret(named: imageSpec.spec.pullSecret, role: "pull secret (spec.pullSecret)", namespace: namespace)
            async let push = secret(named: config.registry.pushSecret, role: "push secret (registry.pushSecret)", namespace: namespace)
            async let registryPull = secret(named: config.registry.pullSecret, role: "pull secret (registry.pullSecret)", namespace: namespace)
            return .secrets(BuildSecrets(pull: try await pull, push: try await push, registryPull: try await registryPull))
        case .baseImage(let reference, let credentials):
            do {
                return .baseImage(.resolved(try await registry.inspectBaseImage(reference, credentials: credentials)))
            } catch let error as RegistryError where error.isRetryable {
                return .baseImage(.unreachable("\(error)"))
            } catch {
                return .baseImage(.unavailable("\(error)"))
            }
        case .pushAccess(let target, let credential):
            do {
                try await registry.checkPushAccess(to: target, credential: credential)
                return .pushAccess(.granted)
            } catch let error as RegistryError where !error.isRetryable {
                return .pushAccess(.denied("\(error)"))
            } catch {
                return .pushAccess(.unknown("\(error)"))
            }
        case .liveJob(let name):
            return .liveJob(try await getIfPresent(Job.self, name: name, namespace: namespace))
        case .publishedImage(let name):
            return .publishedImage(try await getIfPresent(Image.self, name: name, namespace: namespace))
        case .rebuildSlot:
            return .rebuildSlot(baseImageChecks.takeRebuildSlot(at: clock()).map(RebuildSlot.fullUntil) ?? .granted)
        case .builderLog(let pod, let container):
            // A log that cannot be read leaves the description without it; the failure is still recorded.
            let options = LogOptions(container: container, tailLines: BuildAssessment.logTailLines, limitBytes: 16_384)
            do {
                return .builderLog(try await client.logs(pod: pod, namespace: namespace, options: options))
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                return .builderLog(nil)
            }
        case .targetImage(let reference, let credential):
            return .targetImage(await targetImage(reference, credential: credential))
        }
    }

    /// A Secret in the ImageSpec's namespace: the one path every pass reads secrets through.
    func secret(named name: String?, role: String, namespace: String?) async throws -> SecretLookup {
        guard let name, !name.isEmpty else { return .notConfigured }
        guard let secret = try await getIfPresent(Secret.self, name: name, namespace: namespace) else {
            return .missing("\(role) \(name) not found in namespace \(namespace ?? client.defaultNamespace)")
        }
        return .found(secret)
    }

    func getIfPresent<T: KubeObject>(_ type: T.Type, name: String, namespace: String?) async throws -> T? {
        do {
            return try await client.get(T.self, name: name, namespace: namespace)
        } catch let error as APIError where error.isNotFound {
            return nil
        }
    }

    // MARK: - Acting

    enum StepResult { case done, retryLater }

    /// Performs one step's actions concurrently.
    func perform(_ step: [BuildAction], owner: ImageSpec) async throws -> StepResult {
        try await withThrowingTaskGroup(of: StepResult.self) { group in
            for action in step {
                group.addTask { try await perform(action, owner: owner) }
            }
            var result = StepResult.done
            for try await outcome in group where outcome == .retryLater { result = .retryLater }
            return result
        }
    }

    func perform(_ action: BuildAction, owner: ImageSpec) async throws -> StepResult {
        let write = WriteOptions(fieldManager: Self.fieldManager)
        switch action {
        case .ensureConfigMap(let configMap):
            try await createOrReplace(configMap, owner: owner)
        case .ensureSecret(let secret):
            try await createOrReplace(secret, owner: owner)
        case .createJob(let job):
            do {
                _ = try await client.create(job, options: write)
            } catch let error as APIError where error.isAlreadyExists {
                // Already created (a cache behind the API), or an old build of the same name still
                // being deleted: look again shortly.
                return .retryLater
            }
        case .deleteJob(let job):
            try await ignoringGone {
                try await client.delete(Job.self, name: job.metadata.name ?? "", namespace: job.metadata.namespace,
                                        options: DeleteOptions(propagationPolicy: .background, preconditions: .init(uid: job.metadata.uid)))
            }
            try await deleteRegistrySecret(name: job.metadata.name ?? "", namespace: job.metadata.namespace, owner: owner)
        case .deleteConfigMap(let name, let namespace):
            try await ignoringGone { try await client.delete(ConfigMap.self, name: name, namespace: namespace) }
        case .deleteRegistrySecret(let name, let namespace):
            try await deleteRegistrySecret(name: name, namespace: namespace, owner: owner)
        case .ensureImageSpecJob(let record):
            do {
                _ = try await client.create(record, options: write)
            } catch let error as APIError where error.isAlreadyExists {
                var existing = try await client.get(ImageSpecJob.self, name: record.metadata.name ?? "", namespace: record.metadata.namespace)
                guard existing.spec != record.spec || existing.metadata.controllerReference?.uid != owner.metadata.uid else { break }
                existing.spec = record.spec
                existing.metadata.labels = record.metadata.labels
                existing.metadata.annotations = (existing.metadata.annotations ?? [:]).merging(record.metadata.annotations ?? [:]) { $1 }
                existing.metadata.ownerReferences = record.metadata.ownerReferences
                _ = try await client.update(existing, options: write)
            }
        case .writeImageSpecJobStatus(let name, let namespace, let status):
            let patch: JSONValue = ["status": try JSONValue(encoding: status)]
            try await ignoringGone {
                _ = try await client.patchStatus(ImageSpecJob.self, name: name, namespace: namespace, patch: .merge(patch))
            }
        case .deleteImageSpecJob(let name, let namespace):
            try await ignoringGone { try await client.delete(ImageSpecJob.self, name: name, namespace: namespace) }
        case .createImage(let image):
            _ = try await client.create(image, options: write)
        case .updateImage(let image):
            _ = try await client.update(image, options: write)
        }
        return .done
    }

    /// A build's registry Secret (it holds push credentials) is deleted when the build ends; only
    /// a Secret the ImageSpec owns.
    func deleteRegistrySecret(name: String, namespace: String?, owner: ImageSpec) async throws {
        guard let secret = try await getIfPresent(Secret.self, name: name, namespace: namespace),
              let uid = owner.metadata.uid, secret.metadata.controllerReference?.uid == uid
        else { return }
        try await ignoringGone {
            try await client.delete(Secret.self, name: name, namespace: namespace,
                                    options: DeleteOptions(preconditions: .init(uid: secret.metadata.uid)))
        }
    }

    /// Creates a build's ConfigMap or Secret; one left over from an earlier build of the same name
    /// with other content, or not owned by this ImageSpec, is replaced (they are immutable).
    func createOrReplace<T: KubeObject & Equatable & ContentComparable>(_ object: T, owner: ImageSpec) async throws {
        let write = WriteOptions(fieldManager: Self.fieldManager)
        do {
            _ = try await client.create(object, options: write)
        } catch let error as APIError where error.isAlreadyExists {
            let existing = try await client.get(T.self, name: object.metadata.name ?? "", namespace: object.metadata.namespace)
            guard !existing.hasSameContent(as: object) || existing.metadata.controllerReference?.uid != owner.metadata.uid else { return }
            try await client.delete(T.self, name: object.metadata.name ?? "", namespace: object.metadata.namespace,
                                    options: DeleteOptions(preconditions: .init(uid: existing.metadata.uid)))
            _ = try await client.create(object, options: write)
        }
    }

    /// Runs a delete; an object already gone (or replaced meanwhile) is fine.
    func ignoringGone(_ body: () async throws -> Void) async throws {
        do { try await body() } catch let error as APIError where error.isNotFound || error.isConflict {}
    }

    // MARK: - Writing status and recording

    /// A merge patch of `/status` conditional on the resourceVersion it was decided from, so a pass
    /// that worked from a stale cache cannot overwrite newer status (409 Conflict instead). Where
    /// the installed CRD prunes the status to PrimeHub's three fields (PrimeHub's own CRD), the
    /// decision's state goes into the build-state annotation, conditional on the version written.
    @discardableResult
    func patchStatus(_ status: ImageSpecStatus, of imageSpec: ImageSpec) async throws -> String? {
        var patch: JSONValue = ["status": try JSONValue(encoding: status)]
        if let resourceVersion = imageSpec.metadata.resourceVersion {
            patch["metadata"] = ["resourceVersion": .string(resourceVersion)]
        }
        let name = imageSpec.metadata.name ?? ""
        let written = try await client.patchStatus(ImageSpec.self, name: name, namespace: imageSpec.metadata.namespace,
                                                   patch: .merge(patch))
        guard BuildStateAnnotation.wasPruned(sent: status, written: written), let text = BuildStateAnnotation.text(of: status),
              written.metadata.annotations?[MetadataKeys.imageBuildState] != text
        else { return written.metadata.resourceVersion }
        var metadata: JSONValue = ["annotations": [MetadataKeys.imageBuildState: .string(text)]]
        if let resourceVersion = written.metadata.resourceVersion { metadata["resourceVersion"] = .string(resourceVersion) }
        return try await client.patch(ImageSpec.self, name: name, namespace: imageSpec.metadata.namespace,
                                      patch: .merge(["metadata": metadata]), options: WriteOptions(fieldManager: Self.fieldManager))
            .metadata.resourceVersion
    }

    func record(_ decided: [DecidedEvent], about target: ObjectReference, logger: Logger) {
        for event in decided {
            events?.record(about: target, event.warning ? .warning : .normal, reason: event.reason.rawValue, message: event.message)
            if event.warning {
                logger.warning("\(event.reason.rawValue): \(event.message)")
            } else {
                logger.info("\(event.reason.rawValue): \(event.message)")
            }
        }
    }
}

/// The decision could not be made (a defect: it kept asking for facts).
struct ReconcileLoopError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

/// Something outside failed in a way that retrying may fix (a registry that cannot be reached):
/// the controller retries with its per-key backoff. The status already says so.
struct RetryableFailure: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
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

/// The resourceVersion each source object (ImageSpec, or Image asking for a build) had after this
/// process's last status write to it, or when the API last confirmed the cache's version. A
/// cached object at exactly that version shows every write this process made, and so does one
/// this process never wrote (a fresh start lists what was written before it): such a pass may
/// start or remove a build without asking the API for the current version
/// (`Fact.currentResourceVersion`). Any other version (the cache is behind, or someone else wrote
/// since) is asked of the API. Versions are only compared for equality, as the API requires.
final class OwnWriteBook: Sendable {
    private let versions = Mutex<[ObjectKey: String]>([:])

    func cacheShowsOwnWrites(_ key: ObjectKey, cachedVersion: String?) -> Bool {
        guard let cachedVersion else { return false }
        return versions.withLock { versions in versions[key].map { $0 == cachedVersion } ?? true }
    }

    func remember(_ key: ObjectKey, version: String) { versions.withLock { $0[key] = version } }
    func forget(_ key: ObjectKey) { versions.withLock { _ = $0.removeValue(forKey: key) } }
}

/// When each ImageSpec's base tag was last resolved again, and a rate limit for the rebuilds that
/// base changes start (kpack's lesson: unlimited, they arrive as a storm).
final class BaseImageCheckBook: Sendable {
    private struct State {
        var specs: [ObjectKey: BaseImageCheckState] = [:]
        var rebuilds: [Date] = []
    }

    private let state = Mutex(State())
    let maxPerHour: Int

    init(maxPerHour: Int) { self.maxPerHour = maxPerHour }

    func state(_ key: ObjectKey) -> BaseImageCheckState { state.withLock { $0.specs[key] ?? BaseImageCheckState() } }
    func lastCheck(_ key: ObjectKey) -> Date? { state(key).lastCheck }
    func pendingRebuild(_ key: ObjectKey) -> String? { state(key).pendingRebuild }
    func forget(_ key: ObjectKey) { state.withLock { _ = $0.specs.removeValue(forKey: key) } }

    func apply(_ changes: [BaseImageCheckChange], for key: ObjectKey) {
        guard !changes.isEmpty else { return }
        state.withLock { state in
            var entry = state.specs[key] ?? BaseImageCheckState()
            for change in changes {
                switch change {
                case .checked(let date): entry.lastCheck = date
                case .pendingRebuild(let digest): entry.pendingRebuild = digest
                case .clearPendingRebuild: entry.pendingRebuild = nil
                }
            }
            state.specs[key] = entry
        }
    }

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
/// Where a pass spends its time: each round of fetched facts, each step of actions and the
/// status write, as `image_builder_pass_part_seconds{part}` (part: "fetch secrets+targetImage",
/// "act createJob", "write status"; the kinds sorted, so the labels are few and stable).
enum PassTiming {
    static func label(_ kinds: [String]) -> String {
        Set(kinds).sorted().joined(separator: "+")
    }

    static func timed<T>(_ part: String, _ body: () async throws -> T) async rethrows -> T {
        let start = ContinuousClock.now
        defer {
            let elapsed = (ContinuousClock.now - start).components
            Timer(label: "image_builder_pass_part_seconds", dimensions: [("part", part)])
                .recordNanoseconds(elapsed.seconds * 1_000_000_000 + elapsed.attoseconds / 1_000_000_000)
        }
        return try await body()
    }
}

enum BuildMetrics {
    static func record(_ metric: BuildMetric) {
        switch metric {
        case .started:
            Counter(label: "image_builder_builds_started_total").increment()
        case .finished(let result, let duration):
            Counter(label: "image_builder_builds_total", dimensions: [("result", result)]).increment()
            if let duration {
                Timer(label: "image_builder_build_duration_seconds", dimensions: [("result", result)])
                    .recordNanoseconds(Int64(duration * 1e9))
            }
        }
    }
}
