import Foundation
import ImageBuilder
import KubeClient
import KubeTypes
import Testing

/// For random valid specs, what the rendered build installs and sets is exactly what was asked:
/// the context files parse back to the package lists, the Dockerfile's ENV lines to the env.
@Suite struct PropertyTests {
    struct Generator {
        var random: SeededRandom

        mutating func pick<T>(_ items: [T]) -> T { items[Int.random(in: 0..<items.count, using: &random)] }
        mutating func chance(_ percent: Int) -> Bool { Int.random(in: 0..<100, using: &random) < percent }
        mutating func word(_ alphabet: String, _ lengths: ClosedRange<Int>) -> String {
            let characters = Array(alphabet)
            return String((0..<Int.random(in: lengths, using: &random)).map { _ in pick(characters) })
        }

        static let lowerDigits = "abcdefghijklmnopqrstuvwxyz0123456789"
        static let letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

        mutating func version() -> String {
            (0..<Int.random(in: 1...3, using: &random)).map { _ in String(Int.random(in: 0...40, using: &random)) }.joined(separator: ".")
        }

        mutating func apt() -> String {
            var name = pick(Array(Self.lowerDigits)).description + word(Self.lowerDigits + "+.-", 1...15)
            while name.hasSuffix("-") { name.removeLast() }
            if name.count < 2 { name += "x" }
            if chance(20) { name += ":" + pick(["amd64", "arm64", "i386", "all"]) }
            switch Int.random(in: 0..<4, using: &random) {
            case 0: name += "=" + (chance(30) ? "1:" : "") + version() + (chance(50) ? "-" + word(Self.lowerDigits + "+~.", 1...6) : "")
            case 1: name += "/" + pick(["bookworm-backports", "jammy-updates", "stable"])
            default: break
            }
            return name
        }

        mutating func pipName() -> String {
            pick(Array(Self.letters)).description + (chance(70) ? word(Self.letters + "._-", 0...12) + pick(Array(Self.letters)).description : "")
        }

        mutating func pip() -> String {
            var text = pipName()
            if chance(25) { text += "[" + (0..<Int.random(in: 1...3, using: &random)).map { _ in pipName() }.joined(separator: ",") + "]" }
            if chance(15) {
                text += " @ https://files.example.com/" + word(Self.letters + "-._~/", 1...30) + ".whl"
                if chance(50) { text += " ; python_version >= \"3.\(Int.random(in: 6...12, using: &random))\"" }
                return text
            }
            if chance(70) {
                // PEP 440: wildcards and local versions with == and != only; ~= with two release numbers.
                text += (0..<Int.random(in: 1...3, using: &random)).map { _ in
                    let op = pick(["==", ">=", "<=", "!=", "~=", "<", ">"])
                    var version = version()
                    if op == "~=", !version.contains(".") { version += ".0" }
                    if op == "==" || op == "!=" {
                        if chance(10) { version += "+cu118" } else if chance(10) { version += ".*" }
                    }
                    return op + version
                }.joined(separator: pick([",", ", "]))
            }
            if chance(20) {
                text += pick([" ; ", ";"]) + pick(["sys_platform == 'linux'", "python_version < \"3.12\" and os_name != 'nt'",
                                                  "(extra == \"gpu\" or platform_machine in 'x86_64 aarch64')"])
            }
            return text
        }

        mutating func conda() -> String {
            var text = chance(20) ? pick(["conda-forge", "bioconda", "pytorch/label/nightly"]) + "::" : ""
            text += pick(Array(Self.lowerDigits + "_")).description + word(Self.lowerDigits + "_.-", 0...12)
            switch Int.random(in: 0..<5, using: &random) {
            case 0: text += "=" + version() + (chance(40) ? "*" : "") + (chance(30) ? "=py310_" + String(Int.random(in: 0...9, using: &random)) : "")
            case 1: text += pick([">=", "==", "<", "!="]) + version() + (chance(40) ? "," + pick(["<", "<=", "!="]) + version() : "")
            case 2: text += " " + version() + (chance(50) ? "*" : "") + (chance(30) ? " py_0" : "")
            default: break
            }
            return text
        }

        mutating func envValue() -> String {
            let pieces = ["plain", " ", "'", "\"", "$", "${HOME}", "$(id)", "`id`", "\\", "\n", "\r", "\t", "é", "✓", "\u{202E}",
                          "\u{1B}[0m", "#", ";", "&&", "|", "=", "ENV X=1", "\u{7F}", "", "\u{2028}"]
            return (0..<Int.random(in: 0...6, using: &random)).map { _ in pick(pieces) }.joined()
        }

        mutating func spec() -> ImageSpecSpec {
            var packages = Packages()
            if chance(70) { packages.apt = (0..<Int.random(in: 1...8, using: &random)).map { _ in apt() } }
            if chance(70) { packages.pip = (0..<Int.random(in: 1...8, using: &random)).map { _ in pip() } }
            if chance(70) {
                var items: [String] = []
                for _ in 0..<Int.random(in: 1...6, using: &random) {
                    if chance(20) { items += [pick(["-c", "--channel"]), pick(["conda-forge", "bioconda", "defaults", "my.channel/label/x"])] }
                    items.append(conda())
                }
                packages.conda = items
            }
            var spec = ImageSpecSpec(baseImage: pick(["ubuntu:22.04", "jupyter/base-notebook", "quay.io/jupyter/scipy-notebook:2024-05-27"]),
                                     packages: packages)
            if chance(60) {
                var names = Set<String>()
                spec.env = (0..<Int.random(in: 1...6, using: &random)).compactMap { _ in
                    let name = pick(Array("ABCXYZ_")).description + word("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_", 0...8)
                    guard names.insert(name).inserted else { return nil }
                    return ImageEnvVar(name: name, value: chance(10) ? nil : envValue())
                }
            }
            return spec
        }
    }

    static func lines(_ text: String?) -> [String] {
        guard let text else { return [] }
        #expect(text.hasSuffix("\n"))
        return text.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
    }

    @Test(arguments: 0..<8)
    func renderedBuildInstallsExactlyWhatWasAsked(batch: Int) throws {
        var generator = Generator(random: SeededRandom(seed: 0x1B_D5EE_D000 + UInt64(batch)))
        for _ in 0..<60 {
            let spec = generator.spec()
            let valid = try Fixtures.valid(Fixtures.imageSpec(spec: spec))
            let context = BuildContextRenderer.render(valid, user: try ImageUser(parsing: "1000"))

            func argumentLines(_ name: String) -> [String] {
                context.buildArg(name).map { $0.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) } ?? []
            }
            #expect(argumentLines(BuildContext.aptPackagesArgument) == (spec.packages.apt ?? []))
            #expect(argumentLines(BuildContext.pipRequirementsArgument) == (spec.packages.pip ?? []))
            var channels: [String] = []
            var specs: [String] = []
            var items = (spec.packages.conda ?? [])[...]
            while let item = items.popFirst() {
                if item == "-c" || item == "--channel" { channels.append(items.popFirst() ?? "") } else { specs.append(item) }
            }
            #expect(argumentLines(BuildContext.condaSpecsArgument) == specs)
            #expect(argumentLines(BuildContext.condaChannelsArgument) == channels)
            #expect(context.files.isEmpty)
            #expect(try DockerfileReader.environment(of: context) == (spec.env ?? []).map { [$0.name, $0.value ?? ""] })

            // No package string appears in the Dockerfile; every line is a known instruction.
            let instructions = ["#", "FROM ", "USER ", "RUN ", " && ", "ENV ", "ARG "]
            for line in context.dockerfile.split(separator: "\n") {
                #expect(instructions.contains { line.hasPrefix($0) }, "\(line)")
                if !line.hasPrefix("ENV ") {
                    for package in (spec.packages.apt ?? []) + (spec.packages.pip ?? []) where package.count > 12 {
                        #expect(!line.contains(package))
                    }
                }
            }
            // The CRD's patterns accept what Swift accepts.
            for package in spec.packages.apt ?? [] {
                #expect(package.range(of: ImageSpecSchema.Patterns.singleLine, options: .regularExpression)
                    == package.startIndex..<package.endIndex, "\(package)")
            }
        }
    }
}
