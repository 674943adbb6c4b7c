import Foundation
import ImageBuilder
import KubeClient
import KubeTypes
import Testing

/// `examples/hostile/`: every file is rejected with field-named problems, except `inert-*` files,
/// which are valid and must render with their hostile content inert.
@Suite struct HostileCorpusTests {
    static let files: [String] = (try? Repository.yamlFiles(in: Repository.hostile).map(\.lastPathComponent)) ?? []

    @Test func corpusIsThere() { #expect(Self.files.count >= 15) }

    @Test(arguments: files.filter { !$0.hasPrefix("inert-") })
    func rejectedWithFieldNamedProblems(file: String) throws {
        let started = Date()
        let report = ImageSpecDocuments.check(try Repository.text(Repository.hostile.appendingPathComponent(file)))
        #expect(Date().timeIntervalSince(started) < 5, "checking took too long")
        #expect(!report.diagnostics.isEmpty)
        for diagnostic in report.diagnostics {
            #expect(!diagnostic.field.isEmpty && !diagnostic.message.isEmpty)
            #expect(diagnostic.position != nil, "\(diagnostic)")
            // Messages echo values escaped: nothing hostile reaches a terminal raw.
            #expect(!diagnostic.message.unicodeScalars.contains { $0.value < 0x20 || CharacterPolicy.isInvisible($0) }, "\(diagnostic)")
        }
    }

    @Test(arguments: files.filter { $0.hasPrefix("inert-") })
    func validAndRenderedInert(file: String) throws {
        let report = ImageSpecDocuments.check(try Repository.text(Repository.hostile.appendingPathComponent(file)))
        #expect(report.diagnostics.isEmpty, "\(report.diagnostics)")
        for spec in report.imageSpecs {
            var config = OperatorConfig()
            config.registry.push = .prefix("registry.example.com/x")
            let plan = try BuildPlanner.plan(BuildInputs(imageSpec: spec, config: config, baseImageUser: .root))
            let env = try DockerfileReader.environment(of: plan.context)
            #expect(env == (spec.spec.env ?? []).map { [$0.name, $0.value ?? ""] })
            for line in plan.context.dockerfile.split(separator: "\n") {
                #expect(line.unicodeScalars.allSatisfy { $0 == "\t" || !CharacterPolicy.isInvisible($0) })
                #expect(!line.hasPrefix("RUN curl"))
            }
        }
    }

    @Test func notUTF8AndHugeInputAreRefusedWithoutCrashing() {
        let stream = YAMLLoader.load(String(repeating: "a: b\n", count: 10), limits: YAMLLoader.Limits(maxBytes: 20))
        #expect(stream.error != nil)
        let report = ImageSpecDocuments.check("\u{FEFF}" + String(repeating: "- ", count: 5000) + "x")
        #expect(!report.diagnostics.isEmpty)
    }
}

/// Reads ENV instructions back the way the Dockerfile lexer does (single quotes literal, double
/// quotes with `${NAME}` substitution), resolving build arguments from the context.
enum DockerfileReader {
    struct Unreadable: Error { var line: String }

    static func environment(of context: BuildContext) throws -> [[String]] {
        let arguments = Dictionary(uniqueKeysWithValues: context.buildArgs.map { ($0.name, $0.value) })
        var result: [[String]] = []
        for line in context.dockerfile.split(separator: "\n") where line.hasPrefix("ENV ") {
            let body = line.dropFirst(4)
            guard let equals = body.firstIndex(of: "=") else { throw Unreadable(line: String(line)) }
            result.append([String(body[..<equals]), try word(body[body.index(after: equals)...], arguments)])
        }
        return result
    }

    static func word(_ text: Substring, _ arguments: [String: String]) throws -> String {
        var out = ""
        var rest = text
        while let quote = rest.first {
            rest = rest.dropFirst()
            guard let close = rest.firstIndex(of: quote) else { throw Unreadable(line: String(text)) }
            let inner = rest[..<close]
            if quote == "'" {
                out += inner
            } else if quote == "\"" {
                if inner.hasPrefix("${"), inner.hasSuffix("}") {
                    out += arguments[String(inner.dropFirst(2).dropLast())] ?? ""
                } else {
                    guard !inner.contains("$"), !inner.contains("\\") else { throw Unreadable(line: String(text)) }
                    out += inner
                }
            } else {
                throw Unreadable(line: String(text))
            }
            rest = rest[rest.index(after: close)...]
        }
        return out
    }
}
