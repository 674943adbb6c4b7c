import Foundation

/// What a decoder keeps of the objects it reads. Parts a profile leaves out are never built, so
/// a cache that would drop them anyway decodes faster and never holds the full objects, not
/// even while a list is read.
///
/// A profile travels in the decoder's `userInfo` (`CodingUserInfoKey.decodingProfile`); the
/// model types that have such parts read it (`Decoder.decodingProfile`). Without one, everything
/// is kept.
public struct DecodingProfile: Sendable, Hashable, CustomStringConvertible {
    /// Keep `metadata.managedFields` (server-side apply bookkeeping: often the largest part of an
    /// object, and read by nothing here). Left out, the field is nil; an update then leaves the
    /// server's bookkeeping as it is.
    public var managedFields: Bool
    /// Keep the members that no model knows, so that the object can be written back whole
    /// (`UnknownFields`). Only objects that are replaced (PUT) as cached need them.
    public var unknownFields: Bool
    /// Read a pod spec (a Pod's, or a Job's template) only as far as a summary goes: each (init)
    /// container's name and image, the restart policy and the node. Commands, environment,
    /// volumes, mounts and security contexts are skipped; so are a pod template's metadata and a
    /// Job's selector (`StoreTransforms.summarizeJob` and `summarizePod` keep the same).
    public var podSpecSummary: Bool

    public init(managedFields: Bool = true, unknownFields: Bool = true, podSpecSummary: Bool = false) {
        self.managedFields = managedFields
        self.unknownFields = unknownFields
        self.podSpecSummary = podSpecSummary
    }

    /// Every part: what a read that may be written back needs.
    public static let everything = DecodingProfile()
    /// Everything but `managedFields`: a cache whose objects may be written back whole.
    public static let withoutManagedFields = DecodingProfile(managedFields: false)
    /// Only what the models know, without `managedFields`: a cache whose objects are read, and
    /// written only by patches.
    public static let modelOnly = DecodingProfile(managedFields: false, unknownFields: false)
    /// `modelOnly` with pod specs summarised: a cache of Jobs or Pods that a controller follows
    /// by their status.
    public static let summary = DecodingProfile(managedFields: false, unknownFields: false, podSpecSummary: true)

    public var description: String {
        switch self {
        case .everything: "everything"
        case .withoutManagedFields: "without managedFields"
        case .modelOnly: "model only"
        case .summary: "summary"
        default: "managedFields \(managedFields), unknown fields \(unknownFields), pod spec summary \(podSpecSummary)"
        }
    }
}

extension CodingUserInfoKey {
    /// A `DecodingProfile`: what the decoder keeps of the objects it reads.
    public static let decodingProfile = CodingUserInfoKey(rawValue: "io.image-builder.decodingProfile")!
}

extension Decoder {
    /// The profile set in `userInfo`, `.everything` when none is.
    public var decodingProfile: DecodingProfile {
        userInfo[.decodingProfile] as? DecodingProfile ?? .everything
    }
}
