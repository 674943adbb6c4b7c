import Foundation
import KubeTypes
import RegistryTypes

/// Where one build Job stands, read from the Job and its Pod. Pure: the reconciler turns this into
/// status, events and actions.
public enum BuildAssessment: Sendable, Hashable {
    /// The Job exists but its Pod is not running yet; `message` says what it waits for.
    case pending(message: String)
    /// The builder is running.
    case running(since: Date?)
    /// The Pod cannot start without a change (image pull failure, missing secret, unschedulable
    /// for too long …): the build is given up.
    case stuck(reason: String, message: String)
    case succeeded(digest: String?, completionTime: Date?)
    case failed(reason: String, message: String, completionTime: Date?)

    /// The PrimeHub phase this corresponds to.
    public var phase: BuildPhase {
        switch self {
        case .pending: return .pending
        case .running: return .running
        case .succeeded: return .succeeded
        case .stuck, .failed: return .failed
        }
    }

    /// Longest log excerpt kept in a status message.
    public static let maxLogExcerpt = 1_500

    /// Assesses a build. `pendingTimeout` bounds how long a Pod may wait for something that needs
    /// a person (an image that cannot be pulled, a missing secret, no node that fits). Init
    /// containers (buildah's build step) count as the build running, or failing. `logTail`, when
    /// the caller fetched the builder's log, is shown where the termination message holds none
    /// (kaniko writes its digest there before pushing, so a failed push leaves only the digest).
    public static func assess(job: Job, pod: Pod?, now: Date, pendingTimeout: TimeInterval,
                              builderContainer: String = BuildPlanner.containerName, logTail: String? = nil) -> BuildAssessment {
        let container = pod?.status?.containerStatuses?.first { $0.name == builderContainer }
        let initStatuses = pod?.status?.initContainerStatuses ?? []
        let failedInit = initStatuses.lazy.compactMap { $0.state?.terminated ?? $0.lastState?.terminated }.first { $0.exitCode != 0 }
        let terminated = container?.state?.terminated ?? container?.lastState?.terminated ?? failedInit
        func describe(_ terminated: ContainerStateTerminated) -> (String, String) { describeFailure(terminated, logTail: logTail) }

        if let complete = job.condition("Complete") {
            var digest: String?
            if let terminated, terminated.exitCode == 0, let message = terminated.message {
                let text = message.trimmingCharacters(in: .whitespacesAndNewlines)
                if (try? Digest(parsing: text)) != nil { digest = text }
            }
            return .succeeded(digest: digest, completionTime: job.status?.completionTime ?? complete.lastTransitionTime)
        }
        if let failed = job.condition("Failed") {
            let finished = failed.lastTransitionTime ?? now
            if failed.reason == "DeadlineExceeded" {
                let limit = job.spec?.activeDeadlineSeconds.map { " of \(Self.duration($0))" } ?? ""
                return .failed(reason: "DeadlineExceeded", message: "the build ran longer than its time limit\(limit)",
                               completionTime: finished)
            }
            if let terminated {
                let (reason, message) = describe(terminated)
                return .failed(reason: reason, message: message, completionTime: finished)
            }
            let message = failed.message.map { "the build failed: \($0)" } ?? "the build failed"
            return .failed(reason: failed.reason ?? "BuildFailed", message: message, completionTime: finished)
        }
        if let terminated, terminated.exitCode != 0 {
            // The Job controller has not caught up yet; the Pod already says how it ended.
            let (reason, message) = describe(terminated)
            return .failed(reason: reason, message: message, completionTime: terminated.finishedAt ?? now)
        }
        if let running = container?.state?.running {
            return .running(since: running.startedAt)
        }
        if let running = initStatuses.lazy.compactMap({ $0.state?.running }).first {
            return .running(since: running.startedAt)
        }

        // Not running yet: find out why, and whether it needs a person.
        let waitingSince = pod?.metadata.creationTimestamp ?? job.metadata.creationTimestamp ?? now
        let waitedTooLong = now.timeIntervalSince(waitingSince) > pendingTimeout
        // An init container waiting for a reason of its own (its image, its secret) says more than
        // the builder's PodInitializing.
        let waitingStatus = initStatuses.first { ($0.state?.waiting?.reason).map { $0 != "PodInitializing" } ?? false } ?? container
        if let waiting = waitingStatus?.state?.waiting, let reason = waiting.reason {
            let detail = waiting.message.map { ": \(Self.excerpt($0, limit: 400))" } ?? ""
            switch reason {
            case "ErrImagePull", "ImagePullBackOff", "InvalidImageName":
                let name = waitingStatus?.name ?? builderContainer
                let image = ((pod?.spec?.containers ?? []) + (pod?.spec?.initContainers ?? [])).first { $0.name == name }?.image ?? "the builder image"
                let message = "cannot pull the builder image \(image) (\(reason))\(detail)"
                return reason == "InvalidImageName" || waitedTooLong
                    ? .stuck(reason: "BuilderImagePullFailed", message: message) : .pending(message: message)
            case "CreateContainerConfigError", "CreateContainerError":
                let message = "the build container cannot be created (\(reason))\(detail)"
                return waitedTooLong ? .stuck(reason: "BuildPodMisconfigured", message: message) : .pending(message: message)
            case "ContainerCreating", "PodInitializing":
                let message = "the build container is being created"
                return waitedTooLong
                    ? .stuck(reason: "BuildPodStuck", message: "\(message) for longer than \(Self.duration(Int64(pendingTimeout)))")
                    : .pending(message: message)
            default:
                let message = "the build container is waiting (\(reason))\(detail)"
                return waitedTooLong ? .stuck(reason: "BuildPodStuck", message: message) : .pending(message: message)
            }
        }
        if let pod {
            if let scheduled = pod.status?.conditions?.first(where: { $0.type == "PodScheduled" }), scheduled.status == "False" {
                let detail = scheduled.message.map { ": \(Self.excerpt($0, limit: 400))" } ?? ""
                let message = "the build pod cannot be scheduled (\(scheduled.reason ?? "Unschedulable"))\(detail)"
                return waitedTooLong ? .stuck(reason: "BuildUnschedulable", message: message) : .pending(message: message)
            }
            let message = "the build pod is \(pod.status?.phase ?? "Pending")"
            return waitedTooLong
                ? .stuck(reason: "BuildPodStuck", message: "\(message) for longer than \(Self.duration(Int64(pendingTimeout)))")
                : .pending(message: message)
        }
        let message = "waiting for the build pod to be created"
        return waitedTooLong
            ? .stuck(reason: "BuildPodStuck", message: "\(message) for longer than \(Self.duration(Int64(pendingTimeout)))")
            : .pending(message: message)
    }

    /// The container whose log a failure description needs: one that ended with a non-zero exit
    /// code and left no log tail in its termination message (kaniko writes its digest there
    /// before it pushes, so a failed push leaves only the digest). Nil when the Pod says enough.
    public static func logNeeded(pod: Pod?, builderContainer: String = BuildPlanner.containerName) -> (pod: String, container: String)? {
        guard let pod, let name = pod.metadata.name else { return nil }
        let statuses = (pod.status?.containerStatuses ?? []).filter { $0.name == builderContainer }
            + (pod.status?.initContainerStatuses ?? [])
        for status in statuses {
            guard let terminated = status.state?.terminated ?? status.lastState?.terminated, terminated.exitCode != 0,
                  terminated.reason != "OOMKilled" else { continue }
            let message = (terminated.message ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
            if message.isEmpty || (try? Digest(parsing: message)) != nil { return (name, status.name) }
            return nil
        }
        return nil
    }

    /// Lines of the builder's log fetched for a failure description.
    public static let logTailLines = 40

    /// A reason and a sentence for a builder container that ended in failure. With
    /// `FallbackToLogsOnError`, its termination message is the tail of its log — unless the
    /// builder wrote one: kaniko writes the digest before it pushes, so a digest with a non-zero
    /// exit code means the image was built but not pushed (the log then comes from `logTail`).
    static func describeFailure(_ terminated: ContainerStateTerminated, logTail: String? = nil) -> (String, String) {
        if terminated.reason == "OOMKilled" {
            return ("OutOfMemory", "the build ran out of memory (OOMKilled); raise builder.resources.limits.memory")
        }
        let message = (terminated.message ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        let exit = "exit code \(terminated.exitCode)"
        if (try? Digest(parsing: message)) != nil {
            let excerpt = Self.excerpt(logTail ?? "", limit: maxLogExcerpt)
            let stage = "the image was built (\(message)) but pushing it failed (\(exit))"
            return ("PushFailed", excerpt.isEmpty ? stage : "\(stage); last log lines:\n\(excerpt)")
        }
        let log = message.isEmpty ? (logTail ?? "") : (terminated.message ?? "")
        if log.contains(BuildPlanner.killedMarker) {
            // buildah's build step was killed: its wrapper reports it, the kernel's reason is lost.
            return ("OutOfMemory", "the build was killed (exit status 137), most likely out of memory; raise builder.resources.limits.memory")
        }
        let lower = log.lowercased()
        let reason: String
        let stage: String
        // buildah's push step announces itself; a failure after that line is the push's.
        if lower.contains("error pushing image") || lower.contains("failed to push") || lower.contains("push access denied")
            || log.contains(BuildPlanner.pushMarker)
        {
            (reason, stage) = ("PushFailed", "pushing the image failed")
        } else if lower.contains("retrieving image") || lower.contains("failed to get filesystem from image")
            || lower.contains("unable to complete operation after") && lower.contains("retrieving")
            || lower.contains("creating build container")
        {
            (reason, stage) = ("BaseImagePullFailed", "pulling the base image failed")
        } else if lower.contains("failed to execute command") || lower.contains("error building stage")
            || lower.contains("building at step")
        {
            (reason, stage) = ("BuildStepFailed", "a build step failed")
        } else {
            (reason, stage) = ("BuildFailed", "the build failed")
        }
        let excerpt = Self.excerpt(log, limit: maxLogExcerpt)
        // An installer's error line (apt's `E:`, pip's `ERROR:`) says why; the end of the log may
        // not hold it (long step lines, output flushed after it).
        let errors = Self.errorLines(in: log).filter { !excerpt.contains($0) }
        let why = errors.isEmpty ? "" : ": " + errors.joined(separator: "; ")
        return (reason, excerpt.isEmpty ? "\(stage) (\(exit))\(why)" : "\(stage) (\(exit))\(why); last log lines:\n\(excerpt)")
    }

    /// The installers' error lines in a build log (apt's `E: …`, pip's and conda's `ERROR: …`),
    /// at most the last three, each at most 300 characters.
    static func errorLines(in log: String) -> [String] {
        let lines = log.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { $0.hasPrefix("E: ") || $0.hasPrefix("ERROR: ") }
        return lines.suffix(3).map { String($0.prefix(300)) }
    }

    /// The end of `text`, at most `limit` characters, starting at a line boundary when possible.
    static func excerpt(_ text: String, limit: Int) -> String {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard trimmed.count > limit else { return trimmed }
        let tail = trimmed.suffix(limit)
        if let newline = tail.firstIndex(of: "\n") { return String(tail[tail.index(after: newline)...]) }
        return String(tail)
    }

    /// `1h30m`, `45m`, `90s`.
    static func duration(_ seconds: Int64) -> String {
        let hours = seconds / 3600
        let minutes = (seconds % 3600) / 60
        let rest = seconds % 60
        var text = ""
        if hours > 0 { text += "\(hours)h" }
        if minutes > 0 { text += "\(minutes)m" }
        if rest > 0 || text.isEmpty { text += "\(rest)s" }
        return text
    }
}
