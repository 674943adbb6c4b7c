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
}
