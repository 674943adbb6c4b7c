import ArgumentParser
import Foundation
import ImageBuilder
import KubeClient
import KubeTypes

/// `image-builder logs NAME`: the build log of an ImageSpec (or of a "Build Custom Image" Image).
struct LogsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logs",
        abstract: "Print the build log of an ImageSpec's current build (or of one from its history).",
        discussion: """
            The build is --build JOB (the current build or one in status.builds), else the current \
            build (status.jobName), else the newest one in the history. With -f the log is followed \
            until the build ends: with buildah's isolated build step, the build step's log while it \
            runs, then the push step's (without the build log it replays). When NAME is no ImageSpec \
            (or with --image), NAME is a PrimeHub Image built with "Build Custom Image". Exit status: \
            0 the log was printed, 1 there is no log to print (the message says why).
            """
    )

    @Argument(help: "The ImageSpec (or Image) name.")
    var name: String

    @Option(name: .shortAndLong, help: "Its namespace (default: the kubeconfig's).")
    var namespace: String?

    @Flag(name: .shortAndLong, help: "Follow the log until the build ends.")
    var follow = false

    @Option(help: "A build's Job name, from status.jobName or status.builds.")
    var build: String?

    @Flag(help: "NAME is a PrimeHub Image with spec.imageSpec, not an ImageSpec.")
    var image = false

    @Option(help: "A kubeconfig file (default: $KUBECONFIG, in-cluster, ~/.kube/config).")
    var kubeconfig: String?

    @Option(help: "The kubeconfig context (default: the current one).")
    var context: String?

    func run() async throws {
        let client: KubernetesClient
        do {
            client = KubernetesClient(configuration: try ClientConfiguration.load(kubeconfig: kubeconfig, context: context))
        } catch {
            printError("cannot connect: \(error)")
            throw ExitCode(2)
        }
        let reader = BuildLogReader(client: client, namespace: namespace ?? client.defaultNamespace,
                                    write: { line in FileHandle.standardOutput.write(Data((line + "\n").utf8)) },
                                    note: printError)
        do {
            let target = try await reader.target(name: name, build: build, image: image)
            if follow {
                try await reader.follow(target)
            } else {
                try await reader.printLog(target)
            }
        } catch let error as BuildLogs.Unavailable {
            printError(error.description)
            throw ExitCode(1)
        } catch let error as LogsUnavailable {
            printError(error.description)
            throw ExitCode(1)
        }
    }
}

/// Finds a build's Pod and reads its log; messages for the user go to `note`.
struct BuildLogReader: Sendable {
    let client: KubernetesClient
    let namespace: String
    let write: @Sendable (String) -> Void
    let note: @Sendable (String) -> Void
    /// How often a followed build's Pod is looked at while it has not started.
    var pollInterval: Duration = .seconds(1)

    /// A build to read: its Job, the object it belongs to and that object's build history.
    struct Target {
        var subject: String
        var jobName: String
        var status: ImageSpecStatus?
    }

    typealias Unavailable = BuildLogs.Unavailable

    func target(name: String, build: String?, image: Bool) async throws -> Target {
        if !image {
            do {
                let spec = try await client.get(ImageSpec.self, name: name, namespace: namespace)
                let subject = "imagespec \(namespace)/\(name)"
                return Target(subject: subject, jobName: try BuildLogs.jobName(status: spec.status, requested: build, subject: subject),
                              status: spec.status)
            } catch let error as APIError where error.isNotFound {
                // Not an ImageSpec: perhaps an Image built with "Build Custom Image".
            }
        }
        let found: Image
        do {
            found = try await client.get(Image.self, name: name, namespace: namespace)
        } catch let error as APIError where error.isNotFound {
            throw Unavailable(image ? "image \(namespace)/\(name) not found"
                                    : "no imagespec (or image) \(name) in namespace \(namespace)")
        }
        let subject = "image \(namespace)/\(name)"
        guard found.spec.imageSpec != nil else {
            throw Unavailable("\(subject) is not built by the operator (it has no spec.imageSpec)")
        }
        let status = ImagePath.buildState(of: found)
        return Target(subject: subject, jobName: try BuildLogs.jobName(status: status, requested: build, subject: subject),
                      status: status)
    }

    /// Prints the log as it is now.
    func printLog(_ target: Target) async throws {
        let pod = try await newestPod(target)
        let podName = pod.metadata.name ?? ""
        let containers = BuildLogs.containers(of: pod)
        let container: String
        if BuildLogs.hasStarted(containers.main, in: pod) {
            container = containers.main
        } else if let step = containers.buildStep, BuildLogs.hasStarted(step, in: pod) {
            container = step
            note("build \(target.jobName) is in its build step (container \(step) of pod \(podName)); -f follows it")
        } else {
            let reason = LogsUnavailable.reason(for: pod, container: containers.buildStep ?? containers.main)
                ?? "its containers have not started"
            throw Unavailable("build \(target.jobName) has no log yet: pod \(podName): \(reason)")
        }
        let text = try await readLog(pod: podName, container: container)
        guard !text.isEmpty else {
            note("the log of container \(container) of pod \(podName) is empty")
            return
        }
        for line in text.split(separator: "\n", omittingEmptySubsequences: false).dropLast(text.hasSuffix("\n") ? 1 : 0) {
            write(String(line))
        }
    }

    /// Follows the log until the build's containers end.
    func follow(_ target: Target) async throws {
        var pod = try await waitForPod(target)
        let containers = BuildLogs.containers(of: pod)
        var shown = 0
        if let step = containers.buildStep, !BuildLogs.hasStarted(containers.main, in: pod) {
            pod = try await waitUntilStarted(step, pod: pod)
            shown = try await stream(pod: pod.metadata.name ?? "", container: step, skipping: 0)
        }
        pod = try await waitUntilStarted(containers.main, pod: pod)
        // The push step replays the build step's log first: skip what was shown already.
        _ = try await stream(pod: pod.metadata.name ?? "", container: containers.main, skipping: shown)
    }

    // MARK: -

    private func stream(pod: String, container: String, skipping: Int) async throws -> Int {
        var count = 0
        do {
            for try await line in try await client.followLogs(pod: pod, namespace: namespace, options: LogOptions(container: container)) {
                count += 1
                if count > skipping { write(line) }
            }
        } catch let error as APIError {
            throw unreadable(error, pod: pod, container: container)
        }
        return count
    }

    private func readLog(pod: String, container: String) async throws -> String {
        do {
            return try await client.logs(pod: pod, namespace: namespace, options: LogOptions(container: container))
        } catch let error as APIError {
            throw unreadable(error, pod: pod, container: container)
        }
    }

    private func unreadable(_ error: APIError, pod: String, container: String) -> Unavailable {
        if error.isNotFound { return Unavailable("pod \(namespace)/\(pod) is gone: \(error.message)") }
        return Unavailable("the log of container \(container) of pod \(namespace)/\(pod) cannot be read: \(error.message)")
    }

    /// The build's newest Pod; when there is none, says why (not started yet, or deleted).
    private func newestPod(_ target: Target) async throws -> Pod {
        if let pod = try await pods(of: target.jobName) { return pod }
        throw try await missingPod(target) ?? Unavailable("build \(target.jobName) has no pod yet; -f waits for it")
    }

    private func pods(of jobName: String) async throws -> Pod? {
        guard jobName.allSatisfy({ $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "-" || $0 == ".") }), !jobName.isEmpty else {
            throw Unavailable("\(Quoting.displayed(jobName)) is not a Job name")
        }
        let list = try await client.list(Pod.self, namespace: namespace, options: ListOptions(labelSelector: "job-name=\(jobName)"))
        return BuildLogs.newestPod(list.items)
    }

    /// Why a build has no Pod when it will never have one (the Job ended, or it is gone with its
    /// Pods); nil when its Job is still waiting for a Pod.
    private func missingPod(_ target: Target) async throws -> Unavailable? {
        do {
            let job = try await client.get(Job.self, name: target.jobName, namespace: namespace)
            if job.status?.completionTime != nil || job.status?.conditions?.contains(where: { $0.status == "True" }) == true {
                return Unavailable("the pod of build \(target.jobName) is gone (the Job has ended and its pods were deleted)")
            }
            return nil
        } catch let error as APIError where error.isNotFound {
            var message = "the pod of build \(target.jobName) is gone: its Job was deleted"
            if let record = BuildLogs.record(target.jobName, in: target.status) {
                message += "; the build ended \(record.phase)" + (record.reason.map { " (\($0))" } ?? "")
            } else if target.status?.jobName == target.jobName {
                message += "; phase \(target.status?.phase ?? "unknown")"
            }
            return Unavailable(message + ". `kubectl describe` of the \(target.subject.split(separator: " ")[0]) shows the conditions"
                               + " (a failed build's last log lines) and Events")
        }
    }

    private func waitForPod(_ target: Target) async throws -> Pod {
        var announced = false
        while true {
            if let pod = try await pods(of: target.jobName) { return pod }
            if let gone = try await missingPod(target) { throw gone }
            if !announced { note("waiting for the pod of build \(target.jobName)…") }
            announced = true
            try await Task.sleep(for: pollInterval)
        }
    }

    private func waitUntilStarted(_ container: String, pod: Pod) async throws -> Pod {
        var pod = pod
        var last = ""
        let name = pod.metadata.name ?? ""
        while !BuildLogs.hasStarted(container, in: pod) {
            if BuildLogs.hasEnded(container, in: pod) {
                let reason = LogsUnavailable.reason(for: pod, container: container) ?? "it ended \(pod.status?.phase ?? "")"
                throw Unavailable("container \(container) of pod \(namespace)/\(name) never started: \(reason)")
            }
            let reason = LogsUnavailable.reason(for: pod, container: container) ?? "starting"
            if reason != last { note("pod \(name): \(reason)") }
            last = reason
            try await Task.sleep(for: pollInterval)
            do {
                pod = try await client.get(Pod.self, name: name, namespace: namespace)
            } catch let error as APIError where error.isNotFound {
                throw Unavailable("pod \(namespace)/\(name) is gone: it was deleted before container \(container) started")
            }
        }
        return pod
    }
}
