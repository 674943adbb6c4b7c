import Foundation

/// One fuzz target: a name (the `FUZZ_TARGET` value and the corpus folder) and what it does
/// with one input. A target traps (`FuzzCheck.require`) when a property it checks does not hold,
/// which libFuzzer reports as a crash like any other.
struct FuzzTarget: Sendable {
    let name: String
    let summary: String
    let run: @Sendable (Data) -> Void
}

/// Every target, in the order `scripts/fuzz.sh` runs them.
let allTargets: [FuzzTarget] = [
    FuzzTarget(name: "watch-stream", summary: "watch stream framing (any chunking) and watch event decoding",
               run: WatchStreamTarget.run),
    FuzzTarget(name: "json", summary: "JSONValue and the Kubernetes models with KubeJSON: round trips, merge patches",
               run: JSONTarget.run),
    FuzzTarget(name: "kubeconfig", summary: "kubeconfig YAML and the client configuration of each context",
               run: KubeconfigTarget.run),
    FuzzTarget(name: "exec-credential", summary: "an exec credential plugin's output",
               run: ExecCredentialTarget.run),
    FuzzTarget(name: "imagespec", summary: "ImageSpec YAML: loading, validation, build planning and rendering",
               run: ImageSpecTarget.run),
    FuzzTarget(name: "operator-config", summary: "operator configuration YAML, then a plan rendered with it",
               run: OperatorConfigTarget.run),
    FuzzTarget(name: "registry-manifest", summary: "registry manifests, indexes and image configs; digests; platforms",
               run: RegistryManifestTarget.run),
    FuzzTarget(name: "www-authenticate", summary: "WWW-Authenticate challenges (with a round trip) and bearer token claims",
               run: WWWAuthenticateTarget.run),
    FuzzTarget(name: "docker-config", summary: "docker config JSON: credentials, re-encoding, merging",
               run: DockerConfigTarget.run),
    FuzzTarget(name: "image-reference", summary: "image references: parsing and formatting round trip",
               run: ImageReferenceTarget.run),
]

/// The target this process runs, from `FUZZ_TARGET`.
let selectedTarget: FuzzTarget = {
    let name = ProcessInfo.processInfo.environment["FUZZ_TARGET"] ?? ""
    if let target = allTargets.first(where: { $0.name == name }) { return target }
    var message = "image-builder-fuzz: set FUZZ_TARGET to one of:\n"
    for target in allTargets { message += "  \(target.name)  \(target.summary)\n" }
    FileHandle.standardError.write(Data(message.utf8))
    exit(2)
}()

@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: UnsafeMutablePointer<Int32>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> Int32 {
    _ = selectedTarget
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTestOneInput(_ bytes: UnsafePointer<UInt8>?, _ count: Int) -> Int32 {
    let data = if let bytes, count > 0 { Data(bytes: bytes, count: count) } else { Data() }
    selectedTarget.run(data)
    return 0
}

/// Property checks inside targets.
enum FuzzCheck {
    /// Traps with `message` (on standard error, then in libFuzzer's crash report) unless `condition`.
    static func require(_ condition: Bool, _ message: @autoclosure () -> String,
                        file: StaticString = #fileID, line: UInt = #line) {
        if !condition {
            FileHandle.standardError.write(Data("property failed at \(file):\(line): \(message())\n".utf8))
            fatalError("fuzz property failed", file: file, line: line)
        }
    }
}

/// Splits an input in two at its first NUL byte (which none of the text formats can hold); the
/// second part is nil when there is none.
func splitAtNUL(_ data: Data) -> (Data, Data?) {
    guard let nul = data.firstIndex(of: 0) else { return (data, nil) }
    return (Data(data[..<nul]), Data(data[data.index(after: nul)...]))
}
