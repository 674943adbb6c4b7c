import Foundation
import KubeClient
import KubeRuntime
import KubeTypes
import Testing

/// A decoding profile builds only what a cache keeps, and keeps exactly what the store transforms
/// of a fully decoded object would.
@Suite struct DecodingProfileTests {
    static let managedFields = #"""
        "managedFields":[{"manager":"kube-controller-manager","operation":"Update","apiVersion":"v1","time":"2024-01-02T03:04:05Z",
          "fieldsType":"FieldsV1","fieldsV1":{"f:status":{"f:conditions":{"k:{\"type\":\"Ready\"}":{".":{},"f:status":{}}},"f:phase":{}}}}]
        """#

    static let podSpec = #"""
        {"containers":[{"name":"build","image":"builder:1","command":["sh","-c","script"],"args":["x"],
                                "env":[{"name":"TOKEN","value":"secret"},{"name":"REF","valueFrom":{"secretKeyRef":{"name":"s","key":"k"}}}],
                                "volumeMounts":[{"name":"work","mountPath":"/work"}],
                                "securityContext":{"runAsUser":0,"capabilities":{"drop":["ALL"]}},
                                "resources":{"limits":{"cpu":"1","memory":"1Gi"}}}],
                 "initContainers":[{"name":"prepare","image":"busybox","command":["true"]}],
                 "volumes":[{"name":"work","emptyDir":{}}],"restartPolicy":"Never","serviceAccountName":"builder",
                 "nodeName":"node-1","affinity":{"nodeAffinity":{}},"securityContext":{"fsGroup":1},
                 "tolerations":[{"key":"k","operator":"Exists"}]}
        """#

    static let podJSON = #"""
        {"apiVersion":"v1","kind":"Pod",
         "metadata":{"name":"b-pod","namespace":"ns","uid":"u1","resourceVersion":"7","labels":{"app":"build"},
                     "annotations":{"image-builder.io/image-spec":"b"},
                     "ownerReferences":[{"apiVersion":"batch/v1","kind":"Job","name":"b","uid":"j1","controller":true}],
                     \#(managedFields)},
         "spec":\#(podSpec),
         "status":{"phase":"Succeeded","startTime":"2024-01-02T03:04:05Z",
                   "conditions":[{"type":"Ready","status":"False","reason":"PodCompleted"}],
                   "containerStatuses":[{"name":"build","ready":false,"restartCount":0,"image":"builder:1","imageID":"sha256:1",
                     "state":{"terminated":{"exitCode":0,"reason":"Completed","message":"sha256:ab","finishedAt":"2024-01-02T03:04:09Z"}}}]}}
        """#

    static let jobJSON = #"""
        {"apiVersion":"batch/v1","kind":"Job",
         "metadata":{"name":"b","namespace":"ns","uid":"j1","resourceVersion":"9","labels":{"app":"build","job-name":"b"},
                     "annotations":{"image-builder.io/target-image":"r/x:1"},
                     "ownerReferences":[{"apiVersion":"primehub.io/v1alpha1","kind":"ImageSpec","name":"b","uid":"s1","controller":true}],
                     \#(managedFields)},
         "spec":{"backoffLimit":0,"activeDeadlineSeconds":3600,"ttlSecondsAfterFinished":600,"parallelism":1,"completions":1,
                 "selector":{"matchLabels":{"controller-uid":"j1"}},
                 "template":{"metadata":{"labels":{"app":"build","controller-uid":"j1"},"annotations":{"a":"b"}},
                             "spec":\#(podSpec)}},
         "status":{"startTime":"2024-01-02T03:04:05Z","succeeded":1,
                   "conditions":[{"type":"Complete","status":"True","lastTransitionTime":"2024-01-02T03:04:10Z"}]}}
        """#

    static func decode<T: Decodable>(_ type: T.Type, _ json: String, _ profile: DecodingProfile) throws -> T {
        try KubeJSON.decoder(profile: profile).decode(T.self, from: Data(json.utf8))
    }

    @Test func everythingIsTheDefault() throws {
        let plain = try KubeJSON.decoder.decode(Pod.self, from: Data(Self.podJSON.utf8))
        #expect(plain == (try Self.decode(Pod.self, Self.podJSON, .everything)))
        #expect(plain.metadata.managedFields?.count == 1)
        #expect(plain.spec?.containers.first?.env?.count == 2)
        #expect(plain.spec?.volumes?.count == 1)
    }

    @Test func withoutManagedFieldsLeavesOnlyThemOut() throws {
        let full = try Self.decode(Pod.self, Self.podJSON, .everything)
        let lean = try Self.decode(Pod.self, Self.podJSON, .withoutManagedFields)
        #expect(lean.metadata.managedFields == nil)
        #expect(lean == StoreTransforms.stripManagedFields(full))
    }

    @Test func aPodSummaryIsWhatTheStoreTransformKeeps() throws {
        let full = try Self.decode(Pod.self, Self.podJSON, .everything)
        let summary = try Self.decode(Pod.self, Self.podJSON, .summary)
        #expect(summary == StoreTransforms.summarizePod(full))
        #expect(summary.spec?.containers == [Container(name: "build", image: "builder:1")])
        #expect(summary.spec?.initContainers == [Container(name: "prepare", image: "busybox")])
        #expect(summary.spec?.nodeName == "node-1")
        #expect(summary.spec?.restartPolicy == "Never")
        #expect(summary.spec?.volumes == nil && summary.spec?.affinity == nil && summary.spec?.tolerations == nil)
        // The status is whole: the termination message carries the digest.
        #expect(summary.status == full.status)
        #expect(summary.status?.containerStatuses?.first?.state?.terminated?.message == "sha256:ab")
    }

    @Test func aJobSummaryIsWhatTheStoreTransformKeeps() throws {
        let full = try Self.decode(Job.self, Self.jobJSON, .everything)
        #expect(full.spec?.selector != nil && full.spec?.template.metadata?.labels?["controller-uid"] == "j1")
        let summary = try Self.decode(Job.self, Self.jobJSON, .summary)
        #expect(summary == StoreTransforms.summarizeJob(full))
        #expect(summary.spec?.activeDeadlineSeconds == 3600 && summary.spec?.backoffLimit == 0)
        #expect(summary.spec?.template.metadata == nil && summary.spec?.selector == nil)
        #expect(summary.metadata.annotations == ["image-builder.io/target-image": "r/x:1"])
        #expect(summary.isFinished)
    }

    @Test func watchEventsAreDecodedWithTheProfile() throws {
        let line = Data(#"{"type":"MODIFIED","object":\#(Self.podJSON)}"#.utf8)
        guard case .modified(let pod) = try WatchEventDecoder.decode(Pod.self, line: line, profile: .summary) else {
            Issue.record("not a MODIFIED event")
            return
        }
        #expect(pod.metadata.managedFields == nil)
        #expect(pod.spec?.containers.first?.env == nil)
        guard case .modified(let whole) = try WatchEventDecoder.decode(Pod.self, line: line) else {
            Issue.record("not a MODIFIED event")
            return
        }
        #expect(whole.spec?.containers.first?.env?.count == 2)
    }

    @Test func anObjectDecodedWholeStillEncodesWhole() throws {
        // Decoding with a profile changes nothing for the encoder: a summary writes what it holds.
        let summary = try Self.decode(Pod.self, Self.podJSON, .summary)
        let written = try JSONValue(encoding: summary)
        #expect(written.value(at: "spec", "containers")?.arrayValue?.first == ["name": "build", "image": "builder:1"])
        #expect(written.value(at: "metadata", "managedFields") == nil)
    }
}
