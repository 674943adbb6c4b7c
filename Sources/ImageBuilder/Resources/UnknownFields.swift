import KubeTypes

/// What a decoded object carried beyond its Swift model, kept so that decoding and encoding again
/// loses nothing. It holds the JSON as read and the model's own encoding of it at that moment; on
/// encoding, the model's changes since then are applied to the JSON as read (a three-way merge),
/// so unknown members survive at every depth, also inside list items.
public struct UnknownFields: Sendable, Hashable {
    var original: JSONValue?
    var understood: JSONValue?

    /// Nothing kept: an object built in code.
    public init() {}

    /// Reads the whole JSON of `decoder` and records what `encodeModel` makes of the decoded model,
    /// as far as the decoder's profile keeps unknown fields and managedFields: nothing at all
    /// when it keeps no unknown fields (the object is then written by patches only).
    public init(from decoder: any Decoder, model encodeModel: (any Encoder) throws -> Void) throws {
        let profile = decoder.decodingProfile
        guard profile.unknownFields else { return }
        var original = try JSONValue(from: decoder)
        if !profile.managedFields { original["metadata"]?["managedFields"] = nil }
        self.original = original
        understood = try Self.json(of: encodeModel)
    }

    /// Encodes the model's fields merged into the JSON as read.
    public func encode(model encodeModel: (any Encoder) throws -> Void, to encoder: any Encoder) throws {
        guard let original, let understood else {
            try encodeModel(encoder)
            return
        }
        try original.applyingChange(from: understood, to: Self.json(of: encodeModel)).encode(to: encoder)
    }

    static func json(of encodeModel: (any Encoder) throws -> Void) throws -> JSONValue {
        try withoutActuallyEscaping(encodeModel) { try JSONValue(encoding: EncodeWith(body: $0)) }
    }
}

/// An `Encodable` made of a closure.
struct EncodeWith: Encodable {
    let body: (any Encoder) throws -> Void
    func encode(to encoder: any Encoder) throws { try body(encoder) }
}

/// An object shaped `apiVersion`, `kind`, `metadata`, `spec`, `status` whose Codable conformance
/// keeps unknown members (see `UnknownFields`).
public protocol SpecStatusObject: KubeObject {
    associatedtype Spec: Codable & Sendable
    associatedtype Status: Codable & Sendable
    var apiVersion: String? { get set }
    var kind: String? { get set }
    var spec: Spec { get set }
    var status: Status? { get set }
    var unknownFields: UnknownFields { get set }
    init(metadata: ObjectMeta, spec: Spec, status: Status?)
    /// The spec to assume when the JSON has none; nil makes `spec` required.
    static var specWhenMissing: Spec? { get }
}

private enum SpecStatusKeys: String, CodingKey { case apiVersion, kind, metadata, spec, status }

extension SpecStatusObject {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: SpecStatusKeys.self)
        let metadata = try container.decodeIfPresent(ObjectMeta.self, forKey: .metadata) ?? ObjectMeta()
        let spec: Spec
        if let fallback = Self.specWhenMissing {
            spec = try container.decodeIfPresent(Spec.self, forKey: .spec) ?? fallback
        } else {
            spec = try container.decode(Spec.self, forKey: .spec)
        }
        self.init(metadata: metadata, spec: spec, status: try container.decodeIfPresent(Status.self, forKey: .status))
        apiVersion = try container.decodeIfPresent(String.self, forKey: .apiVersion)
        kind = try container.decodeIfPresent(String.self, forKey: .kind)
        unknownFields = try UnknownFields(from: decoder, model: encodeModel)
    }

    public func encode(to encoder: any Encoder) throws {
        try unknownFields.encode(model: encodeModel, to: encoder)
    }

    func encodeModel(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: SpecStatusKeys.self)
        try container.encodeIfPresent(apiVersion, forKey: .apiVersion)
        try container.encodeIfPresent(kind, forKey: .kind)
        try container.encode(metadata, forKey: .metadata)
        try container.encode(spec, forKey: .spec)
        try container.encodeIfPresent(status, forKey: .status)
    }
}
