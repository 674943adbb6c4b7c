import ArgumentParser
import ImageBuilder

/// `image-builder render -f FILE`: shows what the operator would build for an ImageSpec, offline.
struct RenderCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "render",
        abstract: "Show the Dockerfile, build context and manifests for an ImageSpec, offline.",
        discussion: """
            -o text shows everything for a person; -o yaml prints the ConfigMap and Job as multi-document \
            YAML for kubectl apply; -o json prints one object with hash, targetImage, jobName, dockerfile, \
            files and manifests. Without --config, images go to the placeholder prefix \
            \(RenderCommand.placeholderPrefix). Exit status: 0 rendered, 1 invalid input, 2 unreadable input.
            """
    )

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case text, yaml, json
    }

    static let placeholderPrefix = "registry.invalid/primehub"

    @Option(name: [.customShort("f"), .customLong("file")], help: "The ImageSpec file ('-' for standard input).")
    var file: String

    @Option(help: "The operator configuration file.")
    var config: String?

    @Option(help: "The base image's configured user, restored at the end (default: root).")
    var baseUser: String?

    @Option(name: [.customShort("o"), .customLong("output")], help: "Output format: text, yaml or json.")
    var format: Format = .text

    func run() throws {
        let operatorConfig = try loadConfig()
        let text = try InputFiles.textOrExit(of: file)
        let report = ImageSpecDocuments.check(text)
        let displayName = file == "-" ? "<stdin>" : file
        guard report.diagnostics.isEmpty else {
            report.diagnostics.forEach { printError($0.line(file: displayName)) }
            throw ExitCode(1)
        }
        guard report.imageSpecs.count == 1, let spec = report.imageSpecs.first else {
            printError("\(displayName): holds \(report.imageSpecCount) ImageSpecs; render takes a file with exactly one")
            throw ExitCode(1)
        }
        let user: ImageUser
        do {
            user = try ImageUser(parsing: baseUser ?? "")
        } catch {
            printError("--base-user: \(error.message)")
            throw ExitCode(1)
        }
        if baseUser == nil, format == .text {
            printError("note: --base-user not given; the Dockerfile ends as root")
        }
        let plan: BuildPlan
        do {
            plan = try BuildPlanner.plan(BuildInputs(imageSpec: spec, config: operatorConfig, baseImageUser: user))
        } catch {
            printError("\(displayName): \(error)")
            throw ExitCode(1)
        }
        switch format {
        case .text: print(try RenderOutput.text(plan, spec: spec), terminator: "")
        case .yaml: print(try RenderOutput.yaml(plan), terminator: "")
        case .json: print(try RenderOutput.json(plan), terminator: "")
        }
    }

    func loadConfig() throws -> OperatorConfig {
        guard let config else {
            var placeholder = OperatorConfig()
            placeholder.registry.push = .prefix(Self.placeholderPrefix)
            return placeholder
        }
        switch OperatorConfigLoader.load(yaml: try InputFiles.textOrExit(of: config)) {
        case .success(let loaded):
            loaded.warnings.forEach { printError("\(config): warning: \($0)") }
            var result = loaded.config
            if result.registry.push == nil { result.registry.push = .prefix(Self.placeholderPrefix) }
            return result
        case .failure(let failure):
            failure.problems.forEach { printError($0.line(file: config)) }
            throw ExitCode(1)
        }
    }
}
