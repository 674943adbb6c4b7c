import Foundation
import ImageBuilder
import KubeClient
import KubeTypes
import Testing

/// `crds/` holds the definitions built by `CustomResourceDefinitions`: they are golden files
/// (update with `UPDATE_GOLDEN=1 swift test --filter ImageBuilderTests`).
@Suite struct CRDTests {
    @Test(arguments: CustomResourceDefinitions.all.map(\.file))
    func crdFilesAreCurrent(file: String) throws {
        let definition = try #require(CustomResourceDefinitions.all.first { $0.file == file }?.definition)
        try Golden.check(try YAMLWriter.document(definition), Repository.crds.appendingPathComponent(file))
    }

    /// The structure of PrimeHub's published CRDs (`Tests/Fixtures/primehub-crds`, or
    /// `IMAGE_BUILDER_PRIMEHUB_CRDS`).
    static let primeHubCRDs: URL = ProcessInfo.processInfo.environment["IMAGE_BUILDER_PRIMEHUB_CRDS"].map(URL.init(fileURLWithPath:))
        ?? Repository.root.appendingPathComponent("Tests/Fixtures/primehub-crds")

    @Test(arguments: [("primehub.io_imagespecs.yaml", CustomResourceDefinitions.imageSpecs),
                      ("primehub.io_images.yaml", CustomResourceDefinitions.images),
                      ("primehub.io_imagespecjobs.yaml", CustomResourceDefinitions.imageSpecJobs)])
    func compatibleSupersetOfPrimeHub(file: String, ours: JSONValue) throws {
        let directory = Self.primeHubCRDs
        let theirs = try #require(YAMLLoader.load(try Repository.text(directory.appendingPathComponent(file))).documents.first?.value)
        for path in [["spec", "group"], ["spec", "names", "kind"], ["spec", "names", "plural"], ["spec", "scope"]] {
            #expect(ours.value(at: path) == theirs.value(at: path))
        }
        func schema(_ crd: JSONValue) -> JSONValue? {
            crd.value(at: "spec", "versions")?.arrayValue?.first?.value(at: "schema", "openAPIV3Schema")
        }
        let ourSchema = try #require(schema(ours)), theirSchema = try #require(schema(theirs))
        // Every property PrimeHub has, we have, with the same type; required lists are equal.
        func compare(_ a: JSONValue, _ b: JSONValue, _ path: String) {
            #expect(a["type"] == b["type"], "\(path)")
            if let required = b["required"] { #expect(a["required"] == required, "\(path)") }
            for (key, value) in b["properties"]?.objectValue ?? [:] {
                guard let mine = a["properties"]?[key] else {
                    Issue.record("missing \(path).\(key)")
                    continue
                }
                compare(mine, value, "\(path).\(key)")
            }
            if let items = b["items"], let mine = a["items"] { compare(mine, items, path + "[]") }
        }
        compare(ourSchema, theirSchema, "")
        let theirVersion = try #require(theirs.value(at: "spec", "versions")?.arrayValue?.first)
        let ourVersion = try #require(ours.value(at: "spec", "versions")?.arrayValue?.first)
        #expect(ourVersion["subresources"] == theirVersion["subresources"])
        #expect(ourVersion["name"] == theirVersion["name"])
    }

    @Test func imageSpecsAdditions() throws {
        let ours = CustomResourceDefinitions.imageSpecs
        let version = try #require(ours.value(at: "spec", "versions")?.arrayValue?.first)
        #expect(version.value(at: "subresources", "status") == .object([:]))
        #expect(version["additionalPrinterColumns"]?.arrayValue?.compactMap { $0["name"]?.stringValue } == ["Status", "Reason", "Image", "Age"])
        #expect(ours.value(at: "spec", "names", "shortNames") != nil)
        #expect(ours["apiVersion"] == .string("apiextensions.k8s.io/v1"))
        // Nothing newer than Kubernetes 1.20: no CEL rules.
        #expect(!(try YAMLWriter.document(ours)).contains("x-kubernetes-validations"))
    }

    @Test func imagesHasNoStatusSubresource() {
        let version = CustomResourceDefinitions.images.value(at: "spec", "versions")?.arrayValue?.first
        #expect(version?["subresources"] == .object([:]))
    }
}

extension JSONValue {
    func value(at path: [String]) -> JSONValue? { path.reduce(Optional(self)) { $0?[$1] } }
}
