import Foundation
import ImageBuilder
import KubeClient
import KubeTestSupport
import KubeTypes
import TestHarness
import Testing

/// What people run against the statuses the operator writes on a real apiserver: `kubectl get
/// ispec`, `kubectl wait`, Argo CD's health check (`deploy/argocd/`, run by Debian's Lua) and
/// `image-builder logs` where there is no log to read (the control plane has no kubelet; the log
/// itself is read on the node tier, in RealBuildTests).
@Suite("kubectl, Argo CD health and image-builder logs on real statuses", .serialized)
struct CommandLineTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    func kubectl(_ world: OperatorFixture, _ arguments: [String]) async throws -> String {
        try await world.controlPlane.kubectl(arguments + ["-n", world.namespace])
    }

    /// `image-builder logs ARGS` with the admin kubeconfig.
    func logs(_ world: OperatorFixture, _ arguments: [String]) async throws -> CommandResult {
        let executable = try #require(builtExecutable("image-builder"), "the image-builder executable is not beside the tests")
        return try await runCommand(executable, ["logs"] + arguments + ["-n", world.namespace, "--kubeconfig",
                                                                        world.controlPlane.kubeconfig(for: .admin)])
    }

    /// The row of `name` in `kubectl get ispec`, split into columns (NAME STATUS REASON IMAGE AGE).
    func row(_ world: OperatorFixture, _ name: String) async throws -> [String] {
        let table = try await kubectl(world, ["get", "ispec"])
        let lines = table.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init) }
        #expect(lines.first == ["NAME", "STATUS", "REASON", "IMAGE", "AGE"], "\(table)")
        return try #require(lines.first { $0.first == name }, "\(table)")
    }

    @Test func getShowsPhaseReasonImageAndWaitSeesReady() async throws {
        let world = try await OperatorFixture.make("columns")
        defer { Task { await world.stop() } }
        try await world.withOperator { _ in
            _ = try await world.create(world.imageSpec("shown"))
            let job = try await world.waitForBuild("shown")
            let building = try await row(world, "shown")
            #expect(building[1] == "Pending" || building[1] == "Running")
            #expect(["BuildStarted", "BuildPending", "Building"].contains(building[2]), "\(building)")

            // kubectl wait, started before the build ends, returns when Ready turns True.
            async let waited = world.controlPlane.kubectlResult(
                ["wait", "--for=condition=Ready", "imagespec/shown", "-n", world.namespace, "--timeout=120s"])
            try await world.finish(job, exitCode: 0, message: "sha256:" + String(repeating: "4", count: 64))
            let result = try await waited
            #expect(result.succeeded, "\(result.stderr)")
            #expect(result.stdout.contains("condition met"))
            let ready = try await world.get("shown")
            let built = try await row(world, "shown")
            #expect(built[1] == "Succeeded" && built[2] == "BuildSucceeded" && built[3] == ready.status?.image, "\(built)")

            // A stalled spec: `kubectl wait --for=condition=Stalled` returns, Ready does not.
            _ = try await world.create(world.imageSpec("broken", conda: ["-c"]))
            let stalled = try await world.controlPlane.kubectlResult(
                ["wait", "--for=condition=Stalled", "imagespec/broken", "-n", world.namespace, "--timeout=120s"])
            #expect(stalled.succeeded, "\(stalled.stderr)")
            let notReady = try await world.controlPlane.kubectlResult(
                ["wait", "--for=condition=Ready", "imagespec/broken", "-n", world.namespace, "--timeout=1s"])
            #expect(!notReady.succeeded)
            #expect(try await row(world, "broken")[1...2] == ["Failed", "InvalidSpec"])
        }
    }

    // MARK: - Argo CD

    /// Runs `deploy/argocd/imagespec-health.lua` as Argo CD does: `obj` is the object (JSON
    /// decoded into Lua tables), the script returns `hs`. Returns (status, message).
    func argoHealth(_ object: JSONValue) async throws -> (String, String) {
        let lua = try #require(["/usr/bin/lua5.4", "/usr/bin/lua5.3"].first { FileManager.default.isExecutableFile(atPath: $0) },
                               "Debian's lua5.4 is not installed: run scripts/install-deps.sh")
        let script = Self.repository.appendingPathComponent("deploy/argocd/imagespec-health.lua").path
        let harness = """
            obj = \(LuaLiteral.of(object))
            local check = assert(loadfile(arg[1]))
            local hs = check()
            io.write(hs.status, "\\n", hs.message or "", "\\n")
            """
        let result = try await runCommand(lua, ["-", script], input: Data(harness.utf8))
        #expect(result.succeeded, "lua: \(result.stderr)")
        let lines = result.stdout.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        return (lines.first ?? "", lines.count > 1 ? lines[1].trimmingCharacters(in: .newlines) : "")
    }

    func object(_ world: OperatorFixture, _ name: String) async throws -> JSONValue {
        try await world.client.get(JSONValue.self, resource: ImageSpec.resourceType, name: name, namespace: world.namespace)
    }

    @Test func argoCDHealthFollowsTheStatusTheOperatorWrites() async throws {
        let world = try await OperatorFixture.make("argo")
        defer { Task { await world.stop() } }
        // Before the operator has looked: Progressing.
        _ = try await world.create(world.imageSpec("app"))
        #expect(try await argoHealth(try await object(world, "app")).0 == "Progressing")
        try await world.withOperator { _ in
            let job = try await world.waitForBuild("app")
            let building = try await argoHealth(try await object(world, "app"))
            #expect(building.0 == "Progressing" && building.1.hasPrefix("Build"), "\(building)")
            try await world.finish(job, exitCode: 0, message: "sha256:" + String(repeating: "5", count: 64))
            try await world.waitFor("app", "ready") { $0.isTrue(Condition.ready) }
            let healthy = try await argoHealth(try await object(world, "app"))
            #expect(healthy.0 == "Healthy" && healthy.1.hasPrefix("BuildSucceeded"), "\(healthy)")

            // A failed build: Degraded, saying where it failed.
            _ = try await world.create(world.imageSpec("fails", apt: ["nosuchpackage"]))
            let failing = try await world.waitForBuild("fails")
            try await world.finish(failing, exitCode: 1, message: "E: Unable to locate package nosuchpackage")
            try await world.waitFor("fails", "stalled") { $0.isTrue(Condition.stalled) }
            let degraded = try await argoHealth(try await object(world, "fails"))
            #expect(degraded.0 == "Degraded" && degraded.1.contains("nosuchpackage"), "\(degraded)")

            // An invalid spec: Degraded, naming the field.
            _ = try await world.create(world.imageSpec("invalid", conda: ["-c"]))
            try await world.waitFor("invalid", "stalled") { $0.isTrue(Condition.stalled) }
            let invalid = try await argoHealth(try await object(world, "invalid"))
            #expect(invalid.0 == "Degraded" && invalid.1.hasPrefix("InvalidSpec") && invalid.1.contains("spec.packages.conda"), "\(invalid)")

            // A cancelled build: Suspended.
            _ = try await world.create(world.imageSpec("paused", apt: ["git"]))
            _ = try await world.waitForBuild("paused")
            _ = try await world.client.patch(ImageSpec.self, name: "paused", namespace: world.namespace,
                                             patch: .merge(["spec": ["cancel": true]]))
            try await world.waitFor("paused", "cancelled") { $0.status?.phase == "Cancelled" }
            #expect(try await argoHealth(try await object(world, "paused")).0 == "Suspended")
        }
        // A change the operator has not seen yet (it is stopped): Progressing, whatever the old status said.
        _ = try await world.client.patch(ImageSpec.self, name: "app", namespace: world.namespace,
                                         patch: .merge(["spec": ["packages": ["apt": ["curl", "git"]]]]))
        let changed = try await argoHealth(try await object(world, "app"))
        #expect(changed.0 == "Progressing" && changed.1.contains("generation"), "\(changed)")
    }

    @Test func argoCDConfigMapEmbedsTheScriptAsItIs() throws {
        let directory = Self.repository.appendingPathComponent("deploy/argocd")
        let script = try String(contentsOf: directory.appendingPathComponent("imagespec-health.lua"), encoding: .utf8)
        let stream = YAMLLoader.load(try String(contentsOf: directory.appendingPathComponent("argocd-cm.yaml"), encoding: .utf8))
        #expect(stream.error == nil)
        let configMap = try #require(stream.documents.first?.value)
        #expect(configMap.value(at: "data", "resource.customizations.health.primehub.io_ImageSpec")?.stringValue == script)
    }

    // MARK: - image-builder logs, where there is no log

    @Test func logsSaysWhyThereIsNoLog() async throws {
        let world = try await OperatorFixture.make("logs")
        defer { Task { await world.stop() } }
        // No such object; an ImageSpec the operator has not seen.
        let missing = try await logs(world, ["nothing"])
        #expect(missing.status == 1 && missing.stderr.contains("no imagespec (or image) nothing in namespace \(world.namespace)"),
                "\(missing.stderr)")
        _ = try await world.create(world.imageSpec("waiting"))
        let unseen = try await logs(world, ["waiting"])
        #expect(unseen.status == 1 && unseen.stderr.contains("has no build yet (no status yet)"), "\(unseen.stderr)")

        try await world.withOperator { _ in
            let job = try await world.waitForBuild("waiting")
            let jobName = job.metadata.name ?? ""
            // The Job has no Pod yet (no job controller here): -f would wait for one.
            let noPod = try await logs(world, ["waiting"])
            #expect(noPod.status == 1 && noPod.stderr.contains("build \(jobName) has no pod yet; -f waits for it"), "\(noPod.stderr)")
            // A build that is not this ImageSpec's.
            let unknown = try await logs(world, ["waiting", "--build", "waiting-00000000"])
            #expect(unknown.status == 1 && unknown.stderr.contains("has no build waiting-00000000: its builds are \(jobName)"),
                    "\(unknown.stderr)")

            // A Pod that cannot start: the reason from its status.
            let owner = OwnerReference(apiVersion: "batch/v1", kind: "Job", name: jobName, uid: job.metadata.uid ?? "",
                                       controller: true, blockOwnerDeletion: true)
            var pod = try await world.client.create(Pod(
                metadata: ObjectMeta(name: "\(jobName)-pending", namespace: world.namespace, labels: job.spec?.template.metadata?.labels,
                                     ownerReferences: [owner]),
                spec: PodSpec(containers: [Container(name: "build", image: "registry.invalid/builder:v1")], restartPolicy: "Never")))
            pod.status = PodStatus(phase: "Pending", containerStatuses: [ContainerStatus(name: "build", state: ContainerState(
                waiting: ContainerStateWaiting(reason: "ErrImagePull", message: "registry.invalid: no such host")))])
            _ = try await world.client.updateStatus(pod)
            let pending = try await logs(world, ["waiting"])
            #expect(pending.status == 1 && pending.stderr.contains("build \(jobName) has no log yet: pod \(jobName)-pending"), "\(pending.stderr)")
            #expect(pending.stderr.contains("not been scheduled"), "\(pending.stderr)")

            // Cancelled: the Job and its Pod are deleted; the message says how the build ended.
            _ = try await world.client.patch(ImageSpec.self, name: "waiting", namespace: world.namespace,
                                             patch: .merge(["spec": ["cancel": true]]))
            try await world.waitFor("waiting", "cancelled") { $0.status?.phase == "Cancelled" }
            try await eventually("the Job is deleted") { try await world.job(jobName) == nil }
            try await world.client.delete(Pod.self, name: "\(jobName)-pending", namespace: world.namespace)  // no GC here
            let gone = try await logs(world, ["waiting"])
            #expect(gone.status == 1 && gone.stderr.contains("the pod of build \(jobName) is gone: its Job was deleted; the build ended Cancelled"),
                    "\(gone.stderr)")
            let named = try await logs(world, ["waiting", "--build", jobName, "-f"])
            #expect(named.status == 1 && named.stderr.contains("is gone"), "\(named.stderr)")

            // The Image path: NAME is an Image built with "Build Custom Image".
            _ = try await world.client.create(Image(metadata: ObjectMeta(name: "custom", namespace: world.namespace), spec: Image.Spec(
                displayName: "custom", type: "both", imageSpec: Image.BuildRequest(baseImage: world.notebookBase, packages: Packages(apt: ["curl"])))))
            var imageJob = ""
            try await eventually("the Image's build starts") {
                imageJob = (try await world.client.list(Job.self, namespace: world.namespace).items
                    .first { $0.metadata.name?.hasPrefix("image-custom-") == true }?.metadata.name) ?? ""
                guard !imageJob.isEmpty else { return false }
                let image = try await world.client.get(Image.self, name: "custom", namespace: world.namespace)
                return ImagePath.buildState(of: image)?.jobName == imageJob
            }
            let image = try await logs(world, ["custom"])
            #expect(image.status == 1 && image.stderr.contains("build \(imageJob) has no pod yet"), "\(image.stderr)")
            // A regular Image is not built by the operator.
            _ = try await world.client.create(Image(metadata: ObjectMeta(name: "regular", namespace: world.namespace),
                                                    spec: Image.Spec(displayName: "regular", url: "example.com/regular:1")))
            let regular = try await logs(world, ["regular", "--image"])
            #expect(regular.status == 1 && regular.stderr.contains("has no spec.imageSpec"), "\(regular.stderr)")
        }
    }
}

/// A JSON value as a Lua table constructor, as Argo CD hands objects to its health scripts
/// (arrays 1-based, numbers as numbers, null left out).
enum LuaLiteral {
    static func of(_ value: JSONValue) -> String {
        switch value {
        case .null: return "nil"
        case .bool(let flag): return flag ? "true" : "false"
        case .int(let number): return String(number)
        case .double(let number): return "\(number)"
        case .string(let text): return quoted(text)
        case .array(let items): return "{" + items.map(of).joined(separator: ", ") + "}"
        case .object(let members):
            return "{" + members.sorted { $0.key < $1.key }.filter { $0.value != .null }
                .map { "[\(quoted($0.key))] = \(of($0.value))" }.joined(separator: ", ") + "}"
        }
    }

    static func quoted(_ text: String) -> String {
        var out = "\""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"): out += "\\" + String(UnicodeScalar(byte))
            case 0x20...0x7e: out += String(UnicodeScalar(byte))
            default: out += "\\" + String(repeating: "0", count: 3 - String(byte).count) + String(byte)
            }
        }
        return out + "\""
    }
}
