import Foundation
import KubeClient
import KubeTypes
import Testing
@testable import ImageBuilder

@Suite struct BuildAssessmentTests {
    let start = Date(timeIntervalSince1970: 1_700_000_000)
    let digest = "sha256:" + String(repeating: "ab", count: 32)

    func job(_ conditions: [JobCondition] = [], deadline: Int64? = 3600) -> Job {
        var job = Job(metadata: ObjectMeta(name: "spec-abcd1234", namespace: "hub"),
                      spec: JobSpec(template: PodTemplateSpec(), activeDeadlineSeconds: deadline),
                      status: JobStatus(conditions: conditions))
        job.metadata.creationTimestamp = start
        return job
    }

    func pod(_ state: ContainerState?, conditions: [PodCondition]? = nil, phase: String = "Pending") -> Pod {
        var pod = Pod(metadata: ObjectMeta(name: "spec-abcd1234-xyz", namespace: "hub"),
                      spec: PodSpec(containers: [Container(name: "build", image: "kaniko:v1")]),
                      status: PodStatus(phase: phase, conditions: conditions,
                                        containerStatuses: state.map { [ContainerStatus(name: "build", state: $0)] }))
        pod.metadata.creationTimestamp = start
        return pod
    }

    func assess(_ job: Job, _ pod: Pod?, after seconds: TimeInterval = 10) -> BuildAssessment {
        BuildAssessment.assess(job: job, pod: pod, now: start.addingTimeInterval(seconds), pendingTimeout: 600)
    }

    @Test func successCarriesTheDigestFromTheTerminationMessage() {
        let done = job([JobCondition(type: "Complete", status: "True", lastTransitionTime: start)])
        let finished = pod(ContainerState(terminated: ContainerStateTerminated(exitCode: 0, message: digest + "\n")))
        #expect(assess(done, finished) == .succeeded(digest: digest, completionTime: start))
        // A message that is not a digest is not trusted.
        let noise = pod(ContainerState(terminated: ContainerStateTerminated(exitCode: 0, message: "hello")))
        #expect(assess(done, noise) == .succeeded(digest: nil, completionTime: start))
        #expect(assess(done, nil) == .succeeded(digest: nil, completionTime: start))
    }

    @Test func failuresSayWhereTheyFailed() {
        let failed = job([JobCondition(type: "Failed", status: "True", reason: "BackoffLimitExceeded", lastTransitionTime: start)])
        let cases: [(String, String)] = [
            ("error building image: error building stage: failed to execute command: waiting for process to exit: exit status 100", "BuildStepFailed"),
            ("error pushing image: failed to push to destination registry.example.com/x:1: UNAUTHORIZED", "PushFailed"),
            ("error building image: unable to complete operation after 0 attempts, last error: GET https://index.docker.io/v2/library/nope/manifests/latest: retrieving image", "BaseImagePullFailed"),
            ("something else", "BuildFailed"),
        ]
        for (log, reason) in cases {
            let assessment = assess(failed, pod(ContainerState(terminated: ContainerStateTerminated(exitCode: 1, message: log))))
            guard case .failed(let got, let message, _) = assessment else {
                Issue.record("expected a failure for \(reason), got \(assessment)")
                continue
            }
            #expect(got == reason)
            #expect(message.contains("exit code 1") && message.contains(log))
        }
        let oom = assess(failed, pod(ContainerState(terminated: ContainerStateTerminated(exitCode: 137, reason: "OOMKilled"))))
        #expect(oom.phase == .failed)
        if case .failed(let reason, _, _) = oom { #expect(reason == "OutOfMemory") }
    }

    @Test func deadlineExceeded() {
        let failed = job([JobCondition(type: "Failed", status: "True", reason: "DeadlineExceeded", lastTransitionTime: start)], deadline: 5400)
        #expect(assess(failed, nil) == .failed(reason: "DeadlineExceeded", message: "the build ran longer than its time limit of 1h30m",
                                               completionTime: start))
    }

    @Test func longLogsAreCutAtALineBoundary() {
        let log = (1...500).map { "line \($0)" }.joined(separator: "\n")
        let (_, message) = BuildAssessment.describeFailure(ContainerStateTerminated(exitCode: 2, message: log))
        #expect(message.count < BuildAssessment.maxLogExcerpt + 100)
        #expect(message.hasSuffix("line 500"))
        #expect(message.contains("\nline "))
    }

    @Test func anInstallersErrorLineOutsideTheTailIsQuoted() {
        // apt's error line came before long step lines that fill the excerpt.
        let step = "STEP 5/9: RUN " + String(repeating: "x", count: 700)
        let log = ["Reading package lists...", "E: Unable to locate package image-builder-no-such-package",
                   "Building dependency tree...", step, "subprocess exited with status 100",
                   "Error: building at STEP \"RUN " + String(repeating: "y", count: 900) + "\": exit status 100",
                   "image-builder: the build failed (exit status 100); nothing was pushed"].joined(separator: "\n")
        let (reason, message) = BuildAssessment.describeFailure(ContainerStateTerminated(exitCode: 1, message: log))
        #expect(reason == "BuildStepFailed")
        #expect(message.hasPrefix("a build step failed (exit code 1): E: Unable to locate package image-builder-no-such-package; last log lines:"),
                "\(message)")
        // Inside the tail, it is not repeated.
        let short = "E: Unable to locate package nope\nsubprocess exited with status 100\nError: building at STEP \"RUN x\": exit status 100"
        let (_, shortMessage) = BuildAssessment.describeFailure(ContainerStateTerminated(exitCode: 1, message: short))
        #expect(shortMessage.components(separatedBy: "Unable to locate package").count == 2, "\(shortMessage)")
    }

    @Test func pendingReasonsAndWhenTheyBecomeStuck() {
        let pullBackOff = pod(ContainerState(waiting: ContainerStateWaiting(reason: "ImagePullBackOff", message: "Back-off pulling image")))
        #expect(assess(job(), pullBackOff, after: 30) == .pending(message: "cannot pull the builder image kaniko:v1 (ImagePullBackOff): Back-off pulling image"))
        #expect(assess(job(), pullBackOff, after: 601) == .stuck(reason: "BuilderImagePullFailed",
                                                                 message: "cannot pull the builder image kaniko:v1 (ImagePullBackOff): Back-off pulling image"))

        let missingSecret = pod(ContainerState(waiting: ContainerStateWaiting(reason: "CreateContainerConfigError", message: "secret \"x\" not found")))
        if case .stuck(let reason, let message) = assess(job(), missingSecret, after: 700) {
            #expect(reason == "BuildPodMisconfigured")
            #expect(message.contains("secret \"x\" not found"))
        } else {
            Issue.record("a missing secret past the timeout is stuck")
        }

        let unschedulable = pod(nil, conditions: [PodCondition(type: "PodScheduled", status: "False", reason: "Unschedulable",
                                                               message: "0/3 nodes are available: 3 Insufficient memory.")])
        #expect(assess(job(), unschedulable, after: 60)
            == .pending(message: "the build pod cannot be scheduled (Unschedulable): 0/3 nodes are available: 3 Insufficient memory."))
        if case .stuck(let reason, _) = assess(job(), unschedulable, after: 900) { #expect(reason == "BuildUnschedulable") } else {
            Issue.record("unschedulable past the timeout is stuck")
        }

        #expect(assess(job(), nil, after: 5) == .pending(message: "waiting for the build pod to be created"))
        #expect(assess(job(), pod(ContainerState(running: ContainerStateRunning(startedAt: start)), phase: "Running")) == .running(since: start))
    }

    /// kaniko writes the digest file before it pushes: a digest in the termination message of a
    /// container that exited non-zero is a failed push, never a success.
    @Test func aDigestWithAFailedExitIsAFailedPush() {
        let failed = job([JobCondition(type: "Failed", status: "True", reason: "BackoffLimitExceeded", lastTransitionTime: start)])
        let pushFailed = pod(ContainerState(terminated: ContainerStateTerminated(exitCode: 1, message: digest + "\n")))
        guard case .failed(let reason, let message, _) = assess(failed, pushFailed) else {
            Issue.record("expected a failure")
            return
        }
        #expect(reason == "PushFailed")
        #expect(message.contains(digest) && message.contains("exit code 1"))
        // The log tail, fetched by the caller, is shown.
        let log = "error pushing image: failed to push to destination registry.example.com/x:1: UNAUTHORIZED"
        let withLog = BuildAssessment.assess(job: failed, pod: pushFailed, now: start.addingTimeInterval(10), pendingTimeout: 600, logTail: log)
        guard case .failed(let reason2, let message2, _) = withLog else {
            Issue.record("expected a failure")
            return
        }
        #expect(reason2 == "PushFailed" && message2.hasSuffix(log))
        // Before the Job controller caught up, too; and a Complete Job with exit code 1 has no digest.
        #expect(assess(job(), pushFailed).phase == .failed)
        let complete = job([JobCondition(type: "Complete", status: "True", lastTransitionTime: start)])
        #expect(assess(complete, pushFailed) == .succeeded(digest: nil, completionTime: start))
    }

    func buildahPod(initState: ContainerState?, builder: ContainerState?) -> Pod {
        var pod = Pod(metadata: ObjectMeta(name: "spec-abcd1234-xyz", namespace: "hub"),
                      spec: PodSpec(containers: [Container(name: "build", image: "buildah:v1")]),
                      status: PodStatus(phase: "Pending", containerStatuses: builder.map { [ContainerStatus(name: "build", state: $0)] }))
        pod.spec?.initContainers = [Container(name: BuildPlanner.buildStepContainerName, image: "buildah:v1")]
        pod.status?.initContainerStatuses = initState.map { [ContainerStatus(name: BuildPlanner.buildStepContainerName, state: $0)] }
        pod.metadata.creationTimestamp = start
        return pod
    }

    /// buildah's build step is an init container: while it runs the build is running (not stuck
    /// in PodInitializing), its image problems are the builder image's, and its failures count.
    @Test func buildahBuildStepInAnInitContainer() {
        let initializing = ContainerState(waiting: ContainerStateWaiting(reason: "PodInitializing"))
        let running = buildahPod(initState: ContainerState(running: ContainerStateRunning(startedAt: start)), builder: initializing)
        #expect(assess(job(), running, after: 3000) == .running(since: start))

        let pullBackOff = buildahPod(initState: ContainerState(waiting: ContainerStateWaiting(reason: "ImagePullBackOff", message: "Back-off")),
                                     builder: initializing)
        #expect(assess(job(), pullBackOff, after: 30) == .pending(message: "cannot pull the builder image buildah:v1 (ImagePullBackOff): Back-off"))
        if case .stuck(let reason, _) = assess(job(), pullBackOff, after: 700) { #expect(reason == "BuilderImagePullFailed") } else {
            Issue.record("an init container that cannot be pulled past the timeout is stuck")
        }

        let killed = buildahPod(initState: ContainerState(terminated: ContainerStateTerminated(exitCode: 137, reason: "OOMKilled")), builder: initializing)
        let failed = job([JobCondition(type: "Failed", status: "True", reason: "BackoffLimitExceeded", lastTransitionTime: start)])
        if case .failed(let reason, _, _) = assess(failed, killed) { #expect(reason == "OutOfMemory") } else {
            Issue.record("an init container killed for memory is a failed build")
        }
    }

    @Test func buildahFailuresSayWhereTheyFailed() {
        let failed = job([JobCondition(type: "Failed", status: "True", reason: "BackoffLimitExceeded", lastTransitionTime: start)])
        let cases: [(String, String)] = [
            ("STEP 4/9: RUN apt-get update\nE: Unable to locate package nope\nError: building at STEP \"RUN apt-get update\": while running runtime: exit status 100\nimage-builder: the build failed (exit status 1); nothing was pushed", "BuildStepFailed"),
            ("Error: creating build container: initializing source docker://nope:latest: reading manifest latest in docker.io/library/nope: requested access to the resource is denied", "BaseImagePullFailed"),
            ("COMMIT registry.example.com/x:1\n\(BuildPlanner.pushMarker)registry.example.com/x:1\nGetting image source signatures\nError: writing blob: initiating layer upload: unauthorized: authentication required", "PushFailed"),
        ]
        for (log, reason) in cases {
            let assessment = assess(failed, pod(ContainerState(terminated: ContainerStateTerminated(exitCode: 1, message: log))))
            guard case .failed(let got, let message, _) = assessment else {
                Issue.record("expected a failure for \(reason), got \(assessment)")
                continue
            }
            #expect(got == reason, "\(log)")
            #expect(message.contains("last log lines"))
        }
    }
}
