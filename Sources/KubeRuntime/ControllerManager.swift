import Logging
import ServiceLifecycle
import Synchronization
import UnixSignals

/// A controller as the manager sees it: a service with a name and caches that sync.
public protocol ManagedController: Service {
    var name: String { get }
    /// True when every cache the controller reads has synced.
    var hasSynced: Bool { get }
}

extension Controller: ManagedController {}

/// Runs an operator process: controllers, leader election and the probe/metrics endpoint, as a
/// `ServiceGroup` that shuts down gracefully on SIGTERM or SIGINT.
///
/// Shutdown order (reverse of start): controllers stop taking work and finish in-flight
/// reconciles, then stop their watches; then the elector releases the lease; then the endpoint
/// closes. Past `shutdownTimeout` whatever is left is cancelled. If leadership is lost, the
/// elector throws `LeadershipLost`, the group is cancelled and `run()` rethrows: exit non-zero.
///
/// `/readyz` reports each controller's caches (`controller/<name>`); `/healthz` reports the
/// elector's health (`leader-election`).
public final class ControllerManager: Sendable {
    public let leaderElector: LeaderElector?
    public let probeServer: ProbeServer?
    public let shutdownTimeout: Duration
    private let controllers = Mutex<[any ManagedController]>([])
    private let stopRequested = OneShotSignal()
    private let logger: Logger

    public init(leaderElector: LeaderElector? = nil, probeServer: ProbeServer? = nil,
                shutdownTimeout: Duration = .seconds(30), logger: Logger = Logger(label: "kube-runtime.manager")) {
        self.leaderElector = leaderElector
        self.probeServer = probeServer
        self.shutdownTimeout = shutdownTimeout
        self.logger = logger
        if let probeServer {
            probeServer.addHealthCheck("ping") { true }
            if let leaderElector {
                probeServer.addHealthCheck("leader-election") { leaderElector.isHealthy() }
            }
        }
    }

    /// Adds a controller (before `run()`).
    public func add(_ controller: any ManagedController) {
        controllers.withLock { $0.append(controller) }
        probeServer?.addReadinessCheck("controller/\(controller.name)") { controller.hasSynced }
    }

    /// True when every controller's caches have synced.
    public var hasSynced: Bool {
        controllers.withLock { $0 }.allSatisfy(\.hasSynced)
    }

    /// Runs until SIGTERM/SIGINT (graceful), cancellation, or lost leadership (throws).
    public func run(signals: [UnixSignal] = [.sigterm, .sigint]) async throws {
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if let probeServer { services.append(.init(service: probeServer, serviceName: "probes")) }
        if let leaderElector { services.append(.init(service: leaderElector, serviceName: "leader-election")) }
        for controller in controllers.withLock({ $0 }) {
            services.append(.init(service: controller, successTerminationBehavior: .gracefullyShutdownGroup,
                                  serviceName: "controller/\(controller.name)"))
        }
        var configuration = ServiceGroupConfiguration(services: services, gracefulShutdownSignals: signals, logger: logger)
        configuration.maximumGracefulShutdownDuration = shutdownTimeout
        let serviceGroup = ServiceGroup(configuration: configuration)
        try await withThrowingTaskGroup(of: Bool.self) { tasks in
            tasks.addTask {
                try await serviceGroup.run()
                return true
            }
            // A programmatic stop, as a signal would: graceful shutdown of the group.
            tasks.addTask {
                await self.stopRequested.wait()
                if !Task.isCancelled { await serviceGroup.triggerGracefulShutdown() }
                return false
            }
            // Until the group itself has finished.
            while let groupFinished = try await tasks.next() {
                if groupFinished { tasks.cancelAll() }
            }
        }
    }

    /// Shuts down gracefully, as SIGTERM would (also before `run()` has started).
    public func shutDown() {
        stopRequested.fire()
    }
}
