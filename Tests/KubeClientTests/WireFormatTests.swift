import Foundation
import KubeTypes
import Testing
@testable import KubeClient

@Suite struct ErrorDecodingTests {
    @Test func decodesStatusWithCauses() {
        let body = Data("""
            {"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
             "message":"ConfigMap \\"x\\" is invalid: data[bad key]: Invalid value","reason":"Invalid",
             "details":{"name":"x","kind":"ConfigMap","causes":[{"reason":"FieldValueInvalid","message":"Invalid value: \\"bad key\\"","field":"data[bad key]"}]},
             "code":422}
            """.utf8)
        let error = APIError(code: 422, body: body, request: "POST /api/v1/namespaces/default/configmaps")
        #expect(error.isInvalid)
        #expect(!error.isNotFound && !error.isConflict && !error.isForbidden)
        #expect(error.reason == "Invalid")
        #expect(error.causes == [StatusCause(reason: "FieldValueInvalid", message: "Invalid value: \"bad key\"", field: "data[bad key]")])
        #expect(error.status.details?.name == "x")
        #expect("\(error)".contains("POST /api/v1/namespaces/default/configmaps"))
        #expect("\(error)".contains("HTTP 422"))
    }

    @Test(arguments: [
        (404, "NotFound", \APIError.isNotFound),
        (409, "AlreadyExists", \APIError.isAlreadyExists),
        (409, "Conflict", \APIError.isConflict),
        (410, "Expired", \APIError.isGone),
        (410, "Gone", \APIError.isGone),
        (422, "Invalid", \APIError.isInvalid),
        (403, "Forbidden", \APIError.isForbidden),
        (401, "Unauthorized", \APIError.isUnauthorized),
        (429, "TooManyRequests", \APIError.isTooManyRequests),
        (504, "Timeout", \APIError.isServerTimeout),
    ] as [(Int, String, KeyPath<APIError, Bool> & Sendable)])
    func predicates(code: Int, reason: String, predicate: KeyPath<APIError, Bool> & Sendable) {
        let error = APIError(code: code, status: Status(message: "m", reason: reason, code: code))
        #expect(error[keyPath: predicate])
        if reason == "AlreadyExists" { #expect(!error.isConflict) }
        if reason == "Conflict" { #expect(!error.isAlreadyExists) }
    }

    @Test func retryAfterFromHeaderOrDetails() {
        let header = APIError(code: 429, body: Data("{\"kind\":\"Status\",\"reason\":\"TooManyRequests\"}".utf8), retryAfter: "7")
        #expect(header.retryAfterSeconds == 7)
        let details = APIError(code: 429, status: Status(reason: "TooManyRequests", details: StatusDetails(retryAfterSeconds: 3), code: 429))
        #expect(details.retryAfterSeconds == 3)
        #expect(details.isRetryable)
    }

    @Test func nonStatusBodyBecomesMessage() {
        let error = APIError(code: 503, body: Data("upstream connect error\n".utf8))
        #expect(error.message == "upstream connect error")
        #expect(error.reason == "ServiceUnavailable")
        let empty = APIError(code: 401, body: Data())
        #expect(empty.isUnauthorized)
        #expect(empty.message == "HTTP 401")
    }
}

@Suite struct WatchFramingTests {
    func event(_ type: String, _ name: String, rv: String) -> String {
        #"{"type":"\#(type)","object":{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"\#(name)","resourceVersion":"\#(rv)"}}}"#
    }

    func names(_ lines: [Data]) throws -> [String] {
        try lines.map { line in
            switch try WatchEventDecoder.decode(ConfigMap.self, line: line) {
            case .added(let object), .modified(let object), .deleted(let object): return object.metadata.name ?? ""
            case .bookmark(let rv): return "bookmark@\(rv)"
            case .error(let status): return "error\(status.code ?? 0)"
            }
        }
    }

    @Test func oneEventSplitAcrossChunks() throws {
        let line = Data((event("ADDED", "a", rv: "1") + "\n").utf8)
        var framer = LineFramer()
        var lines: [Data] = []
        for cut in stride(from: 0, to: line.count, by: 7) {
            lines += try framer.append(line[cut..<min(cut + 7, line.count)])
        }
        #expect(try names(lines) == ["a"])
        #expect(framer.finish() == nil)
    }

    @Test func severalEventsInOneChunk() throws {
        let text = [event("ADDED", "a", rv: "1"), event("MODIFIED", "b", rv: "2"), event("DELETED", "c", rv: "3"),
                    #"{"type":"BOOKMARK","object":{"kind":"ConfigMap","apiVersion":"v1","metadata":{"resourceVersion":"9"}}}"#,
                    #"{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","status":"Failure","message":"too old resource version: 1 (5)","reason":"Expired","code":410}}"#]
            .joined(separator: "\n") + "\n"
        var framer = LineFramer()
        #expect(try names(try framer.append(Data(text.utf8))) == ["a", "b", "c", "bookmark@9", "error410"])
    }

    @Test func finalLineWithoutNewline() throws {
        var framer = LineFramer()
        let lines = try framer.append(Data((event("ADDED", "a", rv: "1") + "\n" + event("ADDED", "b", rv: "2")).utf8))
        #expect(try names(lines) == ["a"])
        let finished = framer.finish()
        let last = try #require(finished)
        #expect(try names([last]) == ["b"])
    }

    @Test func crlfAndBlankLines() throws {
        var framer = LineFramer()
        let lines = try framer.append(Data("\r\n\n\(event("ADDED", "a", rv: "1"))\r\n".utf8))
        #expect(try names(lines) == ["a"])
    }

    @Test func logFramerKeepsBlankLines() throws {
        var framer = LineFramer(skipsBlankLines: false)
        #expect(try framer.append(Data("one\n\nthree\n".utf8)).map { String(decoding: $0, as: UTF8.self) } == ["one", "", "three"])
    }

    @Test func overlongLineIsAnErrorNotUnboundedMemory() {
        var framer = LineFramer(maxLineLength: 16)
        #expect(throws: LineFramer.LineTooLong.self) {
            _ = try framer.append(Data(repeating: 0x41, count: 32))
        }
    }

    @Test func unknownEventTypeIsAnError() {
        #expect(throws: KubeClientError.self) {
            _ = try WatchEventDecoder.decode(ConfigMap.self, line: Data(#"{"type":"WHAT","object":{}}"#.utf8))
        }
    }
}

@Suite struct JSONValueTests {
    @Test func applyingChangeKeepsUnknownFields() throws {
        let raw = try JSONDecoder().decode(JSONValue.self, from: Data("""
            {"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","labels":{"x":"1"},"futureField":"keep"},
             "data":{"k":"v"},"unknownTop":{"nested":[1,2]}}
            """.utf8))
        var editable = try Editable<ConfigMap>(raw: raw)
        editable.object.data = ["k": "changed"]
        editable.object.metadata.labels = nil
        let merged = try editable.merged()
        #expect(merged.value(at: "metadata", "futureField") == .string("keep"))
        #expect(merged.value(at: "unknownTop", "nested") == .array([.int(1), .int(2)]))
        #expect(merged.value(at: "data", "k") == .string("changed"))
        #expect(merged.value(at: "metadata", "labels") == nil)
    }

    @Test func applyingChangeInsideArraysOfSameLength() {
        let raw = JSONValue.object(["list": .array([.object(["a": .int(1), "unknown": .bool(true)])])])
        let before = JSONValue.object(["list": .array([.object(["a": .int(1)])])])
        let after = JSONValue.object(["list": .array([.object(["a": .int(2)])])])
        #expect(raw.applyingChange(from: before, to: after)
            == .object(["list": .array([.object(["a": .int(2), "unknown": .bool(true)])])]))
    }

    @Test func mergePatchDescribesTheChange() {
        let before = JSONValue.object(["a": .int(1), "b": .object(["c": .string("x"), "d": .int(2)])])
        let after = JSONValue.object(["a": .int(1), "b": .object(["c": .string("y")]), "e": .bool(true)])
        #expect(JSONValue.mergePatch(from: before, to: after)
            == .object(["b": .object(["c": .string("y"), "d": .null]), "e": .bool(true)]))
        #expect(JSONValue.mergePatch(from: before, to: before) == nil)
    }

    @Test func timestamps() throws {
        let date = try #require(KubeJSON.parseTimestamp("2024-02-29T23:59:58Z"))
        #expect(KubeJSON.formatTimestamp(date) == "2024-02-29T23:59:58Z")
        let micro = try #require(KubeJSON.parseTimestamp("2024-01-02T03:04:05.123456Z"))
        #expect(KubeJSON.formatMicroTimestamp(micro) == "2024-01-02T03:04:05.123456Z")
        let offset = try #require(KubeJSON.parseTimestamp("2024-01-02T05:04:05+02:00"))
        #expect(KubeJSON.formatTimestamp(offset) == "2024-01-02T03:04:05Z")
        for bad in ["", "2024-01-02", "2024-13-02T03:04:05Z", "2024-01-02T03:04:05", "2024-01-02T03:04:05Zjunk"] {
            #expect(KubeJSON.parseTimestamp(bad) == nil, "\(bad)")
        }
    }

    /// The json fuzz target's property that a model written back reads again: a time whose UTC
    /// year is past 9999 (or before 0000) parsed, but was written as `10000-01-01T…`, which does not.
    @Test func timestampsOutsideTheYearsThatCanBeWrittenBackAreRejected() throws {
        for outside in ["9999-12-31T23:59:59-01:00", "9999-12-31T23:59:60Z", "0000-01-01T00:30:00+01:00"] {
            #expect(KubeJSON.parseTimestamp(outside) == nil, "\(outside)")
        }
        for edge in ["9999-12-31T23:59:59Z", "9999-12-31T22:59:59-01:00", "0000-01-01T00:00:00Z", "0000-01-01T01:00:00+01:00"] {
            let date = try #require(KubeJSON.parseTimestamp(edge), "\(edge)")
            #expect(KubeJSON.parseTimestamp(KubeJSON.formatTimestamp(date)) == date, "\(edge)")
        }
        let pod = Data(#"{"metadata":{"name":"p","creationTimestamp":"9999-12-31T23:59:59-01:00"}}"#.utf8)
        #expect(throws: DecodingError.self) { try KubeJSON.decoder.decode(Pod.self, from: pod) }
    }

    /// The json fuzz target's finding: `6666666666666666666.6` read as the Double
    /// 6.666666666666667e18 was written as `6.666666666666667e+18`, which reads back as an Int64
    /// and is written differently again, so every write-back changed the number's text.
    @Test(arguments: ["6666666666666666666.6", "6.666666666666667e+18", "1e16", "-9.2e18", "2.0", "1e19", "0.5", "-0.0", "1.5e300"])
    func writingANumberBackIsStableAfterOneStep(text: String) throws {
        let decoded = try KubeJSON.decoder.decode(JSONValue.self, from: Data("[\(text)]".utf8))
        let once = try KubeJSON.encoder.encode(decoded)
        let again = try KubeJSON.decoder.decode(JSONValue.self, from: once)
        #expect(try KubeJSON.encoder.encode(again) == once, "\(text) was written as \(String(decoding: once, as: UTF8.self))")
        #expect(number(again) == number(decoded), "\(text)")
    }

    private func number(_ array: JSONValue) -> Double? {
        switch array.arrayValue?.first {
        case .int(let value): Double(value)
        case .double(let value): value
        default: nil
        }
    }

    @Test func modelsRoundTripThroughJSON() throws {
        let job = Job(
            metadata: ObjectMeta(name: "j", namespace: "ns", labels: ["a": "b"]),
            spec: JobSpec(template: PodTemplateSpec(spec: PodSpec(
                containers: [Container(name: "c", image: "busybox", args: ["--x"])], restartPolicy: "Never")),
                backoffLimit: 1),
            status: JobStatus(conditions: [JobCondition(type: "Complete", status: "True")], succeeded: 1))
        let decoded = try JSONValue(encoding: job).decode(as: Job.self)
        #expect(decoded == job)
        #expect(decoded.isFinished)
    }

    @Test func percentEncoding() {
        #expect(percentEncode("app in (a,b)") == "app%20in%20%28a%2Cb%29")
        #expect(percentEncode("a=b&c/d") == "a%3Db%26c%2Fd")
        #expect(percentEncode("é") == "%C3%A9")
        #expect(percentEncode("A-z_0.9~") == "A-z_0.9~")
    }
}
