import CoreMetrics
import Prometheus
import Synchronization

/// Bootstraps swift-metrics with a Prometheus registry, whose text `/metrics` serves.
public enum MetricsBootstrap {
    private static let registry = Mutex<PrometheusCollectorRegistry?>(nil)

    /// Makes Prometheus the metrics backend of this process (once; later calls return the same
    /// registry) and returns its registry. Call it before creating controllers and clients, so
    /// their metrics land in it.
    @discardableResult
    public static func prometheus() -> PrometheusCollectorRegistry {
        registry.withLock { registry in
            if let registry { return registry }
            let created = PrometheusCollectorRegistry()
            MetricsSystem.bootstrap(makeFactory(registry: created))
            registry = created
            return created
        }
    }

    /// The registry bootstrapped by `prometheus()`, if any.
    public static var bootstrappedRegistry: PrometheusCollectorRegistry? {
        registry.withLock { $0 }
    }

    /// A Prometheus metrics factory with histogram buckets suited to the runtime's durations:
    /// controller-runtime's for reconcile times, client-go's (10 ns … 10 s) for queue times.
    public static func makeFactory(registry: PrometheusCollectorRegistry) -> PrometheusMetricsFactory {
        var factory = PrometheusMetricsFactory(registry: registry)
        let reconcileBuckets: [Double] = [
            0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9, 1,
            1.25, 1.5, 1.75, 2, 2.5, 3, 3.5, 4, 4.5, 5, 6, 7, 8, 9, 10, 15, 20, 25, 30, 40, 50, 60,
        ]
        factory.durationHistogramBuckets["controller_runtime_reconcile_time_seconds"] = reconcileBuckets.map {
            .nanoseconds(Int64($0 * 1e9))
        }
        let queueBuckets: [Duration] = (0..<10).map { .nanoseconds(Int64(10 * pow10($0))) }
        factory.durationHistogramBuckets["workqueue_queue_duration_seconds"] = queueBuckets
        factory.durationHistogramBuckets["workqueue_work_duration_seconds"] = queueBuckets
        return factory
    }

    private static func pow10(_ exponent: Int) -> Double {
        (0..<exponent).reduce(1.0) { value, _ in value * 10 }
    }
}
