import Foundation
import ImageBuilder
import KubeClient
import KubeTypes
import Testing

@Suite struct YAMLTests {
    @Test func scalarsResolveAsKubernetesReadsThem() throws {
        let stream = YAMLLoader.load("""
            a: yes
            b: 0x1F
            c: 1_000
            d: 1.5
            e: ~
            f: "123"
            g: 2019-11-05T00:09:15Z
            h: !!str 42
            i: 0755
            """)
        let value = try #require(stream.documents.first?.value)
        #expect(value["a"] == .bool(true))
        #expect(value["b"] == .int(31))
        #expect(value["c"] == .int(1000))
        #expect(value["d"] == .double(1.5))
        #expect(value["e"] == .null)
        #expect(value["f"] == .string("123"))
        #expect(value["g"] == .string("2019-11-05T00:09:15Z"))
        #expect(value["h"] == .string("42"))
        #expect(value["i"] == .int(493))
        #expect(YAMLLoader.load("x: .inf").error != nil)
    }

    @Test func positionsPointAtValues() throws {
        let document = try #require(YAMLLoader.load("""
            # comment
            spec:
              packages:
                apt:
                  - curl
                  - "vim"
            """).documents.first)
        #expect(document.position(of: FieldPath("spec.packages.apt[1]")) == SourcePosition(line: 6, column: 9))
        #expect(document.position(of: FieldPath("spec.packages.pip[0]")) == SourcePosition(line: 4, column: 5))
    }

    @Test func aliasesAreBoundedBeforeComposing() throws {
        var lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
        for level in 1...7 { lines.append("a\(level): &a\(level) [" + Array(repeating: "*a\(level - 1)", count: 10).joined(separator: ", ") + "]") }
        lines.append("? *a7\n: 1")
        let started = Date()
        let stream = YAMLLoader.load(lines.joined(separator: "\n"))
        #expect(Date().timeIntervalSince(started) < 2)
        #expect(stream.error?.message.contains("expands") == true)
        // Ordinary use is fine.
        let fine = YAMLLoader.load("base: &b {x: 1}\nuse: *b\nmerged: {<<: *b, y: 2}")
        #expect(fine.error == nil)
        #expect(fine.documents.first?.value["merged"] == .object(["x": .int(1), "y": .int(2)]))
    }

    @Test func depthIsBounded() {
        let stream = YAMLLoader.load(String(repeating: "[", count: 100) + String(repeating: "]", count: 100))
        #expect(stream.error?.message.contains("deeper") == true)
        #expect(stream.error?.position != nil)
    }

    @Test func documentsBeforeAnErrorAreKept() {
        let stream = YAMLLoader.load("a: 1\n---\nb: 2\n---\nc: [\n")
        #expect(stream.documents.count == 2)
        #expect(stream.error?.position?.line == 6)
        #expect(YAMLLoader.load("---\n---\na: 1\n").documents.count == 1)
        // Anchors do not carry across documents.
        let crossing = YAMLLoader.load("a: &x 1\n---\nb: *x\n")
        #expect(crossing.documents.count == 1)
        #expect(crossing.error?.position?.line == 3)
    }

    @Test func nonStringKeysAndDuplicates() {
        #expect(YAMLLoader.load("? [a]\n: 1").error != nil)
        #expect(YAMLLoader.load("a: 1\na: 2").error?.position?.line == 1 || YAMLLoader.load("a: 1\na: 2").error != nil)
        #expect(YAMLLoader.load("1: a\n\"1\": b").error != nil)
    }

    @Test func writerQuotesWhatWouldChangeType() throws {
        let value = JSONValue.object(["s": .string("true"), "n": .string("0755"), "t": .string("multi\nline\n"), "e": .string(""),
                                      "b": .bool(false), "i": .int(3), "nul": .null, "list": .array([.string("- x"), .string("a: b")])])
        let text = try YAMLWriter.document(value)
        #expect(YAMLLoader.load(text).documents.first?.value == value)
        #expect(text.contains("t: |"))
    }
}
