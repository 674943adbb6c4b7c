import Foundation
import Testing

@testable import TestHarness

/// A name no other test run uses.
private func unique(_ prefix: String) -> String {
    "\(prefix)-\(UUID().uuidString.prefix(8).lowercased())"
}

/// The node tier: real Pods on a real kubelet, on the cluster shared by this test process.
@Suite("Node tier")
struct NodeClusterTests {
    @Test func nodeIsReadyWithTheBridgeAddress() async throws {
        let cluster = try await NodeCluster.shared()
        print("node tier started in \(cluster.startupDuration)")
        let ready = try await cluster.kubectl(
            ["get", "node", cluster.nodeName, "-o", #"jsonpath={.status.conditions[?(@.type=="Ready")].status}"#])
        #expect(ready == "True")
        let address = try await cluster.kubectl(
            ["get", "node", cluster.nodeName, "-o", #"jsonpath={.status.addresses[?(@.type=="InternalIP")].address}"#])
        #expect(address == cluster.bridgeAddress)
        #expect(cluster.controlPlane.serverURL.host == cluster.bridgeAddress)
        let version = try await cluster.kubectl(["version", "--client", "--short"])
        #expect(version.contains("v1.20.2"), "\(version)")
    }

    @Test func basePodRunsAndItsLogsComeThroughTheKubelet() async throws {
        let cluster = try await NodeCluster.shared()
        let name = unique("base")
        try await cluster.kubectl(["apply", "-f", "-"], input: """
            apiVersion: v1
            kind: Pod
            metadata: {name: \(name)}
            spec:
              restartPolicy: Never
              containers:
              - name: main
                image: \(cluster.images.base)
                command: ["sh", "-c", "echo hello from the base image; echo uid=$(id -u); python3 --version"]
            """)
        let pod = try await cluster.waitForPodToFinish(name, timeout: .seconds(180))
        #expect(pod.phase == "Succeeded", "\(pod)")
        #expect(pod.logs.contains("hello from the base image"), "\(pod.logs)")
        #expect(pod.logs.contains("uid=1000"), "the image's USER: \(pod.logs)")
        #expect(pod.logs.contains("Python 3"), "\(pod.logs)")
        try await cluster.kubectl(["delete", "pod", name, "--wait=false"])
    }

    /// From a Pod: the kubelet refuses an anonymous call (401), and the apiserver answers the Pod's
    /// service-account token through the `kubernetes` Service (kube-proxy, root CA, token controller).
    @Test func podsGet401FromTheKubeletAndReachTheAPIServer() async throws {
        let cluster = try await NodeCluster.shared()
        let name = unique("probe")
        let script = """
            import os, ssl, urllib.request, urllib.error
            def status(url, context, headers={}):
                try:
                    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), context=context, timeout=20).status
                except urllib.error.HTTPError as error:
                    return error.code
            insecure = ssl.create_default_context()
            insecure.check_hostname = False
            insecure.verify_mode = ssl.CERT_NONE
            print("kubelet", status("https://\(cluster.bridgeAddress):10250/pods", insecure))
            sa = "/var/run/secrets/kubernetes.io/serviceaccount"
            token = open(sa + "/token").read()
            trusted = ssl.create_default_context(cafile=sa + "/ca.crt")
            host = os.environ["KUBERNETES_SERVICE_HOST"]
            print("apiserver", status("https://" + host + "/version", trusted, {"Authorization": "Bearer " + token}))
            """
        try await cluster.kubectl(["apply", "-f", "-"], input: """
            apiVersion: v1
            kind: Pod
            metadata: {name: \(name)}
            spec:
              restartPolicy: Never
              containers:
              - name: main
                image: \(cluster.images.base)
                command: ["python3", "-c", \(jsonString(script))]
            """)
        let pod = try await cluster.waitForPodToFinish(name, timeout: .seconds(180))
        #expect(pod.phase == "Succeeded", "\(pod)")
        #expect(pod.logs.contains("kubelet 401"), "\(pod.logs)")
        #expect(pod.logs.contains("apiserver 200"), "\(pod.logs)")
        try await cluster.kubectl(["delete", "pod", name, "--wait=false"])
    }

    /// What the tier listens on: 127.0.0.1 or the bridge address, never a wildcard or the
    /// machine's external address (the `ss -ltnp` check, from /proc/net/tcp{,6}).
    @Test func nothingListensOnAWildcardOrExternalAddress() async throws {
        let cluster = try await NodeCluster.shared()
        let listeners = listeningSockets(of: cluster.serverPIDs)
        #expect(!listeners.isEmpty)
        let allowed: Set<String> = ["127.0.0.1", "::1", cluster.bridgeAddress]
        for listener in listeners {
            #expect(allowed.contains(listener.address), "pid \(listener.pid) listens on \(listener.address):\(listener.port)")
        }
        #expect(listeners.contains { $0.address == cluster.bridgeAddress && $0.port == 10250 }, "kubelet: \(listeners)")
        #expect(listeners.contains { $0.address == cluster.bridgeAddress && $0.port == cluster.controlPlane.port })
        #expect(listeners.contains { $0.address == cluster.bridgeAddress && $0.port == cluster.registry.port })
    }

    /// A buildah build in a Pod with the narrowest security context found to work:
    ///
    /// - `runAsUser: 0`: buildah maps uid 0 into a user namespace of its own (as non-root it needs
    ///   setuid `newuidmap`, which fails under these restrictions);
    /// - capabilities: drop ALL, add `SETUID` and `SETGID` (to write the user namespace's uid/gid
    ///   maps) and `SETFCAP` (mapping uid 0 needs it on current kernels); dropping any one fails;
    ///   no `SYS_ADMIN`: buildah mounts inside the user namespace it creates;
    /// - seccomp `Localhost` `NodeCluster.buildahSeccompProfile`: containerd's RuntimeDefault plus
    ///   `unshare` (the user namespace), `mount` (the layer apply and the chroot's mounts) and
    ///   `umount2` (unmounting them); RuntimeDefault alone refuses `unshare(CLONE_NEWUSER)`;
    /// - `allowPrivilegeEscalation: false`, `readOnlyRootFilesystem: true`, with emptyDirs at
    ///   `/var/lib/containers` (storage), `/var/tmp` (build temporaries) and `/run` (memory; buildah
    ///   needs `/run/containers` and `/run/libpod`);
    /// - `--storage-driver vfs --isolation chroot` (no overlay mounts, no OCI runtime in the Pod).
    ///
    /// The build's `FROM` names the base image as the kubelet does (`127.0.0.1:<port>/…`); the
    /// registries.conf of `NodeCluster.registriesConf` sends the pull to the bridge address. The
    /// push names the bridge address and writes the digest to the termination message.
    @Test func buildahBuildsInAPodAndPushesToTheRegistry() async throws {
        let cluster = try await NodeCluster.shared()
        let name = unique("build")
        let tag = name
        let target = "\(cluster.podRegistryHost)/harness/built:\(tag)"
        let dockerfile = """
            FROM \(cluster.images.base)
            USER root
            RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends hello \\
             && rm -rf /var/lib/apt/lists/*
            RUN pip install --no-cache-dir six==1.16.0
            ENV HARNESS_GREETING=built-by-buildah
            USER 1000
            """
        let build = "buildah --storage-driver vfs build --isolation chroot --tag localhost/built --file /context/Dockerfile /context"
            + " && buildah --storage-driver vfs push --tls-verify=false --digestfile /dev/termination-log localhost/built docker://\(target)"
        try await cluster.kubectl(["apply", "-f", "-"], input: """
            apiVersion: v1
            kind: ConfigMap
            metadata: {name: \(name)}
            data:
              Dockerfile: \(jsonString(dockerfile))
              registries.conf: \(jsonString(cluster.registriesConf))
            ---
            apiVersion: v1
            kind: Pod
            metadata: {name: \(name)}
            spec:
              restartPolicy: Never
              automountServiceAccountToken: false
              containers:
              - name: build
                image: \(cluster.images.builder)
                command: ["sh", "-c", \(jsonString(build))]
                env:
                - {name: CONTAINERS_REGISTRIES_CONF, value: /context/registries.conf}
                securityContext:
                  runAsUser: 0
                  allowPrivilegeEscalation: false
                  readOnlyRootFilesystem: true
                  capabilities: {drop: [ALL], add: [SETUID, SETGID, SETFCAP]}
                  seccompProfile: {type: Localhost, localhostProfile: \(NodeCluster.buildahSeccompProfile)}
                volumeMounts:
                - {name: context, mountPath: /context}
                - {name: storage, mountPath: /var/lib/containers}
                - {name: tmp, mountPath: /var/tmp}
                - {name: run, mountPath: /run}
              volumes:
              - {name: context, configMap: {name: \(name)}}
              - {name: storage, emptyDir: {}}
              - {name: tmp, emptyDir: {}}
              - {name: run, emptyDir: {medium: Memory}}
            """)
        let clock = ContinuousClock()
        let began = clock.now
        let pod = try await cluster.waitForPodToFinish(name, timeout: .seconds(900))
        print("build Pod finished in \(clock.now - began)")
        try #require(pod.phase == "Succeeded", "\(pod.phase), exit \(pod.exitCode ?? -1):\n\(pod.logs.suffix(3000))")

        // The digest buildah pushed is the registry's for the tag.
        let digest = pod.terminationMessage.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(digest.hasPrefix("sha256:"), "termination message: \(pod.terminationMessage)")
        let head = try await runCommand(
            "/usr/bin/curl",
            ["-sS", "-I", "-H", "Accept: application/vnd.oci.image.manifest.v1+json",
             "-H", "Accept: application/vnd.docker.distribution.manifest.v2+json",
             "http://\(cluster.registry.host)/v2/harness/built/manifests/\(tag)"])
        let header = head.stdout.split(separator: "\r\n").first { $0.lowercased().hasPrefix("docker-content-digest:") }
        let registryDigest = header.map { $0.split(separator: ":", maxSplits: 1)[1].trimmingCharacters(in: .whitespaces) }
        #expect(registryDigest == digest, "\(head.stdout)")

        // A Pod from the built image shows what was installed.
        let run = unique("built")
        try await cluster.kubectl(["apply", "-f", "-"], input: """
            apiVersion: v1
            kind: Pod
            metadata: {name: \(run)}
            spec:
              restartPolicy: Never
              containers:
              - name: main
                image: \(cluster.registry.host)/harness/built:\(tag)
                command: ["sh", "-c", "hello; python3 -c 'import six; print(\\"six\\", six.__version__)'; echo greeting=$HARNESS_GREETING uid=$(id -u)"]
            """)
        let built = try await cluster.waitForPodToFinish(run, timeout: .seconds(180))
        #expect(built.phase == "Succeeded", "\(built)")
        #expect(built.logs.contains("Hello, world!"), "\(built.logs)")
        #expect(built.logs.contains("six 1.16.0"), "\(built.logs)")
        #expect(built.logs.contains("greeting=built-by-buildah uid=1000"), "\(built.logs)")
        try await cluster.kubectl(["delete", "pod", name, run, "--wait=false"])
        try await cluster.kubectl(["delete", "configmap", name])
    }
}

/// A tier of its own, beside the shared one (own bridge and addresses, no kube-proxy, its own
/// /var/log/pods in a mount namespace, since a kubelet removes the log folders of Pods it does not
/// know): start, stop, and nothing left behind (processes, mounts, directory, bridge, masquerade rules).
@Suite("Node tier lifecycle", .serialized)
struct NodeClusterLifecycleTests {
    @Test func stopLeavesNothingBehind() async throws {
        let cluster = try await NodeCluster.start(.init(
            bridgeName: "ib-test0", bridgeAddress: "10.89.0.1", podSubnet: "10.89.0.0/16", nodeName: "node2",
            kubeProxy: false, privatePodLogs: true))
        let pids = cluster.serverPIDs
        let directory = cluster.directory
        let name = unique("sleeper")
        try await cluster.kubectl(["apply", "-f", "-"], input: """
            apiVersion: v1
            kind: Pod
            metadata: {name: \(name)}
            spec:
              containers:
              - name: main
                image: \(cluster.images.base)
                command: ["sh", "-c", "echo tier-two-log; exec sleep 3600"]
                volumeMounts: [{name: scratch, mountPath: /scratch}]
              volumes: [{name: scratch, emptyDir: {medium: Memory}}]
            """)
        try await waitFor("Pod \(name) to run", timeout: .seconds(180)) {
            let phase = try await cluster.kubectl(["get", "pod", name, "-o", "jsonpath={.status.phase}"])
            return (phase == "Running", phase)
        }
        let namespace = try #require(cluster.mountNamespacePID)
        #expect(!mountPoints(under: directory, inNamespaceOf: namespace).isEmpty,
                "a running Pod has mounts under the tier's directory, in the tier's mount namespace")
        #expect(mountPoints(under: directory).isEmpty, "none of them in the host's")
        // The Pod's log folder is the tier's, not the host's.
        let ownLogs = (try? FileManager.default.contentsOfDirectory(atPath: directory + "/pod-logs")) ?? []
        #expect(ownLogs.contains { $0.hasPrefix("default_\(name)_") }, "\(ownLogs)")
        let hostLogs = (try? FileManager.default.contentsOfDirectory(atPath: "/var/log/pods")) ?? []
        #expect(!hostLogs.contains { $0.hasPrefix("default_\(name)_") }, "\(hostLogs)")
        // kubectl logs reads the tier's own log folder (the line reaches it shortly after the start).
        try await waitFor("the Pod's log line through kubectl logs", timeout: .seconds(60)) {
            let logs = try await cluster.kubectl(["logs", name])
            return (logs.contains("tier-two-log"), logs)
        }
        await cluster.stop()
        await cluster.stop()  // twice is fine

        for pid in pids { #expect(!processExists(pid), "pid \(pid) still runs") }
        #expect(mountPoints(under: directory).isEmpty)
        #expect(!FileManager.default.fileExists(atPath: directory))
        let shims = processes { $0.contains { $0.contains(directory) } }
        #expect(shims.isEmpty, "\(shims)")
        let bridge = try await runCommand("/usr/sbin/ip", ["link", "show", cluster.options.bridgeName])
        #expect(!bridge.succeeded, "the bridge is gone")
        let rules = try await runCommand("/usr/sbin/iptables", ["-w", "-S"])
        #expect(!rules.stdout.contains("KUBE-FIREWALL"), "the kubelet made no chains: \(rules.stdout)")
        let nat = try await runCommand("/usr/sbin/iptables", ["-w", "-t", "nat", "-S"])
        #expect(!nat.stdout.contains(cniNetworkName(cluster.options.bridgeName)), "\(nat.stdout)")
    }
}

/// Polls `check` until it reports done; fails after `timeout` naming what it waited for.
private func waitFor(
    _ what: String, timeout: Duration, check: () async throws -> (done: Bool, detail: String)
) async throws {
    let deadline = ContinuousClock.now + timeout
    var detail = ""
    while ContinuousClock.now < deadline {
        let answer = try await check()
        if answer.done { return }
        detail = answer.detail
        try await Task.sleep(for: .milliseconds(500))
    }
    throw HarnessError("timed out after \(timeout) waiting for \(what); last seen: \(detail)")
}

/// A JSON string literal (valid YAML) of `text`.
private func jsonString(_ text: String) -> String {
    let data = try! JSONSerialization.data(withJSONObject: [text], options: [.withoutEscapingSlashes])
    return String(String(decoding: data, as: UTF8.self).dropFirst().dropLast())
}

/// A listening TCP socket: its owner, address and port.
struct Listener: CustomStringConvertible {
    var pid: Int32
    var address: String
    var port: Int
    var description: String { "\(pid)@\(address):\(port)" }
}

/// TCP sockets in LISTEN state (from /proc/net/tcp and tcp6) owned by `pids`.
func listeningSockets(of pids: [Int32]) -> [Listener] {
    var owners: [String: Int32] = [:]
    for pid in pids {
        let fdDirectory = "/proc/\(pid)/fd"
        for fd in (try? FileManager.default.contentsOfDirectory(atPath: fdDirectory)) ?? [] {
            if let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "\(fdDirectory)/\(fd)"),
                target.hasPrefix("socket:[")
            {
                owners[String(target.dropFirst(8).dropLast())] = pid
            }
        }
    }
    var listeners: [Listener] = []
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        guard let data = readProcFile(file) else { continue }
        let text = String(decoding: data, as: UTF8.self)
        for line in text.split(separator: "\n").dropFirst() {
            let fields = line.split(separator: " ")
            guard fields.count > 9, fields[3] == "0A", let pid = owners[String(fields[9])] else { continue }
            let local = fields[1].split(separator: ":")
            guard local.count == 2, let port = Int(local[1], radix: 16) else { continue }
            listeners.append(Listener(pid: pid, address: decodeAddress(String(local[0])), port: port))
        }
    }
    return listeners
}

/// /proc/net/tcp{,6} addresses: 32-bit words in host (little-endian) order.
private func decodeAddress(_ hex: String) -> String {
    var bytes: [UInt8] = []
    var index = hex.startIndex
    while index < hex.endIndex {
        let next = hex.index(index, offsetBy: 8)
        let word = UInt32(hex[index..<next], radix: 16) ?? 0
        bytes += [UInt8(word & 0xff), UInt8(word >> 8 & 0xff), UInt8(word >> 16 & 0xff), UInt8(word >> 24)]
        index = next
    }
    if bytes.count == 4 { return bytes.map(String.init).joined(separator: ".") }
    if bytes.allSatisfy({ $0 == 0 }) { return "::" }
    if bytes.dropLast().allSatisfy({ $0 == 0 }) && bytes.last == 1 { return "::1" }
    if bytes.prefix(10).allSatisfy({ $0 == 0 }) && bytes[10] == 0xff && bytes[11] == 0xff {
        return bytes.suffix(4).map(String.init).joined(separator: ".")  // IPv4-mapped
    }
    return stride(from: 0, to: 16, by: 2).map { String(format: "%x", UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1])) }
        .joined(separator: ":")
}
