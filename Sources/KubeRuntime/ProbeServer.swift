import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus
import ServiceLifecycle
import Synchronization

/// The operator's HTTP endpoint: `/healthz` (alive), `/readyz` (ready: every cache synced) and
/// `/metrics` (Prometheus text of the bootstrapped registry).
///
/// Checks are named closures; an endpoint answers 200 `ok` when all pass and 503 listing the
/// failing ones otherwise (`?verbose` lists all, as Kubernetes components do).
///
/// Readiness deliberately does not include leadership: a standby replica is healthy and ready
/// to take over, and a rolling update would never finish if the new replica could only become
/// ready by taking the lease from the old one. Liveness includes the elector's health (a leader
/// that has not renewed for far longer than the lease duration is stuck).
public final class ProbeServer: Service {
    public typealias Check = @Sendable () -> Bool

    private struct State {
        var healthChecks: [(String, Check)] = []
        var readinessChecks: [(String, Check)] = []
        var channel: (any Channel)?
        var stopped = false
    }

    public let host: String
    public let port: Int
    private let registry: PrometheusCollectorRegistry?
    private let state = Mutex(State())
    private let listening = OneShotSignal()
    private let logger: Logger

    /// - Parameters:
    ///   - host: address to listen on (`0.0.0.0` in a pod, `127.0.0.1` in tests).
    ///   - port: 0 picks a free port (see `boundPort`).
    ///   - registry: what `/metrics` serves; the bootstrapped one by default.
    public init(host: String = "0.0.0.0", port: Int = 8080,
                registry: PrometheusCollectorRegistry? = MetricsBootstrap.bootstrappedRegistry,
                logger: Logger = Logger(label: "kube-runtime.probes")) {
        self.host = host
        self.port = port
        self.registry = registry
        self.logger = logger
    }

    /// Adds a check to `/healthz`.
    public func addHealthCheck(_ name: String, _ check: @escaping Check) {
        state.withLock { $0.healthChecks.append((name, check)) }
    }

    /// Adds a check to `/readyz`.
    public func addReadinessCheck(_ name: String, _ check: @escaping Check) {
        state.withLock { $0.readinessChecks.append((name, check)) }
    }

    /// The port actually listened on, once listening.
    public var boundPort: Int? {
        state.withLock { $0.channel?.localAddress?.port }
    }

    /// Waits until the server listens and returns its port (nil if it stopped first).
    public func waitUntilListening() async -> Int? {
        await listening.wait()
        return boundPort
    }

    /// Stops listening; `run()` returns.
    public func shutDown() {
        let channel = state.withLock { state in
            state.stopped = true
            return state.channel
        }
        channel?.close(promise: nil)
        listening.fire()
    }

    public func run() async throws {
        let router = ProbeRouter(server: self)
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(ProbeHandler(router: router))
                }
            }
            .bind(host: host, port: port)
            .get()
        let alreadyStopped = state.withLock { state in
            state.channel = channel
            return state.stopped
        }
        if alreadyStopped { channel.close(promise: nil) }
        logger.info("serving probes and metrics", metadata: ["address": "\(host):\(channel.localAddress?.port ?? port)"])
        listening.fire()
        try await withTaskCancellationOrGracefulShutdownHandler {
            try await channel.closeFuture.get()
        } onCancelOrGracefulShutdown: {
            channel.close(promise: nil)
        }
    }

    // MARK: - Answers

    struct Answer: Sendable {
        var status: HTTPResponseStatus
        var contentType: String
        var body: String
    }

    func answer(method: HTTPMethod, uri: String) -> Answer {
        let path = uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? uri
        let verbose = uri.contains("verbose")
        guard method == .GET || method == .HEAD else {
            return Answer(status: .methodNotAllowed, contentType: "text/plain", body: "method not allowed\n")
        }
        switch path {
        case "/healthz", "/livez":
            return checks(state.withLock { $0.healthChecks }, verbose: verbose)
        case "/readyz":
            return checks(state.withLock { $0.readinessChecks }, verbose: verbose)
        case "/metrics":
            guard let registry else {
                return Answer(status: .notFound, contentType: "text/plain", body: "metrics are not enabled\n")
            }
            return Answer(status: .ok, contentType: "text/plain; version=0.0.4; charset=utf-8", body: registry.emitToString())
        default:
            return Answer(status: .notFound, contentType: "text/plain", body: "not found\n")
        }
    }

    private func checks(_ checks: [(String, Check)], verbose: Bool) -> Answer {
        var lines: [String] = []
        var failed = false
        for (name, check) in checks {
            if check() {
                if verbose { lines.append("[+]\(name) ok") }
            } else {
                failed = true
                lines.append("[-]\(name) failed")
            }
        }
        if failed {
            return Answer(status: .serviceUnavailable, contentType: "text/plain",
                          body: (lines + ["check failed"]).joined(separator: "\n") + "\n")
        }
        return Answer(status: .ok, contentType: "text/plain", body: (lines + ["ok"]).joined(separator: "\n") + "\n")
    }
}

/// Hands requests to the server (Sendable, shared by connections).
struct ProbeRouter: Sendable {
    let server: ProbeServer
}

/// One connection's HTTP/1.1 handling.
final class ProbeHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let router: ProbeRouter
    private var head: HTTPRequestHead?

    init(router: ProbeRouter) {
        self.router = router
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
        case .body:
            break
        case .end:
            guard let head else { return }
            self.head = nil
            respond(to: head, context: context)
        }
    }

    private func respond(to head: HTTPRequestHead, context: ChannelHandlerContext) {
        let answer = router.server.answer(method: head.method, uri: head.uri)
        var body = context.channel.allocator.buffer(capacity: answer.body.utf8.count)
        body.writeString(answer.body)
        var headers = NIOHTTP1.HTTPHeaders()
        headers.add(name: "Content-Type", value: answer.contentType)
        headers.add(name: "Content-Length", value: String(body.readableBytes))
        let keepAlive = head.isKeepAlive
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: answer.status, headers: headers))),
                      promise: nil)
        if head.method != .HEAD {
            context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        }
        let written = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            let boundContext = NIOLoopBound(context, eventLoop: context.eventLoop)
            written.whenComplete { _ in boundContext.value.close(promise: nil) }
        }
    }
}
