import Foundation

/// Every reason the operator writes: in conditions (`Ready`, `Reconciling`, `Stalled`), in build
/// records and in Events. The raw values are the wire strings users and tools see.
public enum Reason: String, Sendable, Hashable, CaseIterable, Codable {
    // The spec, the configuration and what the build needs before it starts.
    case invalidSpec = "InvalidSpec"
    case invalidConfiguration = "InvalidConfiguration"
    case missingSecret = "MissingSecret"
    case invalidSecret = "InvalidSecret"
    case missingPushCredentials = "MissingPushCredentials"
    case baseImageUnavailable = "BaseImageUnavailable"
    case baseImageUnreachable = "BaseImageUnreachable"
    case condaUnavailable = "CondaUnavailable"
    case pushDenied = "PushDenied"
    case waitingForOldBuild = "WaitingForOldBuild"
    // A build's progress.
    case buildStarted = "BuildStarted"
    case buildPending = "BuildPending"
    case building = "Building"
    case finishing = "Finishing"
    case buildSucceeded = "BuildSucceeded"
    case rebuilding = "Rebuilding"
    case cancelled = "Cancelled"
    // How a build failed.
    case buildFailed = "BuildFailed"
    case buildStepFailed = "BuildStepFailed"
    case baseImagePullFailed = "BaseImagePullFailed"
    case pushFailed = "PushFailed"
    case outOfMemory = "OutOfMemory"
    case deadlineExceeded = "DeadlineExceeded"
    case builderImagePullFailed = "BuilderImagePullFailed"
    case buildUnschedulable = "BuildUnschedulable"
    case buildPodMisconfigured = "BuildPodMisconfigured"
    case buildPodStuck = "BuildPodStuck"
    // Events only.
    case published = "Published"
    case publishSkipped = "PublishSkipped"
    case jobSubmissionOnly = "JobSubmissionOnly"
    case baseImageChanged = "BaseImageChanged"
    /// A build found done before this operator ran it (PrimeHub's record, or the target tag in the
    /// registry with the same spec hash), recorded as built instead of rebuilt.
    case adopted = "Adopted"
    // The ForeignController condition and its Event.
    case anotherController = "AnotherController"

    /// The reason of a build failure written by something else (a Job condition's reason): the
    /// operator's own word when it has one, `BuildFailed` otherwise.
    public init(buildFailure text: String?) {
        self = text.flatMap(Reason.init(rawValue:)) ?? .buildFailed
    }
}

/// The kstatus condition types the operator writes.
public enum ConditionType: String, Sendable, Hashable, CaseIterable, Codable {
    case ready = "Ready"
    case reconciling = "Reconciling"
    case stalled = "Stalled"
}

/// Every label and annotation key the project writes, in one place.
public enum MetadataKeys {
    /// `app.kubernetes.io/managed-by` = `image-builder` on everything a build creates.
    public static let managedBy = "app.kubernetes.io/managed-by"
    public static let managedByValue = "image-builder"
    /// PrimeHub's label naming the ImageSpec of a build (ImageSpecJobs and build objects).
    public static let imageSpecName = "imagespecs.primehub.io/name"
    /// PrimeHub's annotation with the spec hash of a build.
    public static let imageSpecHash = "imagespecs.primehub.io/hash"
    /// PrimeHub's label and hash annotation of an Image's build ("Build Custom Image").
    public static let imageName = "image.primehub.io/name"
    public static let imageHash = "image.primehub.io/hash"
    /// Annotation holding the decision's state (conditions, history, digests): on Images always (their
    /// status has room for PrimeHub's `jobCondition` only), on ImageSpecs where the installed CRD
    /// prunes it from the status (PrimeHub's own CRD keeps `phase`, `jobName` and `image` only).
    public static let imageBuildState = "image-builder.primehub.io/build-state"
    /// The ImageSpec a build object belongs to (names longer than a label value fit here).
    public static let imageSpec = "image-builder.primehub.io/imagespec"
    /// The image a build pushes.
    public static let targetImage = "image-builder.primehub.io/target-image"
    /// Image label: the spec hash the image was built for.
    public static let specHashImageLabel = "image-builder.primehub.io/spec-hash"
    /// Image labels: the base image as written, and the digest it resolved to.
    public static let baseImageLabel = "image-builder.primehub.io/base-image"
    public static let baseDigestLabel = "image-builder.primehub.io/base-digest"
    /// Job annotations: the base digest a build started from; the `spec.updateTime` it was started for.
    public static let baseDigestAnnotation = "image-builder.primehub.io/base-digest"
    public static let updateTimeAnnotation = "image-builder.primehub.io/update-time"
    /// ImageSpec annotation opting in or out of rebuilds when the base tag moves.
    public static let rebuildOnBaseChange = "image-builder.primehub.io/rebuild-on-base-change"
}

extension Date {
    /// The time at the precision Kubernetes timestamps record (whole seconds, rounded down).
    public var wholeSeconds: Date { Date(timeIntervalSince1970: timeIntervalSince1970.rounded(.down)) }
}
