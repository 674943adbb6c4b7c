import Foundation
import ImageBuilder
import KubeTypes
import RegistryTypes
import Testing

// The reconcile of an ImageSpec is a pure decision (`ImageSpecDecider.decide`): these tests make
// it without a server. The table covers every phase and every reason the decision writes; the
// tests after it follow transitions over several passes, with the fact protocol in between.

/// An Event as a row expects it.
struct ExpectedEvent: Hashable, Sendable, CustomStringConvertible {
    var reason: Reason
    var warning = false
    var aboutActions = false

    static func normal(_ reason: Reason) -> ExpectedEvent { ExpectedEvent(reason: reason) }
    static func warning(_ reason: Reason) -> ExpectedEvent { ExpectedEvent(reason: reason, warning: true) }

    init(reason: Reason, warning: Bool = false, aboutActions: Bool = false) {
        self.reason = reason
        self.warning = warning
        self.aboutActions = aboutActions
    }

    init(_ event: DecidedEvent) {
        self.init(reason: event.reason, warning: event.warning, aboutActions: event.aboutActions)
    }

    var description: String { "\(warning ? "Warning" : "Normal") \(reason.rawValue)\(aboutActions ? " (after actions)" : "")" }
}

/// What one pass must decide.
struct Expected: Sendable {
    var phase: BuildPhase
    /// The one condition that is True (`Ready`, `Reconciling` or `Stalled`); all three carry `reason`.
    var state: ConditionType
    var reason: Reason
    var events: [ExpectedEvent] = []
    /// `started`, `succeeded`, `failed`, `cancelled`.
    var metrics: [String] = []
    /// Action kinds, step by step.
    var steps: [[String]] = []
    var next: NextLook
    /// The reason recorded on the build's history record.
    var recordReason: Reason? = nil
    var checks: [BaseImageCheckChange] = []
}

/// One row of the decision table.
struct DecisionRow: Sendable, CustomTestStringConvertible {
    var name: String
    var observation: @Sendable () throws -> ImageSpecObservation
    var answers = Answers.standard
    var expected: Expected

    var testDescription: String { name }

    /// The reasons this row asserts.
    var covers: Set<Reason> {
        var reasons: Set<Reason> = [expected.reason]
        reasons.formUnion(expected.events.map(\.reason))
        if let recordReason = expected.recordReason { reasons.insert(recordReason) }
        return reasons
    }
}

enum DecisionTable {
    static func observe(_ imageSpec: ImageSpec = World.imageSpec(), jobs: [Job] = [], pods: [Pod] = [], foreign: Job? = nil,
                        records: [ImageSpecJob] = [], book: BaseImageCheckState = BaseImageCheckState(),
                        config: OperatorConfig = World.config(), now: Date = World.now) -> ImageSpecObservation {
        ImageSpecObservation(imageSpec: imageSpec, ownedJobs: jobs, foreignJob: foreign,
                             pods: Dictionary(pods.map { ($0.metadata.controllerReference?.name ?? "", $0) }) { $1 },
                             imageSpecJobs: records, baseImageCheck: book, config: config, now: now)
    }

    /// A build in progress (the status its start wrote) whose Job has `conditions` and whose Pod is in `state`.
    static func building(_ spec: ImageSpecSpec = World.spec(), conditions: [JobCondition] = [], state: ContainerState?,
                         podConditions: [PodCondition]? = nil, now: Date = World.now,
                         annotations: [String: String]? = nil) -> @Sendable () throws -> ImageSpecObservation {
        { () throws -> ImageSpecObservation in
            let bare = World.imageSpec(spec, annotations: annotations)
            let identity = try World.identity(bare)
            let imageSpec = World.imageSpec(spec, status: World.startedStatus(identity), annotations: annotations)
            let job = try World.currentJob(imageSpec, conditions: conditions)
            let pods = state == nil && podConditions == nil ? [] : [World.pod(of: job, state, conditions: podConditions)]
            // The ImageSpecJob as the start wrote it.
            let record = World.record(identity, spec: spec, updateTime: spec.updateTime ?? World.t0, status: World.pendingRecordStatus())
            return observe(imageSpec, jobs: [job], pods: pods, records: [record], now: now)
        }
    }

    static func fresh(_ spec: ImageSpecSpec = World.spec(), config: OperatorConfig = World.config()) -> @Sendable () throws -> ImageSpecObservation {
        { observe(World.imageSpec(spec), config: config) }
    }

    /// A stall of a build that cannot start: phase Failed, `Stalled`, a warning Event, a look again after the stall interval.
    static func externalStall(_ name: String, _ reason: Reason, _ change: @escaping @Sendable (inout Answers) -> Void) -> DecisionRow {
        DecisionRow(name: name, observation: fresh(), answers: Answers.standard.with(change),
                    expected: Expected(phase: .failed, state: .stalled, reason: reason, events: [.warning(reason)], next: .after(.seconds(60))))
    }

    /// A build that failed: the Job's `Failed` condition, the Pod's end.
    static func failure(_ reason: Reason, jobReason: String = "BackoffLimitExceeded", _ state: ContainerState?) -> DecisionRow {
        DecisionRow(name: "failed: \(reason.rawValue)",
                    observation: building(conditions: [World.failed(jobReason, at: World.t0.addingTimeInterval(90))], state: state),
                    expected: Expected(phase: .failed, state: .stalled, reason: reason, events: [.warning(reason)], metrics: ["failed"],
                                       steps: [["deleteRegistrySecret"], ["after status: writeImageSpecJobStatus"]], next: .done, recordReason: reason))
    }

    /// A build whose Pod cannot start: given up (the Job deleted).
    static func stuck(_ reason: Reason, _ state: ContainerState?, podConditions: [PodCondition]? = nil,
                      after seconds: TimeInterval = 700) -> DecisionRow {
        DecisionRow(name: "stuck: \(reason.rawValue)",
                    observation: building(state: state, podConditions: podConditions, now: World.t0.addingTimeInterval(seconds)),
                    expected: Expected(phase: .failed, state: .stalled, reason: reason, events: [.warning(reason)], metrics: ["failed"],
                                       steps: [["deleteJob"], ["after status: writeImageSpecJobStatus"]], next: .done, recordReason: reason))
    }

    static let succeededJob = [World.complete(at: World.t0.addingTimeInterval(90))]
    static let digestMessage = World.terminated(0, World.imageDigest + "\n", at: World.t0.addingTimeInterval(90))
    static let start: [[String]] = [["ensureConfigMap", "ensureSecret"], ["createJob", "ensureImageSpecJob"],
                                    ["after status: writeImageSpecJobStatus"]]
    static let publish = Publish(displayName: "Demo notebook")

    static let rows: [DecisionRow] = [
        // Before a build: the spec, the configuration, the secrets, the registries.
        DecisionRow(name: "InvalidSpec", observation: fresh(World.spec(apt: ["vim;id"])), answers: .none,
                    expected: Expected(phase: .failed, state: .stalled, reason: .invalidSpec, events: [.warning(.invalidSpec)], next: .done)),
        DecisionRow(name: "InvalidConfiguration (no push destination)", observation: fresh(config: World.config { $0.registry.push = nil }),
                    expected: Expected(phase: .failed, state: .stalled, reason: .invalidConfiguration,
                                       events: [.warning(.invalidConfiguration)], next: .done)),
        externalStall("MissingSecret (pull)", .missingSecret) {
            $0.secrets?.pull = .missing("pull secret (spec.pullSecret) pull not found in namespace hub")
        },
        externalStall("MissingSecret (push)", .missingSecret) {
            $0.secrets?.push = .missing("push secret (registry.pushSecret) push not found in namespace hub")
        },
        externalStall("InvalidSecret", .invalidSecret) { $0.secrets?.push = .found(World.brokenSecret("push")) },
        externalStall("MissingPushCredentials", .missingPushCredentials) {
            $0.secrets?.push = .found(World.dockerSecret("push", host: "other.example.com", username: "pusher"))
        },
        externalStall("BaseImageUnavailable", .baseImageUnavailable) { $0.baseImage = .unavailable("manifest unknown") },
        DecisionRow(name: "BaseImageUnreachable", observation: fresh(),
                    answers: Answers.standard.with { $0.baseImage = .unreachable("connection refused") },
                    expected: Expected(phase: .pending, state: .reconciling, reason: .baseImageUnreachable,
                                       next: .backoff("connection refused"))),
        DecisionRow(name: "CondaUnavailable", observation: fresh(World.spec(conda: ["numpy"])),
                    answers: Answers.standard.with { $0.baseImage = .resolved(World.base(hasConda: false)) },
                    expected: Expected(phase: .failed, state: .stalled, reason: .condaUnavailable, events: [.warning(.condaUnavailable)],
                                       next: .done)),
        externalStall("PushDenied", .pushDenied) { $0.pushAccess = .denied("denied: requested access to the resource is denied") },
        DecisionRow(name: "WaitingForOldBuild", observation: {
            let identity = try World.identity()
            return observe(foreign: World.job(identity.jobName, ownerUID: "uid-old"))
        }, answers: .none,
                    expected: Expected(phase: .pending, state: .reconciling, reason: .waitingForOldBuild, next: .after(.seconds(10)))),

        // Starting.
        DecisionRow(name: "BuildStarted", observation: fresh(),
                    expected: Expected(phase: .pending, state: .reconciling, reason: .buildStarted, events: [.normal(.buildStarted)],
                                       metrics: ["started"], steps: start, next: .done)),
        DecisionRow(name: "JobSubmissionOnly (a base that is not JupyterHub-ready)", observation: fresh(),
                    answers: Answers.standard.with { $0.baseImage = .resolved(World.base(jupyter: false)) },
                    expected: Expected(phase: .pending, state: .reconciling, reason: .buildStarted,
                                       events: [.warning(.jobSubmissionOnly), .normal(.buildStarted)], metrics: ["started"], steps: start,
                                       next: .done)),

        // Following a build.
        DecisionRow(name: "BuildPending (no Pod yet)", observation: building(state: nil, now: World.t0.addingTimeInterval(10)),
                    expected: Expected(phase: .pending, state: .reconciling, reason: .buildPending, next: .after(.seconds(30)))),
        DecisionRow(name: "Building", observation: building(state: World.running()),
                    expected: Expected(phase: .running, state: .reconciling, reason: .building, steps: [["after status: writeImageSpecJobStatus"]], next: .done)),
        DecisionRow(name: "Finishing (complete, digest not in view yet)",
                    observation: building(conditions: [World.complete(at: World.now.addingTimeInterval(-5))],
                                          state: World.terminated(0, nil)),
                    expected: Expected(phase: .running, state: .reconciling, reason: .finishing, steps: [["after status: writeImageSpecJobStatus"]], next: .after(.seconds(1)))),
        DecisionRow(name: "BuildSucceeded", observation: building(conditions: succeededJob, state: digestMessage),
                    expected: Expected(phase: .succeeded, state: .ready, reason: .buildSucceeded, events: [.normal(.buildSucceeded)],
                                       metrics: ["succeeded"], steps: [["deleteRegistrySecret"], ["after status: writeImageSpecJobStatus"]], next: .done)),
        DecisionRow(name: "BuildSucceeded (adopted: the Job is gone)", observation: {
            let identity = try World.identity()
            return observe(World.imageSpec(status: World.succeededStatus(identity)))
        }, expected: Expected(phase: .succeeded, state: .ready, reason: .buildSucceeded, next: .done)),
        DecisionRow(name: "Adopted (PrimeHub's record succeeded for this hash)", observation: {
            let identity = try World.identity()
            let record = World.record(identity, updateTime: World.t0, status: World.succeededRecordStatus())
            return observe(records: [record])
        }, answers: Answers.standard.with { $0.targetImage = .present(TargetImageFacts(digest: World.imageDigest)) },
                    expected: Expected(phase: .succeeded, state: .ready, reason: .buildSucceeded, events: [.normal(.adopted)],
                                       next: .done, recordReason: .adopted)),
        DecisionRow(name: "AnotherController (a record naming a Pod that is not the build's)", observation: {
            let observation = try building(state: World.running())()
            var records = observation.imageSpecJobs
            let recordName = records[0].metadata.name ?? ""
            records[0].status?.podName = "image-\(recordName)-x7k2"
            var changed = observation
            changed.imageSpecJobs = records
            return changed
        }, expected: Expected(phase: .running, state: .reconciling, reason: .building, events: [.warning(.anotherController)],
                              steps: [["after status: writeImageSpecJobStatus"]], next: .done)),
        DecisionRow(name: "Published", observation: building(World.spec(publish: publish), conditions: succeededJob, state: digestMessage),
                    expected: Expected(phase: .succeeded, state: .ready, reason: .buildSucceeded,
                                       events: [.normal(.buildSucceeded), ExpectedEvent(reason: .published, aboutActions: true)],
                                       metrics: ["succeeded"], steps: [["deleteRegistrySecret"], ["createImage"], ["after status: writeImageSpecJobStatus"]], next: .done)),
        DecisionRow(name: "PublishSkipped (an Image of that name that is not ours)",
                    observation: building(World.spec(publish: publish), conditions: succeededJob, state: digestMessage),
                    answers: Answers.standard.with {
                        $0.publishedImage = .some(Image(metadata: ObjectMeta(name: World.name, namespace: World.namespace),
                                                        spec: Image.Spec(displayName: "Someone's", url: "docker.io/someone/else:1")))
                    },
                    expected: Expected(phase: .succeeded, state: .ready, reason: .buildSucceeded,
                                       events: [.normal(.buildSucceeded), ExpectedEvent(reason: .publishSkipped, warning: true, aboutActions: true)],
                                       metrics: ["succeeded"], steps: [["deleteRegistrySecret"], ["after status: writeImageSpecJobStatus"]], next: .done)),
        DecisionRow(name: "Rebuilding (a newer updateTime)", observation: {
            let spec = World.spec(updateTime: World.t0.addingTimeInterval(50))
            let identity = try World.identity(World.imageSpec(spec))
            let imageSpec = World.imageSpec(spec, status: World.succeededStatus(identity, completion: World.t0.addingTimeInterval(40)))
            let job = try World.currentJob(imageSpec, conditions: [World.complete(at: World.t0.addingTimeInterval(40))],
                                           annotations: [MetadataKeys.updateTimeAnnotation: KubeJSON.formatTimestamp(World.t0.addingTimeInterval(-3600))])
            return observe(imageSpec, jobs: [job], pods: [World.pod(of: job, World.terminated(0, World.imageDigest))])
        }, expected: Expected(phase: .pending, state: .reconciling, reason: .rebuilding, events: [.normal(.rebuilding)],
                              steps: [["deleteJob", "deleteConfigMap", "deleteImageSpecJob"]], next: .after(.seconds(1)))),
        DecisionRow(name: "Cancelled (a running build)", observation: building(World.spec(cancel: true), state: World.running()),
                    answers: .none,
                    expected: Expected(phase: .cancelled, state: .stalled, reason: .cancelled, events: [.normal(.cancelled)],
                                       metrics: ["cancelled"], steps: [["deleteJob"], ["after status: writeImageSpecJobStatus"]], next: .done, recordReason: .cancelled)),
        DecisionRow(name: "BaseImageChanged (the old build deleted on the pass before)", observation: {
            let annotations = World.rebuildOnBaseChange
            let identity = try World.identity(World.imageSpec(annotations: annotations))
            return observe(World.imageSpec(status: World.succeededStatus(identity), annotations: annotations),
                           book: BaseImageCheckState(lastCheck: World.now.addingTimeInterval(-1), pendingRebuild: World.movedBaseDigest))
        }, answers: Answers.standard.with { $0.baseImage = .resolved(World.base(digest: World.movedBaseDigest)) },
                    expected: Expected(phase: .pending, state: .reconciling, reason: .buildStarted,
                                       events: [.normal(.baseImageChanged), .normal(.buildStarted)], metrics: ["started"], steps: start,
                                       next: .done, checks: [.clearPendingRebuild])),

        // How builds fail.
        failure(.buildFailed, World.terminated(1, "something else went wrong")),
        failure(.buildStepFailed, World.terminated(1, "error building image: error building stage: failed to execute command: exit status 100")),
        failure(.baseImagePullFailed, World.terminated(1, "error building image: GET https://quay.io/v2/x/manifests/1: retrieving image")),
        failure(.pushFailed, World.terminated(1, "error pushing image: failed to push to destination registry.example.com/ph/images:x: UNAUTHORIZED")),
        failure(.outOfMemory, World.terminated(137, nil, reason: "OOMKilled")),
        failure(.deadlineExceeded, jobReason: "DeadlineExceeded", nil),
        stuck(.builderImagePullFailed, World.waiting("InvalidImageName", "couldn't parse image reference"), after: 100),
        stuck(.buildUnschedulable, nil, podConditions: [PodCondition(type: "PodScheduled", status: "False", reason: "Unschedulable",
                                                                     message: "0/3 nodes are available: 3 Insufficient memory.")]),
        stuck(.buildPodMisconfigured, World.waiting("CreateContainerConfigError", "secret \"demo-x\" not found")),
        stuck(.buildPodStuck, nil),
    ]
}

@Suite struct DecisionTests {
    // MARK: - The table

    @Test(arguments: DecisionTable.rows)
    func decisionTable(_ row: DecisionRow) throws {
        let observation = try row.observation()
        let pass = try Decide.pass(observation, answers: row.answers)
        let expected = row.expected
        #expect(pass.status.phase == expected.phase.rawValue)
        #expect(pass.trueConditions == [expected.state.rawValue])
        for type in ConditionType.allCases {
            #expect(pass.condition(type)?.reason == expected.reason.rawValue, "\(type)")
            #expect(pass.condition(type)?.observedGeneration == observation.imageSpec.metadata.generation)
        }
        #expect(pass.status.observedGeneration == observation.imageSpec.metadata.generation)
        #expect(pass.decision.events.map(ExpectedEvent.init) == expected.events)
        #expect(pass.metricNames == expected.metrics)
        #expect(pass.steps == expected.steps)
        #expect(pass.decision.next == expected.next)
        #expect(pass.decision.baseImageCheckChanges == expected.checks)
        // PrimeHub's record follows the build: a status it gets says the build's phase.
        for (name, status) in pass.recordStatusWrites {
            #expect(name == pass.status.jobName)
            #expect(status.phase == expected.phase.rawValue, "\(name)")
        }
        // A pass that creates or deletes a Job asked whether its ImageSpec is current.
        if pass.actions.contains(where: { $0.kind == "createJob" || $0.kind == "deleteJob" }) {
            #expect(pass.asked.contains(.currentResourceVersion))
        }
        if let recordReason = expected.recordReason {
            #expect(pass.status.builds?.first?.reason == recordReason.rawValue)
            #expect(pass.status.builds?.first?.phase == expected.phase.rawValue)
        }
        // An Event about a stall or a step in progress says what the condition says.
        if expected.state != .ready, let event = pass.decision.events.first(where: { $0.reason == expected.reason }) {
            #expect(event.message == pass.condition(expected.state)?.message)
        }
    }

    @Test func theTableCoversEveryReasonAndPhase() {
        let covered = DecisionTable.rows.reduce(into: Set<Reason>()) { $0.formUnion($1.covers) }
        let missing = Reason.allCases.filter { !covered.contains($0) }
        #expect(missing.isEmpty, "reasons no table row asserts: \(missing.map(\.rawValue))")
        let phases = Set(DecisionTable.rows.map(\.expected.phase))
        #expect(BuildPhase.allCases.filter { !phases.contains($0) }.isEmpty)
        // Row names are unique, so a failure names one row.
        #expect(Set(DecisionTable.rows.map(\.name)).count == DecisionTable.rows.count)
    }

    // MARK: - The fact protocol

    @Test func aFreshSpecAsksForItsVersionAndSecretsThenTheRegistriesWithTheRightCredentials() throws {
        let identity = try World.identity()
        // The pull secret names the push registry too: pushing uses the push secret's credential.
        let pull = World.dockerSecret("pull", auths: [World.pullHost: "puller", World.pushHost: "puller"])
        let answers = Answers.standard.with { $0.secrets = BuildSecrets(pull: .found(pull), push: .found(World.pushSecret)) }
        let pass = try Decide.pass(DecisionTable.observe(), answers: answers)
        #expect(pass.rounds.count == 2)
        #expect(pass.rounds.first == [.currentResourceVersion, .secrets])
        let second = try #require(pass.rounds.last)
        #expect(second.count == 3)
        var sawBase = false, sawPush = false, sawTarget = false
        for fact in second {
            switch fact {
            case .baseImage(let reference, let credentials):
                sawBase = true
                #expect(reference == World.baseImage)
                #expect(credentials.credential(forRegistry: World.pullHost)?.username == "puller")
                #expect(credentials.credential(forRegistry: World.pushHost)?.username == "pusher", "the push secret's entry wins")
            case .pushAccess(let target, let credential):
                sawPush = true
                #expect(target == identity.targetImage)
                #expect(credential?.username == "pusher")
                #expect(credential?.password == "secret")
            case .targetImage(let reference, let credential):
                // Before the first build of a hash: was it built already (adoption)?
                sawTarget = true
                #expect(reference == identity.targetImage)
                #expect(credential?.username == "pusher")
            default:
                Issue.record("unexpected fact \(fact)")
            }
        }
        #expect(sawBase && sawPush && sawTarget)
        #expect(pass.steps == DecisionTable.start)
    }

    @Test func withoutAPushSecretPushAccessIsCheckedAnonymously() throws {
        let config = World.config { $0.registry.pushSecret = nil }
        let answers = Answers.standard.with { $0.secrets = BuildSecrets(pull: .found(World.pullSecret), push: .notConfigured) }
        let pass = try Decide.pass(DecisionTable.observe(config: config), answers: answers)
        let push = pass.rounds.last?.first { if case .pushAccess = $0 { return true } else { return false } }
        #expect(push == .pushAccess(target: try World.identity(config: config).targetImage, credential: nil))
        #expect(pass.steps == DecisionTable.start)
    }

    @Test func aStaleResourceVersionDecidesNothing() throws {
        // The cache shows an older ImageSpec than the API has: whatever it would decide, nothing stands.
        var stalled = ImageSpecStatus(phase: BuildPhase.failed.rawValue, jobName: try World.identity().jobName)
        stalled.setState(.stalled(reason: Reason.missingSecret.rawValue, message: "pull secret pull not found"), generation: 1,
                         now: World.t0)
        let observation = DecisionTable.observe(World.imageSpec(status: stalled))
        let pass = try Decide.pass(observation, answers: Answers.standard.with { $0.currentResourceVersion = .some("101") })
        #expect(pass.rounds == [[.currentResourceVersion, .secrets]])
        #expect(pass.decision.steps.isEmpty)
        #expect(pass.status == stalled)
        #expect(pass.decision.events.isEmpty)
        #expect(pass.decision.metrics.isEmpty)
        #expect(pass.decision.baseImageCheckChanges.isEmpty)
        #expect(pass.decision.next == .after(.milliseconds(100)))
        // An ImageSpec the API no longer has is stale as well.
        let gone = try Decide.pass(observation, answers: Answers.standard.with { $0.currentResourceVersion = .some(nil) })
        #expect(gone.decision.steps.isEmpty && gone.status == stalled)
    }

    @Test func anInvalidSpecAsksForNothing() throws {
        let pass = try Decide.pass(DecisionTable.observe(World.imageSpec(World.spec(apt: ["vim;id"]))), answers: .none)
        #expect(pass.rounds.isEmpty)
        #expect(pass.condition(.stalled)?.message?.contains("spec.packages.apt[0]") == true)
    }

    // MARK: - Starting

    @Test func aStartEnsuresTheConfigMapAndSecretThenCreatesTheJob() throws {
        let updateTime = World.t0.addingTimeInterval(-3600)
        let imageSpec = World.imageSpec(World.spec(updateTime: updateTime))
        let identity = try World.identity(imageSpec)
        let pass = try Decide.pass(DecisionTable.observe(imageSpec))
        try #require(pass.steps == DecisionTable.start)
        guard case .ensureConfigMap(let configMap) = pass.decision.steps[0][0], case .ensureSecret(let secret) = pass.decision.steps[0][1],
              case .createJob(let job) = pass.decision.steps[1][0], case .ensureImageSpecJob(let record) = pass.decision.steps[1][1],
              case .writeImageSpecJobStatus(let recordName, let recordNamespace, let recordStatus) = pass.decision.afterStatus[0]
        else {
            Issue.record("unexpected actions \(pass.decision.steps)")
            return
        }
        #expect(configMap.metadata.name == identity.jobName)
        #expect(configMap.data?["Dockerfile"]?.contains("FROM \(World.baseImage)@\(World.baseDigest)") == true)
        #expect(secret.metadata.name == identity.jobName)
        #expect(secret.type == RegistryCredentials.secretType)
        let merged = try DockerConfig(secret: secret)
        #expect(merged.credential(forRegistry: World.pushHost)?.username == "pusher")
        #expect(merged.credential(forRegistry: World.pullHost)?.username == "puller")
        #expect(job.metadata.name == identity.jobName)
        #expect(job.metadata.controllerReference?.uid == World.uid)
        #expect(job.metadata.annotations?[MetadataKeys.baseDigestAnnotation] == World.baseDigest)
        #expect(job.metadata.annotations?[MetadataKeys.updateTimeAnnotation] == "2026-01-01T11:00:00Z")
        #expect(job.metadata.annotations?[MetadataKeys.targetImage] == identity.targetImage)

        // PrimeHub's record of the build: named like the Job, its labels and hash annotation, owned
        // by the ImageSpec, the spec fields its console reads; its status written once the Job is created.
        #expect(record.metadata.name == identity.jobName)
        #expect(record.metadata.namespace == World.namespace)
        #expect(record.metadata.labels?[MetadataKeys.imageSpecName] == World.name)
        #expect(record.metadata.labels?["app"] == "primehub-custom-image")
        #expect(record.metadata.annotations == [MetadataKeys.imageSpecHash: identity.hash])
        #expect(record.metadata.controllerReference?.uid == World.uid)
        #expect(record.metadata.controllerReference?.kind == "ImageSpec")
        #expect(record.spec == ImageSpecJob.Spec(baseImage: World.baseImage, packages: Packages(apt: ["curl"]), pullSecret: "pull",
                                                 pushSecret: "push", repoPrefix: nil, targetImage: identity.targetImage,
                                                 updateTime: updateTime))
        #expect(record.status == nil)
        #expect(recordName == identity.jobName)
        #expect(recordNamespace == World.namespace)
        #expect(recordStatus == ImageSpecJob.Status(phase: "Pending", podName: "", startTime: World.now))

        let status = pass.status
        #expect(status.phase == "Pending")
        #expect(status.jobName == identity.jobName)
        #expect(status.image == "")
        #expect(status.baseImageDigest == World.baseDigest)
        #expect(status.startTime == World.now)
        #expect(status.completionTime == nil)
        #expect(status.builds == [BuildRecord(jobName: identity.jobName, hash: identity.hash, phase: "Pending",
                                              image: identity.targetImage, startTime: World.now)])
        #expect(pass.condition(.reconciling)?.message
            == "building \(identity.targetImage) in Job \(identity.jobName) from \(World.baseImage)@\(World.baseDigest)")
        #expect(pass.decision.events == [DecidedEvent(warning: false, reason: .buildStarted, message: pass.condition(.reconciling)?.message ?? "")])
        #expect(pass.decision.metrics == [.started])
        #expect(pass.decision.next == .done)

        // Without an updateTime the Job has no update-time annotation; the record's updateTime is the start.
        let plain = try Decide.pass(DecisionTable.observe())
        #expect(plain.createdJob?.metadata.annotations?[MetadataKeys.updateTimeAnnotation] == nil)
        #expect(plain.ensuredRecord?.spec.updateTime == World.now)
        #expect(plain.createdJob?.metadata.annotations?[MetadataKeys.baseDigestAnnotation] == World.baseDigest)
    }

    @Test func theRecordOfABuildPushedBelowAPrefixNamesThePrefix() throws {
        let config = World.config { $0.registry.push = .prefix("registry.example.com/ph") }
        let identity = try World.identity(config: config)
        let pass = try Decide.pass(DecisionTable.observe(config: config))
        let record = try #require(pass.ensuredRecord)
        #expect(record.spec.repoPrefix == "registry.example.com/ph")
        #expect(record.spec.targetImage == identity.targetImage)
        #expect(identity.targetImage == "registry.example.com/ph/demo:\(identity.hash)")
        #expect(record.spec.pushSecret == "push")
    }

    @Test func aBuildWithoutARecordGetsOneWhileItIsFollowed() throws {
        // A build started before records were kept: its record is created and given the build's status.
        var observation = try DecisionTable.building(state: World.running())()
        observation.imageSpecJobs = []
        let identity = try World.identity()
        let pass = try Decide.pass(observation, answers: .none)
        #expect(pass.rounds.isEmpty)
        #expect(pass.steps == [["ensureImageSpecJob"], ["after status: writeImageSpecJobStatus"]])
        #expect(pass.ensuredRecord == World.record(identity, updateTime: World.now))
        #expect(pass.recordStatusWrites[identity.jobName]
            == ImageSpecJob.Status(phase: "Running", podName: "\(identity.jobName)-x7k2p", startTime: World.t0))
        // Records of older builds are not made up.
        var older = observation
        older.ownedJobs.append(World.job("demo-0000000a", created: World.t0.addingTimeInterval(-1000),
                                         conditions: [World.complete(at: World.t0.addingTimeInterval(-900))]))
        let withOlder = try Decide.pass(older, answers: .none)
        #expect(withOlder.actions.filter { $0.kind == "ensureImageSpecJob" } == [.ensureImageSpecJob(World.record(identity, updateTime: World.now))])
        #expect(withOlder.recordStatusWrites.keys.sorted() == [identity.jobName])
    }

    @Test func pushAccessThatCannotBeCheckedDoesNotStopTheBuild() throws {
        let pass = try Decide.pass(DecisionTable.observe(), answers: Answers.standard.with { $0.pushAccess = .unknown("timeout") })
        #expect(pass.steps == DecisionTable.start)
        #expect(pass.decision.notes.contains { $0.contains("timeout") })
    }

    // MARK: - A build from start to success

    @Test func aBuildRunsAndItsSuccessIsCountedOnce() throws {
        var cluster = Cluster()
        let identity = try World.identity()
        let started = try cluster.pass()
        #expect(started.eventReasons == [.buildStarted])
        #expect(cluster.job(identity.jobName) != nil)
        #expect(cluster.records.map(\.metadata.name) == [identity.jobName])
        #expect(cluster.record(identity.jobName)?.status == ImageSpecJob.Status(phase: "Pending", podName: "", startTime: World.t0))

        cluster.advance(5)
        let pending = try cluster.pass(.none)
        #expect(pending.rounds.isEmpty, "following a build needs no facts")
        #expect(pending.status.phase == "Pending")
        #expect(pending.condition(.reconciling)?.reason == "BuildPending")
        #expect(pending.actions.isEmpty, "the record says Pending already")

        try cluster.startRunning(identity.jobName)
        let podName = try #require(cluster.pods[identity.jobName]?.metadata.name)
        cluster.advance(5)
        let running = try cluster.pass(.none)
        #expect(running.status.phase == "Running")
        #expect(running.status.builds?.first?.phase == "Running")
        #expect(running.condition(.reconciling)?.reason == "Building")
        // The record follows the Pod: its name and when the kubelet started it.
        let runningRecord = ImageSpecJob.Status(phase: "Running", podName: podName, startTime: World.t0.addingTimeInterval(5))
        #expect(running.actions == [.writeImageSpecJobStatus(name: identity.jobName, namespace: World.namespace, status: runningRecord)])
        #expect(cluster.record(identity.jobName)?.status == runningRecord)
        let stillRunning = try cluster.pass(.none)
        #expect(stillRunning.actions.isEmpty, "an unchanged record is not written again")

        cluster.advance(95)
        try cluster.finish(identity.jobName, message: World.imageDigest)
        let succeeded = try cluster.pass(.none)
        #expect(succeeded.status.phase == "Succeeded")
        #expect(succeeded.trueConditions == ["Ready"])
        #expect(succeeded.status.image == identity.targetImage)
        #expect(succeeded.status.digest == World.imageDigest)
        #expect(succeeded.status.completionTime == World.t0.addingTimeInterval(105))
        #expect(succeeded.status.builds?.first == BuildRecord(
            jobName: identity.jobName, hash: identity.hash, phase: "Succeeded", image: identity.targetImage, digest: World.imageDigest,
            startTime: World.t0, completionTime: World.t0.addingTimeInterval(105)))
        #expect(succeeded.decision.events.map(\.message) == ["built and pushed \(identity.targetImage)@\(World.imageDigest)"])
        let succeededRecord = ImageSpecJob.Status(phase: "Succeeded", podName: podName, startTime: World.t0.addingTimeInterval(5),
                                                  finishTime: World.t0.addingTimeInterval(105))
        #expect(succeeded.actions == [.deleteRegistrySecret(name: identity.jobName, namespace: World.namespace),
                                      .writeImageSpecJobStatus(name: identity.jobName, namespace: World.namespace, status: succeededRecord)])
        #expect(cluster.record(identity.jobName)?.status == succeededRecord)

        // A second decision from the status that records the success: nothing new.
        cluster.advance(30)
        let before = cluster.status
        let again = try cluster.pass(.none)
        #expect(again.status == before)
        #expect(again.decision.metrics.isEmpty)
        #expect(again.decision.events.isEmpty)
        #expect(again.actions.isEmpty)
        #expect(again.decision.next == .done)

        #expect(cluster.metrics == [.started, .finished(result: "succeeded", duration: 105)])
        #expect(cluster.events.map(\.reason) == [.buildStarted, .buildSucceeded])
    }

    @Test func aCompletedBuildWaitsBrieflyForItsDigest() throws {
        let identity = try World.identity()
        var cluster = Cluster()
        try cluster.pass()
        cluster.advance(60)
        // The Job watch delivered the completion; the Pod's termination message is not in view yet.
        try cluster.finish(identity.jobName, message: World.imageDigest)
        let pod = cluster.pods[identity.jobName]
        cluster.pods[identity.jobName] = nil
        cluster.advance(5)
        let finishing = try cluster.pass(.none)
        #expect(finishing.status.phase == "Running")
        #expect(finishing.condition(.reconciling)?.reason == "Finishing")
        #expect(finishing.decision.next == .after(.seconds(1)))
        #expect(finishing.decision.metrics.isEmpty && finishing.decision.events.isEmpty)
        #expect(finishing.actions == [.writeImageSpecJobStatus(name: identity.jobName, namespace: World.namespace,
                                                               status: ImageSpecJob.Status(phase: "Running", podName: "", startTime: World.t0))])

        cluster.pods[identity.jobName] = pod
        cluster.advance(1)
        let succeeded = try cluster.pass(.none)
        #expect(succeeded.status.phase == "Succeeded")
        #expect(succeeded.status.digest == World.imageDigest)
        #expect(succeeded.decision.metrics == [.finished(result: "succeeded", duration: 60)])
    }

    @Test func pastTheGracePeriodASuccessStandsWithoutADigest() throws {
        let identity = try World.identity()
        var cluster = Cluster()
        try cluster.pass()
        cluster.advance(60)
        try cluster.finish(identity.jobName, message: nil)
        cluster.advance(29)
        #expect(try cluster.pass(.none).condition(.reconciling)?.reason == "Finishing")
        cluster.advance(2)
        let succeeded = try cluster.pass(.none)
        #expect(succeeded.status.phase == "Succeeded")
        #expect(succeeded.status.digest == nil)
        #expect(succeeded.status.image == identity.targetImage)
        #expect(succeeded.decision.events.map(\.message) == ["built and pushed \(identity.targetImage)"])
        #expect(cluster.metrics.filter { $0.name == "succeeded" }.count == 1)
    }

    // MARK: - Failures

    @Test func aFailedBuildIsReportedOnceAndStandsWhenItsJobIsGone() throws {
        let identity = try World.identity()
        var cluster = Cluster()
        try cluster.pass()
        cluster.advance(40)
        let log = "error building image: error building stage: failed to execute command: exit status 100"
        try cluster.finish(identity.jobName, exitCode: 1, message: log)
        let failed = try cluster.pass(.none)
        #expect(failed.status.phase == "Failed")
        #expect(failed.trueConditions == ["Stalled"])
        #expect(failed.condition(.stalled)?.reason == "BuildStepFailed")
        #expect(failed.condition(.stalled)?.message?.contains(log) == true)
        #expect(failed.status.completionTime == World.t0.addingTimeInterval(40))
        #expect(failed.decision.metrics == [.finished(result: "failed", duration: 40)])
        let podName = try #require(cluster.pods[identity.jobName]?.metadata.name)
        #expect(failed.actions == [.deleteRegistrySecret(name: identity.jobName, namespace: World.namespace),
                                   .writeImageSpecJobStatus(name: identity.jobName, namespace: World.namespace, status: ImageSpecJob.Status(
                                       phase: "Failed", podName: podName, startTime: World.t0, finishTime: World.t0.addingTimeInterval(40)))])

        let before = cluster.status
        let again = try cluster.pass(.none)
        #expect(again.status == before)
        #expect(again.actions.isEmpty && again.decision.metrics.isEmpty && again.decision.events.isEmpty)

        cluster.jobs = []
        cluster.pods = [:]
        let gone = try cluster.pass(.none)
        #expect(gone.rounds.isEmpty, "a recorded failure of this generation does not start again")
        #expect(gone.status == before)
        #expect(gone.actions.isEmpty && gone.decision.metrics.isEmpty && gone.decision.events.isEmpty)
    }

    /// A started build whose builder ended 40 s later with exit code 1 and `message`.
    private func buildThatEnded(_ message: String) throws -> (cluster: Cluster, pod: String) {
        let identity = try World.identity()
        var cluster = Cluster()
        try cluster.pass()
        cluster.advance(40)
        try cluster.finish(identity.jobName, exitCode: 1, message: message)
        return (cluster, try #require(cluster.pods[identity.jobName]?.metadata.name))
    }

    @Test func aPushThatFailsAfterKanikoWroteItsDigestQuotesTheLogReadOnce() throws {
        // kaniko writes the digest before it pushes: exit 1 with a digest is a failed push.
        var (cluster, podName) = try buildThatEnded(World.imageDigest)
        let log = "error pushing image: failed to push to destination registry.example.com/ph/images:x: DENIED: quota exceeded"
        let failed = try cluster.pass(Answers.none.with { $0.builderLog = .some(log) })
        #expect(failed.rounds == [[.builderLog(pod: podName, container: BuildPlanner.containerName)]])
        #expect(failed.status.phase == "Failed")
        #expect(failed.condition(.stalled)?.reason == "PushFailed")
        let message = try #require(failed.condition(.stalled)?.message)
        #expect(message.contains("but pushing it failed") && message.contains("quota exceeded"), "\(message)")

        // The recorded failure keeps its sentence without reading the log again.
        let again = try cluster.pass(.none)
        #expect(again.rounds.isEmpty)
        #expect(again.condition(.stalled)?.message == message)
        #expect(again.actions.isEmpty && again.decision.events.isEmpty)
    }

    @Test func aFailureWhoseLogCannotBeReadIsStillRecorded() throws {
        var (cluster, _) = try buildThatEnded(World.imageDigest)
        let failed = try cluster.pass(Answers.none.with { $0.builderLog = .some(nil) })
        #expect(failed.condition(.stalled)?.reason == "PushFailed")
        #expect(failed.condition(.stalled)?.message?.contains("but pushing it failed (exit code 1)") == true)
    }

    @Test func aFailureWhoseTerminationMessageHoldsTheLogReadsNoLog() throws {
        var (cluster, _) = try buildThatEnded("error building image: error building stage: exit status 100")
        let failed = try cluster.pass(.none)
        #expect(failed.rounds.isEmpty)
        #expect(failed.condition(.stalled)?.reason == "BuildStepFailed")
    }

    @Test func aFailedBuildStartsAgainWhenTheSpecChangesWithoutChangingItsHash() throws {
        // The pull secret is not hashed: fixing it gives a new generation of the same build.
        let identity = try World.identity()
        var cluster = Cluster()
        try cluster.pass()
        try cluster.finish(identity.jobName, exitCode: 1, message: "GET https://quay.io/v2/x: retrieving image")
        #expect(try cluster.pass(.none).condition(.stalled)?.reason == "BaseImagePullFailed")
        cluster.jobs = []
        cluster.edit { $0.pullSecret = "other-pull" }
        let restarted = try cluster.pass()
        #expect(restarted.status.jobName == identity.jobName)
        #expect(restarted.steps == DecisionTable.start)
        #expect(restarted.eventReasons == [.buildStarted])
    }

    @Test func aStuckBuildIsGivenUpOnceAndStaysFailedWhenItsJobIsDeleted() throws {
        let identity = try World.identity()
        var cluster = Cluster()
        try cluster.pass()
        cluster.advance(601)
        let stuck = try cluster.pass(.none)
        #expect(stuck.condition(.stalled)?.reason == "BuildPodStuck")
        #expect(stuck.condition(.stalled)?.message
            == "build \(identity.jobName) was given up: waiting for the build pod to be created for longer than 10m")
        #expect(stuck.rounds == [[.currentResourceVersion]], "giving up a build is decided from a current ImageSpec")
        #expect(stuck.steps == [["deleteJob"], ["after status: writeImageSpecJobStatus"]])
        #expect(cluster.record(identity.jobName)?.status == ImageSpecJob.Status(
            phase: "Failed", podName: "", startTime: World.t0, finishTime: World.t0.addingTimeInterval(601)))
        #expect(stuck.decision.metrics == [.finished(result: "failed", duration: 601)])
        #expect(cluster.jobs.isEmpty)

        let before = cluster.status
        cluster.advance(10)
        let after = try cluster.pass(.none)
        #expect(after.rounds.isEmpty)
        #expect(after.status == before)
        #expect(after.actions.isEmpty && after.decision.metrics.isEmpty && after.decision.events.isEmpty)
        #expect(after.decision.next == .done)
    }

    // MARK: - Cancel

    @Test func cancellingARunningBuildDeletesItsJob() throws {
        let identity = try World.identity()
        var cluster = Cluster()
        try cluster.pass()
        try cluster.startRunning(identity.jobName)
        cluster.advance(20)
        cluster.edit { $0.cancel = true }
        let job = try #require(cluster.job(identity.jobName))
        let podName = try #require(cluster.pods[identity.jobName]?.metadata.name)
        let cancelled = try cluster.pass(.none)
        #expect(cancelled.rounds == [[.currentResourceVersion]])
        #expect(cancelled.actions == [.deleteJob(job), .writeImageSpecJobStatus(
            name: identity.jobName, namespace: World.namespace,
            status: ImageSpecJob.Status(phase: "Cancelled", podName: podName, startTime: World.t0, finishTime: World.t0.addingTimeInterval(20)))])
        #expect(cancelled.status.phase == "Cancelled")
        #expect(cancelled.trueConditions == ["Stalled"])
        #expect(cancelled.condition(.stalled)?.message == "build \(identity.jobName) was cancelled (spec.cancel is true)")
        #expect(cancelled.status.builds?.first?.phase == "Cancelled")
        #expect(cancelled.status.builds?.first?.completionTime == World.t0.addingTimeInterval(20))
        #expect(cancelled.decision.metrics == [.finished(result: "cancelled", duration: 20)])
        #expect(cancelled.decision.events.map(ExpectedEvent.init) == [.normal(.cancelled)])

        // The Job is gone: nothing more to do; the condition now says that nothing runs.
        let after = try cluster.pass(.none)
        #expect(after.actions.isEmpty && after.decision.metrics.isEmpty)
        #expect(after.status.phase == "Cancelled")
        #expect(after.status.builds == cancelled.status.builds)
        #expect(after.condition(.stalled)?.message == "no build runs while spec.cancel is true")
        #expect(after.decision.events.map(ExpectedEvent.init) == [.normal(.cancelled)])
        let before = cluster.status
        let settled = try cluster.pass(.none)
        #expect(settled.status == before)
        #expect(settled.actions.isEmpty && settled.decision.metrics.isEmpty && settled.decision.events.isEmpty)

        // Cancel off again: the build starts afresh.
        cluster.advance(5)
        cluster.edit { $0.cancel = false }
        let resumed = try cluster.pass()
        #expect(resumed.steps == DecisionTable.start)
        #expect(resumed.status.builds?.first?.phase == "Pending")
        #expect(cluster.record(identity.jobName)?.status == ImageSpecJob.Status(phase: "Pending", podName: "", startTime: cluster.now))
        cluster.advance(5)
        #expect(try cluster.pass(.none).condition(.reconciling)?.reason == "BuildPending")
    }

    @Test func aCancelledBuildIsCountedOnceWhileTheCacheStillShowsItsJob() throws {
        // The status write of the cancel brings the next pass before the Job's deletion is in view.
        let identity = try World.identity()
        var cluster = Cluster()
        try cluster.pass()
        try cluster.startRunning(identity.jobName)
        cluster.advance(20)
        cluster.edit { $0.cancel = true }
        let job = try #require(cluster.job(identity.jobName))
        try cluster.pass(.none)
        #expect(cluster.metrics == [.started, .finished(result: "cancelled", duration: 20)])
        let before = cluster.status
        cluster.jobs = [job]
        cluster.advance(1)
        let again = try cluster.pass(.none)
        #expect(again.decision.metrics.isEmpty, "the cancel was counted already")
        #expect(again.status == before, "the recorded cancel stays as it was")
        #expect(again.decision.events.isEmpty)
        #expect(again.actions.allSatisfy { $0.kind == "deleteJob" })
    }

    @Test func cancelWithNothingRunning() throws {
        let pass = try Decide.pass(DecisionTable.observe(World.imageSpec(World.spec(cancel: true))), answers: .none)
        #expect(pass.rounds.isEmpty)
        #expect(pass.actions.isEmpty)
        #expect(pass.status.phase == "Cancelled")
        #expect(pass.condition(.stalled)?.reason == "Cancelled")
        #expect(pass.condition(.stalled)?.message == "no build runs while spec.cancel is true")
        #expect(pass.decision.metrics.isEmpty)
        #expect(pass.decision.events.map(ExpectedEvent.init) == [.normal(.cancelled)])
    }

    @Test func cancelAsksTheAPIWhenTheCacheShowsNoJobForAnUnfinishedBuild() throws {
        let spec = World.spec(cancel: true)
        let identity = try World.identity(World.imageSpec(spec))
        let record = World.record(identity, spec: spec, updateTime: World.t0, status: World.pendingRecordStatus())
        let observation = DecisionTable.observe(World.imageSpec(spec, status: World.startedStatus(identity)), records: [record])
        let live = try World.currentJob(World.imageSpec(spec))
        let cancelledRecord = ImageSpecJob.Status(phase: "Cancelled", podName: "", startTime: World.t0, finishTime: World.now)

        let running = try Decide.pass(observation, answers: Answers(liveJob: .some(live)))
        #expect(running.rounds == [[.liveJob(name: identity.jobName)], [.currentResourceVersion]])
        #expect(running.actions == [.deleteJob(live),
                                    .writeImageSpecJobStatus(name: identity.jobName, namespace: World.namespace, status: cancelledRecord)])
        #expect(running.decision.metrics == [.finished(result: "cancelled", duration: 100)])
        #expect(running.status.phase == "Cancelled")

        let none = try Decide.pass(observation, answers: Answers(liveJob: .some(nil)))
        // Nothing to delete; PrimeHub's record still says the build ended.
        #expect(none.actions == [.writeImageSpecJobStatus(name: identity.jobName, namespace: World.namespace, status: cancelledRecord)])
        #expect(none.status.builds?.first?.phase == "Cancelled")
        #expect(none.status.builds?.first?.reason == "Cancelled")
        #expect(none.decision.metrics == [.finished(result: "cancelled", duration: 100)])
        #expect(none.condition(.stalled)?.message == "no build runs while spec.cancel is true")

        // A Job of that name owned by something else is not ours to delete.
        let foreign = World.job(identity.jobName, ownerUID: "uid-old")
        let theirs = try Decide.pass(observation, answers: Answers(liveJob: .some(foreign)))
        #expect(theirs.actions == [.writeImageSpecJobStatus(name: identity.jobName, namespace: World.namespace, status: cancelledRecord)])
        #expect(theirs.status.phase == "Cancelled")
    }

    @Test func cancelAfterTheBuildSucceededKeepsTheImage() throws {
        let observation = try DecisionTable.building(World.spec(cancel: true), conditions: DecisionTable.succeededJob,
                                                     state: DecisionTable.digestMessage)()
        let pass = try Decide.pass(observation, answers: .none)
        #expect(pass.status.phase == "Succeeded")
        #expect(pass.status.digest == World.imageDigest)
        #expect(pass.rounds.isEmpty, "nothing is published from a cancelled spec")
        #expect(!pass.actions.contains { $0.kind == "deleteJob" })
    }

    // MARK: - Rebuilds by updateTime

    @Test func aNewerUpdateTimeRebuilds() throws {
        let identity = try World.identity()
        var cluster = Cluster()
        try cluster.pass()
        try cluster.finish(identity.jobName, message: World.imageDigest)
        try cluster.pass(.none)
        #expect(cluster.status.phase == "Succeeded")
        let oldJob = try #require(cluster.job(identity.jobName))

        cluster.advance(3600)
        let clicked = cluster.now.addingTimeInterval(-10)
        cluster.edit { $0.updateTime = clicked }
        #expect(cluster.record(identity.jobName)?.status?.phase == "Succeeded")
        let rebuilding = try cluster.pass(.none)
        #expect(rebuilding.rounds == [[.currentResourceVersion]], "removing a build is decided from a current ImageSpec")
        #expect(rebuilding.actions == [.deleteJob(oldJob), .deleteConfigMap(name: identity.jobName, namespace: World.namespace),
                                       .deleteImageSpecJob(name: identity.jobName, namespace: World.namespace)])
        #expect(rebuilding.steps == [["deleteJob", "deleteConfigMap", "deleteImageSpecJob"]])
        #expect(cluster.records.isEmpty, "the old build's record goes with it")
        #expect(rebuilding.status.phase == "Pending")
        #expect(rebuilding.condition(.reconciling)?.reason == "Rebuilding")
        #expect(rebuilding.eventReasons == [.rebuilding])
        #expect(rebuilding.decision.next == .after(.seconds(1)))

        let started = try cluster.pass()
        #expect(started.steps == DecisionTable.start)
        #expect(started.createdJob?.metadata.annotations?[MetadataKeys.updateTimeAnnotation] == KubeJSON.formatTimestamp(clicked))
        #expect(cluster.record(identity.jobName)?.spec.updateTime == clicked)
        #expect(cluster.record(identity.jobName)?.status == ImageSpecJob.Status(phase: "Pending", podName: "", startTime: cluster.now))
        cluster.advance(2)
        let following = try cluster.pass(.none)
        #expect(following.condition(.reconciling)?.reason == "BuildPending", "the new build is not rebuilt again")
    }

    @Test func aFractionalUpdateTimeDoesNotRebuildTheBuildStartedForItsSecond() throws {
        // PrimeHub's console writes updateTime with a fraction (JavaScript's toISOString); timestamps
        // the operator records have whole seconds. Compared naively, every pass rebuilt.
        let updateTime = try #require(KubeJSON.parseTimestamp("2026-01-01T12:00:00.5Z"))
        #expect(updateTime.timeIntervalSince(World.t0) == 0.5)
        let spec = World.spec(updateTime: updateTime)
        let identity = try World.identity(World.imageSpec(spec))
        var cluster = Cluster(imageSpec: World.imageSpec(spec), now: World.t0.addingTimeInterval(0.7))
        let started = try cluster.pass()
        #expect(started.createdJob?.metadata.annotations?[MetadataKeys.updateTimeAnnotation] == "2026-01-01T12:00:00Z")

        cluster.advance(10)
        #expect(try cluster.pass(.none).condition(.reconciling)?.reason == "BuildPending")
        try cluster.finish(identity.jobName, message: World.imageDigest)
        let succeeded = try cluster.pass(.none)
        #expect(succeeded.status.phase == "Succeeded")
        #expect(!succeeded.eventReasons.contains(.rebuilding))

        // Its Job cleaned away: the recorded success (started 12:00:00) stands.
        cluster.jobs = []
        let adopted = try cluster.pass(.none)
        #expect(adopted.rounds.isEmpty)
        #expect(adopted.status.phase == "Succeeded" && adopted.actions.isEmpty)

        // A Job from before the annotation existed compares with its creation time (whole seconds).
        var legacy = try World.currentJob(World.imageSpec(spec), created: World.t0, conditions: [World.complete(at: World.t0.addingTimeInterval(60))])
        legacy.metadata.annotations?[MetadataKeys.updateTimeAnnotation] = nil
        cluster.jobs = [legacy]
        let finishedAt = try #require(cluster.record(identity.jobName)?.status?.finishTime)
        cluster.pods = [identity.jobName: World.pod(of: legacy, World.terminated(0, World.imageDigest, at: finishedAt))]
        let fromLegacy = try cluster.pass(.none)
        #expect(fromLegacy.status.phase == "Succeeded")
        #expect(fromLegacy.actions.isEmpty)

        // The next second is newer.
        cluster.edit { $0.updateTime = updateTime.addingTimeInterval(1) }
        #expect(try cluster.pass(.none).condition(.reconciling)?.reason == "Rebuilding")
    }

    // MARK: - Adoption (cutover from PrimeHub's builder)

    /// The registry's answer for a tag this operator built: labelled with the spec hash, created at `created`.
    static func builtTag(_ identity: BuildIdentity, hash: String? = nil, created: Date = World.t0) -> TargetImageAnswer {
        .present(TargetImageFacts(digest: World.imageDigest, labels: [MetadataKeys.specHashImageLabel: hash ?? identity.hash],
                                  created: created))
    }

    @Test func aSucceededPrimeHubRecordIsAdoptedWithoutABuild() throws {
        let identity = try World.identity()
        var cluster = Cluster()
        cluster.records = [World.record(identity, updateTime: World.t0, status: World.succeededRecordStatus())]
        cluster.now = World.t0.addingTimeInterval(3600)
        let answers = Answers.standard.with { $0.targetImage = .present(TargetImageFacts(digest: World.imageDigest)) }
        let pass = try cluster.pass(answers)
        let pushCredential = try World.secrets.credentials().pushCredential(forRegistry: World.pushHost)
        #expect(pass.asked.contains(.targetImage(reference: identity.targetImage, credential: try #require(pushCredential))))
        #expect(pass.createdJob == nil && pass.actions.isEmpty && pass.metricNames.isEmpty)
        #expect(pass.status.phase == "Succeeded" && pass.status.image == identity.targetImage)
        #expect(pass.status.digest == World.imageDigest)
        #expect(pass.condition(.ready)?.isTrue == true)
        let record = try #require(pass.status.builds?.first)
        #expect(record.reason == "Adopted" && record.hash == identity.hash && record.jobName == identity.jobName)
        #expect(record.startTime == World.t0 && record.completionTime == World.t0.addingTimeInterval(120))
        let event = try #require(pass.decision.events.first)
        #expect(event.reason == .adopted && event.message.contains("ImageSpecJob \(identity.recordName) succeeded"))

        // The next pass follows the history: nothing asked of the registry, nothing done.
        cluster.advance(10)
        let again = try cluster.pass(.none)
        #expect(again.rounds.isEmpty && again.actions.isEmpty && again.status.phase == "Succeeded")
        #expect(cluster.record(identity.recordName)?.status?.podName == "image-demo-x7k2", "PrimeHub's record is left as it is")
    }

    @Test func aTagLabelledWithTheSpecHashIsAdoptedAndAnyOtherIsRebuilt() throws {
        let identity = try World.identity()
        let adopted = try Decide.pass(DecisionTable.observe(), answers: Answers.standard.with { $0.targetImage = Self.builtTag(identity) })
        #expect(adopted.createdJob == nil && adopted.status.phase == "Succeeded" && adopted.status.digest == World.imageDigest)
        #expect(adopted.decision.events.map(\.reason) == [.adopted])
        #expect(adopted.decision.events.first?.message.contains("labelled \(MetadataKeys.specHashImageLabel)=\(identity.hash)") == true)

        // Built: another hash under that tag, no label (PrimeHub's builds have none) with no record,
        // no such tag, or a registry that cannot say.
        for target: TargetImageAnswer in [Self.builtTag(identity, hash: "0badbeef"), .present(TargetImageFacts(digest: World.imageDigest)),
                                          .absent, .unknown("connection refused")] {
            let pass = try Decide.pass(DecisionTable.observe(), answers: Answers.standard.with { $0.targetImage = target })
            #expect(pass.createdJob != nil, "\(target)")
            #expect(pass.steps == DecisionTable.start)
        }
    }

    @Test func aRebuildAskedForSinceTheAdoptableBuildStillBuilds() throws {
        // updateTime after PrimeHub's record was built for, or after the tag was created: build.
        let spec = World.spec(updateTime: World.t0.addingTimeInterval(600))
        let identity = try World.identity(World.imageSpec(spec))
        let record = World.record(identity, spec: spec, updateTime: World.t0, status: World.succeededRecordStatus())
        let fromRecord = try Decide.pass(DecisionTable.observe(World.imageSpec(spec), records: [record]),
                                         answers: Answers.standard.with { $0.targetImage = .present(TargetImageFacts(digest: World.imageDigest)) })
        #expect(fromRecord.createdJob != nil)
        let fromTag = try Decide.pass(DecisionTable.observe(World.imageSpec(spec)),
                                      answers: Answers.standard.with { $0.targetImage = Self.builtTag(identity, created: World.t0) })
        #expect(fromTag.createdJob != nil)
        // An updateTime before the tag was built: adopted.
        let older = try Decide.pass(DecisionTable.observe(World.imageSpec(spec)),
                                    answers: Answers.standard.with { $0.targetImage = Self.builtTag(identity, created: World.t0.addingTimeInterval(900)) })
        #expect(older.createdJob == nil && older.status.phase == "Succeeded")
    }

    @Test func aRecordWhoseTagIsGoneFromTheRegistryIsBuiltAgain() throws {
        let identity = try World.identity()
        let record = World.record(identity, updateTime: World.t0, status: World.succeededRecordStatus())
        let pass = try Decide.pass(DecisionTable.observe(records: [record]), answers: .standard)
        #expect(pass.createdJob != nil)
        // A failed record, or one for another target, is not adopted either.
        var failed = record
        failed.status?.phase = BuildPhase.failed.rawValue
        var elsewhere = record
        elsewhere.spec.targetImage = "registry.example.com/ph/images:demo-0badbeef"
        for other in [failed, elsewhere] {
            let built = try Decide.pass(DecisionTable.observe(records: [other]),
                                        answers: Answers.standard.with { $0.targetImage = .present(TargetImageFacts(digest: World.imageDigest)) })
            #expect(built.createdJob != nil)
        }
    }

    @Test func aHashWithHistoryIsNeverAdoptedAgain() throws {
        // A build of this hash that failed: the registry is not asked, the failure stands.
        let identity = try World.identity()
        var status = World.startedStatus(identity)
        status.builds?[0].phase = BuildPhase.failed.rawValue
        status.phase = BuildPhase.failed.rawValue
        let pass = try Decide.pass(DecisionTable.observe(World.imageSpec(status: status)),
                                   answers: Answers.standard.with { $0.targetImage = nil })
        #expect(!pass.asked.contains { if case .targetImage = $0 { return true } else { return false } })
    }

    @Test func anotherControllerWritingTheRecordIsReportedOnceAndClearedByTheNextBuild() throws {
        let identity = try World.identity()
        var cluster = Cluster()
        try cluster.pass()
        try cluster.startRunning(identity.jobName)
        try cluster.pass(.none)
        // PrimeHub's ImageSpecJob controller writes its own Pod into the record.
        let index = try #require(cluster.records.firstIndex { $0.metadata.name == identity.recordName })
        cluster.records[index].status?.podName = "image-\(identity.recordName)-q9zz"
        let seen = try cluster.pass(.none)
        let condition = try #require(seen.status.conditions?[Condition.foreignController])
        #expect(condition.isTrue && condition.reason == "AnotherController")
        #expect(condition.message?.contains("image-\(identity.recordName)-q9zz") == true)
        #expect(seen.decision.events.map(\.reason) == [.anotherController] && seen.decision.events.first?.warning == true)
        // The record names the build's Pod again; the condition stays, the Event is not repeated.
        #expect(cluster.record(identity.recordName)?.status?.podName.hasPrefix(identity.jobName + "-") == true)
        let later = try cluster.pass(.none)
        #expect(later.status.conditions?[Condition.foreignController]?.isTrue == true && later.decision.events.isEmpty)

        // A new build starts with none seen.
        cluster.edit { $0.packages.apt = ["vim"] }
        let rebuilt = try cluster.pass()
        #expect(rebuilt.createdJob != nil)
        #expect(rebuilt.status.conditions?[Condition.foreignController]?.isTrue == false)
    }

    // MARK: - History

    @Test func finishedJobsOfOlderHashesBeyondTheHistoryLimitArePruned() throws {
        let config = World.config { $0.historyLimit = 2 }
        let identity = try World.identity(config: config)
        func old(_ name: String, _ age: TimeInterval, finished: Bool = true) -> Job {
            World.job(name, created: World.t0.addingTimeInterval(-age),
                      conditions: finished ? [World.complete(at: World.t0.addingTimeInterval(-age + 60))] : [])
        }
        let newest = old("demo-0000000a", 1000), middle = old("demo-0000000b", 2000), oldest = old("demo-0000000c", 3000)
        let unfinished = old("demo-0000000d", 500, finished: false)
        // The history as the starts wrote it, newest first.
        var status = World.startedStatus(identity)
        status.builds = (status.builds ?? []) + [newest, middle, oldest].map { job in
            BuildRecord(jobName: job.metadata.name ?? "", hash: String(job.metadata.name?.suffix(8) ?? ""), phase: "Succeeded",
                        startTime: job.metadata.creationTimestamp)
        }
        let imageSpec = World.imageSpec(status: status)
        let current = try World.currentJob(imageSpec, config: config, conditions: DecisionTable.succeededJob)
        let records = [World.record(identity, updateTime: World.t0, status: World.pendingRecordStatus())]
            + [newest, middle, oldest, unfinished].map { job in
                var record = World.record(identity, updateTime: World.t0, status: ImageSpecJob.Status(phase: "Succeeded", podName: ""))
                record.metadata.name = job.metadata.name
                return record
            }
        let observation = DecisionTable.observe(imageSpec, jobs: [current, unfinished, newest, middle, oldest],
                                                pods: [World.pod(of: current, DecisionTable.digestMessage)], records: records, config: config)
        let pass = try Decide.pass(observation, answers: .none)
        #expect(pass.rounds == [[.currentResourceVersion]], "pruning deletes Jobs: decided from a current ImageSpec")
        #expect(pass.steps == [["deleteRegistrySecret"],
                               ["deleteJob", "deleteConfigMap", "deleteImageSpecJob", "deleteJob", "deleteConfigMap", "deleteImageSpecJob"],
                               ["after status: writeImageSpecJobStatus"]])
        #expect(pass.decision.steps[1] == [.deleteJob(middle), .deleteConfigMap(name: "demo-0000000b", namespace: World.namespace),
                                           .deleteImageSpecJob(name: "demo-0000000b", namespace: World.namespace),
                                           .deleteJob(oldest), .deleteConfigMap(name: "demo-0000000c", namespace: World.namespace),
                                           .deleteImageSpecJob(name: "demo-0000000c", namespace: World.namespace)])
        #expect(pass.recordStatusWrites.keys.sorted() == [identity.jobName], "only the current build's record changes")
        #expect(pass.status.builds?.map(\.jobName) == [identity.jobName, "demo-0000000a"])
        #expect(pass.status.builds?.first?.phase == "Succeeded")

        // Within the limit nothing is pruned.
        let within = DecisionTable.observe(imageSpec, jobs: [current, unfinished, newest],
                                           pods: [World.pod(of: current, DecisionTable.digestMessage)], records: records, config: config)
        #expect(try Decide.pass(within, answers: .none).steps == [["deleteRegistrySecret"], ["after status: writeImageSpecJobStatus"]])
    }

    // MARK: - Publishing

    @Test func aSuccessPublishesTheImageWithThePullSecretNotThePushSecret() throws {
        let spec = World.spec(publish: Publish(displayName: "Demo notebook", type: "cpu"))
        let observation = try DecisionTable.building(spec, conditions: DecisionTable.succeededJob, state: DecisionTable.digestMessage)()
        let identity = try World.identity(observation.imageSpec)
        let pass = try Decide.pass(observation)
        #expect(pass.rounds == [[.publishedImage(World.name)]])
        #expect(pass.steps == [["deleteRegistrySecret"], ["createImage"], ["after status: writeImageSpecJobStatus"]])
        guard case .createImage(let image) = pass.decision.steps.last?.first else {
            Issue.record("expected an Image to be created: \(pass.decision.steps)")
            return
        }
        #expect(image.metadata.name == World.name)
        #expect(image.metadata.namespace == World.namespace)
        #expect(image.metadata.annotations?[ImagePublisher.sourceAnnotation] == "hub/demo")
        #expect(image.spec.url == identity.targetImage)
        #expect(image.spec.urlForGpu == identity.targetImage)
        #expect(image.spec.pullSecret == "hub-pull")
        #expect(image.spec.displayName == "Demo notebook")
        #expect(image.spec.type == "cpu")
        #expect(image.status?.jobCondition.phase == "Succeeded")
        #expect(image.status?.jobCondition.jobName == identity.jobName)
        #expect(pass.decision.events.last == DecidedEvent(
            warning: false, reason: .published, message: "Image demo in PrimeHub's image list now points at \(identity.targetImage)",
            aboutActions: true))

        // Published already, exactly so: nothing to do.
        let same = try Decide.pass(observation, answers: Answers.standard.with { $0.publishedImage = .some(image) })
        #expect(same.steps == [["deleteRegistrySecret"], ["after status: writeImageSpecJobStatus"]])
        #expect(!same.eventReasons.contains(.published))

        // Published from an earlier build: updated in place, its other fields kept.
        var earlier = image
        earlier.metadata.resourceVersion = "42"
        earlier.spec.url = "registry.example.com/ph/images:demo-00000000"
        earlier.spec.urlForGpu = earlier.spec.url
        earlier.spec.description = "kept"
        let updated = try Decide.pass(observation, answers: Answers.standard.with { $0.publishedImage = .some(earlier) })
        guard case .updateImage(let update) = updated.decision.steps.last?.first else {
            Issue.record("expected an update: \(updated.decision.steps)")
            return
        }
        #expect(update.metadata.resourceVersion == "42")
        #expect(update.spec.url == identity.targetImage)
        #expect(update.spec.description == "kept")
        #expect(updated.eventReasons.last == .published)

        // Without a configured pull secret, published Images get none (never the push secret).
        var withoutPull = observation
        withoutPull.config.registry.pullSecret = nil
        let bare = try Decide.pass(withoutPull)
        guard case .createImage(let bareImage) = bare.decision.steps.last?.first else {
            Issue.record("expected an Image to be created: \(bare.decision.steps)")
            return
        }
        #expect(bareImage.spec.pullSecret == nil)
    }

    @Test func anImageOfThatNameThatIsNotOursIsLeftAlone() throws {
        let spec = World.spec(publish: Publish(name: "shared-notebook"))
        let observation = try DecisionTable.building(spec, conditions: DecisionTable.succeededJob, state: DecisionTable.digestMessage)()
        var theirs = Image(metadata: ObjectMeta(name: "shared-notebook", namespace: World.namespace), spec: Image.Spec(url: "docker.io/x/y:1"))
        theirs.metadata.annotations = [ImagePublisher.sourceAnnotation: "hub/another-spec"]
        let pass = try Decide.pass(observation, answers: Answers.standard.with { $0.publishedImage = .some(theirs) })
        #expect(pass.rounds == [[.publishedImage("shared-notebook")]])
        #expect(!pass.actions.contains { $0.kind == "createImage" || $0.kind == "updateImage" })
        #expect(pass.decision.events.last == DecidedEvent(
            warning: true, reason: .publishSkipped,
            message: "Image shared-notebook exists and was not published from this ImageSpec; it was left as it is", aboutActions: true))
        #expect(pass.status.phase == "Succeeded")
    }

    // MARK: - Someone else's Job

    @Test func aJobOfTheBuildsNameOwnedBySomeoneElseIsWaitedFor() throws {
        let identity = try World.identity()
        var cluster = Cluster()
        cluster.foreignJob = World.job(identity.jobName, ownerUID: "uid-old")
        let waiting = try cluster.pass(.none)
        #expect(waiting.rounds.isEmpty)
        #expect(waiting.actions.isEmpty)
        #expect(waiting.status.phase == "Pending")
        #expect(waiting.condition(.reconciling)?.reason == "WaitingForOldBuild")
        #expect(waiting.condition(.reconciling)?.message
            == "Job \(identity.jobName) exists but is not owned by this ImageSpec (its owner is ImageSpec demo, uid uid-old)")
        #expect(waiting.decision.next == .after(.seconds(10)))

        // The garbage collector removed it: the build starts.
        cluster.foreignJob = nil
        #expect(try cluster.pass().steps == DecisionTable.start)
    }

    // MARK: - Rebuilds when the base image moves

    /// A built ImageSpec that opted in, its successful Job still present, checked every hour.
    func builtWithRebuildOnBaseChange(jobPresent: Bool = true, publish: Publish? = nil) throws -> Cluster {
        let imageSpec = World.imageSpec(World.spec(publish: publish), annotations: World.rebuildOnBaseChange)
        let identity = try World.identity(imageSpec)
        var cluster = Cluster(imageSpec: World.imageSpec(imageSpec.spec, status: World.succeededStatus(identity),
                                                         annotations: World.rebuildOnBaseChange),
                              config: World.config { $0.baseImages.checkIntervalSeconds = 3600 },
                              now: World.t0.addingTimeInterval(120))
        if jobPresent {
            let job = try World.currentJob(imageSpec, conditions: [World.complete(at: World.t0.addingTimeInterval(120))])
            let pod = World.pod(of: job, World.terminated(0, World.imageDigest, at: World.t0.addingTimeInterval(120)))
            cluster.jobs = [job]
            cluster.pods = [identity.jobName: pod]
            cluster.records = [World.record(identity, spec: imageSpec.spec, updateTime: World.t0, status: ImageSpecJob.Status(
                phase: "Succeeded", podName: pod.metadata.name ?? "", startTime: World.t0, finishTime: World.t0.addingTimeInterval(120)))]
        }
        return cluster
    }

    @Test func aBaseImageCheckThatIsNotDueLooksAgainWhenItIs() throws {
        var cluster = try builtWithRebuildOnBaseChange()
        cluster.advance(600)
        let pass = try cluster.pass(.none)
        #expect(pass.rounds.isEmpty)
        #expect(pass.decision.next == .after(.seconds(3000)))
        #expect(pass.decision.baseImageCheckChanges.isEmpty)

        // The last check counts from when it was made.
        cluster.advance(3000)
        cluster.book.lastCheck = cluster.now.addingTimeInterval(-100)
        #expect(try cluster.pass(.none).decision.next == .after(.seconds(3500)))

        // Without the annotation (and the policy off) there is no check at all.
        cluster.imageSpec.metadata.annotations = nil
        cluster.book = BaseImageCheckState()
        cluster.advance(86_400)
        #expect(try cluster.pass(.none).decision.next == .done)
        // The annotation can opt out of a policy that is on.
        cluster.config.baseImages.rebuildOnChange = true
        cluster.imageSpec.metadata.annotations = [MetadataKeys.rebuildOnBaseChange: "false"]
        #expect(try cluster.pass(.none).decision.next == .done)
    }

    @Test func aDueCheckOfAnUnmovedBaseIsRecorded() throws {
        var cluster = try builtWithRebuildOnBaseChange()
        cluster.advance(3600)
        let before = cluster.status
        let pass = try cluster.pass()
        #expect(pass.rounds.count == 2)
        #expect(pass.rounds.first == [.secrets])
        guard case .baseImage(let reference, let credentials)? = pass.rounds.last?.first, pass.rounds.last?.count == 1 else {
            Issue.record("expected the base image to be asked for: \(pass.rounds)")
            return
        }
        #expect(reference == World.baseImage)
        #expect(credentials.credential(forRegistry: World.pullHost)?.username == "puller")
        #expect(pass.decision.baseImageCheckChanges == [.checked(cluster.now)])
        #expect(pass.decision.next == .after(.seconds(3600)))
        #expect(pass.actions.isEmpty && pass.decision.events.isEmpty)
        #expect(pass.status == before)
    }

    @Test func aMovedBaseWaitsForARebuildSlot() throws {
        var cluster = try builtWithRebuildOnBaseChange()
        cluster.advance(3600)
        let moved = Answers.standard.with {
            $0.baseImage = .resolved(World.base(digest: World.movedBaseDigest))
            $0.rebuildSlot = .fullUntil(World.t0.addingTimeInterval(120 + 3600 + 900))
        }
        let before = cluster.status
        let full = try cluster.pass(moved)
        #expect(full.rounds.last == [.rebuildSlot])
        #expect(full.decision.next == .after(.seconds(900)))
        #expect(full.decision.baseImageCheckChanges.isEmpty, "the check stays due until the rebuild can start")
        #expect(full.actions.isEmpty && full.decision.events.isEmpty)
        #expect(full.decision.notes.contains { $0.contains("rate limit") })
        #expect(full.status == before)
    }

    @Test func aMovedBaseRebuildsAfterTheOldBuildIsDeleted() throws {
        let identity = try World.identity(World.imageSpec(annotations: World.rebuildOnBaseChange))
        var cluster = try builtWithRebuildOnBaseChange()
        cluster.advance(3600)
        let moved = Answers.standard.with { $0.baseImage = .resolved(World.base(digest: World.movedBaseDigest)) }
        let oldJob = try #require(cluster.job(identity.jobName))
        let deleting = try cluster.pass(moved)
        #expect(deleting.rounds.last == [.rebuildSlot], "the slot is taken last, once the ImageSpec is known to be current")
        #expect(deleting.asked.contains(.currentResourceVersion))
        #expect(deleting.decision.baseImageCheckChanges == [.checked(cluster.now), .pendingRebuild(World.movedBaseDigest)])
        #expect(deleting.actions == [.deleteJob(oldJob), .deleteConfigMap(name: identity.jobName, namespace: World.namespace),
                                     .deleteImageSpecJob(name: identity.jobName, namespace: World.namespace)])
        #expect(cluster.records.isEmpty)
        #expect(deleting.decision.events.isEmpty)
        #expect(deleting.decision.next == .after(.seconds(1)))
        #expect(deleting.status.phase == "Succeeded")
        #expect(cluster.book.pendingRebuild == World.movedBaseDigest)

        cluster.advance(1)
        let started = try cluster.pass(moved)
        #expect(started.rounds.flatMap { $0 }.allSatisfy { $0 != .rebuildSlot }, "the slot was taken on the pass before")
        #expect(started.decision.baseImageCheckChanges == [.clearPendingRebuild])
        #expect(started.eventReasons == [.baseImageChanged, .buildStarted])
        #expect(started.decision.events.first?.message == "base image \(World.baseImage) moved to \(World.movedBaseDigest); rebuilding")
        #expect(started.steps == DecisionTable.start)
        #expect(started.createdJob?.metadata.annotations?[MetadataKeys.baseDigestAnnotation] == World.movedBaseDigest)
        #expect(cluster.record(identity.jobName)?.status?.phase == "Pending")
        #expect(started.status.baseImageDigest == World.movedBaseDigest)
        #expect(started.status.image == identity.targetImage, "the last good image stays in the status while the rebuild runs")
        #expect(cluster.book.pendingRebuild == nil)

        cluster.advance(2)
        #expect(try cluster.pass(.none).condition(.reconciling)?.reason == "BuildPending")
    }

    @Test func aMovedBaseWhoseJobIsGoneRebuildsInTheSamePass() throws {
        var cluster = try builtWithRebuildOnBaseChange(jobPresent: false)
        cluster.advance(3600)
        let moved = Answers.standard.with { $0.baseImage = .resolved(World.base(digest: World.movedBaseDigest)) }
        let pass = try cluster.pass(moved)
        #expect(pass.rounds.flatMap { $0 }.filter { $0 == .rebuildSlot }.count == 1)
        #expect(pass.decision.baseImageCheckChanges == [.checked(cluster.now)])
        #expect(pass.eventReasons == [.baseImageChanged, .buildStarted])
        #expect(pass.steps == DecisionTable.start)
        #expect(pass.decision.metrics == [.started])
    }

    @Test func aPublishedSpecWhoseBaseMovedAndWhoseJobIsGoneDecidesWithinTheShellsRounds() throws {
        // Publishing, the base check, the slot and the start each ask for facts: the pass must still
        // be decided within the rounds the shell allows (else it fails and retries, taking a slot each time).
        var cluster = try builtWithRebuildOnBaseChange(jobPresent: false, publish: Publish())
        cluster.advance(3600)
        let moved = Answers.standard.with { $0.baseImage = .resolved(World.base(digest: World.movedBaseDigest)) }
        let pass = try cluster.pass(moved)
        #expect(pass.rounds.count < Decide.maxRounds)
        #expect(pass.eventReasons == [.published, .baseImageChanged, .buildStarted])
        #expect(pass.steps == [["createImage"]] + DecisionTable.start)
        #expect(pass.rounds.last == [.rebuildSlot], "the slot is taken last, when everything else says go")
    }

    @Test func aStalePassTakesNoRebuildSlot() throws {
        var cluster = try builtWithRebuildOnBaseChange(jobPresent: false)
        cluster.advance(3600)
        let stale = Answers.standard.with {
            $0.baseImage = .resolved(World.base(digest: World.movedBaseDigest))
            $0.currentResourceVersion = .some("999")
        }
        let before = cluster.status
        let pass = try cluster.pass(stale)
        #expect(!pass.asked.contains(.rebuildSlot))
        #expect(pass.actions.isEmpty && pass.decision.events.isEmpty && pass.decision.baseImageCheckChanges.isEmpty)
        #expect(pass.status == before)
        #expect(pass.decision.next == .after(.milliseconds(100)))
    }

    @Test func aStalePassTakesNoRebuildSlotWhileTheOldBuildIsThere() throws {
        // Deleting the old build is decided from a current ImageSpec only: a stale pass must find
        // that out before the slot is taken (taking it is the fetch), or it burns one.
        var cluster = try builtWithRebuildOnBaseChange()
        cluster.advance(3600)
        let stale = Answers.standard.with {
            $0.baseImage = .resolved(World.base(digest: World.movedBaseDigest))
            $0.currentResourceVersion = .some("999")
        }
        let before = cluster.status
        let pass = try cluster.pass(stale)
        #expect(pass.asked.contains(.currentResourceVersion))
        #expect(!pass.asked.contains(.rebuildSlot))
        #expect(pass.actions.isEmpty && pass.decision.events.isEmpty && pass.decision.baseImageCheckChanges.isEmpty)
        #expect(pass.status == before)
        #expect(pass.decision.next == .after(.milliseconds(100)))
        #expect(cluster.jobs.count == 1 && cluster.records.count == 1)
    }

    @Test func aBaseImageCheckThatFailsTriesAgainAtTheNextInterval() throws {
        var cluster = try builtWithRebuildOnBaseChange()
        cluster.advance(3600)
        let before = cluster.status
        for answers in [Answers.standard.with { $0.baseImage = .unreachable("connection refused") },
                        Answers.standard.with { $0.secrets?.pull = .missing("pull secret pull not found in namespace hub") }] {
            let pass = try Decide.pass(cluster.observation, answers: answers)
            #expect(pass.decision.baseImageCheckChanges == [.checked(cluster.now)])
            #expect(pass.decision.next == .after(.seconds(3600)))
            #expect(pass.decision.notes.first?.hasPrefix("base image check failed") == true)
            #expect(pass.status == before, "the built image stays good")
            #expect(pass.actions.isEmpty)
        }
    }

    // MARK: - Stalls and their healing

    @Test func aMissingSecretStallHealsWhenTheSecretExists() throws {
        var cluster = Cluster()
        cluster.policy = ReconcilePolicy(stalledRetryInterval: .seconds(45))
        let missing = Answers.standard.with { $0.secrets?.pull = .missing("pull secret (spec.pullSecret) pull not found in namespace hub") }
        let stalled = try cluster.pass(missing)
        #expect(stalled.status.phase == "Failed")
        #expect(stalled.condition(.stalled)?.reason == "MissingSecret")
        #expect(stalled.decision.next == .after(.seconds(45)))
        #expect(stalled.actions.isEmpty)
        #expect(stalled.eventReasons == [.missingSecret])

        // Still missing: no news, no second Event.
        cluster.advance(45)
        let still = try cluster.pass(missing)
        #expect(still.decision.events.isEmpty)
        #expect(still.condition(.stalled)?.reason == "MissingSecret")

        cluster.advance(45)
        let healed = try cluster.pass()
        #expect(healed.steps == DecisionTable.start)
        #expect(healed.status.phase == "Pending")
        #expect(healed.trueConditions == ["Reconciling"])
        #expect(healed.condition(.stalled)?.isTrue == false)
        #expect(healed.eventReasons == [.buildStarted])
        #expect(cluster.metrics == [.started])
    }

    @Test(arguments: [
        ("MissingSecret", Answers.standard.with { $0.secrets?.push = .missing("push secret push not found") }),
        ("InvalidSecret", Answers.standard.with { $0.secrets?.pull = .found(World.brokenSecret("pull")) }),
        ("MissingPushCredentials", Answers.standard.with { $0.secrets?.push = .found(World.dockerSecret("push", host: "x.example.com", username: "p")) }),
        ("BaseImageUnavailable", Answers.standard.with { $0.baseImage = .unavailable("not found") }),
        ("PushDenied", Answers.standard.with { $0.pushAccess = .denied("denied") }),
    ])
    func externalStallsLookAgainAfterTheStalledRetryInterval(_ reason: String, _ answers: Answers) throws {
        var observation = DecisionTable.observe()
        observation.policy = ReconcilePolicy(stalledRetryInterval: .seconds(17))
        let pass = try Decide.pass(observation, answers: answers)
        #expect(pass.condition(.stalled)?.reason == reason)
        #expect(pass.decision.next == .after(.seconds(17)))
        #expect(pass.actions.isEmpty)
        // Healed on the next pass.
        var healed = observation
        healed.imageSpec.status = pass.status
        #expect(try Decide.pass(healed).steps == DecisionTable.start)
    }

    // MARK: - Adoption

    @Test func aRecordedSuccessWhoseJobIsGoneStands() throws {
        let identity = try World.identity()
        let status = World.succeededStatus(identity)
        let pass = try Decide.pass(DecisionTable.observe(World.imageSpec(status: status)), answers: .none)
        #expect(pass.rounds.isEmpty, "no new build, nothing to look up")
        #expect(pass.status == status)
        #expect(pass.actions.isEmpty && pass.decision.metrics.isEmpty && pass.decision.events.isEmpty)

        // Also for a later generation of the same build (the pull secret is not hashed).
        let later = World.imageSpec(World.spec(pullSecret: "other"), status: status, generation: 2)
        let again = try Decide.pass(DecisionTable.observe(later), answers: .none)
        #expect(again.actions.isEmpty && again.decision.metrics.isEmpty)
        #expect(again.status.phase == "Succeeded")
        #expect(again.status.observedGeneration == 2)

        // A success of another hash does not stand for this one.
        let changed = World.imageSpec(World.spec(apt: ["curl", "git"]), status: status, generation: 2)
        let rebuilt = try Decide.pass(DecisionTable.observe(changed))
        #expect(rebuilt.steps == DecisionTable.start)
        #expect(rebuilt.status.jobName != identity.jobName)
        #expect(rebuilt.status.image == identity.targetImage, "the last good image stays until the new one is built")
    }

    @Test func theScriptFailsOnAFactItHasNoAnswerFor() throws {
        // The helper itself: a fact the script does not answer fails the test rather than passing silently.
        #expect(throws: UnansweredFact.self) {
            _ = try Decide.pass(DecisionTable.observe(), answers: Answers(secrets: nil))
        }
    }
}
