import ArgumentParser
import ImageBuilder

/// `image-builder validate PATH...`: checks ImageSpecs offline, for CI and pre-commit hooks.
struct ValidateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Check ImageSpec files offline.",
        discussion: """
            Reads files and directories (their .yaml and .yml files), including multi-document YAML. \
            Documents that are not ImageSpecs are skipped. Prints one line per problem, \
            FILE:LINE:COLUMN: FIELD: MESSAGE. Exit status: 0 all valid, 1 problems found, 2 unreadable input.
            """
    )

    @Argument(help: "Files or directories to check ('-' for standard input).")
    var paths: [String]

    @Flag(name: .shortAndLong, help: "Print nothing but the problems.")
    var quiet = false

    func run() throws {
        let outcome = Self.check(paths: paths, write: { print($0) }, writeError: printError)
        if !quiet {
            printError("\(outcome.imageSpecs) ImageSpec(s) in \(outcome.files) file(s): \(outcome.problems) problem(s)"
                       + (outcome.unreadable > 0 ? ", \(outcome.unreadable) unreadable file(s)" : ""))
        }
        if outcome.unreadable > 0 { throw ExitCode(2) }
        if outcome.problems > 0 { throw ExitCode(1) }
    }

    struct Outcome {
        var files = 0
        var imageSpecs = 0
        var problems = 0
        var unreadable = 0
    }

    static func check(paths: [String], write: (String) -> Void, writeError: (String) -> Void) -> Outcome {
        var outcome = Outcome()
        for file in InputFiles.expand(paths) {
            outcome.files += 1
            let text: String
            do {
                text = try InputFiles.text(of: file)
            } catch {
                writeError(error.description)
                outcome.unreadable += 1
                continue
            }
            let report = ImageSpecDocuments.check(text)
            outcome.imageSpecs += report.imageSpecCount
            outcome.problems += report.diagnostics.count
            for diagnostic in report.diagnostics { write(diagnostic.line(file: file == "-" ? "<stdin>" : file)) }
        }
        return outcome
    }
}
