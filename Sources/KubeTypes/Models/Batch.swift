import Foundation

public struct Job: KubeObject, Hashable {
    public static let resourceType = ResourceType.jobs
    public var apiVersion: String? = "batch/v1"
    public var kind: String? = "Job"
    public var metadata: ObjectMeta
    public var spec: JobSpec?
    public var status: JobStatus?

    public init(metadata: ObjectMeta, spec: JobSpec? = nil, status: JobStatus? = nil) {
        self.metadata = metadata
        self.spec = spec
        self.status = status
    }

    /// The condition of this type whose status is "True", if any.
    public func condition(_ type: String) -> JobCondition? {
        status?.conditions?.first { $0.type == type && $0.status == "True" }
    }

    /// Finished: a `Complete` or `Failed` condition is true.
    public var isFinished: Bool { condition("Complete") != nil || condition("Failed") != nil }
}

public struct JobSpec: Codable, Sendable, Hashable {
    public var template: PodTemplateSpec
    public var backoffLimit: Int32?
    public var activeDeadlineSeconds: Int64?
    public var ttlSecondsAfterFinished: Int32?
    public var parallelism: Int32?
    public var completions: Int32?
    public var selector: JSONValue?
    public var manualSelector: Bool?

    public init(template: PodTemplateSpec, backoffLimit: Int32? = nil, activeDeadlineSeconds: Int64? = nil,
                ttlSecondsAfterFinished: Int32? = nil) {
        self.template = template
        self.backoffLimit = backoffLimit
        self.activeDeadlineSeconds = activeDeadlineSeconds
        self.ttlSecondsAfterFinished = ttlSecondsAfterFinished
    }

    enum CodingKeys: String, CodingKey {
        case template, backoffLimit, activeDeadlineSeconds, ttlSecondsAfterFinished, parallelism, completions,
             selector, manualSelector
    }

    /// With a pod spec summary (`DecodingProfile.podSpecSummary`) the selector is skipped.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let summary = decoder.decodingProfile.podSpecSummary
        template = try container.decode(PodTemplateSpec.self, forKey: .template)
        backoffLimit = try container.decodeIfPresent(Int32.self, forKey: .backoffLimit)
        activeDeadlineSeconds = try container.decodeIfPresent(Int64.self, forKey: .activeDeadlineSeconds)
        ttlSecondsAfterFinished = try container.decodeIfPresent(Int32.self, forKey: .ttlSecondsAfterFinished)
        parallelism = try container.decodeIfPresent(Int32.self, forKey: .parallelism)
        completions = try container.decodeIfPresent(Int32.self, forKey: .completions)
        if !summary { selector = try container.decodeIfPresent(JSONValue.self, forKey: .selector) }
        manualSelector = try container.decodeIfPresent(Bool.self, forKey: .manualSelector)
    }
}

public struct JobStatus: Codable, Sendable, Hashable {
    public var conditions: [JobCondition]?
    public var startTime: Date?
    public var completionTime: Date?
    public var active: Int32?
    public var succeeded: Int32?
    public var failed: Int32?

    public init(conditions: [JobCondition]? = nil, startTime: Date? = nil, completionTime: Date? = nil,
                active: Int32? = nil, succeeded: Int32? = nil, failed: Int32? = nil) {
        self.conditions = conditions
        self.startTime = startTime
        self.completionTime = completionTime
        self.active = active
        self.succeeded = succeeded
        self.failed = failed
    }
}

public struct JobCondition: Codable, Sendable, Hashable {
    /// `Complete` or `Failed` (also `Suspended` on newer clusters).
    public var type: String
    public var status: String
    /// `BackoffLimitExceeded`, `DeadlineExceeded`, …
    public var reason: String?
    public var message: String?
    public var lastProbeTime: Date?
    public var lastTransitionTime: Date?

    public init(type: String, status: String, reason: String? = nil, message: String? = nil,
                lastProbeTime: Date? = nil, lastTransitionTime: Date? = nil) {
        self.type = type
        self.status = status
        self.reason = reason
        self.message = message
        self.lastProbeTime = lastProbeTime
        self.lastTransitionTime = lastTransitionTime
    }
}
