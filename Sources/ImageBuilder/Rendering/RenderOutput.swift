import Foundation
import KubeTypes

/// The three forms `image-builder render` prints a build plan in.
public enum RenderOutput {
    /// Multi-document YAML of the manifests, ready for `kubectl apply -f -`.
    public static func yaml(_ plan: BuildPlan) throws -> String {
        try YAMLWriter.stream(plan.manifests())
    }

    /// One JSON object: `hash`, `targetImage`, `jobName`, `strategy` (kaniko or buildah),
    /// `dockerfile`, `files` (context files beside the Dockerfile, name → content), `buildArgs`
    /// (name → value), `manifests`.
    public static func json(_ plan: BuildPlan) throws -> String {
        let object = JSONValue.object([
            "hash": .string(plan.hash),
            "targetImage": .string(plan.targetImage),
            "jobName": .string(plan.jobName),
            "strategy": .string(plan.strategy.rawValue),
            "dockerfile": .string(plan.context.dockerfile),
            "files": .object(plan.context.files.mapValues(JSONValue.string)),
            "buildArgs": .object(Dictionary(plan.context.buildArgs.map { ($0.name, JSONValue.string($0.value)) }) { first, _ in first }),
            "manifests": .array(try plan.manifests()),
        ])
        let encoder = KubeJSON.encoder
        encoder.outputFormatting.insert(.prettyPrinted)
        return String(decoding: try encoder.encode(object), as: UTF8.self) + "\n"
    }

    /// For a person: the names, the Dockerfile, each context file, then the manifests.
    public static func text(_ plan: BuildPlan, spec: ValidImageSpec) throws -> String {
        var out = """
            ImageSpec:    \(spec.imageSpec.key)
            Hash:         \(plan.hash)  (SHA-1 of \(Quoting.displayed(SpecHash.input(of: spec.spec), limit: 200)))
            Target image: \(plan.targetImage)
            Job:          \(plan.jobName)
            Builder:      \(plan.strategy.rawValue) (\(plan.job.spec?.template.spec?.containers.first?.image ?? ""))

            """
        if let secret = plan.registrySecretName, plan.registrySecret == nil {
            out += "Registry credentials: Secret \(secret), which the operator creates from the push and pull secrets\n"
        }
        for (name, content) in [(BuildContext.dockerfileName, plan.context.dockerfile)] + plan.context.files.sorted(by: { $0.key < $1.key }) {
            out += "\n==> \(name) <==\n" + content
        }
        for argument in plan.context.buildArgs {
            out += "\n==> build argument \(argument.name) <==\n\(Quoting.displayed(argument.value, limit: 4096))\n"
        }
        out += "\n==> manifests <==\n" + (try yaml(plan))
        return out
    }
}
