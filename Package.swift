// swift-tools-version:6.2
import PackageDescription

let package = Package(
    name: "image-builder",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "image-builder", targets: ["image-builder"]),
        .library(name: "KubeClient", targets: ["KubeClient"]),
        .library(name: "KubeRuntime", targets: ["KubeRuntime"]),
        .library(name: "ImageBuilder", targets: ["ImageBuilder"]),
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
                .product(name: "Collections", package: "swift-collections"),
            ]
        ),
        // The Kubernetes API client: configuration, typed requests, watches, errors.
        .target(
            name: "KubeClient",
            dependencies: [
                "CurlHTTP",
                .product(name: "Yams", package: "Yams"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ]
        ),
        // Generic controller machinery: watchers, caches, work queues, controllers, leader election,
        // events, and the process plumbing (probes and metrics over HTTP, logging, shutdown).
        .target(
            name: "KubeRuntime",
            dependencies: [
                "KubeClient",
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
        // The pure domain: ImageSpec types, validation, naming, build rendering and planning.
        .target(
            name: "ImageBuilder",
            dependencies: [
                "KubeClient",
                "KubeRuntime",
                "RegistryClient",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // The OCI/Docker registry client: references, manifests, image configs, auth, push checks.
        .target(
            name: "RegistryClient",
            dependencies: [
                "CurlHTTP",
                "KubeClient",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        .executableTarget(
            name: "image-builder",
            dependencies: [
                "KubeClient",
                "ImageBuilder",
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
                "KubeClient", "KubeRuntime",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "examples/configmap-mirror"
        ),
        // Test support: a real etcd + kube-apiserver (+ controller manager) and an OCI registry on
        // loopback. Deliberately independent of KubeClient, which it is used to test.
        .target(name: "TestHarness"),
        // `swift run local-cluster up|down|status`: the harness's node tier for shell scripts.
        .executableTarget(name: "local-cluster", dependencies: ["TestHarness"]),
        // `swift run -c release client-benchmark`: our client against kubectl on a local control plane.
        .executableTarget(
            name: "client-benchmark",
            dependencies: ["KubeClient", "TestHarness"],
            path: "Benchmarks/ClientBenchmark"
        ),
        .testTarget(name: "CurlHTTPTests", dependencies: ["CurlHTTP"]),
        .testTarget(name: "KubeClientTests", dependencies: ["KubeClient"]),
        .testTarget(
            name: "ImageBuilderTests",
            dependencies: [
                "ImageBuilder",
                "image-builder",
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            exclude: ["Golden"]
        ),
        .testTarget(name: "TestHarnessTests", dependencies: ["TestHarness"]),
        // Helpers of the integration tests: clients for the harness's users, namespaces, polling, a test CRD.
        .target(name: "KubeTestSupport", dependencies: ["KubeClient", "TestHarness"], path: "Tests/KubeTestSupport"),
        .testTarget(name: "KubeClientIntegrationTests", dependencies: ["KubeClient", "TestHarness", "KubeTestSupport"]),
        .testTarget(name: "KubeRuntimeTests", dependencies: ["KubeRuntime", "TestHarness", "KubeTestSupport"]),
        // Pushes test images to a LocalRegistry with plain HTTP requests.
        .target(
            name: "RegistryTestSupport", dependencies: ["RegistryClient", "TestHarness", "CurlHTTP", "KubeClient"],
            path: "Tests/RegistryTestSupport"
        ),
        .testTarget(
            name: "RegistryClientTests",
            dependencies: [
                "RegistryClient", "RegistryTestSupport", "TestHarness", "CurlHTTP", "KubeClient",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .testTarget(
            name: "ImageBuilderIntegrationTests",
            dependencies: ["ImageBuilder", "KubeRuntime", "RegistryTestSupport", "KubeTestSupport", "TestHarness"]
        ),
    ]
)
