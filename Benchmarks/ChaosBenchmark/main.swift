// Chaos benchmark: the chaos scenarios of `Tests/ChaosTests` (issue 13) at a larger scale, as a
// command that prints figures. Not a test.
//
//   swift build -c release --product image-builder
//   swift run -c release chaos-benchmark [--specs 300] [--creators 16] [--workers 4] [--outage 3]
//                                        [--scenario NAME]… [--no-finish] [--operator PATH]
//
// NAME: none, apiserver-sigkill, etcd-compaction, leader-sigkill, operator-sigkill, label-rewriter
// (default: all, in this order). Each scenario runs in a fresh namespace; etcd-compaction on a
// control plane of its own without the watch cache. The operator is `image-builder` beside this
// executable unless --operator names another. The table's "extra" is a scenario's convergence
// time after its fault minus the fault-free run's convergence time after its last create.
import ChaosSupport
import Foundation

struct Options {
    var chaos = ChaosOptions(specs: 300)
    var scenarios: [ChaosFault] = ChaosFault.allCases
    var operatorPath: String?

    init(arguments: [String]) {
        var iterator = arguments.dropFirst().makeIterator()
        func number(_ name: String) -> Int {
            guard let text = iterator.next(), let value = Int(text), value > 0 else { usage("\(name) needs a positive number") }
            return value
        }
        var chosen: [ChaosFault] = []
        while let argument = iterator.next() {
            switch argument {
            case "--specs": chaos.specs = number(argument)
            case "--creators": chaos.creators = number(argument)
            case "--workers": chaos.workers = number(argument)
            case "--outage": chaos.outage = .seconds(number(argument))
            case "--no-finish": chaos.finishBuilds = false
            case "--scenario":
                guard let name = iterator.next(), let fault = ChaosFault(rawValue: name) else {
                    usage("--scenario needs one of: \(ChaosFault.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                chosen.append(fault)
            case "--operator":
                guard let path = iterator.next() else { usage("--operator needs a path") }
                operatorPath = path
            case "-h", "--help": usage(nil)
            default: usage("unknown argument \(argument)")
            }
        }
        if !chosen.isEmpty { scenarios = chosen }
    }
}

func usage(_ problem: String?) -> Never {
    if let problem { FileHandle.standardError.write(Data("chaos-benchmark: \(problem)\n".utf8)) }
    print("usage: chaos-benchmark [--specs N] [--creators N] [--workers N] [--outage SECONDS] [--scenario NAME]… [--no-finish] [--operator PATH]")
    exit(problem == nil ? 0 : 2)
}

let options = Options(arguments: CommandLine.arguments)
let executable = options.operatorPath
    ?? URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        .appendingPathComponent("image-builder").path

func seconds(_ duration: Duration?) -> String {
    guard let duration else { return "-" }
    let (whole, attoseconds) = duration.components
    return String(format: "%.1f s", Double(whole) + Double(attoseconds) / 1e18)
}

var reports: [ChaosReport] = []
var failed = false
var shared: ChaosWorld?
for fault in options.scenarios {
    do {
        let world: ChaosWorld
        if fault.needsWatchCacheOff {
            world = try await ChaosWorld.start(operatorExecutable: executable, watchCache: false)
        } else if let shared {
            world = shared
        } else {
            world = try await ChaosWorld.start(operatorExecutable: executable)
            shared = world
        }
        let report = try await world.run(fault, options: options.chaos)
        if fault.needsWatchCacheOff { await world.stop() }
        print(report)
        if !report.problems.isEmpty { failed = true }
        reports.append(report)
    } catch {
        print("\(fault.rawValue): could not run: \(error)")
        failed = true
    }
}
await shared?.stop()

let baseline = reports.first { $0.fault == .none }?.convergedAfterCreates
print("")
print("| scenario | ImageSpecs | builds per spec | converged after the fault | extra over no fault | Succeeded+Ready after the Jobs completed | reconciles per spec |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for report in reports {
    let builds = report.buildsPerSpec.lowerBound == report.buildsPerSpec.upperBound
        ? "\(report.buildsPerSpec.lowerBound)" : "\(report.buildsPerSpec)"
    let extra = baseline.map { seconds(report.convergedAfterFault - $0) } ?? "-"
    print("| \(report.fault.rawValue) | \(report.specs) | \(builds) | \(seconds(report.convergedAfterFault)) | \(report.fault == .none ? "-" : extra) | \(seconds(report.settledAfterCompletion)) | \(String(format: "%.2f", report.reconcilesPerSpec)) |")
}
exit(failed ? 1 : 0)
