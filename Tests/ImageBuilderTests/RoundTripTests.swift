import Foundation
import ImageBuilder
import KubeClient
import KubeTypes
import Testing

/// Unknown members survive a decode/encode round trip, at every depth, also after changes.
@Suite struct RoundTripTests {
    static let imageSpecJSON = #"""
        {"apiVersion":"primehub.io/v1alpha1","kind":"ImageSpec","future":{"x":1},
         "metadata":{"name":"n","namespace":"hub","uid":"u","generation":3},
         "spec":{"baseImage":"ubuntu","packages":{"apt":["curl"],"npm":["left-pad"]},"updateTime":"2019-11-05T00:09:15Z",
                 "env":[{"name":"A","value":"1","valueFrom":{"x":"y"}}],"newField":true},
         "status":{"phase":"Succeeded","jobName":"j","image":"i","conditions":[{"type":"Ready","status":"True","extra":"kept"}],"other":[1,2]}}
        """#

    static func json(_ text: String) throws -> JSONValue { try KubeJSON.decoder.decode(JSONValue.self, from: Data(text.utf8)) }

    @Test func unchangedRoundTripIsExact() throws {
        let original = try Self.json(Self.imageSpecJSON)
        let decoded = try original.decode(as: ImageSpec.self)
        #expect(decoded.spec.packages.apt == ["curl"])
        #expect(decoded.spec.env?.first?.name == "A")
        #expect(try JSONValue(encoding: decoded) == original)
    }

    @Test func changesApplyAndUnknownsStay() throws {
        var decoded = try Self.json(Self.imageSpecJSON).decode(as: ImageSpec.self)
        decoded.spec.packages.apt = ["curl", "vim"]
        decoded.status?.phase = "Running"
        decoded.status?.conditions?[0].reason = "Built"
        decoded.spec.env?[0].value = "2"
        let encoded = try JSONValue(encoding: decoded)
        #expect(encoded.value(at: "spec", "packages", "apt") == .array([.string("curl"), .string("vim")]))
        #expect(encoded.value(at: "spec", "packages", "npm") == .array([.string("left-pad")]))
        #expect(encoded.value(at: "spec", "newField") == .bool(true))
        #expect(encoded["future"] == .object(["x": .int(1)]))
        #expect(encoded.value(at: "status", "phase") == .string("Running"))
        #expect(encoded.value(at: "status", "other") == .array([.int(1), .int(2)]))
        #expect(encoded.value(at: "status", "conditions")?.arrayValue?.first?["extra"] == .string("kept"))
        #expect(encoded.value(at: "status", "conditions")?.arrayValue?.first?["reason"] == .string("Built"))
        #expect(encoded.value(at: "spec", "env")?.arrayValue?.first?["valueFrom"] == .object(["x": .string("y")]))
        #expect(encoded.value(at: "spec", "env")?.arrayValue?.first?["value"] == .string("2"))
        // Removing a known field removes it.
        decoded.spec.updateTime = nil
        #expect(try JSONValue(encoding: decoded).value(at: "spec", "updateTime") == nil)
    }

    @Test func imageRoundTripAndStatusKeys() throws {
        let text = #"""
            {"apiVersion":"primehub.io/v1alpha1","kind":"Image","metadata":{"name":"img"},
             "spec":{"displayName":"X","url":"","imageSpec":{"baseImage":"ubuntu","packages":{"apt":["curl"]},"cancel":false},"unknown":1},
             "status":{"jobCondition":{"phase":"","jobName":"","image":""}}}
            """#
        var image = try Self.json(text).decode(as: Image.self)
        #expect(try JSONValue(encoding: image) == (try Self.json(text)))
        #expect(image.spec.imageSpec?.imageSpecSpec?.packages.apt == ["curl"])
        image.spec.url = "registry.example.com/x:1"
        let encoded = try JSONValue(encoding: image)
        #expect(encoded.value(at: "spec", "unknown") == .int(1))
        #expect(encoded.value(at: "spec", "url") == .string("registry.example.com/x:1"))
        // PrimeHub requires all three status keys, even empty.
        let status = try JSONValue(encoding: ImageSpecStatus())
        #expect(status == .object(["phase": .string(""), "jobName": .string(""), "image": .string("")]))
        let fresh = try JSONValue(encoding: Image(metadata: ObjectMeta(name: "a"), status: Image.Status()))
        #expect(fresh.value(at: "status", "jobCondition") == .object(["phase": .string(""), "jobName": .string(""), "image": .string("")]))
    }

    @Test func imageSpecJobRoundTrip() throws {
        let text = #"{"apiVersion":"primehub.io/v1alpha1","kind":"ImageSpecJob","metadata":{"name":"img"},"spec":{"baseImage":"ubuntu","packages":{"apt":["curl"]},"pushSecret":"p","targetImage":"img:96ff7925","repoPrefix":"r.example.com","updateTime":"2019-11-05T00:09:15Z"},"status":{"phase":"Running","podName":"image-img-abcd","extra":1}}"#
        let job = try Self.json(text).decode(as: ImageSpecJob.self)
        #expect(job.status?.podName == "image-img-abcd")
        #expect(try JSONValue(encoding: job) == (try Self.json(text)))
    }

    @Test func kstatusConditions() throws {
        var status = ImageSpecStatus(phase: "Running", jobName: "j", image: "")
        let t0 = Date(timeIntervalSince1970: 1_700_000_000)
        let t1 = t0.addingTimeInterval(60)
        status.setState(.reconciling(reason: "Building", message: "Job j is running"), generation: 2, now: t0)
        #expect(status.observedGeneration == 2)
        #expect(status.conditions?[Condition.reconciling]?.isTrue == true)
        #expect(status.conditions?[Condition.ready]?.status == "False")
        #expect(status.conditions?[Condition.stalled]?.status == "False")
        status.setState(.reconciling(reason: "Building", message: "still"), generation: 2, now: t1)
        #expect(status.conditions?[Condition.reconciling]?.lastTransitionTime == t0)
        status.setState(.ready(reason: "Built", message: "done"), generation: 2, now: t1)
        #expect(status.conditions?[Condition.ready]?.lastTransitionTime == t1)
        #expect(status.conditions?[Condition.ready]?.observedGeneration == 2)
        #expect(status.conditions?.filter(\.isTrue).map(\.type) == [Condition.ready])
        status.setState(.stalled(reason: "BuildFailed", message: "exit 1"), generation: 3, now: t1)
        #expect(status.conditions?.filter(\.isTrue).map(\.type) == [Condition.stalled])

        for index in 0..<7 {
            status.record(BuildRecord(jobName: "j\(index)", hash: "h", phase: BuildPhase.succeeded.rawValue), limit: 5)
        }
        status.record(BuildRecord(jobName: "j6", hash: "h", phase: BuildPhase.failed.rawValue), limit: 5)
        #expect(status.builds?.map(\.jobName) == ["j6", "j5", "j4", "j3", "j2"])
        #expect(status.builds?.first?.phase == "Failed")
    }
}

/// What ImageSpecs keep when decoded for a cache (`DecodingProfile`).
@Suite struct CachedDecodingTests {
    static let withManagedFields = #"""
        {"apiVersion":"primehub.io/v1alpha1","kind":"ImageSpec","future":{"x":1},
         "metadata":{"name":"n","namespace":"hub","uid":"u","managedFields":[{"manager":"kubectl","fieldsV1":{"f:spec":{}}}]},
         "spec":{"baseImage":"ubuntu","packages":{"apt":["curl"]},"newField":true},
         "status":{"phase":"Succeeded","other":[1,2]}}
        """#

    static func decode(_ profile: DecodingProfile) throws -> ImageSpec {
        try KubeJSON.decoder(profile: profile).decode(ImageSpec.self, from: Data(Self.withManagedFields.utf8))
    }

    @Test func modelOnlyKeepsTheModelAndNoCopyOfTheJSON() throws {
        let lean = try Self.decode(.modelOnly)
        let full = try Self.decode(.everything)
        #expect(lean.spec == full.spec && lean.status == full.status)
        #expect(lean.metadata.managedFields == nil)
        #expect(lean.unknownFields == UnknownFields())
        // Written, it holds only what the model knows.
        let written = try JSONValue(encoding: lean)
        #expect(written["future"] == nil && written.value(at: "spec", "newField") == nil)
        #expect(written.value(at: "spec", "baseImage") == "ubuntu")
    }

    @Test func withoutManagedFieldsKeepsUnknownFieldsButNotManagedFields() throws {
        var lean = try Self.decode(.withoutManagedFields)
        lean.status?.phase = "Failed"
        let written = try JSONValue(encoding: lean)
        #expect(written["future"] == ["x": 1])
        #expect(written.value(at: "spec", "newField") == true)
        #expect(written.value(at: "status", "other") == [1, 2])
        #expect(written.value(at: "status", "phase") == "Failed")
        #expect(written.value(at: "metadata", "managedFields") == nil)
        #expect(written.value(at: "metadata", "uid") == "u")
    }

    @Test func everythingRoundTripsExactly() throws {
        let original = try KubeJSON.decoder.decode(JSONValue.self, from: Data(Self.withManagedFields.utf8))
        #expect(try JSONValue(encoding: Self.decode(.everything)) == original)
    }
}
