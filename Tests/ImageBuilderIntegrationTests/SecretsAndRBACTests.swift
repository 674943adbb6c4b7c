import Foundation
import ImageBuilder
import KubeClient
import KubeTestSupport
import KubeTypes
import TestHarness
import Testing

/// The operator as it is deployed — the `image-builder run` executable at trace level, as the
/// ServiceAccount bound to nothing but `deploy/rbac.yaml` — on a control plane of its own that
/// writes an audit log. After builds of every kind (success, failure, cancel, the Image path):
/// no credential of the push or pull secrets in anything the operator wrote or printed; build Pods
/// with no service-account token, no host paths and only the privileges the strategy documents;
/// every request the operator made allowed by `deploy/rbac.yaml`, and the grants it never used listed.
@Suite("Secrets never leak; the deployed RBAC is what the operator uses")
struct SecretsAndRBACTests {
    /// Distinctive credentials: the push secret's (the test registry's user), the configured pull
    /// secret's and an ImageSpec's own pull secret (both for registries that do not exist).
    static let pullHost = "pull.registry.invalid"
    static let pullUser = "reader-4b1f"
    static let pullPassword = "PULL-only-9d27c3e1"
    static let basePullHost = "base.registry.invalid"
    static let basePullUser = "base-reader-77aa"
    static let basePullPassword = "BASE-pull-51e06f2b"

    static func auditPolicy(in directory: String) throws -> String {
        let path = directory + "/audit-policy.yaml"
        try """
            apiVersion: audit.k8s.io/v1
            kind: Policy
            omitStages: [RequestReceived]
            rules:
              - level: Metadata
            """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// Every form a credential could take in text: as it is, base64 of `user:password` (the
    /// `auth` field), and base64 of the password alone.
    static func markers(user: String, password: String) -> [String] {
        [password, Data("\(user):\(password)".utf8).base64EncodedString(), Data(password.utf8).base64EncodedString()]
    }

    @Test func nothingLeaksAndEveryRequestIsGranted() async throws {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("ib-audit-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let auditLog = scratch + "/audit.log"
        let controlPlane = try await ControlPlane.start(.init(extraAPIServerArguments: [
            "--audit-policy-file=\(try Self.auditPolicy(in: scratch))", "--audit-log-path=\(auditLog)",
        ]))
        do {
            try await run(on: controlPlane, auditLog: auditLog, scratch: scratch)
        } catch {
            // A flow that got stuck may have been denied something: say what.
            let denied = (try? Self.audited(auditLog, user: { $0.hasPrefix("system:serviceaccount:leaks-") }).denied) ?? []
            if !denied.isEmpty { Issue.record("deploy/rbac.yaml lacks: \(Set(denied).sorted())") }
            await controlPlane.stop()
            throw error
        }
        await controlPlane.stop()
    }

    func run(on controlPlane: ControlPlane, auditLog: String, scratch: String) async throws {
        let executable = try #require(builtExecutable("image-builder"), "the image-builder executable is not beside the tests")
        try await controlPlane.kubectl(["apply", "-k", CommandLineTests.repository.appendingPathComponent("crds").path])
        try await CRDInstallation.waitUntilServed(on: controlPlane)
        let admin = try controlPlane.client()
        let world = try await OperatorFixture.make("leaks", on: controlPlane)
        defer { Task { await world.stop() } }
        let namespace = world.namespace
        // The configured pull secret and an ImageSpec's own, with credentials of their own.
        try await admin.delete(Secret.self, name: "registry-pull", namespace: namespace)
        _ = try await admin.create(OperatorFixture.dockerConfigSecret("registry-pull", namespace: namespace, host: Self.pullHost,
                                                                      username: Self.pullUser, password: Self.pullPassword))
        _ = try await admin.create(OperatorFixture.dockerConfigSecret("base-pull", namespace: namespace, host: Self.basePullHost,
                                                                      username: Self.basePullUser, password: Self.basePullPassword))
        let token = try await OperatorRBACTests.serviceAccountToken(world)
        let kubeconfig = scratch + "/kubeconfig"
        try """
            apiVersion: v1
            kind: Config
            clusters: [{name: test, cluster: {server: "\(controlPlane.serverURL.absoluteString)", certificate-authority: "\(controlPlane.caFile)"}}]
            users: [{name: image-builder, user: {token: "\(token)"}}]
            contexts: [{name: test, context: {cluster: test, user: image-builder, namespace: \(namespace)}}]
            current-context: test
            """.write(toFile: kubeconfig, atomically: true, encoding: .utf8)
        let configFile = scratch + "/config.yaml"
        try """
            watchNamespaces: [\(namespace)]
            registry:
              pushRepoPrefix: \(world.registry.host)/primehub
              pushSecret: registry-push
              pullSecret: registry-pull
              insecure: true
            """.write(toFile: configFile, atomically: true, encoding: .utf8)  // the default strategy: buildah

        let logFile = scratch + "/operator.log"
        FileManager.default.createFile(atPath: logFile, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = ["run", "--kubeconfig", kubeconfig, "--config", configFile, "--leader-election-namespace", namespace,
                             "--probe-address", "off", "--log-format", "json", "--log-level", "trace", "--workers", "2"]
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logFile))
        process.standardOutput = log
        process.standardError = log
        try process.run()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }

        // Success (with an ImageSpec pull secret and publishing), failure, cancel, the Image path.
        _ = try await world.create(world.imageSpec("succeeds", publish: Publish(displayName: "Succeeds"), pullSecret: "base-pull"))
        _ = try await world.create(world.imageSpec("fails", apt: ["nosuchpackage"]))
        _ = try await world.create(world.imageSpec("cancelled", apt: ["git"]))
        _ = try await admin.create(Image(metadata: ObjectMeta(name: "custom", namespace: namespace), spec: Image.Spec(
            displayName: "custom", type: "both", imageSpec: Image.BuildRequest(baseImage: world.notebookBase, packages: Packages(apt: ["curl"])))))
        let succeeding = try await world.waitForBuild("succeeds")
        let failing = try await world.waitForBuild("fails")
        let cancelledJob = try await world.waitForBuild("cancelled").metadata.name ?? ""
        var imageJob: Job?
        try await eventually("the Image's build starts") {
            imageJob = try await admin.list(Job.self, namespace: namespace).items.first { $0.metadata.name?.hasPrefix("image-custom-") == true }
            return imageJob != nil
        }
        // While the builds run, their Job specs as the apiserver holds them.
        let jobsWhileBuilding = try await admin.list(JSONValue.self, resource: Job.resourceType, namespace: namespace).items
        try await world.finish(succeeding, exitCode: 0, message: "sha256:" + String(repeating: "6", count: 64))
        try await world.finish(failing, exitCode: 1,
                               message: "E: Unable to locate package nosuchpackage\nimage-builder: the build failed (exit status 100); nothing was pushed")
        try await world.finish(try #require(imageJob), exitCode: 0, message: "sha256:" + String(repeating: "8", count: 64))
        _ = try await admin.patch(ImageSpec.self, name: "cancelled", namespace: namespace, patch: .merge(["spec": ["cancel": true]]))

        try await world.waitFor("succeeds", "ready") { $0.isTrue(Condition.ready) }
        try await world.waitFor("fails", "failed") { $0.isTrue(Condition.stalled) }
        try await world.waitFor("cancelled", "cancelled") { $0.status?.phase == "Cancelled" }
        try await eventually("the cancelled Job is deleted") { try await world.job(cancelledJob) == nil }
        try await eventually("the Image is built and published") {
            (try await admin.get(Image.self, name: "custom", namespace: namespace)).spec.url?.isEmpty == false
        }
        try await eventually("the Succeeds Image is published") {
            (try? await admin.get(Image.self, name: "succeeds", namespace: namespace))?.spec.url?.isEmpty == false
        }
        _ = try await world.waitForEvent(about: "succeeds", reason: "BuildSucceeded")
        // The per-build Secrets holding the merged credentials go when their builds end.
        try await eventually("per-build Secrets are deleted") {
            try await admin.list(Secret.self, namespace: namespace).items.compactMap(\.metadata.name).sorted()
                == ["base-pull", "registry-pull", "registry-push"]
        }
        kill(process.processIdentifier, SIGTERM)
        try await eventually(timeout: .seconds(60), "the operator stops on SIGTERM") { !process.isRunning }
        try log.close()

        // 1. No credential material anywhere the operator wrote.
        var written: [String: String] = [:]
        for (kind, resource) in [("imagespecs", ImageSpec.resourceType), ("images", Image.resourceType),
                                 ("imagespecjobs", ImageSpecJob.resourceType), ("events", Event.resourceType),
                                 ("configmaps", ConfigMap.resourceType), ("jobs", Job.resourceType), ("pods", Pod.resourceType),
                                 ("leases", Lease.resourceType)] {
            let items = try await admin.list(JSONValue.self, resource: resource, namespace: namespace).items
            written[kind] = String(decoding: try JSONEncoder().encode(items), as: UTF8.self)
        }
        written["jobs while building"] = String(decoding: try JSONEncoder().encode(jobsWhileBuilding), as: UTF8.self)
        let operatorLog = try String(contentsOfFile: logFile, encoding: .utf8)
        written["operator log (trace)"] = operatorLog
        #expect(operatorLog.contains("trace") || operatorLog.contains("debug"), "the log has no debug lines: \(operatorLog.prefix(500))")
        #expect(!(written["events"] ?? "").isEmpty && !(written["configmaps"] ?? "").isEmpty)
        let markers = Self.markers(user: OperatorFixture.registryUser, password: OperatorFixture.registryPassword)
            + Self.markers(user: Self.pullUser, password: Self.pullPassword)
            + Self.markers(user: Self.basePullUser, password: Self.basePullPassword)
        for (what, text) in written {
            for marker in markers {
                #expect(!text.contains(marker), "a credential (\(marker.prefix(4))…) is in \(what)")
            }
        }
        // Published Images name the pull secret, never the push secret.
        for name in ["succeeds", "custom"] {
            #expect(try await admin.get(Image.self, name: name, namespace: namespace).spec.pullSecret == "registry-pull")
        }

        // 2. Build Pods: no service-account token, no host namespaces or paths, the strategy's privileges only.
        #expect(jobsWhileBuilding.count == 4)
        for job in jobsWhileBuilding {
            let name = job.value(at: "metadata", "name")?.stringValue ?? ""
            let pod = try #require(job.value(at: "spec", "template", "spec"))
            #expect(pod["automountServiceAccountToken"] == .bool(false), "\(name)")
            for key in ["hostNetwork", "hostPID", "hostIPC"] { #expect(pod[key] == nil || pod[key] == .bool(false), "\(name): \(key)") }
            for volume in pod["volumes"]?.arrayValue ?? [] {
                let sources = Set((volume.objectValue ?? [:]).keys).subtracting(["name"])
                #expect(sources.isSubset(of: ["emptyDir", "configMap", "secret"]), "\(name): volume \(volume)")
            }
            let containers = (pod["initContainers"]?.arrayValue ?? []) + (pod["containers"]?.arrayValue ?? [])
            #expect(!containers.isEmpty)
            for container in containers {
                let context = container["securityContext"]
                #expect(context?["privileged"] == nil || context?["privileged"] == .bool(false), "\(name)")
                #expect(context?["allowPrivilegeEscalation"] == .bool(false), "\(name)")
                #expect(context?["readOnlyRootFilesystem"] == .bool(true), "\(name)")
                #expect(context?.value(at: "capabilities", "drop") == .array(["ALL"]), "\(name)")
                let added = Set(context?.value(at: "capabilities", "add")?.arrayValue?.compactMap(\.stringValue) ?? [])
                #expect(added.isSubset(of: Set(BuildPlanner.buildahCapabilities)), "\(name): \(added)")
                #expect(container["envFrom"] == nil, "\(name)")
            }
        }

        // 3. RBAC: every request of the operator's ServiceAccount was allowed, and what deploy/rbac.yaml
        // grants that it never used is listed.
        let user = "system:serviceaccount:\(namespace):image-builder"
        let (used, denied) = try Self.audited(auditLog, user: { $0 == user })
        #expect(!used.isEmpty, "no request of \(user) in the audit log")
        #expect(denied.isEmpty, "deploy/rbac.yaml lacks: \(Set(denied).sorted())")
        let granted = try Self.grantedRules()
        let unused = granted.subtracting(used).sorted()
        print("deploy/rbac.yaml grants \(granted.count) (group resource verb): \(granted.sorted())")
        print("used by these builds: \(used.sorted())")
        print("granted, not used by these builds: \(unused)")
        #expect(used.subtracting(granted).isEmpty, "used but not granted: \(used.subtracting(granted).sorted())")
    }

    /// The requests of the users `user` accepts in the audit log, as `group resource[/subresource]
    /// verb`, and those that were denied (403).
    static func audited(_ auditLog: String, user: (String) -> Bool) throws -> (used: Set<String>, denied: [String]) {
        var used: Set<String> = [], denied: [String] = []
        for line in try String(contentsOfFile: auditLog, encoding: .utf8).split(separator: "\n") {
            guard let event = try? JSONDecoder().decode(JSONValue.self, from: Data(line.utf8)),
                  user(event.value(at: "user", "username")?.stringValue ?? ""),
                  let resource = event.value(at: "objectRef", "resource")?.stringValue else { continue }
            let group = event.value(at: "objectRef", "apiGroup")?.stringValue ?? ""
            let subresource = event.value(at: "objectRef", "subresource")?.stringValue.map { "/" + $0 } ?? ""
            let verb = event.value(at: "verb")?.stringValue ?? ""
            let rule = "\(group.isEmpty ? "core" : group) \(resource)\(subresource) \(verb)"
            used.insert(rule)
            if event.value(at: "responseStatus", "code")?.intValue == 403 { denied.append(rule) }
        }
        return (used, denied)
    }

    /// `group resource verb` for every verb `deploy/rbac.yaml`'s ClusterRole grants.
    static func grantedRules() throws -> Set<String> {
        let text = try String(contentsOf: CommandLineTests.repository.appendingPathComponent("deploy/rbac.yaml"), encoding: .utf8)
        let role = try #require(YAMLLoader.load(text).documents.map(\.value).first { $0["kind"] == .string("ClusterRole") })
        var rules: Set<String> = []
        for rule in role["rules"]?.arrayValue ?? [] {
            for group in rule["apiGroups"]?.arrayValue?.compactMap(\.stringValue) ?? [] {
                for resource in rule["resources"]?.arrayValue?.compactMap(\.stringValue) ?? [] {
                    for verb in rule["verbs"]?.arrayValue?.compactMap(\.stringValue) ?? [] {
                        rules.insert("\(group.isEmpty ? "core" : group) \(resource) \(verb)")
                    }
                }
            }
        }
        return rules
    }
}
