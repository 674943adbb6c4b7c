import KubeTestSupport
import CurlHTTP
import Foundation
import KubeClient
import KubeTypes
import TestHarness
import Testing

@Suite("Authentication against a real kube-apiserver")
struct AuthenticationTests {
    @Test func adminToken() async throws {
        let cp = try await ControlPlane.shared()
        let namespace = try await cp.client(.admin).get(Namespace.self, name: "default")
        #expect(namespace.metadata.name == "default")
    }

    @Test func clientCertificateFromFilesAndFromData() async throws {
        let cp = try await ControlPlane.shared()
        _ = try await cp.client(.clientCertificate).get(Namespace.self, name: "kube-system")
        // The same user with everything embedded in the kubeconfig (`*-data` fields).
        let folder = cp.directory + "/embedded-\(UUID().uuidString).yaml"
        try cp.embeddedKubeconfig(for: .clientCertificate).write(toFile: folder, atomically: true, encoding: .utf8)
        let config = try ClientConfiguration.load(kubeconfig: folder, environment: [:])
        #expect(config.tls.clientCertificateData != nil && config.tls.caData != nil)
        _ = try await KubernetesClient(configuration: config).get(Namespace.self, name: "kube-system")
    }

    @Test func tokenFile() async throws {
        let cp = try await ControlPlane.shared()
        let tokenPath = cp.directory + "/token-\(UUID().uuidString)"
        try cp.adminToken.write(toFile: tokenPath, atomically: true, encoding: .utf8)
        let client = KubernetesClient(configuration: ClientConfiguration(
            server: cp.serverURL.absoluteString, tls: TLSOptions(caFile: cp.caFile), authentication: .tokenFile(tokenPath)))
        _ = try await client.get(Namespace.self, name: "default")
    }

    @Test func execPluginIsRunAgainAfter401() async throws {
        let cp = try await ControlPlane.shared()
        let folder = cp.directory + "/exec-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        // The plugin hands out whatever token is in `current`, and counts its runs.
        try "wrong-token".write(toFile: folder + "/current", atomically: true, encoding: .utf8)
        let script = folder + "/plugin.sh"
        try """
            #!/bin/sh
            echo run >> "\(folder)/runs"
            printf '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"%s","expirationTimestamp":"2999-01-01T00:00:00Z"}}' "$(cat "\(folder)/current")"
            """.write(toFile: script, atomically: true, encoding: .utf8)
        chmod(script, 0o755)
        let exec = ExecConfig(command: script, apiVersion: "client.authentication.k8s.io/v1")
        let client = KubernetesClient(configuration: ClientConfiguration(
            server: cp.serverURL.absoluteString, tls: TLSOptions(caFile: cp.caFile), authentication: .exec(exec)))

        // Wrong token, valid "until 2999": the 401 makes the client run the plugin again once.
        await #expect { _ = try await client.get(Namespace.self, name: "default") } throws: { error in
            error.kubeAPIError?.isUnauthorized == true
        }
        let runsAfterFailure = try String(contentsOfFile: folder + "/runs", encoding: .utf8).split(separator: "\n").count
        #expect(runsAfterFailure == 2)

        try cp.adminToken.write(toFile: folder + "/current", atomically: true, encoding: .utf8)
        _ = try await client.get(Namespace.self, name: "default")
        _ = try await client.get(Namespace.self, name: "default")
        let runs = try String(contentsOfFile: folder + "/runs", encoding: .utf8).split(separator: "\n").count
        #expect(runs == 3)
    }

    @Test func unauthorizedIsDecoded() async throws {
        let cp = try await ControlPlane.shared()
        let client = KubernetesClient(configuration: ClientConfiguration(
            server: cp.serverURL.absoluteString, tls: TLSOptions(caFile: cp.caFile), authentication: .bearerToken("nope")))
        await #expect {
            _ = try await client.get(Namespace.self, name: "default")
        } throws: { error in
            guard let api = error.kubeAPIError else { return false }
            return api.code == 401 && api.isUnauthorized && api.reason == "Unauthorized"
        }
    }

    @Test func forbiddenIsDecoded() async throws {
        let cp = try await ControlPlane.shared()
        let limited = try cp.client(.limited)
        _ = try await limited.list(ConfigMap.self, namespace: "default")
        await #expect {
            _ = try await limited.create(Secret(metadata: ObjectMeta(name: "nope", namespace: "default"), stringData: ["a": "b"]))
        } throws: { error in
            guard let api = error.kubeAPIError else { return false }
            return api.isForbidden && api.code == 403 && api.message.contains("limited")
        }
    }

    @Test func tlsVerificationFailureIsExplained() async throws {
        let cp = try await ControlPlane.shared()
        // No CA: the server's certificate cannot be verified.
        let client = KubernetesClient(configuration: ClientConfiguration(
            server: cp.serverURL.absoluteString, authentication: .bearerToken(cp.adminToken)))
        await #expect {
            _ = try await client.get(Namespace.self, name: "default")
        } throws: { error in
            guard let transport = error as? TransportError else { return false }
            return transport.kind == .tlsVerificationFailed
                && "\(transport)".contains("TLS verification failed for host 127.0.0.1:\(cp.port)")
        }
        // insecure-skip-tls-verify gets through.
        let insecure = KubernetesClient(configuration: ClientConfiguration(
            server: cp.serverURL.absoluteString, tls: TLSOptions(insecureSkipVerify: true),
            authentication: .bearerToken(cp.adminToken)))
        _ = try await insecure.get(Namespace.self, name: "default")
    }

    @Test func tlsServerNameIsUsedForVerification() async throws {
        let cp = try await ControlPlane.shared()
        // The serving certificate names 127.0.0.1 and localhost. With tls-server-name set, the
        // certificate is checked against that name instead of the URL's host.
        func client(serverName: String) -> KubernetesClient {
            KubernetesClient(configuration: ClientConfiguration(
                server: cp.serverURL.absoluteString, tls: TLSOptions(caFile: cp.caFile, serverName: serverName),
                authentication: .bearerToken(cp.adminToken)))
        }
        _ = try await client(serverName: "localhost").get(Namespace.self, name: "default")
        await #expect {
            _ = try await client(serverName: "not-in-the-certificate.example").get(Namespace.self, name: "default")
        } throws: { error in
            (error as? TransportError)?.kind == .tlsVerificationFailed
        }
    }

    @Test func connectionRefusedIsExplained() async throws {
        let client = KubernetesClient(configuration: ClientConfiguration(server: "https://127.0.0.1:1"))
        await #expect {
            _ = try await client.get(Namespace.self, name: "default")
        } throws: { error in
            (error as? TransportError)?.kind == .connectionRefused && "\(error)".contains("connection refused by 127.0.0.1:1")
        }
    }
}

@Suite("Requests against a real kube-apiserver")
struct RequestTests {
    @Test func crudOnACustomResource() async throws {
        let cp = try await ControlPlane.shared()
        try await WidgetCRD.install(on: cp)
        let client = try cp.client()
        let namespace = try await cp.makeNamespace("crud")
        let resource = WidgetCRD.resource

        let created = try await client.create(WidgetCRD.widget("w1", namespace: namespace, size: 1), resource: resource, namespace: namespace)
        #expect(created.metadata.uid != nil)
        #expect(created.metadata.generation == 1)

        let read = try await client.get(DynamicObject.self, resource: resource, name: "w1", namespace: namespace)
        #expect(read.json.value(at: "spec", "size") == .int(1))

        // PUT with the current resourceVersion.
        var changed = read
        changed.json["spec"]?["size"] = .int(2)
        let updated = try await client.replace(changed, resource: resource, name: "w1", namespace: namespace)
        #expect(updated.json.value(at: "spec", "size") == .int(2))
        #expect(updated.metadata.generation == 2)

        // Merge patch, JSON patch, server-side apply.
        let merged = try await client.patch(DynamicObject.self, resource: resource, name: "w1", namespace: namespace,
                                            patch: .merge(["spec": ["color": "red"]]))
        #expect(merged.json.value(at: "spec", "color") == .string("red"))
        #expect(merged.json.value(at: "spec", "size") == .int(2))
        let jsonPatched = try await client.patch(
            DynamicObject.self, resource: resource, name: "w1", namespace: namespace,
            patch: .json([Patch.operation("test", "/spec/color", "red"), Patch.operation("replace", "/spec/size", 3)]))
        #expect(jsonPatched.json.value(at: "spec", "size") == .int(3))
        let applied = try await client.patch(
            DynamicObject.self, resource: resource, name: "w1", namespace: namespace,
            patch: .apply(["apiVersion": "test.image-builder.dev/v1", "kind": "Widget",
                           "metadata": ["name": "w1", "namespace": .string(namespace)], "spec": ["shape": "round"]], force: false),
            options: WriteOptions(fieldManager: "crud-test"))
        #expect(applied.json.value(at: "spec", "shape") == .string("round"))

        // Status subresource: a spec change through /status is ignored, the status sticks.
        var withStatus = applied
        withStatus.json["status"] = ["phase": "Ready"]
        withStatus.json["spec"]?["size"] = .int(99)
        let statusWritten = try await client.replace(withStatus, resource: resource, name: "w1", namespace: namespace, subresource: "status")
        #expect(statusWritten.json.value(at: "status", "phase") == .string("Ready"))
        #expect(statusWritten.json.value(at: "spec", "size") == .int(3))
        let statusRead = try await client.get(DynamicObject.self, resource: resource, name: "w1", namespace: namespace, subresource: "status")
        #expect(statusRead.json.value(at: "status", "phase") == .string("Ready"))
        let statusPatched = try await client.patch(DynamicObject.self, resource: resource, name: "w1", namespace: namespace,
                                                   patch: .merge(["status": ["phase": "Done"]]), subresource: "status")
        #expect(statusPatched.json.value(at: "status", "phase") == .string("Done"))

        let list = try await client.list(DynamicObject.self, resource: resource, namespace: namespace)
        #expect(list.items.map { $0.metadata.name } == ["w1"])

        try await client.delete(resource: resource, name: "w1", namespace: namespace)
        await #expect { _ = try await client.get(DynamicObject.self, resource: resource, name: "w1", namespace: namespace) } throws: {
            $0.isNotFound
        }
    }

    @Test func jobsAndTheirStatus() async throws {
        let cp = try await ControlPlane.shared()
        let client = try cp.client()
        let namespace = try await cp.makeNamespace("jobs")
        let job = Job(
            metadata: ObjectMeta(name: "build", namespace: namespace, labels: ["app": "test"]),
            spec: JobSpec(template: PodTemplateSpec(spec: PodSpec(
                containers: [Container(name: "main", image: "busybox", args: ["true"])], restartPolicy: "Never")),
                backoffLimit: 0, activeDeadlineSeconds: 600))
        let created = try await client.create(job)
        #expect(created.spec?.backoffLimit == 0)
        #expect(created.spec?.template.spec?.containers.first?.image == "busybox")

        // Simulate the job controller: a terminal status through /status.
        var finished = created
        let now = Date(timeIntervalSince1970: Date().timeIntervalSince1970.rounded(.down))
        finished.status = JobStatus(
            conditions: [JobCondition(type: "Complete", status: "True", lastProbeTime: now, lastTransitionTime: now)],
            startTime: now, completionTime: now, active: 0, succeeded: 1)
        let written = try await client.updateStatus(finished)
        #expect(written.isFinished)
        #expect(written.status?.completionTime == now)
        let read = try await client.getStatus(Job.self, name: "build", namespace: namespace)
        #expect(read.status?.succeeded == 1)

        let patched = try await client.patchStatus(Job.self, name: "build", namespace: namespace,
                                                   patch: .merge(["status": ["failed": 2]]))
        #expect(patched.status?.failed == 2)

        let selected = try await client.list(Job.self, namespace: namespace, options: ListOptions(labelSelector: "app=test"))
        #expect(selected.items.count == 1)
        let none = try await client.list(Job.self, namespace: namespace, options: ListOptions(labelSelector: "app=other"))
        #expect(none.items.isEmpty)
        let byField = try await client.list(Job.self, namespace: namespace, options: ListOptions(fieldSelector: "metadata.name=build"))
        #expect(byField.items.count == 1)

        try await client.delete(Job.self, name: "build", namespace: namespace,
                                options: DeleteOptions(propagationPolicy: .foreground))
    }

    @Test func staleResourceVersionConflictsAndDuplicateCreateAlreadyExists() async throws {
        let cp = try await ControlPlane.shared()
        let client = try cp.client()
        let namespace = try await cp.makeNamespace("conflict")
        let first = try await client.create(ConfigMap(metadata: ObjectMeta(name: "cm", namespace: namespace), data: ["v": "1"]))
        var newer = first
        newer.data = ["v": "2"]
        _ = try await client.update(newer)
        var stale = first
        stale.data = ["v": "3"]
        await #expect { _ = try await client.update(stale) } throws: { error in
            guard let api = error.kubeAPIError else { return false }
            return api.code == 409 && api.isConflict && !api.isAlreadyExists
        }
        let duplicate = ConfigMap(metadata: ObjectMeta(name: "cm", namespace: namespace), data: ["v": "dup"])
        await #expect { _ = try await client.create(duplicate) } throws: { error in
            guard let api = error.kubeAPIError else { return false }
            return api.isAlreadyExists && !api.isConflict
        }
        // modify() re-reads and retries on conflict.
        let modified = try await client.modify(ConfigMap.self, name: "cm", namespace: namespace) { $0.data?["v"] = "4" }
        #expect(modified.data?["v"] == "4")
    }

    @Test func deletePreconditionsAndPropagation() async throws {
        let cp = try await ControlPlane.shared()
        let client = try cp.client()
        let namespace = try await cp.makeNamespace("delete")
        let cm = try await client.create(ConfigMap(metadata: ObjectMeta(name: "cm", namespace: namespace)))
        await #expect {
            try await client.delete(ConfigMap.self, name: "cm", namespace: namespace,
                                    options: DeleteOptions(preconditions: .init(uid: "not-the-uid")))
        } throws: { $0.kubeAPIError?.isConflict == true }
        try await client.delete(ConfigMap.self, name: "cm", namespace: namespace,
                                options: DeleteOptions(propagationPolicy: .background,
                                                       preconditions: .init(uid: cm.metadata.uid, resourceVersion: cm.metadata.resourceVersion)))
        await #expect { _ = try await client.get(ConfigMap.self, name: "cm", namespace: namespace) } throws: { $0.isNotFound }
    }

    @Test func notFoundIsDecoded() async throws {
        let cp = try await ControlPlane.shared()
        await #expect { _ = try await cp.client().get(ConfigMap.self, name: "missing", namespace: "default") } throws: { error in
            guard let api = error.kubeAPIError else { return false }
            return api.code == 404 && api.reason == "NotFound" && api.status.details?.name == "missing"
        }
    }

    @Test func invalidIsDecodedWithCauses() async throws {
        let cp = try await ControlPlane.shared()
        await #expect {
            _ = try await cp.client().create(ConfigMap(metadata: ObjectMeta(name: "Not_Valid", namespace: "default")))
        } throws: { error in
            guard let api = error.kubeAPIError else { return false }
            return api.isInvalid && api.causes.contains { $0.field == "metadata.name" }
        }
    }

    @Test func serverSideApplyConflictsUnlessForced() async throws {
        let cp = try await ControlPlane.shared()
        let client = try cp.client()
        let namespace = try await cp.makeNamespace("apply")
        let intent: JSONValue = ["apiVersion": "v1", "kind": "ConfigMap",
                                 "metadata": ["name": "shared", "namespace": .string(namespace)], "data": ["key": "from-a"]]
        _ = try await client.patch(ConfigMap.self, name: "shared", namespace: namespace, patch: .apply(intent, force: false),
                                   options: WriteOptions(fieldManager: "manager-a"))
        var other = intent
        other["data"] = ["key": "from-b"]
        await #expect {
            _ = try await client.patch(ConfigMap.self, name: "shared", namespace: namespace, patch: .apply(other, force: false),
                                       options: WriteOptions(fieldManager: "manager-b"))
        } throws: { $0.kubeAPIError?.isConflict == true }
        let forced = try await client.patch(ConfigMap.self, name: "shared", namespace: namespace, patch: .apply(other, force: true),
                                            options: WriteOptions(fieldManager: "manager-b"))
        #expect(forced.data?["key"] == "from-b")
        // Dry run changes nothing.
        var dry = other
        dry["data"] = ["key": "dry"]
        let dryResult = try await client.patch(ConfigMap.self, name: "shared", namespace: namespace, patch: .apply(dry, force: true),
                                               options: WriteOptions(dryRun: true, fieldManager: "manager-b"))
        #expect(dryResult.data?["key"] == "dry")
        #expect(try await client.get(ConfigMap.self, name: "shared", namespace: namespace).data?["key"] == "from-b")
    }

    @Test func updatesKeepFieldsTheModelDoesNotKnow() async throws {
        let cp = try await ControlPlane.shared()
        try await WidgetCRD.install(on: cp)
        let client = try cp.client()
        let namespace = try await cp.makeNamespace("roundtrip")
        // A Pod carries many fields the Pod model leaves out (dnsPolicy, enableServiceLinks, …).
        _ = try await client.create(Pod(metadata: ObjectMeta(name: "p", namespace: namespace),
                                        spec: PodSpec(containers: [Container(name: "c", image: "busybox")])))
        let before = try await client.get(JSONValue.self, resource: .pods, name: "p", namespace: namespace)
        #expect(before.value(at: "spec", "dnsPolicy") != nil)
        let after = try await client.modify(Pod.self, name: "p", namespace: namespace) { pod in
            pod.metadata.labels = ["touched": "yes"]
        }
        #expect(after.metadata.labels?["touched"] == "yes")
        let raw = try await client.get(JSONValue.self, resource: .pods, name: "p", namespace: namespace)
        #expect(raw.value(at: "spec", "dnsPolicy") == before.value(at: "spec", "dnsPolicy"))
        #expect(raw.value(at: "spec", "enableServiceLinks") == before.value(at: "spec", "enableServiceLinks"))
        #expect(raw.value(at: "spec", "containers")?.arrayValue?.first?["terminationMessagePath"]
            == before.value(at: "spec", "containers")?.arrayValue?.first?["terminationMessagePath"])
    }

    @Test func largeListIsPaged() async throws {
        let cp = try await ControlPlane.shared()
        let client = try cp.client()
        let namespace = try await cp.makeNamespace("paging")
        let count = 1_234
        try await withThrowingTaskGroup(of: Void.self) { group in
            for start in stride(from: 0, to: count, by: count / 8 + 1) {
                group.addTask {
                    for index in start..<min(start + count / 8 + 1, count) {
                        _ = try await client.create(ConfigMap(metadata: ObjectMeta(name: "cm-\(index)", namespace: namespace)))
                    }
                }
            }
            try await group.waitForAll()
        }
        let firstPage = try await client.list(ConfigMap.self, namespace: namespace, options: ListOptions(limit: 500))
        #expect(firstPage.items.count == 500)
        #expect(firstPage.metadata.continue?.isEmpty == false)
        #expect(firstPage.metadata.remainingItemCount == Int64(count - 500))
        let all = try await client.listAll(ConfigMap.self, namespace: namespace, options: ListOptions(limit: 500))
        let names = Set(all.items.compactMap { $0.metadata.name }.filter { $0.hasPrefix("cm-") })
        #expect(names.count == count)
        #expect(!all.resourceVersion.isEmpty)
    }

    @Test func logsOfAPodWithoutLogsGiveAClearError() async throws {
        let cp = try await ControlPlane.shared()
        let client = try cp.client()
        let namespace = try await cp.makeNamespace("logs")
        _ = try await client.create(Pod(metadata: ObjectMeta(name: "never-ran", namespace: namespace),
                                        spec: PodSpec(containers: [Container(name: "main", image: "busybox")])))
        await #expect {
            _ = try await client.logs(pod: "never-ran", namespace: namespace, options: LogOptions(container: "main", tailLines: 10))
        } throws: { error in
            guard let unavailable = error as? LogsUnavailable else { return false }
            return "\(unavailable)" == "no log for container \"main\" of pod \(namespace)/never-ran: it has not been scheduled to a node (phase Pending)"
        }
        await #expect {
            _ = try await client.logs(pod: "no-such-pod", namespace: namespace)
        } throws: { $0.isNotFound }
    }

    @Test func eventsCanBeCreated() async throws {
        let cp = try await ControlPlane.shared()
        let client = try cp.client()
        let namespace = try await cp.makeNamespace("events")
        let cm = try await client.create(ConfigMap(metadata: ObjectMeta(name: "subject", namespace: namespace)))
        let now = Date(timeIntervalSince1970: Date().timeIntervalSince1970.rounded(.down))
        let event = try await client.createEvent(Event(
            metadata: ObjectMeta(namespace: namespace, generateName: "subject."),
            involvedObject: ObjectReference(to: cm), reason: "Tested", message: "an event", type: "Normal",
            count: 1, firstTimestamp: now, lastTimestamp: now, source: EventSource(component: "image-builder-tests")))
        #expect(event.metadata.name?.hasPrefix("subject.") == true)
        let listed = try await client.list(Event.self, namespace: namespace,
                                           options: ListOptions(fieldSelector: "involvedObject.name=subject"))
        #expect(listed.items.map(\.reason) == ["Tested"])
    }

    @Test func connectionsAreReused() async throws {
        let cp = try await ControlPlane.shared()
        let http = HTTPClient()
        let client = KubernetesClient(configuration: try ClientConfiguration.load(kubeconfig: cp.kubeconfig(for: .admin), environment: [:]),
                                      http: http)
        for _ in 0..<10 {
            let response = try await client.send(KubernetesClient.Request(path: "/version"))
            #expect(response.httpVersion == "1.1")
        }
        #expect(http.transfersStarted == 10)
        #expect(http.connectionsOpened == 1)
    }

    @Test func http2MultiplexesOnOneConnection() async throws {
        let cp = try await ControlPlane.shared()
        let http = HTTPClient(http2: true)
        let client = KubernetesClient(configuration: try ClientConfiguration.load(kubeconfig: cp.kubeconfig(for: .admin), environment: [:]),
                                      http: http)
        let response = try await client.send(KubernetesClient.Request(path: "/version"))
        #expect(response.httpVersion == "2")
        let version = try JSONDecoder().decode(JSONValue.self, from: response.body)
        #expect(version["gitVersion"]?.stringValue?.hasPrefix("v1.") == true)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<8 {
                group.addTask { _ = try await client.send(KubernetesClient.Request(path: "/version")) }
            }
            try await group.waitForAll()
        }
        #expect(http.connectionsOpened == 1)
    }
}
