// KubeRuntime: the generic controller machinery, on top of KubeClient. It knows nothing about
// images. The pieces, and how they fit:
//
// - `Watcher<Object>` lists (paged) and watches one kind, following `WatcherStateMachine`
//   (relist on 410, re-watch on a clean end, backoff with jitter, Retry-After on 429), and keeps a
//   `Store<Object>` — the cache controllers read synchronously — in step, telling handlers about
//   every change.
// - `WorkQueue<Key>` has client-go's semantics (`WorkQueueState` is its pure core): dedupe, no
//   concurrent processing of a key, earliest deadline wins, per-key exponential backoff.
// - `Controller<R: Reconciler>` feeds the queue from watchers (`watch`, `owns`, `watches`) and runs
//   workers that call `reconcile(_:)`; `EventRecorder` writes aggregated core/v1 Events.
// - `LeaderElector` holds a coordination.k8s.io/v1 Lease (`LeaseState` is the pure math).
// - The queue and the elector take their time from a `Clock` (`ContinuousClock` by default), as
//   their pure cores take instants as values: tests drive them with a manual clock.
// - `ControllerManager` runs controllers, the elector and `ProbeServer` (/healthz, /readyz,
//   /metrics) as a ServiceGroup with graceful shutdown on SIGTERM/SIGINT; `MetricsBootstrap` and
//   `LoggingBootstrap` set up swift-metrics (Prometheus) and swift-log (text or JSON).
//
// `examples/configmap-mirror` is a complete controller in a few dozen lines.
import KubeClient
import KubeTypes
