import Crypto
import Foundation
import ImageBuilder
import Testing

/// PrimeHub compatibility: the same hash, tags and build names PrimeHub gives.
@Suite struct HashAndNamingTests {
    /// The reference's scheme, written out again here from its description.
    static func referenceHash(_ base: String, apt: [String] = [], pip: [String] = [], conda: [String] = []) -> String {
        var parts = [base]
        if !apt.isEmpty { parts.append("apt:[" + apt.joined(separator: ",") + "]") }
        if !pip.isEmpty { parts.append("pip:[" + pip.joined(separator: ",") + "]") }
        if !conda.isEmpty { parts.append("conda:[" + conda.joined(separator: ",") + "]") }
        let digest = Insecure.SHA1.hash(data: Data(parts.joined(separator: ";").utf8))
        return String(digest.map { String(format: "%02x", $0) }.joined().prefix(8))
    }

    /// Values computed with `printf '%s' TEXT | sha1sum | cut -c1-8`.
    @Test(arguments: [
        (ImageSpecSpec(baseImage: "jupyter/base-notebook", packages: Packages(apt: ["curl"])), "96ff7925"),
        (ImageSpecSpec(baseImage: "jupyter/base-notebook", packages: Packages(apt: ["curl", "vim"], pip: ["flask"], conda: ["tensorflow=1.13*"])), "d5f58f5f"),
        (ImageSpecSpec(baseImage: "jupyter/base-notebook"), "c9011819"),
        (ImageSpecSpec(baseImage: "ubuntu:22.04", packages: Packages(pip: ["numpy>=1.17,<2", "pandas"], conda: ["-c", "conda-forge", "numpy"])), "30aaec85"),
        (ImageSpecSpec(baseImage: "ubuntu:22.04", env: [ImageEnvVar(name: "LANG", value: "C.UTF-8"), ImageEnvVar(name: "TZ", value: "UTC")]), "746e944f"),
    ])
    func knownHashes(spec: ImageSpecSpec, expected: String) {
        #expect(SpecHash.compute(spec) == expected)
    }

    @Test func pullSecretEmptyListsUpdateTimeAndPublishAreNotHashed() {
        let plain = ImageSpecSpec(baseImage: "jupyter/base-notebook", packages: Packages(apt: ["curl"]))
        var other = plain
        other.pullSecret = "secret"
        other.packages.pip = []
        other.updateTime = Date(timeIntervalSince1970: 1_700_000_000)
        other.publish = Publish(displayName: "x")
        other.cancel = true
        other.env = []
        #expect(SpecHash.compute(other) == SpecHash.compute(plain))
        #expect(SpecHash.compute(plain) == Self.referenceHash("jupyter/base-notebook", apt: ["curl"]))
    }

    @Test func listOrderAndEnvChangeTheHash() {
        let base = ImageSpecSpec(baseImage: "ubuntu", packages: Packages(apt: ["curl", "vim"]))
        var reordered = base
        reordered.packages.apt = ["vim", "curl"]
        #expect(SpecHash.compute(base) != SpecHash.compute(reordered))
        var withEnv = base
        withEnv.env = [ImageEnvVar(name: "A", value: "1")]
        #expect(SpecHash.compute(withEnv) != SpecHash.compute(base))
        #expect(SpecHash.input(of: withEnv) == "ubuntu;apt:[curl,vim];env:[\"A=1\"]")
        // A value holding what looks like a list boundary cannot collide with two variables.
        var one = base
        one.env = [ImageEnvVar(name: "A", value: "1\",\"B=2")]
        var two = base
        two.env = [ImageEnvVar(name: "A", value: "1"), ImageEnvVar(name: "B", value: "2")]
        #expect(SpecHash.compute(one) != SpecHash.compute(two))
    }

    @Test func targetImagesAsPrimeHubNamesThem() throws {
        #expect(BuildNaming.targetImage(name: "better", hash: "96ff7925", destination: .repository("reg.example.com/ph/images"))
            == "reg.example.com/ph/images:better-96ff7925")
        #expect(BuildNaming.targetImage(name: "better", hash: "96ff7925", destination: .prefix("reg.example.com:5000/ph"))
            == "reg.example.com:5000/ph/better:96ff7925")
        #expect(throws: PlanError.self) {
            try BuildPlanner.targetImage(name: String(repeating: "a", count: 130), hash: "96ff7925", destination: .repository("r.example.com/x"))
        }
        #expect(throws: PlanError.self) { try BuildPlanner.targetImage(name: "x", hash: "96ff7925", destination: nil) }
    }

    @Test func jobNamesStayWithin63AndKeepTheHash() {
        #expect(BuildNaming.jobName(imageSpecName: "better-base-notebook", hash: "96ff7925") == "better-base-notebook-96ff7925")
        let exact = String(repeating: "a", count: 54)
        #expect(BuildNaming.jobName(imageSpecName: exact, hash: "96ff7925") == exact + "-96ff7925")
        for name in [String(repeating: "b", count: 55), String(repeating: "long.name-", count: 25) + "x", String(repeating: "c", count: 47) + "-.-" + "tail"] {
            let job = BuildNaming.jobName(imageSpecName: name, hash: "96ff7925")
            #expect(job.count <= 63)
            #expect(job.hasSuffix("-96ff7925"))
            #expect(job.first?.isLetter == true)
            #expect(!job.contains("--") || name.contains("--"))
        }
        // Names that agree on their first 48 characters still get different Jobs.
        let a = BuildNaming.jobName(imageSpecName: String(repeating: "d", count: 60) + "a", hash: "96ff7925")
        let b = BuildNaming.jobName(imageSpecName: String(repeating: "d", count: 60) + "b", hash: "96ff7925")
        #expect(a != b)
    }
}
