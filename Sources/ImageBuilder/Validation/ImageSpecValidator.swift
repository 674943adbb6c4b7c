import KubeTypes

/// An ImageSpec that passed validation, with its conda list already split. Only validated specs
/// can be rendered or planned.
public struct ValidImageSpec: Sendable, Hashable {
    public let imageSpec: ImageSpec
    public let conda: CondaRequest

    public var name: String { imageSpec.metadata.name ?? "" }
    public var spec: ImageSpecSpec { imageSpec.spec }
}

public enum ImageSpecValidator {
    /// Every problem in a document meant to be an ImageSpec (wrong types, unknown fields, bad
    /// package strings …), in document order.
    public static func problems(inDocument document: JSONValue) -> [ValidationProblem] {
        ImageSpecSchema.document.problems(in: document)
    }

    /// Validates a document and decodes it.
    public static func validate(document: JSONValue) -> Result<ValidImageSpec, ValidationFailure> {
        let problems = problems(inDocument: document)
        guard problems.isEmpty else { return .failure(ValidationFailure(problems)) }
        do {
            return validate(try document.decode(as: ImageSpec.self))
        } catch {
            return .failure(ValidationFailure([ValidationProblem(.root, "cannot be read as an ImageSpec: \(error)")]))
        }
    }

    /// Validates a typed ImageSpec (as read from the API): its name and spec. Members the model
    /// does not know are not judged.
    public static func validate(_ imageSpec: ImageSpec) -> Result<ValidImageSpec, ValidationFailure> {
        var problems = ImageSpecSchema.metadata.problems(
            in: .object(["name": imageSpec.metadata.name.map(JSONValue.string) ?? .null,
                         "namespace": imageSpec.metadata.namespace.map(JSONValue.string) ?? .null]),
            at: .root / "metadata")
        do {
            var spec = try JSONValue(encoding: imageSpec.spec)
            // An empty baseImage is how a missing one decodes: report the missing required field.
            if imageSpec.spec.baseImage.isEmpty, case .object(var members) = spec {
                members["baseImage"] = nil
                spec = .object(members)
            }
            problems += ImageSpecSchema.spec.problems(in: spec, at: .root / "spec")
        } catch {
            problems.append(ValidationProblem(.root / "spec", "cannot be encoded: \(error)"))
        }
        guard problems.isEmpty else { return .failure(ValidationFailure(problems)) }
        let conda = CondaRequest.parse(imageSpec.spec.packages.conda ?? []).request
        return .success(ValidImageSpec(imageSpec: imageSpec, conda: conda))
    }

    /// Whether a document claims to be an ImageSpec (`apiVersion: primehub.io/…`, `kind: ImageSpec`).
    public static func isImageSpec(_ document: JSONValue) -> Bool {
        document["kind"]?.stringValue == "ImageSpec"
            && (document["apiVersion"]?.stringValue ?? "").hasPrefix(ImageSpec.resourceType.group + "/")
    }
}
