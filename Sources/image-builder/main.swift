import ArgumentParser

// Temporary root command of the `registry` branch, so that `image-builder inspect` runs; at merge
// InspectCommand joins the subcommands of ImageBuilderCommand and this file goes.
struct RegistryBranchRoot: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "image-builder",
        subcommands: [InspectCommand.self]
    )
}

/// In an async function `main()` resolves to AsyncParsableCommand's async entry point.
func runRoot() async {
    await RegistryBranchRoot.main()
}

await runRoot()
