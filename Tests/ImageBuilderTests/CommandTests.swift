import Foundation
import ImageBuilder
import KubeClient
import KubeTypes
import Testing

/// Runs the built `image-builder` executable.
@Suite struct CommandTests {
    static let executable: URL? = {
        let candidates = [Bundle.main.bundleURL, URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()]
            .flatMap { [$0.appendingPathComponent("image-builder"), $0.deletingLastPathComponent().appendingPathComponent("image-builder")] }
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) }
    }()

    struct MissingExecutable: Error, CustomStringConvertible {
        var description: String { "the image-builder executable is not beside the test bundle; run swift build first" }
    }

    struct Result {
        var status: Int32
        var output: String
        var errors: String
    }

    static func run(_ arguments: [String], input: String? = nil) throws -> Result {
        let process = Process()
        guard let executable else { throw MissingExecutable() }
        process.executableURL = executable
        process.arguments = arguments
        process.currentDirectoryURL = Repository.root
        let output = Pipe(), errors = Pipe(), stdin = Pipe()
        process.standardOutput = output
        process.standardError = errors
        process.standardInput = stdin
        try process.run()
        if let input { stdin.fileHandleForWriting.write(Data(input.utf8)) }
        try stdin.fileHandleForWriting.close()
        let out = output.fileHandleForReading.readDataToEndOfFile()
        let err = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, output: String(decoding: out, as: UTF8.self), errors: String(decoding: err, as: UTF8.self))
    }

    @Test func validateExamplesPass() throws {
        let result = try Self.run(["validate", "examples/better-base-notebook.yaml", "examples/data-science-env.yaml", "examples/conda-channels.yaml",
                                   "examples/published.yaml", "examples/gitops-bundle.yaml", "examples/config.yaml"])
        #expect(result.status == 0, "\(result.output)\(result.errors)")
        #expect(result.output.isEmpty)
        #expect(result.errors.contains("6 ImageSpec(s)"))
    }

    @Test func validateHostileDirectoryFindsProblemsWithPositions() throws {
        let result = try Self.run(["validate", "examples/hostile"])
        #expect(result.status == 1)
        let lines = result.output.split(separator: "\n")
        #expect(lines.count > 50)
        for line in lines {
            // FILE:LINE:COLUMN: FIELD: MESSAGE
            let parts = line.split(separator: ":", maxSplits: 4, omittingEmptySubsequences: false)
            #expect(parts.count == 5 && Int(parts[1]) != nil && Int(parts[2]) != nil, "\(line)")
            #expect(parts[0].hasPrefix("examples/hostile/") && !parts[0].contains("inert-"))
        }
    }

    /// `.pre-commit-hooks.yaml` runs `image-builder validate` the way pre-commit does: the entry's
    /// arguments, then the staged files its `files` pattern matches.
    @Test func preCommitHooksRunValidate() throws {
        let stream = YAMLLoader.load(try Repository.text(Repository.root.appendingPathComponent(".pre-commit-hooks.yaml")))
        #expect(stream.error == nil)
        let hooks = try #require(stream.documents.first?.value.arrayValue)
        #expect(hooks.compactMap { $0["id"]?.stringValue } == ["image-builder-validate", "image-builder-validate-system"])
        for hook in hooks {
            let entry = try #require(hook["entry"]?.stringValue).split(separator: " ").map(String.init)
            #expect(entry.first == "image-builder")
            let pattern = try Regex(try #require(hook["files"]?.stringValue))
            func staged(_ directory: URL) throws -> [String] {
                try Repository.yamlFiles(in: directory).map { String($0.path.dropFirst(Repository.root.path.count + 1)) }
                    .filter { $0.contains(pattern) }
            }
            let good = try staged(Repository.examples).filter { !$0.hasPrefix("examples/hostile/") }
            #expect(good.contains("examples/config.yaml"))  // not an ImageSpec: skipped
            let passed = try Self.run(Array(entry.dropFirst()) + good)
            #expect(passed.status == 0, "\(passed.output)\(passed.errors)")
            let failed = try Self.run(Array(entry.dropFirst()) + (try staged(Repository.hostile)))
            #expect(failed.status == 1 && failed.output.contains("examples/hostile/"))
        }
    }

    @Test func validateStdinAndUnreadable() throws {
        let bad = try Self.run(["validate", "-"], input: "apiVersion: primehub.io/v1alpha1\nkind: ImageSpec\nmetadata: {name: x}\nspec: {packages: {}}\n")
        #expect(bad.status == 1)
        #expect(bad.output == "<stdin>:4:7: spec.baseImage: required field is missing\n")
        #expect(try Self.run(["validate", "no/such/file.yaml"]).status == 2)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("image-builder-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let binary = directory.appendingPathComponent("binary.yaml")
        try Data([0xFF, 0xFE, 0x00, 0x41]).write(to: binary)
        let unreadable = try Self.run(["validate", binary.path])
        #expect(unreadable.status == 2)
        #expect(unreadable.errors.contains("not UTF-8"))
    }

    @Test func renderJSONKeys() throws {
        let result = try Self.run(["render", "-f", "examples/better-base-notebook.yaml", "--config", "examples/config.yaml", "--base-user", "1000", "-o", "json"])
        #expect(result.status == 0, "\(result.errors)")
        let json = try KubeJSON.decoder.decode(JSONValue.self, from: Data(result.output.utf8))
        for key in ["hash", "targetImage", "strategy", "dockerfile", "files", "buildArgs", "manifests"] { #expect(json[key] != nil, "\(key)") }
        #expect(json["strategy"] == .string("buildah"))
        #expect(json["hash"] == .string("d5f58f5f"))
        #expect(json["targetImage"] == .string("registry.example.com:5000/primehub/better-base-notebook:d5f58f5f"))
        #expect(json["buildArgs"]?["IMAGE_BUILDER_APT_PACKAGES"] == .string("curl\nvim"))
        #expect(json["manifests"]?.arrayValue?.compactMap { $0["kind"]?.stringValue } == ["ConfigMap", "Job"])
    }

    @Test func renderYAMLAndText() throws {
        let yaml = try Self.run(["render", "-f", "examples/conda-channels.yaml", "-o", "yaml"])
        #expect(yaml.status == 0)
        #expect(YAMLLoader.load(yaml.output).documents.map { $0.value["kind"] } == [.string("ConfigMap"), .string("Job")])
        let text = try Self.run(["render", "-f", "examples/conda-channels.yaml", "--base-user", "1000"])
        #expect(text.status == 0)
        #expect(text.output.contains("==> Dockerfile <=="))
        #expect(text.output.contains("==> build argument IMAGE_BUILDER_CONDA_CHANNELS <=="))
        #expect(text.output.contains("Builder:      buildah (quay.io/buildah/stable:"))
    }

    @Test func renderRefusesInvalidInput() throws {
        let hostile = try Self.run(["render", "-f", "examples/hostile/shell-metacharacters.yaml"])
        #expect(hostile.status == 1)
        #expect(hostile.output.isEmpty)
        #expect(hostile.errors.contains("spec.packages.apt[0]"))
        #expect(try Self.run(["render", "-f", "examples/gitops-bundle.yaml"]).status == 1)
        #expect(try Self.run(["render", "-f", "examples/better-base-notebook.yaml", "--base-user", "$(id)"]).status == 1)
        let config = FileManager.default.temporaryDirectory.appendingPathComponent("image-builder-config-\(UUID().uuidString).yaml")
        try "registry:\n  pushRepo: 5\n".write(to: config, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: config) }
        let badConfig = try Self.run(["render", "-f", "examples/better-base-notebook.yaml", "--config", config.path])
        #expect(badConfig.status == 1)
        #expect(badConfig.errors.contains(config.path + ":2:13: registry.pushRepo: expected a string"))
        #expect(try Self.run(["render", "-f", "examples/missing.yaml"]).status == 2)
    }
}
