import Foundation
import ImageBuilder
import KubeClient
import KubeTypes
import Testing

/// Paths of the repository, found from this file.
enum Repository {
    static let testsDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    static let root = testsDirectory.deletingLastPathComponent().deletingLastPathComponent()
    static let examples = root.appendingPathComponent("examples")
    static let hostile = examples.appendingPathComponent("hostile")
    static let golden = testsDirectory.appendingPathComponent("Golden")
    static let crds = root.appendingPathComponent("crds")

    static func text(_ url: URL) throws -> String {
        try String(contentsOf: url, encoding: .utf8)
    }

    /// The `.yaml` files of a directory, sorted.
    static func yamlFiles(in directory: URL) throws -> [URL] {
        try FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)
            .filter { $0.pathExtension == "yaml" }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
    }
}

/// Golden files: expected output kept in the repository. To accept new output, run
/// `UPDATE_GOLDEN=1 swift test --filter ImageBuilderTests` and review the diff.
enum Golden {
    static var updating: Bool { ProcessInfo.processInfo.environment["UPDATE_GOLDEN"] == "1" }

    static func check(_ actual: String, _ file: URL, sourceLocation: SourceLocation = #_sourceLocation) throws {
        if updating {
            try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
            try actual.write(to: file, atomically: true, encoding: .utf8)
            return
        }
        guard let expected = try? String(contentsOf: file, encoding: .utf8) else {
            Issue.record("missing golden file \(file.path); run UPDATE_GOLDEN=1 swift test --filter ImageBuilderTests",
                         sourceLocation: sourceLocation)
            return
        }
        if expected != actual {
            let expectedLines = expected.split(separator: "\n", omittingEmptySubsequences: false)
            let actualLines = actual.split(separator: "\n", omittingEmptySubsequences: false)
            let line = zip(expectedLines, actualLines).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(expectedLines.count, actualLines.count)
            let shown = line < actualLines.count ? String(actualLines[line]) : "(end of output)"
            let wanted = line < expectedLines.count ? String(expectedLines[line]) : "(end of file)"
            Issue.record("""
                \(file.lastPathComponent) differs at line \(line + 1):
                  expected: \(wanted)
                  actual:   \(shown)
                Run UPDATE_GOLDEN=1 swift test --filter ImageBuilderTests to accept the new output.
                """, sourceLocation: sourceLocation)
        }
    }
}

/// Builders for test inputs.
enum Fixtures {
    static func imageSpec(_ name: String = "demo", namespace: String? = "hub", uid: String? = nil, spec: ImageSpecSpec) -> ImageSpec {
        var metadata = ObjectMeta(name: name, namespace: namespace)
        metadata.uid = uid
        return ImageSpec(metadata: metadata, spec: spec)
    }

    static func valid(_ imageSpec: ImageSpec, sourceLocation: SourceLocation = #_sourceLocation) throws -> ValidImageSpec {
        switch ImageSpecValidator.validate(imageSpec) {
        case .success(let valid): return valid
        case .failure(let failure):
            Issue.record("expected a valid ImageSpec: \(failure)", sourceLocation: sourceLocation)
            throw failure
        }
    }

    /// The only ImageSpec of a YAML file, validated.
    static func example(_ name: String) throws -> ValidImageSpec {
        let report = ImageSpecDocuments.check(try Repository.text(Repository.examples.appendingPathComponent(name)))
        #expect(report.diagnostics.isEmpty, "\(report.diagnostics)")
        return try #require(report.imageSpecs.first)
    }

    static func config(_ yaml: String) throws -> OperatorConfig {
        switch OperatorConfigLoader.load(yaml: yaml) {
        case .success(let loaded): return loaded.config
        case .failure(let failure): throw failure
        }
    }

    static func secret(_ name: String, _ json: String, key: String = ".dockerconfigjson") -> Secret {
        Secret(metadata: ObjectMeta(name: name, namespace: "hub"),
               type: key == ".dockercfg" ? "kubernetes.io/dockercfg" : "kubernetes.io/dockerconfigjson",
               data: [key: Data(json.utf8)])
    }
}

/// A small deterministic random generator (SplitMix64), so property tests repeat exactly.
struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
