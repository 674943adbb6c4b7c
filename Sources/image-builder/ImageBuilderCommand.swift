import ArgumentParser

/// The `image-builder` command. Subcommands live in their own files; add new ones to the list.
@main
struct ImageBuilderCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "image-builder",
        abstract: "Builds container images for PrimeHub ImageSpecs, as a Kubernetes operator.",
        subcommands: [
            RenderCommand.self,
            ValidateCommand.self,
            InspectCommand.self,
            LogsCommand.self,
            RunCommand.self,
        ]
    )
}
