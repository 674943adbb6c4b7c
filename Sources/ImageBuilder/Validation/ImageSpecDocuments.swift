import KubeTypes

/// One problem found in a YAML text: where, which field, what.
public struct Diagnostic: Sendable, Hashable, Comparable {
    public var position: SourcePosition?
    /// A field path, or `yaml` for a problem reading the text itself.
    public var field: String
    public var message: String

    public init(position: SourcePosition?, field: String, message: String) {
        self.position = position
        self.field = field
        self.message = message
    }

    /// `FILE:LINE:COLUMN: FIELD: MESSAGE`.
    public func line(file: String) -> String {
        let where_ = position.map { "\(file):\($0.line):\($0.column)" } ?? file
        return "\(where_): \(field): \(message)"
    }

    public static func < (lhs: Diagnostic, rhs: Diagnostic) -> Bool {
        let left = lhs.position ?? SourcePosition(line: 0, column: 0)
        let right = rhs.position ?? SourcePosition(line: 0, column: 0)
        return left != right ? left < right : lhs.field < rhs.field
    }
}

/// ImageSpecs in YAML text: what `validate` and `render` read.
public enum ImageSpecDocuments {
    public struct Report: Sendable {
        /// ImageSpec documents found (other kinds are skipped).
        public var imageSpecs: [ValidImageSpec]
        public var imageSpecCount: Int
        /// Problems, sorted by position.
        public var diagnostics: [Diagnostic]
    }

    /// Validates every ImageSpec document of `text`; documents of other kinds are skipped.
    public static func check(_ text: String, limits: YAMLLoader.Limits = .default) -> Report {
        let stream = YAMLLoader.load(text, limits: limits)
        var report = Report(imageSpecs: [], imageSpecCount: 0, diagnostics: [])
        for document in stream.documents where ImageSpecValidator.isImageSpec(document.value) {
            report.imageSpecCount += 1
            switch ImageSpecValidator.validate(document: document.value) {
            case .success(let valid):
                report.imageSpecs.append(valid)
            case .failure(let failure):
                report.diagnostics += failure.problems.map {
                    Diagnostic(position: document.position(of: $0.path), field: $0.path.description, message: $0.message)
                }
            }
        }
        if let error = stream.error {
            report.diagnostics.append(Diagnostic(position: error.position, field: "yaml", message: error.message))
        }
        report.diagnostics.sort()
        return report
    }
}
