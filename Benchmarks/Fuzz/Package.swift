// swift-tools-version:6.2
// libFuzzer targets over the image-builder's parsers (see README.md here and scripts/fuzz.sh).
// A package of its own so that the main `swift build` never builds or instruments it; it depends
// on the main package by path. Build it with coverage instrumentation on every module:
//   swift build -c release --package-path Benchmarks/Fuzz --sanitize fuzzer
import PackageDescription

let package = Package(
    name: "image-builder-fuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "image-builder", path: "../.."),
    ],
    targets: [
        // One binary holding every target; FUZZ_TARGET picks the one a run exercises. It has no
        // `main`: libFuzzer's comes with `--sanitize fuzzer` and calls LLVMFuzzerTestOneInput.
        .executableTarget(
            name: "image-builder-fuzz",
            dependencies: [
                .product(name: "KubeTypes", package: "image-builder"),
                .product(name: "KubeClient", package: "image-builder"),
                .product(name: "ImageBuilder", package: "image-builder"),
                .product(name: "RegistryTypes", package: "image-builder"),
                .product(name: "RegistryClient", package: "image-builder"),
            ],
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]
        ),
    ]
)
