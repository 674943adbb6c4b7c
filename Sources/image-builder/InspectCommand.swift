import ArgumentParser
import Foundation
import RegistryClient
import RegistryTypes

/// `image-builder inspect IMAGE`: resolves an image against its registry the way the operator
/// does before a build, and prints what it found — a debugging aid for admins.
struct InspectCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Resolve an image in its registry and print its digest, platform, user, environment and how it authenticated.",
        discussion: """
            Exits 1 with the registry's answer (not found, unauthorized, unreachable, TLS) when the \
            image cannot be resolved: the same sentence the operator writes into an ImageSpec's conditions.
            """
    )

    enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
        case text, json
    }

    @Argument(help: "The image reference (ubuntu:22.04, registry.example.com:5000/team/base@sha256:…).")
    var image: String

    @Option(name: .customLong("pull-secret"), help: ArgumentHelp(
        "A kubernetes.io/dockerconfigjson Secret (YAML or JSON) or a docker config.json with credentials.",
        valueName: "file"))
    var pullSecret: String?

    @Flag(help: "Use unverified HTTPS, then plain HTTP, for the image's registry.")
    var insecure = false

    @Option(name: .customLong("ca-file"), help: ArgumentHelp("A PEM CA bundle to verify the registry with.", valueName: "file"))
    var caFile: String?

    @Option(help: ArgumentHelp("The platform to pick from a multi-platform image.", valueName: "os/arch[/variant]"))
    var platform: String = "linux/amd64"

    @Option(name: [.short, .customLong("output")], help: "Output format: text or json.")
    var output: OutputFormat = .text

    func validate() throws {
        do { _ = try ImageReference(parsing: image) } catch { throw ValidationError(error.description) }
        do { _ = try Platform(parsing: platform) } catch { throw ValidationError(error.description) }
        if let caFile, !FileManager.default.isReadableFile(atPath: caFile) {
            throw ValidationError("--ca-file \(caFile): no such readable file")
        }
    }

    func run() async throws {
        let reference = try ImageReference(parsing: image)
        let platform = try Platform(parsing: platform)
        var credential: RegistryCredential?
        if let pullSecret {
            let config = try Self.loadDockerConfig(pullSecret)
            credential = config.credential(forRegistry: reference.registry)
            if credential == nil {
                Self.printError("note: \(pullSecret) has no credentials for \(reference.registry); trying anonymously")
            }
        }
        let client = RegistryClient(configuration: .init(
            registries: [reference.registry: RegistryOptions(insecure: insecure, caFile: caFile)]))
        do {
            let resolved = try await client.resolve(reference, platform: platform, credential: credential)
            let report = InspectReport(resolved)
            print(output == .json ? report.json : report.text, terminator: "")
        } catch let error as RegistryError {
            Self.printError("error: \(error)")
            throw ExitCode.failure
        }
    }

    static func loadDockerConfig(_ path: String) throws -> DockerConfig {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ValidationError("--pull-secret \(path): no such readable file")
        }
        guard data.count <= 1 << 20 else { throw ValidationError("--pull-secret \(path): larger than 1 MiB") }
        do {
            return try DockerConfig.load(fileContents: data)
        } catch {
            throw ValidationError("--pull-secret \(path): \(error.description)")
        }
    }

    static func printError(_ text: String) {
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }
}
