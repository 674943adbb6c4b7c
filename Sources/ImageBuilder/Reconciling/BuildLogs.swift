import Foundation
import KubeTypes

/// Which build of an ImageSpec (or of an Image's build state) to read the log of, which of its
/// Pods, and which containers hold the log. Pure: `image-builder logs` does the I/O.
public enum BuildLogs {
    /// Why there is no build to show; `description` is the message for the user.
    public struct Unavailable: Error, Sendable, Hashable, CustomStringConvertible {
        public var description: String
        public init(_ description: String) { self.description = description }
    }

    /// The Job name of the build to show: `requested` when it is the current build or one in the
    /// history, else the current build (`status.jobName`), else the newest build in the history.
    /// `subject` names the object in messages (`imagespec hub/data-science`).
    public static func jobName(status: ImageSpecStatus?, requested: String?, subject: String) throws(Unavailable) -> String {
        let current = status?.jobName ?? ""
        let history = (status?.builds ?? []).map(\.jobName)
        var known = current.isEmpty ? [] : [current]
        known += history.filter { $0 != current }
        if let requested {
            guard known.contains(requested) else {
                let list = known.isEmpty ? "it has no builds" : "its builds are " + known.joined(separator: ", ")
                throw Unavailable("\(subject) has no build \(requested): \(list)")
            }
            return requested
        }
        guard let chosen = known.first else {
            var state = status.map { "phase \($0.phase.isEmpty ? "none" : $0.phase)" } ?? "no status yet"
            if let reason = status?.conditions?[Condition.ready]?.reason { state += ", reason \(reason)" }
            if let message = status?.conditions?[Condition.ready]?.message, !message.isEmpty { state += ": \(message)" }
            throw Unavailable("\(subject) has no build yet (\(state))")
        }
        return chosen
    }

    /// The record of `jobName` in the history, if any (for saying how a gone build ended).
    public static func record(_ jobName: String, in status: ImageSpecStatus?) -> BuildRecord? {
        status?.builds?.first { $0.jobName == jobName }
    }

    /// The newest of a Job's Pods. Creation times have whole seconds: among Pods of the same
    /// second, one whose containers have ended counts as the later.
    public static func newestPod(_ pods: [Pod]) -> Pod? {
        func order(_ pod: Pod) -> (Date, Int, String) {
            let ended = pod.status?.containerStatuses?.contains { $0.state?.terminated != nil } == true
            return (pod.metadata.creationTimestamp ?? .distantPast, ended ? 1 : 0, pod.metadata.name ?? "")
        }
        return pods.max { order($0) < order($1) }
    }

    /// Where a build Pod's log is: `buildStep` is buildah's build-step init container when push
    /// credentials are isolated (its log is replayed at the start of the `build` container's).
    public struct Containers: Sendable, Hashable {
        public var buildStep: String?
        public var main: String
    }

    public static func containers(of pod: Pod) -> Containers {
        let initNames = (pod.spec?.initContainers ?? []).map(\.name)
        let names = (pod.spec?.containers ?? []).map(\.name)
        return Containers(
            buildStep: initNames.contains(BuildPlanner.buildStepContainerName) ? BuildPlanner.buildStepContainerName : nil,
            main: names.contains(BuildPlanner.containerName) ? BuildPlanner.containerName : (names.first ?? BuildPlanner.containerName))
    }

    /// Whether `container` of `pod` has started (it runs or has ended), so that it has a log.
    public static func hasStarted(_ container: String, in pod: Pod) -> Bool {
        let statuses = (pod.status?.initContainerStatuses ?? []) + (pod.status?.containerStatuses ?? [])
        guard let state = statuses.first(where: { $0.name == container })?.state else { return false }
        return state.running != nil || state.terminated != nil
    }

    /// Whether `container` of `pod` has ended (or the Pod has, so it never will run).
    public static func hasEnded(_ container: String, in pod: Pod) -> Bool {
        if pod.status?.phase == "Succeeded" || pod.status?.phase == "Failed" { return true }
        let statuses = (pod.status?.initContainerStatuses ?? []) + (pod.status?.containerStatuses ?? [])
        return statuses.first(where: { $0.name == container })?.state?.terminated != nil
    }
}
