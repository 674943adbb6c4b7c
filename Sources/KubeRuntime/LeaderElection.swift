import CoreMetrics
import Foundation
import KubeClient
import KubeTypes
import Logging
import ServiceLifecycle
import Synchronization

/// Settings of leader election (client-go's defaults).
public struct LeaderElectionConfiguration: Sendable, Hashable {
    /// The Lease's name and namespace.
    public var leaseName: String
    public var namespace: String
    /// Who this replica is: `hostname_uuid` by default, unique per process.
    public var identity: String
    /// How long a lease is valid after it was last seen to change; non-leaders wait this long
    /// before taking over.
    public var leaseDuration: Duration
    /// How long the leader keeps retrying a renewal before it gives up leadership.
    public var renewDeadline: Duration
    /// How often to try to acquire or renew.
    public var retryPeriod: Duration
    /// Clear the holder on shutdown so another replica takes over at once.
    public var releaseOnShutdown: Bool

    public init(leaseName: String, namespace: String, identity: String = LeaderElectionConfiguration.defaultIdentity(),
                leaseDuration: Duration = .seconds(15), renewDeadline: Duration = .seconds(10),
                retryPeriod: Duration = .seconds(2), releaseOnShutdown: Bool = true) {
        precondition(leaseDuration > renewDeadline && renewDeadline > retryPeriod,
                     "leader election needs leaseDuration > renewDeadline > retryPeriod")
        self.leaseName = leaseName
        self.namespace = namespace
        self.identity = identity
        self.leaseDuration = leaseDuration
        self.renewDeadline = renewDeadline
        self.retryPeriod = retryPeriod
        self.releaseOnShutdown = releaseOnShutdown
    }

    /// `hostname_uuid`.
    public static func defaultIdentity() -> String {
        "\(ProcessInfo.processInfo.hostName)_\(UUID().uuidString.lowercased())"
    }
}

/// The decisions of leader election on a Lease, without I/O (client-go's algorithm):
///
/// - Expiry is judged by the local monotonic clock: a lease held by another is valid until
///   `leaseDurationSeconds` after this replica last saw it change, whatever its `renewTime` says
///   (clocks of different machines disagree).
/// - A valid lease held by another cannot be taken; an expired one, one with no holder, or one
///   this replica holds can be written — with a compare-and-swap on its resourceVersion, so two
///   replicas never both succeed.
/// - Taking over from another holder increments `leaseTransitions` and sets `acquireTime`;
///   renewing keeps both and moves `renewTime`.
public struct LeaseState: Sendable, Hashable {
    /// The spec as last seen, and when (local monotonic clock).
    public private(set) var observedSpec: LeaseSpec?
    public private(set) var observedAt: ContinuousClock.Instant?

    public init() {}

    /// Records the spec read from the server; the clock restarts only if it changed.
    public mutating func observe(_ spec: LeaseSpec?, at now: ContinuousClock.Instant) {
        if observedAt == nil || spec != observedSpec {
            observedSpec = spec
            observedAt = now
        }
    }

    /// The holder as last seen ("" or nil: nobody).
    public var holder: String? {
        guard let holder = observedSpec?.holderIdentity, !holder.isEmpty else { return nil }
        return holder
    }

    /// When the observed lease expires: `observedAt` plus its duration (or `defaultDuration`).
    public func expiry(defaultDuration: Duration) -> ContinuousClock.Instant? {
        guard let observedAt else { return nil }
        let duration = observedSpec?.leaseDurationSeconds.map { Duration.seconds(Int64($0)) } ?? defaultDuration
        return observedAt + duration
    }

    /// True while another replica holds a lease that has not expired.
    public func isHeldByOther(than identity: String, at now: ContinuousClock.Instant, defaultDuration: Duration) -> Bool {
        guard let holder, holder != identity, let expiry = expiry(defaultDuration: defaultDuration) else { return false }
        return now < expiry
    }

    /// The spec to write to acquire or renew the lease as `identity`.
    public func acquiring(as identity: String, leaseDuration: Duration, at wallTime: Date) -> LeaseSpec {
        let renewing = holder == identity
        let old = observedSpec
        return LeaseSpec(
            holderIdentity: identity,
            leaseDurationSeconds: Int32(leaseDuration.components.seconds),
            acquireTime: renewing ? (old?.acquireTime ?? MicroTime(wallTime)) : MicroTime(wallTime),
            renewTime: MicroTime(wallTime),
            leaseTransitions: renewing ? (old?.leaseTransitions ?? 0) : (old?.leaseTransitions ?? -1) + 1)
    }

    /// The spec to write to give the lease up: no holder, a one-second duration.
    public func released(at wallTime: Date) -> LeaseSpec {
        LeaseSpec(holderIdentity: "", leaseDurationSeconds: 1, acquireTime: MicroTime(wallTime),
                  renewTime: MicroTime(wallTime), leaseTransitions: observedSpec?.leaseTransitions ?? 0)
    }
}

/// Leadership was lost: another replica may be acting now, so this one must stop (exit).
public struct LeadershipLost: Error, CustomStringConvertible, Sendable {
    public var identity: String
    public var lease: String
    public var description: String { "\(identity) lost leadership of lease \(lease)" }
}

/// Leader election on a `coordination.k8s.io/v1` Lease.
///
/// `run()` tries to acquire the lease every `retryPeriod` (with jitter) until it does, then
/// renews it every `retryPeriod`. If renewing keeps failing for `renewDeadline`, it throws
/// `LeadershipLost` — the process should exit (a `ServiceGroup` does). On graceful shutdown (or
/// `shutDown()`) it releases the lease, so another replica can take over at once, and returns.
///
/// Time comes from `clock` (`ContinuousClock` by default): the retry period, the renew deadline,
/// the expiry of a lease held by another and `isHealthy` are measured on it, and the elector
/// sleeps on it — so tests drive it with a manual clock. (The `acquireTime`/`renewTime` written to
/// the Lease are wall-clock times, for humans; expiry never depends on them.)
///
/// A leader renews from the Lease it last wrote (one conditional update, no read); a conflict
/// means someone else wrote it, and the same attempt reads it again.
///
/// Metrics: `leader_election_master_status{name}` is 1 while leading;
/// `leader_election_requests_total{name}` counts the elector's API requests.
public final class LeaderElector: Service {
    private struct State {
        var lease = LeaseState()
        var isLeader = false
        var lastRenewal: ContinuousClock.Instant?
        /// The Lease as this elector last wrote it, while it holds it.
        var written: Lease?
        var requests = 0
    }

    public let client: KubernetesClient
    public let configuration: LeaderElectionConfiguration
    private let state = Mutex(State())
    private let leading = OneShotSignal()
    private let stopRequested = OneShotSignal()
    private let status: Gauge
    private let requestCounter: Counter
    private let logger: Logger
    private let clock: RuntimeClock

    /// - Parameter clock: the time of retries, renew deadlines and lease expiry; the elector
    ///   sleeps on it.
    public init(client: KubernetesClient, configuration: LeaderElectionConfiguration,
                logger: Logger = Logger(label: "kube-runtime.leader-election"),
                clock: some Clock<Duration> = ContinuousClock()) {
        self.client = client
        self.configuration = configuration
        self.clock = RuntimeClock(clock)
        self.status = Gauge(label: "leader_election_master_status", dimensions: [("name", configuration.leaseName)])
        self.requestCounter = Counter(label: "leader_election_requests_total", dimensions: [("name", configuration.leaseName)])
        var logger = logger
        logger[metadataKey: "lease"] = "\(configuration.namespace)/\(configuration.leaseName)"
        logger[metadataKey: "identity"] = "\(configuration.identity)"
        self.logger = logger
    }

    public var identity: String { configuration.identity }

    /// True while this replica holds the lease.
    public var isLeader: Bool { state.withLock { $0.isLeader } }

    /// The holder as last seen.
    public var observedHolder: String? { state.withLock { $0.lease.holder } }

    /// The API requests this elector has made.
    public var requestsMade: Int { state.withLock { $0.requests } }

    /// Counts one API request of the elector.
    private func counted<T>(_ request: () async throws -> T) async throws -> T {
        state.withLock { $0.requests += 1 }
        requestCounter.increment()
        return try await request()
    }

    /// Returns true once this replica leads; false if the elector stopped (or the task was
    /// cancelled) first.
    public func waitUntilLeading() async -> Bool {
        await KubeRuntime.run({
            await self.leading.wait()
            return self.isLeader
        }, until: stopRequested) ?? false
    }

    /// Healthy unless leading with no successful renewal for longer than the lease duration plus
    /// `tolerance` (a stuck elector).
    public func isHealthy(tolerance: Duration = .seconds(20)) -> Bool {
        state.withLock { state in
            guard state.isLeader, let lastRenewal = state.lastRenewal else { return true }
            return clock.now - lastRenewal <= configuration.leaseDuration + tolerance
        }
    }

    /// Stops: releases the lease if held (and `releaseOnShutdown`), and `run()` returns.
    public func shutDown() {
        stopRequested.fire()
    }

    public func run() async throws {
        status.record(0)
        try await withGracefulShutdownHandler {
            try await elect()
        } onGracefulShutdown: {
            self.shutDown()
        }
    }

    private func elect() async throws {
        logger.info("trying to acquire the lease")
        // Acquire.
        while !stopRequested.hasFired {
            if Task.isCancelled { return }
            if await tryAcquireOrRenew() { break }
            await pause(configuration.retryPeriod * (1 + 1.2 * Double.random(in: 0..<1)))
        }
        if stopRequested.hasFired || Task.isCancelled { return }
        state.withLock { $0.isLeader = true }
        status.record(1)
        logger.info("acquired the lease; leading")
        leading.fire()

        // Renew until stopped, or until renewals fail for longer than the renew deadline.
        while true {
            await pause(configuration.retryPeriod)
            if Task.isCancelled { return stepDown() }
            if stopRequested.hasFired {
                await release()
                return
            }
            let deadline = clock.now + configuration.renewDeadline
            let renewed = await withDeadline(deadline, clock: clock) {
                while !Task.isCancelled {
                    if await self.tryAcquireOrRenew() { return true }
                    if self.clock.now + self.configuration.retryPeriod > deadline { return false }
                    try? await self.clock.sleep(for: self.configuration.retryPeriod)
                }
                return false
            }
            if renewed != true {
                if Task.isCancelled { return stepDown() }
                stepDown()
                logger.error("could not renew the lease within the renew deadline; leadership lost")
                throw LeadershipLost(identity: identity, lease: "\(configuration.namespace)/\(configuration.leaseName)")
            }
        }
    }

    private func stepDown() {
        state.withLock { state in
            state.isLeader = false
            state.written = nil
        }
        status.record(0)
    }

    /// Sleeps on the clock, but wakes early when a stop is requested.
    private func pause(_ duration: Duration) async {
        let clock = self.clock
        _ = await KubeRuntime.run({ try? await clock.sleep(for: duration) }, until: stopRequested)
    }

    /// One attempt: renew from the Lease last written when there is one; otherwise (or when that
    /// conflicts) read the lease, and write it as ours if nobody else validly holds it.
    private func tryAcquireOrRenew() async -> Bool {
        let name = configuration.leaseName, namespace = configuration.namespace
        if var renewed = state.withLock({ $0.written }) {
            renewed.spec = state.withLock { claim(from: $0.lease) }
            do {
                let written = try await counted { try await client.update(renewed) }
                recordSuccess(written)
                return true
            } catch let error as APIError where error.isConflict {
                // Someone else wrote the lease: read it, as if nothing had been written.
                state.withLock { $0.written = nil }
            } catch {
                logger.debug("could not renew the lease", metadata: ["error": "\(error)"])
                return false
            }
        }
        let lease: Lease
        do {
            lease = try await counted { try await client.get(Lease.self, name: name, namespace: namespace) }
        } catch let error as APIError where error.isNotFound {
            let spec = state.withLock { claim(from: $0.lease) }
            do {
                let created = try await counted {
                    try await client.create(Lease(metadata: ObjectMeta(name: name, namespace: namespace), spec: spec))
                }
                recordSuccess(created)
                return true
            } catch {
                logger.debug("could not create the lease", metadata: ["error": "\(error)"])
                return false
            }
        } catch {
            logger.warning("could not read the lease", metadata: ["error": "\(error)"])
            return false
        }
        let now = clock.now
        let (heldByOther, spec) = state.withLock { state -> (Bool, LeaseSpec) in
            state.lease.observe(lease.spec, at: now)
            let held = state.lease.isHeldByOther(than: identity, at: now, defaultDuration: configuration.leaseDuration)
            return (held, claim(from: state.lease))
        }
        if heldByOther { return false }
        var updated = lease
        updated.spec = spec
        do {
            // Conditional on the resourceVersion read: a concurrent writer makes this fail with 409.
            let written = try await counted { try await client.update(updated) }
            recordSuccess(written)
            return true
        } catch {
            logger.debug("could not write the lease", metadata: ["error": "\(error)"])
            return false
        }
    }

    /// The spec that takes or renews the lease for this replica, now.
    private func claim(from lease: LeaseState) -> LeaseSpec {
        lease.acquiring(as: identity, leaseDuration: configuration.leaseDuration, at: Date())
    }

    private func recordSuccess(_ written: Lease) {
        let now = clock.now
        state.withLock { state in
            state.lease.observe(written.spec, at: now)
            state.lastRenewal = now
            state.written = written
        }
    }

    /// Gives the lease up so another replica can take over at once.
    private func release() async {
        stepDown()
        guard configuration.releaseOnShutdown else { return }
        do {
            var lease = try await counted {
                try await client.get(Lease.self, name: configuration.leaseName, namespace: configuration.namespace)
            }
            guard lease.spec?.holderIdentity == identity else { return }
            lease.spec = state.withLock { $0.lease.released(at: Date()) }
            _ = try await counted { try await client.update(lease) }
            logger.info("released the lease")
        } catch {
            logger.warning("could not release the lease", metadata: ["error": "\(error)"])
        }
    }
}
