import ArgumentParser
import CurlHTTP
import Foundation
import ImageBuilder
import ImageBuilderReconcilers
import KubeClient
import KubeRuntime
import KubeTypes
import Logging
import RegistryClient
import RegistryTypes

/// `image-builder run`: the operator.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the operator: watch ImageSpecs, build their images, publish them to PrimeHub's image list.",
        discussion: """
            Connects with --kubeconfig, else $KUBECONFIG, else the pod's service account, else \
            ~/.kube/config. Serves /healthz, /readyz and /metrics on --probe-address. Stops gracefully \
            on SIGTERM or SIGINT (in-flight reconciles finish, the leader lease is released). Exits \
            non-zero when the configuration is invalid (2) or leadership is lost (1).
            """
    )

    @Option(help: "The operator configuration file (YAML). Without it: defaults, which need a push registry to build.")
    var config: String?

    @Option(help: "A kubeconfig file (default: $KUBECONFIG, in-cluster, ~/.kube/config).")
    var kubeconfig: String?

    @Option(help: "The kubeconfig context (default: the current one).")
    var context: String?

    @Option(name: .customLong("namespace"), help: "A namespace to watch (repeatable; overrides watchNamespaces; default: all).")
    var namespaces: [String] = []

    @Option(help: "ImageSpecs reconciled at once.")
    var workers = 16

    @Option(name: .customLong("kube-api-qps"), help: "Client-side limit on API requests per second (watches not counted); 0 for none.")
    var kubeAPIQPS: Double = 1000

    @Option(name: .customLong("kube-api-burst"), help: "Requests that may go above --kube-api-qps at once.")
    var kubeAPIBurst = 2000

    @Flag(inversion: .prefixedNo, help: "Elect a leader among replicas through a Lease (default: on).")
    var leaderElect = true

    @Option(help: "The Lease's namespace (default: $POD_NAMESPACE, else the kubeconfig's namespace).")
    var leaderElectionNamespace: String?

    @Option(help: "The Lease's name.")
    var leaderElectionID = "image-builder"

    @Option(help: ArgumentHelp(
        "This replica's name in the Lease (default: $POD_NAME, else the hostname).",
        discussion: "Stable across restarts, so a restarted replica takes its own lease back at once; distinct per replica."))
    var leaderIdentity: String?

    @Option(help: "host:port for /healthz, /readyz and /metrics; 'off' for none.")
    var probeAddress = "0.0.0.0:8080"

    @Option(help: "Platform picked from multi-platform base images.")
    var platform = "linux/amd64"

    @Flag(help: "Multiplex API requests over HTTP/2 (off: Debian's libcurl 7.88.1 can stall multiplexed responses; see README).")
    var http2 = false

    @Option(help: "Log format: text or json.")
    var logFormat = "text"

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel = "info"

    func validate() throws {
        guard LogFormat(rawValue: logFormat) != nil else { throw ValidationError("--log-format: expected text or json, got \(logFormat)") }
        guard LoggingBootstrap.level(named: logLevel) != nil else { throw ValidationError("--log-level: unknown level \(logLevel)") }
        guard workers > 0 else { throw ValidationError("--workers: must be at least 1") }
        guard kubeAPIQPS >= 0, kubeAPIQPS.isFinite else { throw ValidationError("--kube-api-qps: must be 0 (no limit) or more") }
        guard kubeAPIBurst > 0 else { throw ValidationError("--kube-api-burst: must be at least 1") }
        if probeAddress != "off", Self.hostAndPort(probeAddress) == nil {
            throw ValidationError("--probe-address: expected host:port (e.g. 0.0.0.0:8080) or off, got \(probeAddress)")
        }
        do { _ = try Platform(parsing: platform) } catch { throw ValidationError("--platform: \(error)") }
        if let leaderIdentity, leaderIdentity.isEmpty || leaderIdentity.contains(where: { $0.isNewline }) {
            throw ValidationError("--leader-identity: must be a non-empty name on one line")
        }
    }

    /// The Lease holder name: `--leader-identity`, else `$POD_NAME` (the downward API gives each of
    /// a Deployment's Pods its own, kept when the container restarts), else the hostname.
    static func leaderIdentity(_ flag: String?, environment: [String: String] = ProcessInfo.processInfo.environment,
                               hostName: String = ProcessInfo.processInfo.hostName) -> String {
        if let flag { return flag }
        if let pod = environment["POD_NAME"], !pod.isEmpty { return pod }
        return hostName
    }

    func run() async throws {
        LoggingBootstrap.bootstrap(format: LogFormat(rawValue: logFormat) ?? .text, level: LoggingBootstrap.level(named: logLevel) ?? .info)
        _ = MetricsBootstrap.prometheus()
        let logger = Logger(label: "image-builder")

        let operatorConfig = try loadConfig(logger: logger)
        var clientConfiguration: ClientConfiguration
        do {
            clientConfiguration = try ClientConfiguration.load(kubeconfig: kubeconfig, context: context)
            if kubeAPIQPS > 0 { clientConfiguration.rateLimit = RateLimit(requestsPerSecond: kubeAPIQPS, burst: kubeAPIBurst) }
        } catch {
            printError("cannot connect: \(error)")
            throw ExitCode(2)
        }
        let client = KubernetesClient(configuration: clientConfiguration, http: http2 ? HTTPClient(http2: true) : .shared,
                                      logger: Logger(label: "image-builder.kube-client"))
        logger.info("starting", metadata: [
            "server": "\(clientConfiguration.server)", "auth": "\(clientConfiguration.source)",
            "namespaces": "\((namespaces.isEmpty ? operatorConfig.watchNamespaces : namespaces).joined(separator: ",").nonEmpty ?? "all")",
        ])

        var options = ImageBuilderOperator.Options(namespaces: namespaces, workers: workers, platform: try Platform(parsing: platform))
        if let (host, port) = Self.hostAndPort(probeAddress) {
            options.probeHost = host
            options.probePort = port
        } else {
            options.probePort = nil
        }
        if leaderElect {
            let namespace = leaderElectionNamespace ?? ProcessInfo.processInfo.environment["POD_NAMESPACE"] ?? client.defaultNamespace
            options.leaderElection = LeaderElectionConfiguration(leaseName: leaderElectionID, namespace: namespace,
                                                                 identity: Self.leaderIdentity(leaderIdentity))
        }
        let imageBuilder = ImageBuilderOperator(client: client, config: operatorConfig, options: options, logger: logger)
        do {
            try await imageBuilder.run()
        } catch let lost as LeadershipLost {
            logger.error("\(lost); exiting so that a fresh process can compete again")
            throw ExitCode(1)
        }
        logger.info("stopped")
    }

    func loadConfig(logger: Logger) throws -> OperatorConfig {
        guard let config else {
            logger.warning("no --config given: no push registry is configured, so ImageSpecs cannot be built")
            return OperatorConfig()
        }
        let text: String
        do {
            text = try InputFiles.text(of: config)
        } catch {
            printError("\(error)")
            throw ExitCode(2)
        }
        switch OperatorConfigLoader.load(yaml: text) {
        case .success(let loaded):
            for warning in loaded.warnings { logger.warning("\(config): \(warning)") }
            if loaded.config.registry.push == nil {
                logger.warning("\(config): no registry.pushRepo or registry.pushRepoPrefix: ImageSpecs cannot be built")
            }
            return loaded.config
        case .failure(let failure):
            failure.problems.forEach { printError($0.line(file: config)) }
            throw ExitCode(2)
        }
    }

    static func hostAndPort(_ text: String) -> (String, Int)? {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
            return nil
        }
        var host = String(text[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return (host.isEmpty ? "0.0.0.0" : host, port)
    }
}

extension String {
    var nonEmpty: String? { isEmpty ? nil : self }
}
