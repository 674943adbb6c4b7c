import Foundation

/// A benchmark step that failed, with what it was doing.
public struct BenchmarkError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Prints a line at once (stdout may be a file; nothing is lost if the process dies).
public func say(_ text: String) {
    FileHandle.standardOutput.write(Data((text + "\n").utf8))
}

/// A duration in seconds.
public func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

/// Reads a benchmark's command line: flags in turn, and positive numbers after options.
/// `-h`/`--help` and problems print `usage` (to standard error) and exit (0 for help, 2 otherwise).
public struct BenchmarkArguments {
    private var iterator: ArraySlice<String>.Iterator
    private let usage: String

    /// `arguments` as `CommandLine.arguments` has them (the program name first).
    public init(_ arguments: [String], usage: String) {
        self.iterator = arguments.dropFirst().makeIterator()
        self.usage = usage
    }

    /// The next argument; help is answered here.
    public mutating func next() -> String? {
        let argument = iterator.next()
        if argument == "-h" || argument == "--help" { fail(nil) }
        return argument
    }

    /// The positive number that must follow `option`.
    public mutating func number(after option: String) -> Int {
        guard let text = iterator.next(), let value = Int(text), value > 0 else { fail("\(option) needs a positive number") }
        return value
    }

    /// The text (a path, say) that must follow `option`.
    public mutating func text(after option: String) -> String {
        guard let text = iterator.next(), !text.isEmpty, !text.hasPrefix("--") else { fail("\(option) needs a value") }
        return text
    }

    /// Prints the problem (or nothing, for help) and the usage, and exits.
    public func fail(_ problem: String?) -> Never {
        FileHandle.standardError.write(Data(((problem.map { $0 + "\n" } ?? "") + usage).utf8))
        exit(problem == nil ? 0 : 2)
    }
}
