import Foundation
import Synchronization

/// A real Kubernetes control plane on loopback: etcd, kube-apiserver and, optionally,
/// kube-controller-manager, each in a fresh temporary directory with its own PKI.
///
/// Users: `admin` (static token, `system:masters`), `limited` (static token, may only
/// get/list/watch ConfigMaps in `default`), and `cert-admin` (client certificate, `system:masters`).
/// There is no scheduler and no kubelet: Pods never run.
public final class ControlPlane: Sendable {
    /// How to start a control plane.
    public struct Options: Sendable {
        /// Also run kube-controller-manager (Job controller, garbage collector by default).
        public var controllerManager: Bool
        /// Controllers the controller manager runs (`--controllers`).
        public var controllers: [String]
        /// The apiserver's watch cache. With it on (the default, as in production) watches are served
        /// from the cache and are not affected by `compactEtcd()`; turn it off to get 410 Gone for a
        /// watch from a compacted revision (the cache is also what sends BOOKMARK events).
        public var watchCache: Bool
        /// Admission plugins to disable. `ServiceAccount` by default, so Pods can be created in
        /// namespaces that have no service account (nothing creates them without the controller manager).
        public var disabledAdmissionPlugins: [String]
        /// Extra kube-apiserver flags, appended last.
        public var extraAPIServerArguments: [String]
        /// How long each server may take to become ready.
        public var startupTimeout: Duration
        /// Where kube-apiserver and kube-controller-manager are; nil means `binaryDirectory`.
        public var binaryDirectory: String?
        /// The address kube-apiserver binds and advertises (`127.0.0.1`; a node tier uses its bridge
        /// address, since the `kubernetes` Service refuses loopback endpoints).
        public var bindAddress: String
        /// More names and IP addresses for the apiserver's serving certificate (Service IP, DNS names).
        public var extraServingNames: [String]
        /// `--authorization-mode` (`RBAC`; `Node,RBAC` with kubelets).
        public var authorizationModes: [String]
        /// Admission plugins to enable beyond the defaults (e.g. `NodeRestriction`).
        public var enabledAdmissionPlugins: [String]
        /// `--service-cluster-ip-range`.
        public var serviceClusterIPRange: String
        /// CA of kubelets' serving certificates: when set, the apiserver verifies kubelets with it and
        /// authenticates to them with a client certificate (`system:masters`) of its client CA.
        public var kubeletCertificateAuthority: String?
        /// The kubectl used for setup and `kubectl(_:)`; nil means the first in PATH.
        public var kubectlPath: String?

        public init(
            controllerManager: Bool = false,
            controllers: [String] = ["job", "garbagecollector"],
            watchCache: Bool = true,
            disabledAdmissionPlugins: [String] = ["ServiceAccount"],
            extraAPIServerArguments: [String] = [],
            startupTimeout: Duration = .seconds(180),
            binaryDirectory: String? = nil,
            bindAddress: String = "127.0.0.1",
            extraServingNames: [String] = [],
            authorizationModes: [String] = ["RBAC"],
            enabledAdmissionPlugins: [String] = [],
            serviceClusterIPRange: String = "10.0.0.0/24",
            kubeletCertificateAuthority: String? = nil,
            kubectlPath: String? = nil
        ) {
            self.binaryDirectory = binaryDirectory
            self.bindAddress = bindAddress
            self.extraServingNames = extraServingNames
            self.authorizationModes = authorizationModes
            self.enabledAdmissionPlugins = enabledAdmissionPlugins
            self.serviceClusterIPRange = serviceClusterIPRange
            self.kubeletCertificateAuthority = kubeletCertificateAuthority
            self.kubectlPath = kubectlPath
            self.controllerManager = controllerManager
            self.controllers = controllers
            self.watchCache = watchCache
            self.disabledAdmissionPlugins = disabledAdmissionPlugins
            self.extraAPIServerArguments = extraAPIServerArguments
            self.startupTimeout = startupTimeout
        }
    }

    /// The identities the control plane knows.
    public enum User: String, Sendable, CaseIterable {
        /// Token `adminToken`, user `admin`, group `system:masters`.
        case admin
        /// Token `limitedToken`, user `limited`: get/list/watch ConfigMaps in `default`, nothing else.
        case limited
        /// Client certificate `clientCertificateFile`, CN `cert-admin`, O `system:masters`.
        case clientCertificate
    }

    /// The temporary directory holding data, certificates, kubeconfigs and logs.
    public let directory: String
    /// `https://<bindAddress>:<port>` (`https://127.0.0.1:<port>` by default).
    public let serverURL: URL
    /// The apiserver's port on `options.bindAddress`.
    public let port: Int
    /// `http://127.0.0.1:<port>` of etcd.
    public let etcdEndpoint: String
    /// CA that signed the apiserver's serving certificate (for 127.0.0.1 and localhost).
    public let caFile: String
    public let caCertificatePEM: Data
    /// CA the apiserver trusts for client certificates.
    public let clientCAFile: String
    /// That CA's private key (to issue more client certificates, see `issueClientCertificate`).
    let clientCAKeyFile: String
    /// Client certificate and key of `cert-admin` (group `system:masters`).
    public let clientCertificateFile: String
    public let clientKeyFile: String
    public let clientCertificatePEM: Data
    public let clientKeyPEM: Data
    /// Bearer token of user `admin` (`system:masters`).
    public let adminToken: String
    /// Bearer token of user `limited`.
    public let limitedToken: String
    /// The options it was started with.
    public let options: Options
    /// How long `start` took.
    public let startupDuration: Duration

    private let etcd: ServerProcess
    private let apiServer: ServerProcess
    private let controllerManager: ServerProcess?
    private let etcdctlPath: String
    private let kubectlPath: String
    private let stopped = Mutex(false)

    /// Where kube-apiserver and kube-controller-manager are: `$IMAGE_BUILDER_CACHE/bin`
    /// (default `/var/cache/image-builder/bin`), as built by `scripts/install-deps.sh`.
    public static var binaryDirectory: String {
        let cache = ProcessInfo.processInfo.environment["IMAGE_BUILDER_CACHE"] ?? "/var/cache/image-builder"
        return cache + "/bin"
    }

    private init(
        directory: String, port: Int, etcdEndpoint: String, servingCA: CertificateFiles,
        clientCA: CertificateFiles, clientCertificate: CertificateFiles, adminToken: String,
        limitedToken: String, options: Options, startupDuration: Duration, etcd: ServerProcess,
        apiServer: ServerProcess, controllerManager: ServerProcess?, etcdctlPath: String, kubectlPath: String
    ) {
        self.directory = directory
        self.port = port
        self.serverURL = URL(string: "https://\(options.bindAddress):\(port)")!
        self.etcdEndpoint = etcdEndpoint
        self.caFile = servingCA.certificateFile
        self.caCertificatePEM = servingCA.certificatePEM
        self.clientCAFile = clientCA.certificateFile
        self.clientCAKeyFile = clientCA.keyFile
        self.clientCertificateFile = clientCertificate.certificateFile
        self.clientKeyFile = clientCertificate.keyFile
        self.clientCertificatePEM = clientCertificate.certificatePEM
        self.clientKeyPEM = clientCertificate.keyPEM
        self.adminToken = adminToken
        self.limitedToken = limitedToken
        self.options = options
        self.startupDuration = startupDuration
        self.etcd = etcd
        self.apiServer = apiServer
        self.controllerManager = controllerManager
        self.etcdctlPath = etcdctlPath
        self.kubectlPath = kubectlPath
    }

    // MARK: - Starting

    /// Starts etcd and kube-apiserver (and kube-controller-manager if asked) on free loopback
    /// ports; returns once `/readyz` answers 200, the `default` namespace exists and the `limited`
    /// user's RBAC objects are in place. Throws with the failing server's log tail.
    public static func start(_ options: Options = Options()) async throws -> ControlPlane {
        let began = ContinuousClock.now
        let bin = options.binaryDirectory ?? binaryDirectory
        let apiServerPath = bin + "/kube-apiserver", controllerManagerPath = bin + "/kube-controller-manager"
        guard FileManager.default.isExecutableFile(atPath: apiServerPath) else {
            throw HarnessError.missingBinary(apiServerPath, what: "kube-apiserver")
        }
        if options.controllerManager && !FileManager.default.isExecutableFile(atPath: controllerManagerPath) {
            throw HarnessError.missingBinary(controllerManagerPath, what: "kube-controller-manager")
        }
        let etcdPath = try requireExecutable("etcd", package: "etcd-server", fallbacks: ["/usr/bin/etcd"])
        let etcdctlPath = try requireExecutable("etcdctl", package: "etcd-client", fallbacks: ["/usr/bin/etcdctl"])
        let kubectlPath = try options.kubectlPath
            ?? requireExecutable("kubectl", package: "kubectl", fallbacks: ["/usr/bin/kubectl"])
        _ = try requireExecutable("curl", package: "curl")

        let directory = try makeHarnessDirectory(kind: "kube")
        var started: [ServerProcess] = []
        do {
            // PKI.
            let pki = try OpenSSL(directory: directory)
            let servingCA = try await pki.makeCA("serving-ca", commonName: "image-builder-test-serving-ca")
            let serving = try await pki.makeCertificate(
                "apiserver", commonName: "kube-apiserver",
                serverNames: uniqued(["127.0.0.1", "localhost", options.bindAddress] + options.extraServingNames),
                signedBy: servingCA)
            let clientCA = try await pki.makeCA("client-ca", commonName: "image-builder-test-client-ca")
            let clientCertificate = try await pki.makeCertificate(
                "cert-admin", commonName: "cert-admin", organizations: ["system:masters"], clientAuth: true,
                signedBy: clientCA)
            let serviceAccountKey = try await pki.makeRSAKey("service-account")

            // Static tokens.
            let adminToken = randomHex(), limitedToken = randomHex(), controllerToken = randomHex()
            let tokenFile = directory + "/tokens.csv"
            try """
            \(adminToken),admin,uid-admin,"system:masters"
            \(limitedToken),limited,uid-limited
            \(controllerToken),system:kube-controller-manager,uid-kcm,"system:masters"

            """.write(toFile: tokenFile, atomically: true, encoding: .utf8)

            // Ports.
            let etcdClientPort = try freeLoopbackPort(), etcdPeerPort = try freeLoopbackPort()
            let apiPort = try freePort(on: options.bindAddress)
            let etcdEndpoint = "http://127.0.0.1:\(etcdClientPort)"
            let serverURL = "https://\(options.bindAddress):\(apiPort)"

            // Kubeconfigs.
            let cluster = KubeconfigCluster(server: serverURL, caFile: servingCA.certificateFile)
            try cluster.write(to: kubeconfigPath(directory, .admin), user: "admin", credentials: .token(adminToken))
            try cluster.write(to: kubeconfigPath(directory, .limited), user: "limited", credentials: .token(limitedToken))
            try cluster.write(
                to: kubeconfigPath(directory, .clientCertificate), user: "cert-admin",
                credentials: .certificate(clientCertificate))
            let controllerKubeconfig = directory + "/kubeconfig-controller-manager.yaml"
            try cluster.write(
                to: controllerKubeconfig, user: "kube-controller-manager", credentials: .token(controllerToken))

            // etcd.
            let etcd = ServerProcess(
                name: "etcd", executable: etcdPath,
                arguments: [
                    "--name=harness",
                    "--data-dir=\(directory)/etcd-data",
                    "--listen-client-urls=\(etcdEndpoint)",
                    "--advertise-client-urls=\(etcdEndpoint)",
                    "--listen-peer-urls=http://127.0.0.1:\(etcdPeerPort)",
                    "--initial-advertise-peer-urls=http://127.0.0.1:\(etcdPeerPort)",
                    "--initial-cluster=harness=http://127.0.0.1:\(etcdPeerPort)",
                    "--initial-cluster-state=new",
                    "--auto-compaction-retention=0",
                    "--logger=zap",
                    "--log-outputs=stderr",
                ],
                directory: directory)
            started.append(etcd)
            try await etcd.start()
            try await waitUntil("etcd /health", server: etcd, timeout: options.startupTimeout) {
                let answer = try await httpGet(etcdEndpoint + "/health")
                return (answer.status == 200 && answer.body.contains("true"), "\(answer.status) \(answer.body)")
            }

            // kube-apiserver.
            var apiArguments = [
                "--etcd-servers=\(etcdEndpoint)",
                "--etcd-compaction-interval=0",
                "--bind-address=\(options.bindAddress)",
                "--advertise-address=\(options.bindAddress)",
                "--secure-port=\(apiPort)",
                "--insecure-port=0",
                "--cert-dir=\(directory)/apiserver-certs",
                "--tls-cert-file=\(serving.certificateFile)",
                "--tls-private-key-file=\(serving.keyFile)",
                "--client-ca-file=\(clientCA.certificateFile)",
                "--token-auth-file=\(tokenFile)",
                "--authorization-mode=\(options.authorizationModes.joined(separator: ","))",
                "--service-account-key-file=\(serviceAccountKey.publicKey)",
                "--service-account-signing-key-file=\(serviceAccountKey.privateKey)",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                "--service-cluster-ip-range=\(options.serviceClusterIPRange)",
                "--allow-privileged=true",
                "--watch-cache=\(options.watchCache)",
                "--profiling=false",
            ]
            if !options.disabledAdmissionPlugins.isEmpty {
                apiArguments.append("--disable-admission-plugins=\(options.disabledAdmissionPlugins.joined(separator: ","))")
            }
            if !options.enabledAdmissionPlugins.isEmpty {
                apiArguments.append("--enable-admission-plugins=\(options.enabledAdmissionPlugins.joined(separator: ","))")
            }
            if let kubeletCA = options.kubeletCertificateAuthority {
                let kubeletClient = try await pki.makeCertificate(
                    "apiserver-kubelet-client", commonName: "kube-apiserver-kubelet-client",
                    organizations: ["system:masters"], clientAuth: true, signedBy: clientCA)
                apiArguments += [
                    "--kubelet-client-certificate=\(kubeletClient.certificateFile)",
                    "--kubelet-client-key=\(kubeletClient.keyFile)",
                    "--kubelet-certificate-authority=\(kubeletCA)",
                    "--kubelet-preferred-address-types=InternalIP,Hostname",
                ]
            }
            apiArguments += options.extraAPIServerArguments
            let apiServer = ServerProcess(
                name: "kube-apiserver", executable: apiServerPath, arguments: apiArguments, directory: directory)
            started.append(apiServer)
            try await apiServer.start()
            try await waitForAPIServer(
                apiServer, serverURL: serverURL, caFile: servingCA.certificateFile, token: adminToken,
                timeout: options.startupTimeout)

            // RBAC for the limited user.
            let rbac = """
            apiVersion: rbac.authorization.k8s.io/v1
            kind: Role
            metadata:
              name: harness-limited
              namespace: default
            rules:
            - apiGroups: [""]
              resources: ["configmaps"]
              verbs: ["get", "list", "watch"]
            ---
            apiVersion: rbac.authorization.k8s.io/v1
            kind: RoleBinding
            metadata:
              name: harness-limited
              namespace: default
            roleRef:
              apiGroup: rbac.authorization.k8s.io
              kind: Role
              name: harness-limited
            subjects:
            - apiGroup: rbac.authorization.k8s.io
              kind: User
              name: limited

            """
            do {
                try await runChecked(
                    kubectlPath, ["--kubeconfig", kubeconfigPath(directory, .admin), "apply", "-f", "-"],
                    input: Data(rbac.utf8))
            } catch let error as HarnessError {
                throw apiServer.failure("creating RBAC objects for the limited user failed: \(error)")
            }

            // kube-controller-manager.
            var controllerManager: ServerProcess?
            if options.controllerManager {
                let kcmPort = try freeLoopbackPort()
                let kcm = ServerProcess(
                    name: "kube-controller-manager", executable: controllerManagerPath,
                    arguments: [
                        "--kubeconfig=\(controllerKubeconfig)",
                        "--authentication-kubeconfig=\(controllerKubeconfig)",
                        "--authorization-kubeconfig=\(controllerKubeconfig)",
                        "--bind-address=127.0.0.1",
                        "--secure-port=\(kcmPort)",
                        "--port=0",
                        "--cert-dir=\(directory)/controller-manager-certs",
                        "--controllers=\(options.controllers.joined(separator: ","))",
                        "--use-service-account-credentials=false",
                        "--service-account-private-key-file=\(serviceAccountKey.privateKey)",
                        "--root-ca-file=\(servingCA.certificateFile)",
                        "--leader-elect=false",
                        "--profiling=false",
                    ],
                    directory: directory)
                started.append(kcm)
                try await kcm.start()
                try await waitUntil("kube-controller-manager /healthz", server: kcm, timeout: options.startupTimeout) {
                    let answer = try await httpGet("https://127.0.0.1:\(kcmPort)/healthz", insecure: true)
                    return (answer.status == 200, "\(answer.status) \(answer.body)")
                }
                controllerManager = kcm
            }

            return ControlPlane(
                directory: directory, port: apiPort, etcdEndpoint: etcdEndpoint, servingCA: servingCA,
                clientCA: clientCA, clientCertificate: clientCertificate, adminToken: adminToken,
                limitedToken: limitedToken, options: options, startupDuration: ContinuousClock.now - began,
                etcd: etcd, apiServer: apiServer, controllerManager: controllerManager,
                etcdctlPath: etcdctlPath, kubectlPath: kubectlPath)
        } catch {
            for server in started.reversed() { await server.stop(grace: .seconds(2)) }
            // Keep the logs of a failed start when asked to.
            if ProcessInfo.processInfo.environment["IMAGE_BUILDER_KEEP_TEST_DIRS"] == nil {
                try? FileManager.default.removeItem(atPath: directory)
                ChildRegistry.shared.removeDirectory(directory)
            }
            throw error
        }
    }

    /// Starts a control plane, runs `body` with it and stops it, also when `body` throws.
    public static func withControlPlane<T: Sendable>(
        _ options: Options = Options(), _ body: (ControlPlane) async throws -> T
    ) async throws -> T {
        let controlPlane = try await start(options)
        do {
            let result = try await body(controlPlane)
            await controlPlane.stop()
            return result
        } catch {
            await controlPlane.stop()
            throw error
        }
    }

    private static func waitForAPIServer(
        _ server: ServerProcess, serverURL: String, caFile: String, token: String, timeout: Duration
    ) async throws {
        try await waitUntil("kube-apiserver /readyz", server: server, timeout: timeout, interval: .milliseconds(200)) {
            let answer = try await httpGet(serverURL + "/readyz?verbose", caFile: caFile, bearerToken: token)
            let failing = answer.body.split(separator: "\n").filter { $0.contains("failed") }.joined(separator: "; ")
            return (answer.status == 200, "\(answer.status) \(failing.isEmpty ? answer.body : failing)")
        }
        try await waitUntil("the default namespace", server: server, timeout: timeout) {
            let answer = try await httpGet(serverURL + "/api/v1/namespaces/default", caFile: caFile, bearerToken: token)
            return (answer.status == 200, "\(answer.status) \(answer.body)")
        }
    }

    // MARK: - Shared instance

    private static let sharedInstance = Mutex<Task<ControlPlane, any Error>?>(nil)

    /// The control plane shared by all tests of this process (default options), started on first
    /// use; concurrent callers wait for the same start. Never stop it: it is removed at exit. A
    /// failed start is reported to every caller. Use `start()` for tests that stop the apiserver.
    public static func shared() async throws -> ControlPlane {
        let task = sharedInstance.withLock { task in
            if let task { return task }
            // Unstructured on purpose: the start is owned by no single caller.
            let created = Task { try await ControlPlane.start() }
            task = created
            return created
        }
        return try await task.value
    }

    // MARK: - Users and kubectl

    /// Path of a kubeconfig for `user` (file references for the CA, token inline or client
    /// certificate files; context namespace `default`).
    public func kubeconfig(for user: User = .admin) -> String {
        Self.kubeconfigPath(directory, user)
    }

    /// A kubeconfig for `user` as YAML text with everything embedded (`certificate-authority-data`,
    /// `client-certificate-data`, `client-key-data`), referring to no file.
    public func embeddedKubeconfig(for user: User = .admin) -> String {
        let cluster = KubeconfigCluster(server: serverURL.absoluteString, caFile: caFile)
        switch user {
        case .admin:
            return cluster.render(user: "admin", credentials: .token(adminToken), embedded: true)
        case .limited:
            return cluster.render(user: "limited", credentials: .token(limitedToken), embedded: true)
        case .clientCertificate:
            let files = CertificateFiles(certificateFile: clientCertificateFile, keyFile: clientKeyFile)
            return cluster.render(user: "cert-admin", credentials: .certificate(files), embedded: true)
        }
    }

    private static func kubeconfigPath(_ directory: String, _ user: User) -> String {
        "\(directory)/kubeconfig-\(user.rawValue).yaml"
    }

    /// Issues a client certificate from the apiserver's client CA (user `commonName`, groups
    /// `organizations`) into this control plane's directory and writes a kubeconfig for it;
    /// returns the certificate and the kubeconfig's path.
    public func issueClientCertificate(
        _ name: String, commonName: String, organizations: [String] = []
    ) async throws -> (certificate: CertificateFiles, kubeconfig: String) {
        let pki = try OpenSSL(directory: directory)
        let ca = CertificateFiles(certificateFile: clientCAFile, keyFile: clientCAKeyFile)
        let certificate = try await pki.makeCertificate(
            name, commonName: commonName, organizations: organizations, clientAuth: true, signedBy: ca)
        let kubeconfig = "\(directory)/kubeconfig-\(name).yaml"
        try KubeconfigCluster(server: serverURL.absoluteString, caFile: caFile)
            .write(to: kubeconfig, user: commonName, credentials: .certificate(certificate))
        return (certificate, kubeconfig)
    }

    /// The bearer token of `user` (nil for the client-certificate user).
    public func token(for user: User) -> String? {
        switch user {
        case .admin: adminToken
        case .limited: limitedToken
        case .clientCertificate: nil
        }
    }

    /// Runs `kubectl --kubeconfig <user's kubeconfig> args…`; returns stdout, throws on failure
    /// (with stderr in the error).
    @discardableResult
    public func kubectl(_ arguments: [String], as user: User = .admin, input: String? = nil) async throws -> String {
        try await runChecked(
            kubectlPath, ["--kubeconfig", kubeconfig(for: user)] + arguments, input: input.map { Data($0.utf8) })
    }

    /// Like `kubectl(_:as:input:)` but returns the result whatever the exit status.
    public func kubectlResult(_ arguments: [String], as user: User = .admin, input: String? = nil) async throws
        -> CommandResult
    {
        try await runCommand(
            kubectlPath, ["--kubeconfig", kubeconfig(for: user)] + arguments, input: input.map { Data($0.utf8) })
    }

    /// The certificate and key kube-apiserver serves with (signed by `caFile`; for 127.0.0.1 and
    /// localhost): a proxy in front of the control plane terminates TLS with them.
    public var servingCertificate: CertificateFiles {
        CertificateFiles(certificateFile: directory + "/apiserver.crt", keyFile: directory + "/apiserver.key")
    }

    /// Writes a kubeconfig for the admin that talks to `server` (e.g. a `FaultProxy` in front of this
    /// control plane) with the harness CA; returns its path.
    public func kubeconfig(server: String, name: String) throws -> String {
        let path = "\(directory)/kubeconfig-\(name).yaml"
        try KubeconfigCluster(server: server, caFile: caFile).write(to: path, user: "admin", credentials: .token(adminToken))
        return path
    }

    // MARK: - apiserver lifecycle

    /// True while kube-apiserver runs.
    public var isAPIServerRunning: Bool { apiServer.isRunning }

    /// Stops kube-apiserver (SIGTERM, SIGKILL after 5 s). etcd keeps running.
    public func stopAPIServer() async {
        await apiServer.stop(grace: .seconds(5))
    }

    /// Kills kube-apiserver at once (SIGKILL): open connections break without a goodbye.
    public func killAPIServer() async {
        await apiServer.killNow()
    }

    /// Starts kube-apiserver again with the same port and flags; returns once it is ready.
    public func startAPIServer() async throws {
        guard !stopped.withLock({ $0 }) else { throw HarnessError("the control plane was stopped") }
        try await apiServer.start()
        try await Self.waitForAPIServer(
            apiServer, serverURL: serverURL.absoluteString, caFile: caFile, token: adminToken,
            timeout: options.startupTimeout)
    }

    /// `stopAPIServer()` then `startAPIServer()`.
    public func restartAPIServer() async throws {
        await stopAPIServer()
        try await startAPIServer()
    }

    // MARK: - etcd

    /// etcd's current revision.
    public func etcdRevision() async throws -> Int64 {
        let output = try await etcdctl(["get", "/harness-revision-probe", "--write-out=json"])
        guard let object = try? JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any],
            let header = object["header"] as? [String: Any], let revision = header["revision"] as? NSNumber
        else { throw etcd.failure("cannot read the revision from etcdctl output: \(output)") }
        return revision.int64Value
    }

    /// Compacts etcd at its current revision and returns that revision. Afterwards, reading or
    /// watching at an older resourceVersion from etcd fails with 410 Gone (see `Options.watchCache`).
    @discardableResult
    public func compactEtcd() async throws -> Int64 {
        let revision = try await etcdRevision()
        try await etcdctl(["compaction", "--physical", "\(revision)"])
        return revision
    }

    @discardableResult
    private func etcdctl(_ arguments: [String]) async throws -> String {
        try await runChecked(
            etcdctlPath, ["--endpoints=\(etcdEndpoint)", "--command-timeout=10s"] + arguments,
            environment: ["ETCDCTL_API": "3"])
    }

    // MARK: - Logs and stopping

    /// Log files by server name (`etcd`, `kube-apiserver`, `kube-controller-manager`).
    public var logFiles: [String: String] {
        var files = [etcd.name: etcd.logFile, apiServer.name: apiServer.logFile]
        if let controllerManager { files[controllerManager.name] = controllerManager.logFile }
        return files
    }

    /// Pids of the running servers.
    var serverPIDs: [pid_t] { [etcd.pid, apiServer.pid, controllerManager?.pid].compactMap { $0 } }

    /// Stops every server and removes the directory. Idempotent.
    public func stop() async {
        let first = stopped.withLock { stopped in
            defer { stopped = true }
            return !stopped
        }
        guard first else { return }
        if let controllerManager { await controllerManager.stop(grace: .seconds(3)) }
        await apiServer.stop(grace: .seconds(5))
        await etcd.stop(grace: .seconds(5))
        try? FileManager.default.removeItem(atPath: directory)
        ChildRegistry.shared.removeDirectory(directory)
    }
}

/// `items` without repeats, in their first order.
func uniqued(_ items: [String]) -> [String] {
    var seen: Set<String> = []
    return items.filter { seen.insert($0).inserted }
}

/// Renders kubeconfigs for one cluster, with file references or embedded (`*-data`) PEM.
struct KubeconfigCluster {
    enum Credentials {
        case token(String)
        case certificate(CertificateFiles)
    }

    let server: String
    let caFile: String

    func write(to path: String, user: String, credentials: Credentials) throws {
        try render(user: user, credentials: credentials, embedded: false)
            .write(toFile: path, atomically: true, encoding: .utf8)
    }

    func render(user: String, credentials: Credentials, embedded: Bool) -> String {
        func data(_ path: String) -> String {
            (FileManager.default.contents(atPath: path) ?? Data()).base64EncodedString()
        }
        let authority = embedded
            ? "certificate-authority-data: \(data(caFile))" : "certificate-authority: \(caFile)"
        let userFields: String
        switch credentials {
        case .token(let token):
            userFields = "    token: \(token)"
        case .certificate(let files) where embedded:
            userFields = "    client-certificate-data: \(data(files.certificateFile))\n"
                + "    client-key-data: \(data(files.keyFile))"
        case .certificate(let files):
            userFields = "    client-certificate: \(files.certificateFile)\n    client-key: \(files.keyFile)"
        }
        return """
        apiVersion: v1
        kind: Config
        clusters:
        - name: harness
          cluster:
            server: \(server)
            \(authority)
        users:
        - name: \(user)
          user:
        \(userFields)
        contexts:
        - name: harness
          context:
            cluster: harness
            user: \(user)
            namespace: default
        current-context: harness

        """
    }
}
