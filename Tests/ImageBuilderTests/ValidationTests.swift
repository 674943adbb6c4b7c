import Foundation
import ImageBuilder
import KubeClient
import KubeTypes
import Testing

@Suite struct ValidationTests {
    static func check(_ yaml: String) -> ImageSpecDocuments.Report { ImageSpecDocuments.check(yaml) }

    @Test func reportsEveryProblemAtOnceWithFieldValueAndPosition() throws {
        let report = Self.check("""
            apiVersion: primehub.io/v1alpha1
            kind: ImageSpec
            metadata: {name: demo}
            spec:
              baseImage: Ubuntu
              packages:
                apt: [curl, "vim;id"]
                pip: [flask, 3]
              env:
                - {name: 1X, value: y}
              colour: blue
            """)
        let lines = report.diagnostics.map { $0.line(file: "f.yaml") }
        #expect(lines == [
            "f.yaml:5:14: spec.baseImage: not a valid image reference: repository name \"Ubuntu\" must be lowercase (got \"Ubuntu\")",
            "f.yaml:7:17: spec.packages.apt[1]: not a valid apt package: unexpected \";\" at position 4 in a Debian package (name[:arch][=version|/release]) (got \"vim;id\")",
            "f.yaml:8:18: spec.packages.pip[1]: expected a string, got a number (got \"3\")",
            "f.yaml:10:14: spec.env[0].name: an environment variable name is a letter or '_' followed by letters, digits and '_' (got \"1X\")",
            "f.yaml:11:11: spec.colour: unknown field",
        ])
    }

    /// A rebuild trigger that could not be written back (its UTC year is 10000) is a problem of
    /// `spec.updateTime`, not a time the operator later fails to write.
    @Test func updateTimeOutsideTheWritableYearsIsAProblem() {
        let report = Self.check("""
            apiVersion: primehub.io/v1alpha1
            kind: ImageSpec
            metadata: {name: demo}
            spec:
              baseImage: ubuntu
              packages: {pip: [numpy]}
              updateTime: "9999-12-31T23:59:59-01:00"
            """)
        #expect(report.imageSpecs.isEmpty)
        #expect(report.diagnostics.map { $0.line(file: "f.yaml") } == [
            "f.yaml:7:15: spec.updateTime: must be an RFC 3339 date-time such as 2024-01-02T03:04:05Z, in the years 0000 to 9999 (UTC) (got \"9999-12-31T23:59:59-01:00\")",
        ])
    }

    @Test func pipVersionsThatPipRejectsAreRefusedWithFieldAndReason() {
        let report = Self.check("""
            apiVersion: primehub.io/v1alpha1
            kind: ImageSpec
            metadata: {name: demo}
            spec:
              baseImage: ubuntu
              packages:
                pip: [flask, "numpy>=1.*", "scipy~=1", "pandas>1.0+local"]
            """)
        let lines = report.diagnostics.map { $0.line(file: "f.yaml") }
        #expect(lines == [
            "f.yaml:7:18: spec.packages.pip[1]: not a valid pip requirement (PEP 508): a wildcard version (\"1.*\") is allowed only with == and != (PEP 440) (got \"numpy>=1.*\")",
            "f.yaml:7:32: spec.packages.pip[2]: not a valid pip requirement (PEP 508): '~=' needs a version with at least two release numbers, such as ~=1.0 (PEP 440), not \"1\" (got \"scipy~=1\")",
            "f.yaml:7:44: spec.packages.pip[3]: not a valid pip requirement (PEP 508): a local version (\"1.0+local\") is allowed only with ==, != and === (PEP 440) (got \"pandas>1.0+local\")",
        ], "\(lines.joined(separator: "\n"))")
    }

    @Test func otherKindsAreSkipped() {
        let report = Self.check("""
            apiVersion: v1
            kind: ConfigMap
            metadata: {name: x}
            data: {a: "1"}
            ---
            apiVersion: primehub.io/v1alpha1
            kind: Image
            metadata: {name: y}
            spec: {url: whatever}
            """)
        #expect(report.imageSpecCount == 0)
        #expect(report.diagnostics.isEmpty)
    }

    @Test func wrongVersionOfTheGroupIsAProblem() {
        let report = Self.check("""
            apiVersion: primehub.io/v1beta1
            kind: ImageSpec
            metadata: {name: x}
            spec: {baseImage: ubuntu, packages: {}}
            """)
        #expect(report.diagnostics.map(\.field) == ["apiVersion"])
    }

    /// `spec: null` passes both CRDs: such an object still decodes (a list of ImageSpecs holding one
    /// must not fail to decode as a whole) and is refused naming the missing field.
    @Test func anObjectWithoutSpecOrBaseImageDecodesAndIsRefused() throws {
        for json in [#"{"apiVersion":"primehub.io/v1alpha1","kind":"ImageSpec","metadata":{"name":"null-spec"}}"#,
                     #"{"apiVersion":"primehub.io/v1alpha1","kind":"ImageSpec","metadata":{"name":"x"},"spec":{"packages":{}}}"#] {
            let list = try KubeJSON.decoder.decode(ObjectList<ImageSpec>.self, from: Data(#"{"items":[\#(json)]}"#.utf8))
            let spec = try #require(list.items.first)
            guard case .failure(let failure) = ImageSpecValidator.validate(spec) else {
                Issue.record("\(json) was valid")
                continue
            }
            #expect(failure.problems.map(\.path.description) == ["spec.baseImage"], "\(failure.problems)")
            #expect(failure.problems.first?.message.contains("required") == true, "\(failure.problems)")
        }
    }

    @Test func typedValidationOfAnAPIObject() throws {
        var spec = ImageSpecSpec(baseImage: "ubuntu", packages: Packages(conda: ["-c", "conda-forge", "numpy"]))
        let valid = try Fixtures.valid(Fixtures.imageSpec(spec: spec))
        #expect(valid.conda.channels == ["conda-forge"])
        spec.packages.pip = ["numpy;"]
        spec.pullSecret = "Bad_Name"
        guard case .failure(let failure) = ImageSpecValidator.validate(Fixtures.imageSpec(spec: spec)) else {
            Issue.record("expected a failure")
            return
        }
        #expect(failure.problems.map(\.path.description) == ["spec.pullSecret", "spec.packages.pip[0]"])
        #expect(failure.problems.allSatisfy { $0.value != nil })
    }

    @Test func sizeLimits() {
        var spec = ImageSpecSpec(baseImage: "ubuntu", packages: Packages(apt: Array(repeating: "curl", count: 201)))
        spec.env = (0..<65).map { ImageEnvVar(name: "V\($0)", value: String(repeating: "x", count: 10)) }
        guard case .failure(let failure) = ImageSpecValidator.validate(Fixtures.imageSpec(spec: spec)) else {
            Issue.record("expected a failure")
            return
        }
        #expect(Set(failure.problems.map(\.path.description)) == ["spec.packages.apt", "spec.env"])
    }

    @Test func fieldPathsPrintAndParse() {
        let path = FieldPath("spec.packages.apt[2]")
        #expect(path.description == "spec.packages.apt[2]")
        #expect(path.parent?.description == "spec.packages.apt")
        #expect((FieldPath.root / "metadata" / "annotations" / "a b").description == "metadata.annotations[\"a b\"]")
    }
}
