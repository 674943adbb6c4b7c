// swift-tools-version:6.2
import PackageDescription

let package = Package(
    name: "image-builder",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "image-builder", targets: ["image-builder"]),
        .library(name: "KubeTypes", targets: ["KubeTypes"]),
        .library(name: "KubeClient", targets: ["KubeClient"]),
        .library(name: "KubeRuntime", targets: ["KubeRuntime"]),
        .library(name: "ImageBuilder", targets: ["ImageBuilder"]),
        .library(name: "ImageBuilderReconcilers", targets: ["ImageBuilderReconcilers"]),
        .library(name: "RegistryTypes", targets: ["RegistryTypes"]),
        .library(name: "RegistryClient", targets: ["RegistryClient"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        // libcurl, from Debian's libcurl4-openssl-dev.
        .systemLibrary(
            name: "CCurl",
            pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"])]
        ),
        // Non-variadic wrappers for curl_easy_setopt and friends.
        .target(name: "CCurlShim", dependencies: ["CCurl"]),
        // HTTP over curl multi: one thread drives every transfer; connection reuse and HTTP/2.
        .target(
            name: "CurlHTTP",
            dependencies: [
                "CCurl", "CCurlShim",
                .product(name: "DequeModule", package: "swift-collections"),
            ]
        ),
        // Kubernetes object types and JSON values, no I/O (as kube-rs keeps kube-core apart from
        // kube-client): the client, the runtime and the image-builder core all build on it.
        .target(name: "KubeTypes"),
        // The Kubernetes API client: configuration, typed requests, watches, errors.
        .target(
            name: "KubeClient",
            dependencies: [
                "CurlHTTP", "KubeTypes",
                .product(name: "Yams", package: "Yams"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ]
        ),
        // Generic controller machinery: watchers, caches, work queues, controllers, leader election,
        // events, and the process plumbing (probes and metrics over HTTP, logging, shutdown).
        // glibc's malloc_trim, which Swift's Glibc module does not export.
        .target(name: "CHeapTrim"),
        .target(
            name: "KubeRuntime",
            dependencies: [
                "KubeClient", "KubeTypes", "CHeapTrim",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),
        // The pure core of the domain: ImageSpec types, validation, naming, build rendering and
        // planning, and the reconcile decision. No I/O: no KubeClient, KubeRuntime or RegistryClient.
        .target(
            name: "ImageBuilder",
            dependencies: [
                "KubeTypes",
                "RegistryTypes",
                .product(name: "Yams", package: "Yams"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // The operator: the reconcilers (thin I/O shells around the core's decision) and their wiring.
        .target(
            name: "ImageBuilderReconcilers",
            dependencies: [
                "ImageBuilder",
                "KubeTypes",
                "KubeClient",
                "KubeRuntime",
                "RegistryTypes",
                "RegistryClient",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),
        // Registry values, no I/O: image references, digests, docker configs.
        .target(
            name: "RegistryTypes",
            dependencies: [
                "KubeTypes",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // The OCI/Docker registry client: manifests, image configs, auth, push checks.
        .target(
            name: "RegistryClient",
            dependencies: [
                "CurlHTTP",
                "KubeTypes",
                "RegistryTypes",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "image-builder",
            dependencies: [
                "KubeTypes",
                "KubeClient",
                "ImageBuilder",
                "ImageBuilderReconcilers",
                "RegistryTypes",
                "KubeRuntime",
                "RegistryClient",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // `swift run configmap-mirror`: a small controller showing how KubeRuntime's pieces fit.
        .executableTarget(
            name: "configmap-mirror",
            dependencies: [
                "KubeTypes", "KubeClient", "KubeRuntime",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "examples/configmap-mirror"
        ),
        // Test support: a real etcd + kube-apiserver (+ controller manager) and an OCI registry on
        // loopback. Deliberately independent of KubeClient, which it is used to test.
        // OpenSSL, for the harness's TLS-terminating fault proxy (tests only).
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
        .target(name: "TestHarness", dependencies: ["COpenSSL"]),
        // `swift run local-cluster up|down|status`: the harness's node tier for shell scripts.
        .executableTarget(name: "local-cluster", dependencies: ["TestHarness"]),
        // `swift run -c release client-benchmark`: our client against kubectl on a local control plane.
        .executableTarget(
            name: "client-benchmark",
            dependencies: ["KubeClient", "KubeTypes", "CurlHTTP", "TestHarness", "BenchmarkSupport"],
            path: "Benchmarks/ClientBenchmark"
        ),
        // `swift run -c release operator-benchmark`: image-builder against a kopf peer and the client's floor.
        .executableTarget(
            name: "operator-benchmark",
            dependencies: ["ImageBuilder", "ImageBuilderReconcilers", "KubeClient", "KubeRuntime", "KubeTypes", "CurlHTTP", "TestHarness",
                           "CHeapInfo", "BenchmarkSupport",
                           "RegistryTestSupport", "RegistryTypes", .product(name: "Crypto", package: "swift-crypto")],
            path: "Benchmarks/OperatorBenchmark"
        ),
        // What both benchmarks share: errors, output, argument reading.
        .target(name: "BenchmarkSupport", path: "Benchmarks/BenchmarkSupport"),
        // glibc's heap statistics, for the operator benchmark's bytes per cached object.
        .target(name: "CHeapInfo", path: "Benchmarks/CHeapInfo"),
        // `swift run -c release chaos-benchmark`: the chaos scenarios at a larger scale (issue 13).
        .executableTarget(
            name: "chaos-benchmark",
            dependencies: ["ChaosSupport"],
            path: "Benchmarks/ChaosBenchmark"
        ),
        .testTarget(name: "CurlHTTPTests", dependencies: ["CurlHTTP"]),
        .testTarget(name: "KubeClientTests", dependencies: ["KubeClient", "KubeTypes", "CurlHTTP"]),
        .testTarget(
            name: "ImageBuilderTests",
            dependencies: [
                "ImageBuilder",
                "ImageBuilderReconcilers",
                "KubeTypes",
                "RegistryTypes",
                "image-builder",
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            exclude: ["Golden"]
        ),
        .testTarget(name: "TestHarnessTests", dependencies: ["TestHarness"]),
        // Helpers of the integration tests: clients for the harness's users, namespaces, polling, a test CRD.
        .target(name: "KubeTestSupport", dependencies: ["KubeClient", "KubeTypes", "CurlHTTP", "TestHarness"], path: "Tests/KubeTestSupport"),
        .testTarget(name: "KubeClientIntegrationTests", dependencies: ["KubeClient", "KubeTypes", "CurlHTTP", "TestHarness", "KubeTestSupport"]),
        .testTarget(name: "KubeRuntimeTests", dependencies: ["KubeRuntime", "KubeClient", "KubeTypes", "TestHarness", "KubeTestSupport", "CurlHTTP"]),
        // Pushes test images to a LocalRegistry with plain HTTP requests.
        .target(
            name: "RegistryTestSupport", dependencies: ["RegistryClient", "RegistryTypes", "TestHarness", "CurlHTTP", "KubeTypes"],
            path: "Tests/RegistryTestSupport"
        ),
        .testTarget(
            name: "RegistryClientTests",
            dependencies: [
                "RegistryClient", "RegistryTypes", "RegistryTestSupport", "TestHarness", "CurlHTTP", "KubeTypes",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // Builds that really run, on the harness's single-node cluster.
        .testTarget(
            name: "RealBuildTests",
            dependencies: ["ImageBuilder", "ImageBuilderReconcilers", "KubeTypes", "KubeClient", "RegistryTypes",
                           "RegistryClient", "KubeTestSupport", "TestHarness"]
        ),
        .testTarget(
            name: "ImageBuilderIntegrationTests",
            dependencies: ["ImageBuilder", "ImageBuilderReconcilers", "KubeTypes", "KubeClient", "KubeRuntime", "RegistryTypes", "RegistryClient", "RegistryTestSupport", "KubeTestSupport", "TestHarness", "CurlHTTP"]
        ),
        // Chaos at burst scale: the operator as a process, a burst of ImageSpecs, a fault, the check.
        .target(
            name: "ChaosSupport",
            dependencies: ["ImageBuilder", "KubeTypes", "KubeClient", "RegistryTestSupport", "TestHarness", "CurlHTTP"],
            path: "Tests/ChaosSupport"
        ),
        .testTarget(name: "ChaosTests", dependencies: ["ChaosSupport", "TestHarness"]),
    ]
)
