import Foundation
import ImageBuilder
import KubeClient
import KubeTypes
import Testing

/// Golden files for the examples: Dockerfile, context files and manifests as the operator would
/// create them (with an owner UID and credentials). Update with
/// `UPDATE_GOLDEN=1 swift test --filter ImageBuilderTests`.
@Suite struct RenderingTests {
    static let examples = ["better-base-notebook.yaml", "data-science-env.yaml", "conda-channels.yaml", "published.yaml",
                           "hostile/inert-env-values.yaml"]

    static func plan(_ example: String, strategy: OperatorConfig.BuildStrategy = .buildah) throws -> BuildPlan {
        var spec = try Fixtures.example(example)
        var imageSpec = spec.imageSpec
        imageSpec.metadata.uid = "0b6b1a4e-0000-4000-8000-000000000001"
        spec = try Fixtures.valid(imageSpec)
        var config = try Fixtures.config(Repository.text(Repository.examples.appendingPathComponent("config.yaml")))
        if strategy != config.builder.strategy {
            config.builder.strategy = strategy
            config.builder.image = nil
        }
        let credentials = try RegistryCredentials.merge(
            push: Fixtures.secret("registry-push", #"{"auths":{"registry.example.com:5000":{"auth":"cHVzaDpzZWNyZXQ="}}}"#),
            pull: Fixtures.secret("pull", #"{"auths":{"quay.io":{"auth":"cHVsbDpzZWNyZXQ="}}}"#))
        return try BuildPlanner.plan(BuildInputs(imageSpec: spec, config: config, baseImageUser: try ImageUser(parsing: "1000"),
                                                 credentials: credentials))
    }

    /// Golden/<example>/: the Dockerfile (the same for both strategies) and the kaniko manifests;
    /// Golden/buildah/<example>/: the buildah manifests.
    @Test(arguments: examples)
    func goldenBuild(example: String) throws {
        let name = URL(fileURLWithPath: example).deletingPathExtension().lastPathComponent
        let kaniko = try Self.plan(example, strategy: .kaniko)
        let buildah = try Self.plan(example, strategy: .buildah)
        #expect(kaniko.context == buildah.context, "both strategies build the same context")
        let directory = Repository.golden.appendingPathComponent(name)
        try Golden.check(kaniko.context.dockerfile, directory.appendingPathComponent("Dockerfile"))
        for (file, content) in kaniko.context.files {
            try Golden.check(content, directory.appendingPathComponent(file))
        }
        try Golden.check(try RenderOutput.yaml(kaniko), directory.appendingPathComponent("manifests.yaml"))
        try Golden.check(try RenderOutput.yaml(buildah), Repository.golden.appendingPathComponent("buildah").appendingPathComponent(name)
            .appendingPathComponent("manifests.yaml"))
    }

    @Test func renderingIsReproducible() throws {
        let first = try RenderOutput.json(Self.plan("data-science-env.yaml"))
        let second = try RenderOutput.json(Self.plan("data-science-env.yaml"))
        #expect(first == second)
    }

    @Test func dockerfileShapeAndOrder() throws {
        let spec = try Fixtures.valid(Fixtures.imageSpec(spec: ImageSpecSpec(
            baseImage: "jupyter/base-notebook",
            packages: Packages(apt: ["curl"], pip: ["flask"], conda: ["numpy"]),
            env: [ImageEnvVar(name: "A", value: "1")])))
        let dockerfile = BuildContextRenderer.render(spec, user: try ImageUser(parsing: "1000"), baseImageDigest: "sha256:" + String(repeating: "a", count: 64)).dockerfile
        let lines = dockerfile.split(separator: "\n").map(String.init)
        #expect(lines[1] == "FROM jupyter/base-notebook@sha256:" + String(repeating: "a", count: 64))
        #expect(lines[2] == "USER root")
        #expect(lines.last == "USER 1000")
        let apt = try #require(lines.firstIndex { $0.contains("apt-get update") })
        let conda = try #require(lines.firstIndex { $0.contains("conda install") })
        let pip = try #require(lines.firstIndex { $0.contains("pip install") })
        let env = try #require(lines.firstIndex { $0.hasPrefix("ENV ") })
        #expect(apt < conda && conda < pip && pip < env)
        #expect(!dockerfile.contains("curl") && !dockerfile.contains("flask") && !dockerfile.contains("numpy"))
        // An empty spec installs nothing and restores root when the base image names no user.
        let empty = try Fixtures.valid(Fixtures.imageSpec(spec: ImageSpecSpec(baseImage: "ubuntu")))
        #expect(BuildContextRenderer.render(empty, user: try ImageUser(parsing: "")).dockerfile.hasSuffix("USER root\n"))
    }

    @Test func imageUsers() {
        for text in ["1000", "jovyan", "1000:100", "app.user", ""] { #expect(throws: Never.self) { try ImageUser(parsing: text) } }
        for text in ["$USER", "root\nRUN id", "a b", "-x", "1:2:3"] { #expect(throws: ValidationProblem.self) { try ImageUser(parsing: text) } }
    }

    @Test func yamlOutputReadsBackAsTheManifests() throws {
        let plan = try Self.plan("hostile/inert-env-values.yaml")
        let stream = YAMLLoader.load(try RenderOutput.yaml(plan))
        #expect(stream.error == nil)
        #expect(stream.documents.map(\.value) == (try plan.manifests()))
    }

    @Test func jsonOutputKeys() throws {
        let plan = try Self.plan("conda-channels.yaml")
        let json = try KubeJSON.decoder.decode(JSONValue.self, from: Data(RenderOutput.json(plan).utf8))
        #expect(Set(json.objectValue?.keys.map { $0 } ?? []) == ["hash", "targetImage", "jobName", "strategy", "dockerfile", "files", "buildArgs", "manifests"])
        #expect(json["hash"]?.stringValue == plan.hash)
        #expect(json["strategy"]?.stringValue == "buildah")
        #expect(json["buildArgs"]?[BuildContext.condaSpecsArgument]?.stringValue == plan.context.buildArg(BuildContext.condaSpecsArgument))
        #expect(json["manifests"]?.arrayValue?.compactMap { $0["kind"]?.stringValue } == ["ConfigMap", "Secret", "Job"])
    }
}
