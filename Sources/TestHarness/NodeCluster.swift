import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A real single-node Kubernetes cluster in which Pods run: a `ControlPlane` (apiserver on the
/// bridge address, Node+RBAC authorization, ServiceAccount admission, a controller manager with
/// the node, service-account, workload and garbage-collection controllers) plus kube-scheduler,
/// containerd, a hardened kubelet, kube-proxy (iptables) and a `LocalRegistry` holding the test
/// images, on a CNI bridge.
///
/// Everything listens on 127.0.0.1 or the bridge address. Pods reach the registry at
/// `podRegistryHost` (the bridge) and the apiserver through the `kubernetes` Service; the kubelet
/// and containerd pull through `registry.host` (loopback, plain HTTP). One node tier runs per
/// bridge at a time (a lock file per bridge; kube-proxy's rules are global, so a second tier on
/// another bridge runs without it). `stop()`
/// ends every process it started, removes the bridge, its firewall rules and its mounts; the
/// same clean-up runs at exit for an instance that was never stopped (`shared()`).
///
/// Needs root and what `scripts/install-deps.sh` installs and builds (kube-scheduler, kubelet,
/// kube-proxy, kubectl 1.20.2 and the images in `$IMAGE_BUILDER_CACHE/images`).
public final class NodeCluster: Sendable {
    /// How to start a node tier.
    public struct Options: Sendable {
        /// The Linux bridge Pods are attached to; created at start, deleted at stop.
        public var bridgeName: String
        /// The host's address on the bridge (gateway of the Pod network); everything a Pod
        /// reaches on the host listens here.
        public var bridgeAddress: String
        /// The Pod network (must contain `bridgeAddress`, must not clash with the host's routes).
        public var podSubnet: String
        /// The Service network; a REJECT rule keeps its unrouted addresses from leaving the machine.
        public var serviceClusterIPRange: String
        /// The node's name.
        public var nodeName: String
        /// Controllers of kube-controller-manager.
        public var controllers: [String]
        /// How long the node may take to become Ready (and the default ServiceAccount to appear).
        public var readyTimeout: Duration
        /// How long each server may take to answer after its start.
        public var startupTimeout: Duration
        /// How long to wait for another process's node tier on this machine to stop.
        public var lockTimeout: Duration
        /// Where the binaries are; nil means `ControlPlane.binaryDirectory`.
        public var binaryDirectory: String?
        /// Where the image registry tree is; nil means `NodeCluster.imageDirectory`.
        public var imageDirectory: String?
        /// Run kube-proxy (Services, e.g. `kubernetes`, from Pods). Its iptables chains are global:
        /// of tiers running at the same time (each on its own bridge), only one may run it.
        public var kubeProxy: Bool
        /// Run containerd and the kubelet in a mount namespace of their own in which
        /// `/var/log/pods` (a fixed path in kubelet 1.20) is a folder of the tier's: a kubelet
        /// removes the log folders there of Pods it does not know, so a tier beside another needs it.
        public var privatePodLogs: Bool

        public init(
            bridgeName: String = "cni0",
            bridgeAddress: String = "10.88.0.1",
            podSubnet: String = "10.88.0.0/16",
            serviceClusterIPRange: String = "10.0.0.0/24",
            nodeName: String = "node1",
            controllers: [String] = [
                "job", "garbagecollector", "namespace", "nodelifecycle", "serviceaccount",
                "serviceaccount-token", "replicaset", "deployment", "endpoint", "endpointslice", "podgc",
            ],
            readyTimeout: Duration = .seconds(180),
            startupTimeout: Duration = .seconds(90),
            lockTimeout: Duration = .seconds(900),
            binaryDirectory: String? = nil,
            imageDirectory: String? = nil,
            kubeProxy: Bool = true,
            privatePodLogs: Bool = false
        ) {
            self.kubeProxy = kubeProxy
            self.privatePodLogs = privatePodLogs
            self.bridgeName = bridgeName
            self.bridgeAddress = bridgeAddress
            self.podSubnet = podSubnet
            self.serviceClusterIPRange = serviceClusterIPRange
            self.nodeName = nodeName
            self.controllers = controllers
            self.readyTimeout = readyTimeout
            self.startupTimeout = startupTimeout
            self.lockTimeout = lockTimeout
            self.binaryDirectory = binaryDirectory
            self.imageDirectory = imageDirectory
        }
    }

    /// The test images in the registry, as the kubelet pulls them (`127.0.0.1:<port>/harness/…:latest`).
    public struct TestImages: Sendable, Hashable {
        /// Debian bookworm minbase + python3, pip, ca-certificates and the host's extra CAs; USER
        /// 1000 (`jovyan`, home `/home/jovyan`), no PEP 668 marker (pip may install as root).
        public var base: String
        /// Debian bookworm + buildah and ca-certificates (+ host CAs); env `BUILDAH_ISOLATION=chroot`,
        /// `STORAGE_DRIVER=vfs`.
        public var builder: String
        /// busybox `sleep infinity`: the Pod sandbox image.
        public var pause: String
        /// Manifest digests (`sha256:…`) by name (`base`, `builder`, `pause`).
        public var digests: [String: String]
    }

    /// The control plane (apiserver at `https://<bridgeAddress>:<port>`).
    public let controlPlane: ControlPlane
    /// The registry: `registry.host` is `127.0.0.1:<port>` (host, kubelet); see `podRegistryHost`.
    public let registry: LocalRegistry
    /// `<bridgeAddress>:<port>`: the same registry as Pods reach it (plain HTTP).
    public let podRegistryHost: String
    /// Image references of the test images.
    public let images: TestImages
    /// The host's address on the bridge.
    public let bridgeAddress: String
    /// The node's name.
    public let nodeName: String
    /// The 1.20.2 kubectl built by install-deps (a newer one may be first in PATH).
    public let kubectlPath: String
    /// The kubelet's `--seccomp-profile-root`: a Pod's `localhostProfile` is relative to it.
    public let seccompProfileRoot: String
    /// containerd's socket (for `ctr --address`).
    public let containerdSocket: String
    /// The directory holding the node's state, configuration and logs.
    public let directory: String
    /// The options it was started with.
    public let options: Options
    /// How long `start` took.
    public let startupDuration: Duration

    /// The Localhost seccomp profile for buildah builds, relative to `seccompProfileRoot`:
    /// containerd's RuntimeDefault (as containerd renders it for the default capability set)
    /// plus `unshare`, `mount` and `umount2`.
    public static let buildahSeccompProfile = "image-builder/buildah.json"

    private let containerd: ServerProcess
    private let kubelet: ServerProcess
    private let scheduler: ServerProcess
    private let kubeProxy: ServerProcess?
    /// Holds the mount namespace of `Options.privatePodLogs`.
    private let mountNamespace: ServerProcess?
    private let teardown: NodeTeardown
    private let lock: MachineLock
    private let stopped = Mutex(false)

    private init(
        controlPlane: ControlPlane, registry: LocalRegistry, images: TestImages, kubectlPath: String,
        seccompProfileRoot: String, containerdSocket: String, directory: String, options: Options,
        startupDuration: Duration, containerd: ServerProcess, kubelet: ServerProcess, scheduler: ServerProcess,
        kubeProxy: ServerProcess?, mountNamespace: ServerProcess?, teardown: NodeTeardown, lock: MachineLock
    ) {
        self.controlPlane = controlPlane
        self.registry = registry
        self.podRegistryHost = "\(options.bridgeAddress):\(registry.port)"
        self.images = images
        self.bridgeAddress = options.bridgeAddress
        self.nodeName = options.nodeName
        self.kubectlPath = kubectlPath
        self.seccompProfileRoot = seccompProfileRoot
        self.containerdSocket = containerdSocket
        self.directory = directory
        self.options = options
        self.startupDuration = startupDuration
        self.containerd = containerd
        self.kubelet = kubelet
        self.scheduler = scheduler
        self.kubeProxy = kubeProxy
        self.mountNamespace = mountNamespace
        self.teardown = teardown
        self.lock = lock
    }

    /// `$IMAGE_BUILDER_CACHE/images` (default `/var/cache/image-builder/images`), as built by
    /// `scripts/install-deps.sh`: `registry/` (a registry storage tree) and `images.txt`.
    public static var imageDirectory: String {
        let cache = ProcessInfo.processInfo.environment["IMAGE_BUILDER_CACHE"] ?? "/var/cache/image-builder"
        return cache + "/images"
    }

    // MARK: - Using it

    /// Path of the admin kubeconfig (token of `admin`, `system:masters`).
    public var kubeconfig: String { controlPlane.kubeconfig(for: .admin) }

    /// A `registries.conf` (containers-registries.conf(5), v2) for builds in Pods: pulls of
    /// `127.0.0.1:<port>/…` go to `podRegistryHost` over plain HTTP, so a Dockerfile's `FROM` can
    /// name the images as the kubelet does. A push must name `podRegistryHost` itself (push
    /// ignores `location`).
    public var registriesConf: String {
        """
        unqualified-search-registries = []

        [[registry]]
        prefix = "\(registry.host)"
        location = "\(podRegistryHost)"
        insecure = true

        [[registry]]
        location = "\(podRegistryHost)"
        insecure = true

        """
    }

    /// Runs the 1.20.2 `kubectl --kubeconfig <admin> args…`; returns stdout, throws on failure.
    @discardableResult
    public func kubectl(_ arguments: [String], input: String? = nil, timeout: Duration = .seconds(120))
        async throws -> String
    {
        try await runChecked(
            kubectlPath, ["--kubeconfig", kubeconfig] + arguments, input: input.map { Data($0.utf8) },
            timeout: timeout)
    }

    /// Like `kubectl(_:input:timeout:)` but returns the result whatever the exit status.
    public func kubectlResult(_ arguments: [String], input: String? = nil, timeout: Duration = .seconds(120))
        async throws -> CommandResult
    {
        try await runCommand(
            kubectlPath, ["--kubeconfig", kubeconfig] + arguments, input: input.map { Data($0.utf8) },
            timeout: timeout)
    }

    /// How a Pod ended.
    public struct FinishedPod: Sendable {
        /// `Succeeded` or `Failed`.
        public var phase: String
        /// The first container's exit code and termination message.
        public var exitCode: Int?
        public var terminationMessage: String
        /// `kubectl logs` of the first container (through the apiserver and the kubelet).
        public var logs: String
    }

    /// Waits until Pod `name` has finished (phase Succeeded or Failed) and returns how it ended.
    /// Throws after `timeout` with the Pod's last status (phase, container states, events).
    public func waitForPodToFinish(_ name: String, namespace: String = "default", timeout: Duration = .seconds(300))
        async throws -> FinishedPod
    {
        let deadline = ContinuousClock.now + timeout
        var last = ""
        while true {
            let result = try await kubectlResult(["get", "pod", name, "-n", namespace, "-o", "json"])
            if result.succeeded, let pod = try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any],
                let status = pod["status"] as? [String: Any]
            {
                let phase = status["phase"] as? String ?? ""
                let containers = status["containerStatuses"] as? [[String: Any]] ?? []
                last = "phase \(phase), containers \(containers.map { ($0["state"] as? [String: Any]).map { "\($0)" } ?? "?" })"
                if phase == "Succeeded" || phase == "Failed" {
                    let state = containers.first?["state"] as? [String: Any]
                    let terminated = state?["terminated"] as? [String: Any]
                    let logs = try await kubectlResult(["logs", name, "-n", namespace])
                    return FinishedPod(
                        phase: phase, exitCode: (terminated?["exitCode"] as? NSNumber)?.intValue,
                        terminationMessage: terminated?["message"] as? String ?? "",
                        logs: logs.succeeded ? logs.stdout : "kubectl logs failed: \(logs.stderr)")
                }
            } else {
                last = result.stderr
            }
            if ContinuousClock.now > deadline {
                let events = try? await kubectlResult(
                    ["get", "events", "-n", namespace, "--field-selector", "involvedObject.name=\(name)", "-o",
                     "custom-columns=REASON:.reason,MESSAGE:.message", "--no-headers"])
                throw HarnessError(
                    "Pod \(namespace)/\(name) did not finish within \(timeout); last seen: \(last)",
                    logTail: events?.stdout)
            }
            try await Task.sleep(for: .milliseconds(500))
        }
    }

    /// Log files by server name (control plane, registry, containerd, kubelet, scheduler, proxy).
    public var logFiles: [String: String] {
        var files = controlPlane.logFiles
        for (index, file) in registry.logFiles.enumerated() { files["docker-registry-\(index)"] = file }
        for server in [containerd, kubelet, scheduler, kubeProxy].compactMap({ $0 }) { files[server.name] = server.logFile }
        return files
    }

    /// Pids of every server process of the tier (for checks of what they listen on).
    var serverPIDs: [pid_t] {
        controlPlane.serverPIDs + registry.serverPIDs
            + [containerd, kubelet, scheduler, kubeProxy, mountNamespace].compactMap { $0?.pid }
    }

    /// The process holding the tier's mount namespace (`Options.privatePodLogs`).
    var mountNamespacePID: pid_t? { mountNamespace?.pid }

    /// True while containerd, the kubelet, the scheduler and kube-proxy run.
    public var isRunning: Bool {
        [containerd, kubelet, scheduler].allSatisfy(\.isRunning) && (kubeProxy?.isRunning ?? true)
    }

    // MARK: - Shared instance

    private static let sharedInstance = Mutex<Task<NodeCluster, any Error>?>(nil)

    /// The node tier shared by all tests of this process (default options), started on first use;
    /// concurrent callers wait for the same start, a failed start is reported to every caller.
    /// Never stop it: the exit handler tears it down.
    public static func shared() async throws -> NodeCluster {
        let task = sharedInstance.withLock { task in
            if let task { return task }
            // Unstructured on purpose: the start is owned by no single caller.
            let created = Task { try await NodeCluster.start() }
            task = created
            return created
        }
        return try await task.value
    }

    /// Starts a node tier, runs `body` with it and stops it, also when `body` throws.
    public static func withNodeCluster<T: Sendable>(
        _ options: Options = Options(), _ body: (NodeCluster) async throws -> T
    ) async throws -> T {
        let cluster = try await start(options)
        do {
            let result = try await body(cluster)
            await cluster.stop()
            return result
        } catch {
            await cluster.stop()
            throw error
        }
    }

    // MARK: - Starting

    /// Starts the tier; returns once the node is Ready (without taints) and the `default`
    /// ServiceAccount exists. Throws, with the reason and the log tail of the server concerned,
    /// when it cannot start; what was started is stopped again.
    public static func start(_ options: Options = Options()) async throws -> NodeCluster {
        let began = ContinuousClock.now
        let tools = try NodeTools(options: options)
        let imageDirectory = options.imageDirectory ?? Self.imageDirectory
        let digests = try readImageList(imageDirectory)
        let lock = try await MachineLock.acquire(bridge: options.bridgeName, timeout: options.lockTimeout)
        NodeTeardown.cleanUpStale(tools: tools, bridge: options.bridgeName)

        let directory: String
        do { directory = try makeHarnessDirectory(kind: "node") } catch {
            lock.release()
            throw error
        }
        let teardown = NodeTeardown(directory: directory, tools: tools, bridge: options.bridgeName)
        let hookKey = "node-\(directory)"
        let started = StartedServers()
        var controlPlane: ControlPlane?
        var registry: LocalRegistry?
        ChildRegistry.shared.addExitHook(hookKey) {
            terminate(started.all.reversed().compactMap(\.pid), grace: 1)
            teardown.run()
        }
        do {
            // The bridge first: the apiserver binds its address.
            try await teardown.createBridge(address: options.bridgeAddress, prefixLength: prefixLength(options.podSubnet))
            try await teardown.addRejectRules(serviceRange: options.serviceClusterIPRange)

            // The kubelet's serving certificate, from a CA of its own.
            let pki = try OpenSSL(directory: directory)
            let kubeletCA = try await pki.makeCA("kubelet-ca", commonName: "image-builder-test-kubelet-ca")
            let kubeletServing = try await pki.makeCertificate(
                "kubelet-serving", commonName: options.nodeName,
                serverNames: [options.bridgeAddress, options.nodeName], signedBy: kubeletCA)

            let serviceIP = firstServiceIP(options.serviceClusterIPRange)
            let cp = try await ControlPlane.start(ControlPlane.Options(
                controllerManager: true, controllers: options.controllers, disabledAdmissionPlugins: [],
                startupTimeout: options.startupTimeout, binaryDirectory: tools.binaryDirectory,
                bindAddress: options.bridgeAddress,
                extraServingNames: [serviceIP, "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                                    "kubernetes.default.svc.cluster.local"],
                authorizationModes: ["Node", "RBAC"], enabledAdmissionPlugins: ["NodeRestriction"],
                serviceClusterIPRange: options.serviceClusterIPRange,
                kubeletCertificateAuthority: kubeletCA.certificateFile, kubectlPath: tools.kubectl))
            controlPlane = cp
            let nodeIdentity = try await cp.issueClientCertificate(
                "node", commonName: "system:node:\(options.nodeName)", organizations: ["system:nodes"])
            let proxyIdentity = try await cp.issueClientCertificate("kube-proxy", commonName: "system:kube-proxy")
            let schedulerIdentity = try await cp.issueClientCertificate(
                "kube-scheduler", commonName: "system:kube-scheduler")

            // The registry, on loopback and on the bridge, seeded with the test images.
            let reg = try await LocalRegistry.start(
                additionalAddresses: [options.bridgeAddress], seedStorage: imageDirectory + "/registry",
                startupTimeout: options.startupTimeout)
            registry = reg
            let images = TestImages(
                base: "\(reg.host)/harness/base:latest", builder: "\(reg.host)/harness/builder:latest",
                pause: "\(reg.host)/harness/pause:latest", digests: digests)

            // containerd.
            let fm = FileManager.default
            let ctrDir = directory + "/containerd"
            let cniConfDir = directory + "/cni/net.d"
            let seccompRoot = directory + "/seccomp"
            for path in [ctrDir, cniConfDir, seccompRoot + "/image-builder", directory + "/kubelet",
                         directory + "/kubelet-plugins", directory + "/kubelet-pki"] {
                try fm.createDirectory(atPath: path, withIntermediateDirectories: true)
            }
            let socket = ctrDir + "/containerd.sock"
            try cniConfig(options: options, ipamDirectory: directory + "/cni/ipam")
                .write(toFile: cniConfDir + "/10-image-builder.conflist", atomically: true, encoding: .utf8)
            try containerdConfig(
                directory: ctrDir, socket: socket, cniConfDir: cniConfDir, pauseImage: images.pause,
                registryHost: reg.host
            ).write(toFile: ctrDir + "/config.toml", atomically: true, encoding: .utf8)
            let mountNamespace = options.privatePodLogs
                ? try await startMountNamespace(tools: tools, directory: directory, started: started) : nil
            /// In the tier's mount namespace, if it has one.
            func inNamespace(_ executable: String, _ arguments: [String]) -> (String, [String]) {
                guard let pid = mountNamespace?.pid else { return (executable, arguments) }
                return (tools.nsenter, ["--mount=/proc/\(pid)/ns/mnt", "--", executable] + arguments)
            }
            let containerdCommand = inNamespace(tools.containerd, ["--config", ctrDir + "/config.toml"])
            let containerd = ServerProcess(
                name: "containerd", executable: containerdCommand.0, arguments: containerdCommand.1,
                directory: directory)
            started.append(containerd)
            try await containerd.start()
            try await waitUntil("containerd to answer on \(socket)", server: containerd, timeout: options.startupTimeout,
                                interval: .milliseconds(200)) {
                let result = try await runCommand(tools.ctr, ["--address", socket, "version"], timeout: .seconds(10))
                return (result.succeeded, result.stderr)
            }
            teardown.containerdStarted(socket: socket)
            try await writeBuildahSeccompProfile(
                tools: tools, socket: socket, pauseImage: images.pause,
                to: seccompRoot + "/" + Self.buildahSeccompProfile, server: containerd)

            // kubelet.
            let healthzPort = try freeLoopbackPort()
            let kubeletCommand = inNamespace(tools.binaryDirectory + "/kubelet", [
                    "--kubeconfig=\(nodeIdentity.kubeconfig)",
                    "--container-runtime=remote",
                    "--container-runtime-endpoint=unix://\(socket)",
                    "--image-service-endpoint=unix://\(socket)",
                    "--runtime-request-timeout=10m",
                    "--fail-swap-on=false",
                    "--cgroup-driver=cgroupfs",
                    "--cgroups-per-qos=false",
                    "--enforce-node-allocatable=",
                    "--root-dir=\(directory)/kubelet",
                    "--cert-dir=\(directory)/kubelet-pki",
                    "--volume-plugin-dir=\(directory)/kubelet-plugins",
                    "--seccomp-profile-root=\(seccompRoot)",
                    "--hostname-override=\(options.nodeName)",
                    "--node-ip=\(options.bridgeAddress)",
                    "--address=\(options.bridgeAddress)",
                    "--port=10250",
                    "--read-only-port=0",
                    "--healthz-bind-address=127.0.0.1",
                    "--healthz-port=\(healthzPort)",
                    "--pod-infra-container-image=\(images.pause)",
                    "--tls-cert-file=\(kubeletServing.certificateFile)",
                    "--tls-private-key-file=\(kubeletServing.keyFile)",
                    "--client-ca-file=\(cp.clientCAFile)",
                    "--anonymous-auth=false",
                    "--authorization-mode=Webhook",
                    "--oom-score-adj=0",
                    // No global KUBE-FIREWALL/KUBE-MARK-* chains of the kubelet's on the host.
                    "--make-iptables-util-chains=false",
                    "--serialize-image-pulls=false",
                    "--eviction-hard=memory.available<50Mi,nodefs.available<1%,imagefs.available<1%",
                    "--image-gc-high-threshold=100",
                    "--image-gc-low-threshold=99",
                    "--v=1",
                ])
            let kubelet = ServerProcess(
                name: "kubelet", executable: kubeletCommand.0, arguments: kubeletCommand.1, directory: directory)
            started.append(kubelet)
            try await kubelet.start()
            try await waitUntil("kubelet /healthz", server: kubelet, timeout: options.startupTimeout,
                                interval: .milliseconds(250)) {
                let answer = try await httpGet("http://127.0.0.1:\(healthzPort)/healthz")
                return (answer.status == 200, "\(answer.status) \(answer.body)")
            }

            // kube-scheduler (no ports) and kube-proxy (health and metrics on loopback).
            let scheduler = ServerProcess(
                name: "kube-scheduler", executable: tools.binaryDirectory + "/kube-scheduler",
                arguments: [
                    "--kubeconfig=\(schedulerIdentity.kubeconfig)",
                    "--leader-elect=false",
                    "--port=0",
                    "--secure-port=0",
                    "--profiling=false",
                ],
                directory: directory)
            started.append(scheduler)
            try await scheduler.start()
            var kubeProxy: ServerProcess?
            let proxyHealthPort = try freeLoopbackPort(), proxyMetricsPort = try freeLoopbackPort()
            if options.kubeProxy {
            let proxy = ServerProcess(
                name: "kube-proxy", executable: tools.binaryDirectory + "/kube-proxy",
                arguments: [
                    "--kubeconfig=\(proxyIdentity.kubeconfig)",
                    "--proxy-mode=iptables",
                    "--cluster-cidr=\(options.podSubnet)",
                    "--hostname-override=\(options.nodeName)",
                    "--bind-address=\(options.bridgeAddress)",
                    "--healthz-bind-address=127.0.0.1:\(proxyHealthPort)",
                    "--metrics-bind-address=127.0.0.1:\(proxyMetricsPort)",
                    "--conntrack-max-per-core=0",
                    "--oom-score-adj=0",
                    "--profiling=false",
                ],
                directory: directory)
            started.append(proxy)
            teardown.kubeProxyStarted()
            try await proxy.start()
            kubeProxy = proxy
            }

            // Ready: the node (its not-ready taint removed), kube-proxy, the default ServiceAccount.
            try await waitForNode(cp, tools: tools, options: options, kubelet: kubelet, containerd: containerd)
            if let kubeProxy {
                try await waitUntil("kube-proxy /healthz", server: kubeProxy, timeout: options.startupTimeout,
                                    interval: .milliseconds(250)) {
                    let answer = try await httpGet("http://127.0.0.1:\(proxyHealthPort)/healthz")
                    return (answer.status == 200, "\(answer.status) \(answer.body)")
                }
            }
            try await waitUntil("the default ServiceAccount", server: scheduler, timeout: options.readyTimeout,
                                interval: .milliseconds(250)) {
                let result = try await runCommand(
                    tools.kubectl, ["--kubeconfig", cp.kubeconfig(), "get", "serviceaccount", "default", "-o", "name"])
                return (result.succeeded, result.stderr)
            }

            let cluster = NodeCluster(
                controlPlane: cp, registry: reg, images: images, kubectlPath: tools.kubectl,
                seccompProfileRoot: seccompRoot, containerdSocket: socket, directory: directory, options: options,
                startupDuration: ContinuousClock.now - began, containerd: containerd, kubelet: kubelet,
                scheduler: scheduler, kubeProxy: kubeProxy, mountNamespace: mountNamespace, teardown: teardown, lock: lock)
            // From here on, the exit hook knows the servers by the cluster.
            ChildRegistry.shared.addExitHook(hookKey) { cluster.stopNow() }
            return cluster
        } catch {
            ChildRegistry.shared.removeExitHook(hookKey)
            for server in started.all.reversed() where server.name != "containerd" { await server.stop(grace: .seconds(3)) }
            teardown.killContainers()
            for server in started.all where server.name == "containerd" { await server.stop(grace: .seconds(3)) }
            teardown.run()
            await registry?.stop()
            await controlPlane?.stop()
            lock.release()
            if ProcessInfo.processInfo.environment["IMAGE_BUILDER_KEEP_TEST_DIRS"] == nil {
                try? FileManager.default.removeItem(atPath: directory)
            }
            ChildRegistry.shared.removeDirectory(directory)
            throw error
        }
    }

    private static func waitForNode(
        _ cp: ControlPlane, tools: NodeTools, options: Options, kubelet: ServerProcess, containerd: ServerProcess
    ) async throws {
        let deadline = ContinuousClock.now + options.readyTimeout
        var last = ""
        while true {
            for server in [kubelet, containerd] {
                if let status = server.exitStatus {
                    throw server.failure("exited with status \(status) while waiting for node \(options.nodeName) to be Ready")
                }
            }
            let result = try await runCommand(
                tools.kubectl,
                ["--kubeconfig", cp.kubeconfig(), "get", "node", options.nodeName, "-o",
                 #"jsonpath={.status.conditions[?(@.type=="Ready")].status} {.spec.taints[*].key} {.status.conditions[?(@.type=="Ready")].message}"#])
            last = result.succeeded ? result.stdout : result.stderr
            let fields = result.stdout.split(separator: " ", omittingEmptySubsequences: false)
            if result.succeeded, fields.first == "True", fields.count > 1, fields[1].isEmpty { return }
            if ContinuousClock.now > deadline {
                var error = kubelet.failure(
                    "node \(options.nodeName) was not Ready without taints within \(options.readyTimeout); "
                        + "last seen: \(last.trimmingCharacters(in: .whitespacesAndNewlines))")
                error.logTail = (error.logTail ?? "") + "\n--- containerd ---\n" + containerd.logTail(lines: 15)
                throw error
            }
            try await Task.sleep(for: .milliseconds(500))
        }
    }

    /// Asks containerd for its RuntimeDefault profile (the spec `ctr` renders for a container with
    /// `--seccomp`, nothing runs) and writes it with `unshare`, `mount` and `umount2` allowed.
    private static func writeBuildahSeccompProfile(
        tools: NodeTools, socket: String, pauseImage: String, to path: String, server: ServerProcess
    ) async throws {
        let ns = "image-builder-probe"
        let ctr = [tools.ctr, "--address", socket, "--namespace", ns]
        @discardableResult
        func run(_ arguments: [String]) async throws -> String {
            let result = try await runCommand(ctr[0], Array(ctr.dropFirst()) + arguments, timeout: .seconds(60))
            guard result.succeeded else {
                throw server.failure("ctr \(arguments.joined(separator: " ")) failed: \(result.stderr)")
            }
            return result.stdout
        }
        try await run(["images", "pull", "--plain-http", pauseImage])
        try await run(["containers", "create", "--seccomp", pauseImage, "seccomp-probe"])
        let info = try await run(["containers", "info", "seccomp-probe"])
        _ = try? await run(["containers", "rm", "seccomp-probe"])
        _ = try? await run(["images", "rm", pauseImage])
        _ = try? await runCommand(tools.ctr, ["--address", socket, "namespaces", "rm", ns])
        guard let object = try? JSONSerialization.jsonObject(with: Data(info.utf8)) as? [String: Any],
            let spec = object["Spec"] as? [String: Any], let linux = spec["linux"] as? [String: Any],
            var seccomp = linux["seccomp"] as? [String: Any], var syscalls = seccomp["syscalls"] as? [[String: Any]]
        else { throw server.failure("no seccomp profile in the container spec containerd rendered: \(info.prefix(500))") }
        syscalls.append(["names": ["unshare", "mount", "umount2"], "action": "SCMP_ACT_ALLOW"])
        seccomp["syscalls"] = syscalls
        let data = try JSONSerialization.data(withJSONObject: seccomp, options: [.prettyPrinted, .sortedKeys])
        try data.write(to: URL(fileURLWithPath: path))
    }

    private static func readImageList(_ imageDirectory: String) throws -> [String: String] {
        let list = imageDirectory + "/images.txt"
        guard let text = try? String(contentsOfFile: list, encoding: .utf8),
            FileManager.default.fileExists(atPath: imageDirectory + "/registry/docker")
        else {
            throw HarnessError(
                "the node tier's test images are not in \(imageDirectory) (no images.txt or registry/). "
                    + "Build them with scripts/install-deps.sh (set IMAGE_BUILDER_CACHE if the cache lives elsewhere).")
        }
        var digests: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 2 { digests[String(parts[0])] = String(parts[1]) }
        }
        for name in ["base", "builder", "pause"] where digests[name] == nil {
            throw HarnessError("\(list) names no \(name) image; run scripts/install-deps.sh again")
        }
        return digests
    }

    // MARK: - Stopping

    /// Deletes every Pod (the kubelet stops them and tears their networks down), stops kube-proxy,
    /// the scheduler, the kubelet and containerd, kills what is left of the containers, removes
    /// the firewall rules, the bridge and the mounts, then stops the registry and the control
    /// plane and removes the directory. Idempotent.
    public func stop() async {
        let first = stopped.withLock { stopped in
            defer { stopped = true }
            return !stopped
        }
        guard first else { return }
        ChildRegistry.shared.removeExitHook("node-\(directory)")
        if kubelet.isRunning && controlPlane.isAPIServerRunning {
            if let uids = try? await kubectlResult(
                ["get", "pods", "--all-namespaces", "-o", "jsonpath={.items[*].metadata.uid}"], timeout: .seconds(30)),
                uids.succeeded
            {
                teardown.recordPodUIDs(uids.stdout.split(separator: " ").map(String.init))
            }
            _ = try? await kubectlResult(
                ["delete", "pods", "--all", "--all-namespaces", "--grace-period=0", "--force", "--wait=false"],
                timeout: .seconds(30))
            // The kubelet stops the sandboxes (CNI teardown) once the Pods are gone.
            let deadline = ContinuousClock.now + .seconds(30)
            while ContinuousClock.now < deadline {
                let tasks = try? await runCommand(
                    teardown.tools.ctr, ["--address", containerdSocket, "--namespace", "k8s.io", "tasks", "ls"],
                    timeout: .seconds(10))
                // Processes end first (stopped tasks stay until the kubelet's GC); the sandbox's CNI
                // teardown (its masquerade rule) follows.
                if let tasks, tasks.succeeded, !tasks.stdout.contains("RUNNING"), !teardown.hasMasqueradeRules() {
                    break
                }
                await pause(milliseconds: 250)
            }
        }
        trace("pods stopped")
        await kubeProxy?.stop(grace: .seconds(3))
        await scheduler.stop(grace: .seconds(3))
        await kubelet.stop(grace: .seconds(5))
        trace("node servers stopped")
        teardown.killContainers()
        await containerd.stop(grace: .seconds(5))
        await mountNamespace?.stop(grace: .seconds(1))
        trace("containerd stopped")
        teardown.run()
        trace("host state restored")
        await registry.stop()
        await controlPlane.stop()
        finish()
        trace("stopped")
    }

    private let traceStart = ContinuousClock.now
    /// With IMAGE_BUILDER_HARNESS_TRACE set: a progress line on stderr.
    private func trace(_ what: String) {
        guard ProcessInfo.processInfo.environment["IMAGE_BUILDER_HARNESS_TRACE"] != nil else { return }
        FileHandle.standardError.write(Data("[node tier] \(what) (\(ContinuousClock.now - traceStart) after start)\n".utf8))
    }

    /// The synchronous clean-up of the exit handler: kill, then undo the host changes.
    private func stopNow() {
        let first = stopped.withLock { stopped in
            defer { stopped = true }
            return !stopped
        }
        guard first else { return }
        terminate([kubeProxy, scheduler, kubelet].compactMap { $0?.pid }, grace: 2)
        teardown.killContainers()
        terminate([containerd, mountNamespace].compactMap { $0?.pid }, grace: 2)
        teardown.run()
        finish()
    }

    private func finish() {
        lock.release()
        if ProcessInfo.processInfo.environment["IMAGE_BUILDER_KEEP_TEST_DIRS"] == nil {
            try? FileManager.default.removeItem(atPath: directory)
        }
        ChildRegistry.shared.removeDirectory(directory)
    }
}

// MARK: - Configuration files

private func cniConfig(options: NodeCluster.Options, ipamDirectory: String) -> String {
    """
    {
      "cniVersion": "0.4.0",
      "name": "\(cniNetworkName(options.bridgeName))",
      "plugins": [
        {
          "type": "bridge",
          "bridge": "\(options.bridgeName)",
          "isGateway": true,
          "ipMasq": true,
          "hairpinMode": true,
          "ipam": {
            "type": "host-local",
            "ranges": [[{"subnet": "\(options.podSubnet)", "gateway": "\(options.bridgeAddress)"}]],
            "routes": [{"dst": "0.0.0.0/0"}],
            "dataDir": "\(ipamDirectory)"
          }
        },
        {"type": "portmap", "capabilities": {"portMappings": true}}
      ]
    }

    """
}

private func containerdConfig(
    directory: String, socket: String, cniConfDir: String, pauseImage: String, registryHost: String
) -> String {
    """
    version = 2
    root = "\(directory)/root"
    state = "\(directory)/state"
    disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs"]

    [grpc]
      address = "\(socket)"

    [ttrpc]
      address = ""

    [debug]
      address = ""

    [metrics]
      address = ""

    [plugins."io.containerd.internal.v1.opt"]
      path = "\(directory)/opt"

    [plugins."io.containerd.grpc.v1.cri"]
      sandbox_image = "\(pauseImage)"
      # These machines forbid lowering oom_score_adj: without this every sandbox fails.
      restrict_oom_score_adj = true
      stream_server_address = "127.0.0.1"
      stream_server_port = "0"
      enable_selinux = false
      netns_mounts_under_state_dir = true

      [plugins."io.containerd.grpc.v1.cri".containerd]
        snapshotter = "overlayfs"
        default_runtime_name = "runc"

        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
          runtime_type = "io.containerd.runc.v2"

          [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
            SystemdCgroup = false
            Root = "\(directory)/runc"

      [plugins."io.containerd.grpc.v1.cri".cni]
        bin_dir = "/usr/lib/cni"
        conf_dir = "\(cniConfDir)"

      [plugins."io.containerd.grpc.v1.cri".registry.mirrors."\(registryHost)"]
        endpoint = ["http://\(registryHost)"]

    """
}

/// The CNI network of a tier (also the comment on the masquerade rules the bridge plugin adds).
func cniNetworkName(_ bridge: String) -> String { "image-builder-\(bridge)" }

/// `a.b.c.d/n` → n.
private func prefixLength(_ cidr: String) -> Int {
    Int(cidr.split(separator: "/").last ?? "") ?? 16
}

/// The first address of a Service range (the `kubernetes` Service's IP): `10.0.0.0/24` → `10.0.0.1`.
private func firstServiceIP(_ cidr: String) -> String {
    var octets = (cidr.split(separator: "/").first ?? "").split(separator: ".").compactMap { Int($0) }
    guard octets.count == 4 else { return "10.0.0.1" }
    octets[3] += 1
    return octets.map(String.init).joined(separator: ".")
}

// MARK: - Tools, lock, teardown

/// The executables the tier needs, found or reported with what provides them.
struct NodeTools: Sendable {
    let binaryDirectory: String
    let kubectl: String
    let containerd: String
    let ctr: String
    let unshare: String
    let nsenter: String
    let runc: String
    let ip: String
    let iptables: String

    init(options: NodeCluster.Options) throws {
        guard geteuid() == 0 else {
            throw HarnessError("the node tier needs root (it creates a bridge and firewall rules and runs containerd)")
        }
        binaryDirectory = options.binaryDirectory ?? ControlPlane.binaryDirectory
        for name in ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "kubectl"] {
            let path = binaryDirectory + "/" + name
            guard FileManager.default.isExecutableFile(atPath: path) else {
                throw HarnessError.missingBinary(path, what: name)
            }
        }
        kubectl = binaryDirectory + "/kubectl"
        let sbin = ["/usr/sbin", "/sbin", "/usr/bin"]
        containerd = try requireExecutable("containerd", package: "containerd", fallbacks: ["/usr/bin/containerd"])
        ctr = try requireExecutable("ctr", package: "containerd", fallbacks: ["/usr/bin/ctr"])
        unshare = try requireExecutable("unshare", package: "util-linux", fallbacks: ["/usr/bin/unshare"])
        nsenter = try requireExecutable("nsenter", package: "util-linux", fallbacks: ["/usr/bin/nsenter"])
        runc = try requireExecutable("runc", package: "runc", fallbacks: sbin.map { $0 + "/runc" })
        ip = try requireExecutable("ip", package: "iproute2", fallbacks: sbin.map { $0 + "/ip" })
        iptables = try requireExecutable("iptables", package: "iptables", fallbacks: sbin.map { $0 + "/iptables" })
        _ = try requireExecutable("conntrack", package: "conntrack", fallbacks: sbin.map { $0 + "/conntrack" })
        for plugin in ["bridge", "host-local", "portmap"] where !FileManager.default.isExecutableFile(atPath: "/usr/lib/cni/\(plugin)") {
            throw HarnessError("/usr/lib/cni/\(plugin) not found (Debian package containernetworking-plugins; scripts/install-deps.sh installs it)")
        }
    }
}

/// Starts a process holding a mount namespace of the tier's own (`Options.privatePodLogs`) in
/// which `/var/log/pods` is `<directory>/pod-logs`.
private func startMountNamespace(tools: NodeTools, directory: String, started: StartedServers) async throws -> ServerProcess {
    let holder = ServerProcess(
        name: "mount-namespace", executable: tools.unshare, arguments: ["--mount", "--propagation", "private", "sleep", "infinity"],
        directory: directory)
    started.append(holder)
    try await holder.start()
    guard let pid = holder.pid else { throw HarnessError("the mount namespace holder did not start") }
    try await waitUntil("a mount namespace of the tier's own", server: holder, timeout: .seconds(10),
                        interval: .milliseconds(50)) {
        let fm = FileManager.default
        let theirs = try? fm.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/mnt")
        let ours = try? fm.destinationOfSymbolicLink(atPath: "/proc/self/ns/mnt")
        return (theirs != nil && theirs != ours, "theirs \(theirs ?? "-"), ours \(ours ?? "-")")
    }
    let logs = directory + "/pod-logs"
    try FileManager.default.createDirectory(atPath: logs, withIntermediateDirectories: true)
    try FileManager.default.createDirectory(atPath: "/var/log/pods", withIntermediateDirectories: true)
    try await runChecked(tools.nsenter, ["--mount=/proc/\(pid)/ns/mnt", "--", "/bin/mount", "--bind", logs, "/var/log/pods"])
    return holder
}

/// The servers a start has started so far (for the clean-up of a failed start).
final class StartedServers: Sendable {
    private let servers = Mutex<[ServerProcess]>([])
    func append(_ server: ServerProcess) { servers.withLock { $0.append(server) } }
    var all: [ServerProcess] { servers.withLock { $0 } }
}

/// One node tier per bridge on a machine: an exclusive `flock` on a file in /run, held while the
/// tier runs and released by the kernel when the process ends.
final class MachineLock: Sendable {
    private let fd = Mutex<Int32>(-1)

    private init(fd: Int32) { self.fd.withLock { $0 = fd } }

    static func acquire(bridge: String, timeout: Duration) async throws -> MachineLock {
        let path = "/run/image-builder-node-\(bridge).lock"
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw HarnessError("cannot open \(path): errno \(errno)") }
        let deadline = ContinuousClock.now + timeout
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            if ContinuousClock.now > deadline {
                let holder = (try? String(contentsOfFile: path, encoding: .utf8)) ?? "?"
                close(fd)
                throw HarnessError(
                    "another node tier runs on this machine (pid \(holder.trimmingCharacters(in: .whitespacesAndNewlines)), "
                        + "lock \(path)) and did not stop within \(timeout)")
            }
            try? await Task.sleep(for: .milliseconds(500))
        }
        ftruncate(fd, 0)
        let text = "\(getpid())\n"
        _ = text.withCString { write(fd, $0, strlen($0)) }
        return MachineLock(fd: fd)
    }

    func release() {
        fd.withLock { fd in
            if fd >= 0 {
                ftruncate(fd, 0)
                flock(fd, LOCK_UN)
                close(fd)
            }
            fd = -1
        }
    }
}

/// IPv4 forwarding, on while any tier of this process runs; the value found is restored after the last.
enum IPForwarding {
    private static let path = "/proc/sys/net/ipv4/ip_forward"
    private static let state = Mutex<(users: Int, before: String?)>((0, nil))

    static func enable() throws {
        try state.withLock { state in
            if state.users == 0 {
                state.before = (try? String(contentsOfFile: path, encoding: .utf8))?
                    .trimmingCharacters(in: .whitespacesAndNewlines)
                try "1\n".write(toFile: path, atomically: false, encoding: .utf8)
            }
            state.users += 1
        }
    }

    static func release() {
        state.withLock { state in
            state.users -= 1
            if state.users == 0, let before = state.before {
                try? (before + "\n").write(toFile: path, atomically: false, encoding: .utf8)
            }
        }
    }
}

/// The host state a node tier changes and how to undo it. Synchronous (blocking commands, no
/// tasks), so the exit handler can run it; every step is safe to repeat.
final class NodeTeardown: Sendable {
    static let ruleComment = "image-builder node tier"

    let directory: String
    let tools: NodeTools
    let bridge: String
    private struct State {
        var bridgeCreated = false
        var ipForward: String?
        var rejectRules: [[String]] = []
        var socket: String?
        var kubeProxy = false
        var podUIDs: Set<String> = []
        var done = false
    }
    private let state = Mutex(State())

    init(directory: String, tools: NodeTools, bridge: String) {
        self.directory = directory
        self.tools = tools
        self.bridge = bridge
    }

    /// Pods of this tier, whose log folders the kubelet keeps in /var/log/pods (a fixed path).
    func recordPodUIDs(_ uids: [String]) { state.withLock { $0.podUIDs.formUnion(uids) } }

    var runcRoot: String { directory + "/containerd/runc/k8s.io" }

    func createBridge(address: String, prefixLength: Int) async throws {
        let existing = try await runCommand(tools.ip, ["link", "show", bridge])
        if existing.succeeded {
            throw HarnessError("a network device \(bridge) already exists; it is not this harness's (delete it with `ip link del \(bridge)` if it is a leftover)")
        }
        try await runChecked(tools.ip, ["link", "add", bridge, "type", "bridge"])
        state.withLock { $0.bridgeCreated = true }
        try await runChecked(tools.ip, ["addr", "add", "\(address)/\(prefixLength)", "dev", bridge])
        try await runChecked(tools.ip, ["link", "set", bridge, "up"])
        try IPForwarding.enable()
        state.withLock { $0.ipForward = "1" }
    }

    func addRejectRules(serviceRange: String) async throws {
        for chain in ["OUTPUT", "FORWARD"] {
            let rule = [chain, "-d", serviceRange, "-m", "comment", "--comment", Self.ruleComment, "-j", "REJECT"]
            try await runChecked(tools.iptables, ["-w", "-A"] + rule)
            state.withLock { $0.rejectRules.append(rule) }
        }
    }

    func containerdStarted(socket: String) { state.withLock { $0.socket = socket } }
    func kubeProxyStarted() { state.withLock { $0.kubeProxy = true } }

    /// Kills and deletes every container of this tier's runc root, and containerd's shims for it.
    func killContainers() {
        let root = runcRoot
        if FileManager.default.fileExists(atPath: root) {
            let list = runSync(tools.runc, ["--root", root, "list", "-q"])
            for id in list.output.split(separator: "\n").map(String.init) where !id.isEmpty && list.status == 0 {
                runSync(tools.runc, ["--root", root, "kill", "--all", id, "KILL"])
                runSync(tools.runc, ["--root", root, "delete", "--force", id])
            }
        }
        if let socket = state.withLock({ $0.socket }) {
            let shims = processes { arguments in
                (arguments.first ?? "").hasSuffix("containerd-shim-runc-v2") && arguments.contains(socket)
            }
            terminate(shims.map(\.pid), grace: 2)
        }
    }

    /// Undoes the host changes (after the processes are gone).
    func run() {
        let current = state.withLock { state in
            defer { state.done = true }
            return state
        }
        if current.done { return }
        killContainers()
        if current.kubeProxy { Self.cleanUpKubeProxy(tools: tools) }
        for rule in current.rejectRules { runSync(tools.iptables, ["-w", "-D"] + rule) }
        Self.removeCNIRules(iptables: tools.iptables, network: cniNetworkName(bridge))
        removeCNIChains()
        if current.bridgeCreated { runSync(tools.ip, ["link", "del", bridge]) }
        if current.ipForward != nil { IPForwarding.release() }
        unmountAll(under: directory)
        let uids = current.podUIDs.union(
            (try? FileManager.default.contentsOfDirectory(atPath: directory + "/kubelet/pods")) ?? [])
        Self.removePodLogs(uids: uids)
    }

    /// Log folders `<namespace>_<pod>_<uid>` of Pods with these UIDs in /var/log/pods, and the
    /// links to them in /var/log/containers.
    static func removePodLogs(uids: Set<String>) {
        guard !uids.isEmpty else { return }
        let fm = FileManager.default
        func ours(_ name: String) -> Bool { uids.contains { name.hasSuffix("_" + $0) } }
        for name in ((try? fm.contentsOfDirectory(atPath: "/var/log/pods")) ?? []) where ours(name) {
            try? fm.removeItem(atPath: "/var/log/pods/" + name)
        }
        for name in ((try? fm.contentsOfDirectory(atPath: "/var/log/containers")) ?? []) {
            let link = "/var/log/containers/" + name
            if let target = try? fm.destinationOfSymbolicLink(atPath: link),
                uids.contains(where: { target.contains("_" + $0 + "/") })
            {
                try? fm.removeItem(atPath: link)
            }
        }
    }

    /// True while the CNI bridge plugin has masquerade rules for this tier's Pods.
    func hasMasqueradeRules() -> Bool {
        let listing = runSync(tools.iptables, ["-w", "-t", "nat", "-S", "POSTROUTING"])
        return listing.output.contains("name: \\\"\(cniNetworkName(bridge))\\\"")
    }

    /// The bridge plugin's per-Pod chains (`CNI-` + 24 hex digits of SHA-512(network + sandbox id))
    /// of this tier's sandboxes, e.g. when a teardown was cut short: removed with their jumps.
    func removeCNIChains() {
        let fm = FileManager.default
        var ids: Set<String> = []
        for sub in ["root", "state"] {
            let path = "\(directory)/containerd/\(sub)/io.containerd.grpc.v1.cri/sandboxes"
            ids.formUnion((try? fm.contentsOfDirectory(atPath: path)) ?? [])
        }
        guard !ids.isEmpty else { return }
        let listing = runSync(tools.iptables, ["-w", "-t", "nat", "-S"]).output
        for id in ids {
            let hash = runSync("/bin/sh", ["-c", #"printf %s "$1" | sha512sum"#, "sh", cniNetworkName(bridge) + id])
            let chain = "CNI-" + hash.output.prefix(24)
            guard hash.status == 0, listing.contains("-N \(chain)\n") || listing.hasSuffix("-N \(chain)") else { continue }
            for line in listing.split(separator: "\n") where line.hasPrefix("-A ") && line.hasSuffix("-j \(chain)") {
                let words = line.split(separator: " ").map(String.init)
                if let source = words.firstIndex(of: "-s").map({ words[$0 + 1] }),
                    let idRange = line.range(of: #"id: \""#), let idEnd = line[idRange.upperBound...].range(of: #"\""#)
                {
                    runSync(tools.iptables, ["-w", "-t", "nat", "-D", words[1], "-s", source, "-m", "comment", "--comment",
                                             "name: \"\(cniNetworkName(bridge))\" id: \"\(line[idRange.upperBound..<idEnd.lowerBound])\"",
                                             "-j", chain])
                }
            }
            runSync(tools.iptables, ["-w", "-t", "nat", "-F", chain])
            runSync(tools.iptables, ["-w", "-t", "nat", "-X", chain])
        }
    }

    /// kube-proxy's rules (`kube-proxy --cleanup`) and the canary chains its monitor leaves.
    static func cleanUpKubeProxy(tools: NodeTools) {
        runSync(tools.binaryDirectory + "/kube-proxy", ["--cleanup"], timeout: 60)
        // --cleanup leaves the canaries and the mark chains (which the kubelet owns elsewhere).
        for (table, chain) in [("filter", "KUBE-PROXY-CANARY"), ("nat", "KUBE-PROXY-CANARY"),
                               ("mangle", "KUBE-PROXY-CANARY"), ("nat", "KUBE-MARK-DROP"), ("nat", "KUBE-MARK-MASQ")] {
            runSync(tools.iptables, ["-w", "-t", table, "-F", chain])
            runSync(tools.iptables, ["-w", "-t", table, "-X", chain])
        }
    }

    /// Masquerade rules the CNI bridge plugin left for Pods whose network was never torn down
    /// (comment `name: "<network>" id: "…"`), and their chains.
    static func removeCNIRules(iptables: String, network: String) {
        let listing = runSync(iptables, ["-w", "-t", "nat", "-S", "POSTROUTING"])
        guard listing.status == 0 else { return }
        for line in listing.output.split(separator: "\n") where line.contains("name: \\\"\(network)\\\"") {
            let words = line.split(separator: " ").map(String.init)
            guard let source = words.firstIndex(of: "-s").map({ words[$0 + 1] }),
                let target = words.firstIndex(of: "-j").map({ words[$0 + 1] }),
                let idRange = line.range(of: #"id: \""#),
                let idEnd = line[idRange.upperBound...].range(of: #"\""#)
            else { continue }
            let id = String(line[idRange.upperBound..<idEnd.lowerBound])
            runSync(iptables, ["-w", "-t", "nat", "-D", "POSTROUTING", "-s", source, "-m", "comment", "--comment",
                               "name: \"\(network)\" id: \"\(id)\"", "-j", target])
            if target.hasPrefix("CNI-") {
                runSync(iptables, ["-w", "-t", "nat", "-F", target])
                runSync(iptables, ["-w", "-t", "nat", "-X", target])
            }
        }
    }

    /// Leftovers of a node tier whose process died without its exit handler (SIGKILL): its
    /// containers and shims, its firewall rules, its bridge. Only called with the machine lock
    /// held, so no live tier owns them.
    static func cleanUpStale(tools: NodeTools, bridge: String) {
        let fm = FileManager.default
        let base = ProcessInfo.processInfo.environment["IMAGE_BUILDER_TEST_TMPDIR"] ?? fm.temporaryDirectory.path
        var stale = false
        for entry in (try? fm.contentsOfDirectory(atPath: base)) ?? [] where entry.hasPrefix("ib-harness-") {
            let parts = entry.split(separator: "-")
            guard parts.count > 3, parts[3] == "node", let pid = pid_t(parts[2]), pid != getpid(),
                kill(pid, 0) != 0, errno == ESRCH
            else { continue }
            stale = true
            let directory = "\(base)/\(entry)"
            let root = directory + "/containerd/runc/k8s.io"
            if fm.fileExists(atPath: root) {
                let list = runSync(tools.runc, ["--root", root, "list", "-q"])
                for id in list.output.split(separator: "\n").map(String.init) where !id.isEmpty && list.status == 0 {
                    runSync(tools.runc, ["--root", root, "kill", "--all", id, "KILL"])
                    runSync(tools.runc, ["--root", root, "delete", "--force", id])
                }
            }
            let socket = directory + "/containerd/containerd.sock"
            let shims = processes { ($0.first ?? "").hasSuffix("containerd-shim-runc-v2") && $0.contains(socket) }
            terminate(shims.map(\.pid), grace: 2)
            unmountAll(under: directory)
            removePodLogs(uids: Set((try? fm.contentsOfDirectory(atPath: directory + "/kubelet/pods")) ?? []))
        }
        let device = runSync(tools.ip, ["link", "show", bridge])
        if stale || device.status == 0 {
            let rules = runSync(tools.iptables, ["-w", "-S"])
            for line in rules.output.split(separator: "\n") where line.contains(ruleComment) {
                let words = line.split(separator: " ").map(String.init)
                guard words.count > 2, words[0] == "-A", let d = words.firstIndex(of: "-d") else { continue }
                runSync(tools.iptables, ["-w", "-D", words[1], "-d", words[d + 1], "-m", "comment", "--comment",
                                         ruleComment, "-j", "REJECT"])
            }
            removeCNIRules(iptables: tools.iptables, network: cniNetworkName(bridge))
        }
        if device.status == 0 && stale {
            cleanUpKubeProxy(tools: tools)
            runSync(tools.ip, ["link", "del", bridge])
        }
    }
}
