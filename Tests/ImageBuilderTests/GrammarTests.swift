import Foundation
import ImageBuilder
import RegistryClient
import RegistryTypes
import Testing

@Suite struct GrammarTests {
    static let validApt = ["curl", "vim", "g++", "libstdc++6", "python3.11-dev", "curl:amd64", "curl=7.88.1-10+deb12u5",
                           "libc6:i386=2.36-9", "curl/bookworm-backports", "tzdata=2024a-0+deb12u1", "libpq5=1:15.6-0"]
    static let invalidApt = ["", "c", "Curl", "-curl", "curl-", "curl vim", "curl;id", "curl=abc", "curl=", "curl:", "curl/",
                             "curl=1.0 ", " curl", "cur*l", "curl\n", "ｃurl"]

    static let validPip = ["flask", "numpy>=1.17,<2", "torch==2.0.0+cu118", "pkg[extra]", "pkg[a,b]>=1", "requests [security] >= 2.8.1, == 2.8.*",
                           "Django~=4.2", "A.B_C-D===1.0", "name (>=1.0)", "pywin32>=1.0; sys_platform == \"win32\"",
                           "pkg ; python_version < \"3.8\" and (os_name == 'posix' or extra == 'x')",
                           "mypkg @ https://example.com/p/mypkg-1.0.tar.gz#sha256=abc",
                           "mypkg@https://example.com/x.whl ; python_version >= '3'", "tensorflow!=2.1.*", "zope.interface"]
    static let invalidPip = ["", "-r x", "--index-url=x", "flask; rm -rf /", "numpy>=", "numpy>>1", "pkg[", "pkg[extra",
                             "x @ http://example.com/x.whl", "x @ file:///etc/passwd", "x @ https://h/${TOKEN}", "numpy \\",
                             "numpy --hash=sha256:0", "numpy #comment", "numpy; foo == 'x'", "numpy; python_version == 'a#b'",
                             "./local", "numpу", "flask\n", "numpy;", "numpy ; python_version", "-e .", "name.", "_name"]

    static let validConda = ["numpy", "tensorflow=1.13*", "numpy>=1.0,<2", "conda-forge::numpy==1.17*", "numpy=1.11.1=py36_0",
                             "numpy 1.11*", "numpy 1.11.1 py36_0", "numpy>=1.0|<0.5", "pytorch/label/nightly::torch", "_libgcc_mutex",
                             "python-dateutil", "r-base>=4.3"]
    static let invalidConda = ["", "numpy[version='>=1.0']", "numpy;id", "-cconda-forge", "@EXPLICIT", "numpy=", "numpy  1.0",
                               "::numpy", "bad channel::numpy", "numpy 1.0 build extra", "numpy>=", "numpy'"]

    static let validReferences = ["ubuntu", "ubuntu:22.04", "jupyter/base-notebook", "quay.io/jupyter/base-notebook:2024-05-27",
                                  "localhost:5000/x", "registry.example.com:5000/a/b/c:tag_1.0-x",
                                  "ubuntu@sha256:" + String(repeating: "a", count: 64),
                                  "ubuntu:22.04@sha256:" + String(repeating: "0", count: 64), "a__b/c.d/e-f---g", "[::1]:5000/x",
                                  "Registry.Example.com/x"]
    static let invalidReferences = ["", "Ubuntu", "ubuntu:", "ubuntu:-x", "ubuntu@sha256:abc", "a//b", "/a", "a/", "ubuntu latest",
                                    "a_-b", "registry:99999/x", "x:" + String(repeating: "t", count: 129), "ubuntu@sha256:" + String(repeating: "A", count: 64),
                                    "${BASE}", "ubuntu\n", "ubuntu@md5-:" + String(repeating: "a", count: 32)]

    @Test func debian() {
        for text in Self.validApt { #expect(PackageGrammar.debianProblem(text) == nil, "\(text)") }
        for text in Self.invalidApt { #expect(PackageGrammar.debianProblem(text) != nil, "\(text)") }
    }

    @Test func pip() {
        for text in Self.validPip { #expect(PackageGrammar.pipProblem(text) == nil, "\(text): \(PackageGrammar.pipProblem(text) ?? "")") }
        for text in Self.invalidPip { #expect(PackageGrammar.pipProblem(text) != nil, "\(text)") }
    }

    /// PEP 440 specifiers as current pip reads them, each refusal with its reason.
    static let validPEP440 = ["numpy==1.2.*", "numpy!=1.2.*", "numpy~=1.2", "numpy~=1.2.3", "numpy==1.0+local.7", "numpy!=2.0+cu118",
                              "numpy===1.0-weird", "numpy>=1.0rc1", "numpy>=1.0.post1.dev2", "numpy>=1!2.0", "numpy>=v1.0", "numpy<2.0a1",
                              "numpy>=1.0-1", "numpy==1.*"]
    static let invalidPEP440: [(String, String)] = [
        ("numpy>=1.*", "is allowed only with == and !="),
        ("numpy<2.0.*", "is allowed only with == and !="),
        ("numpy~=1.0.*", "is allowed only with == and !="),
        ("numpy==1.2*", "a wildcard is '.*' after the release numbers"),
        ("numpy==1.*.2", "a wildcard is '.*' after the release numbers"),
        ("numpy~=1", "'~=' needs a version with at least two release numbers"),
        ("numpy==1.0-", "is not a PEP 440 version"),
        ("numpy>=1.0.", "is not a PEP 440 version"),
        ("numpy>=1..0", "is not a PEP 440 version"),
        ("numpy>1.0+local", "a local version (\"1.0+local\") is allowed only with ==, != and ==="),
        ("numpy~=1.0+local", "a local version"),
    ]

    @Test func pep440() {
        for text in Self.validPEP440 { #expect(PackageGrammar.pipProblem(text) == nil, "\(text): \(PackageGrammar.pipProblem(text) ?? "")") }
        for (text, reason) in Self.invalidPEP440 {
            let problem = PackageGrammar.pipProblem(text)
            #expect(problem?.contains(reason) == true, "\(text): \(problem ?? "accepted")")
            #expect(problem?.contains("PEP 440") == true, "\(text)")
        }
    }

    @Test func conda() {
        for text in Self.validConda { #expect(PackageGrammar.condaSpecProblem(text) == nil, "\(text): \(PackageGrammar.condaSpecProblem(text) ?? "")") }
        for text in Self.invalidConda {
            #expect(CondaRequest.parse([text]).problems.isEmpty == false, "\(text)")
        }
    }

    @Test func condaChannelItems() {
        let (request, problems) = CondaRequest.parse(["-c", "conda-forge", "numpy", "--channel", "bioconda", "samtools=1.17"])
        #expect(problems.isEmpty)
        #expect(request == CondaRequest(channels: ["conda-forge", "bioconda"], specs: ["numpy", "samtools=1.17"]))
        #expect(CondaRequest.parse(["numpy", "-c"]).problems.map(\.index) == [1])
        #expect(CondaRequest.parse(["-c", "-c"]).problems.map(\.index) == [1])
        #expect(CondaRequest.parse(["-c", "conda-forge"]).problems.count == 1)  // channels without packages
        #expect(CondaRequest.parse(["-c", "https://conda.example.com/channel"]).problems.count == 1)
        #expect(CondaRequest.parse(["-c", "https://conda.example.com/channel", "x"]).problems.isEmpty)
    }

    @Test func imageReferences() throws {
        for text in Self.validReferences { #expect(throws: Never.self, "\(text)") { try ImageReference(parsing: text) } }
        for text in Self.invalidReferences { #expect(throws: ImageReference.ParseError.self, "\(text)") { try ImageReference(parsing: text) } }
        let reference = try ImageReference(parsing: "registry.example.com:5000/team/app:1.0@sha256:" + String(repeating: "f", count: 64))
        #expect(reference.registry == "registry.example.com:5000")
        #expect(reference.repository == "team/app")
        #expect(reference.tag == "1.0")
        #expect(try ImageReference(parsing: "jupyter/base-notebook").isDockerHub)
        #expect(try ImageReference(parsing: "localhost:5000").tag == "5000")
    }

    /// The CRD's patterns must accept everything the Swift checks accept (the API server must never
    /// reject what the operator would build). On the fields PrimeHub's CRD declares, they refuse
    /// nothing that PrimeHub's filter accepted (objects PrimeHub took must stay writable), and
    /// elsewhere they reject the plainly hostile.
    @Test func crdPatternsAreNoStricterThanSwift() throws {
        func matches(_ pattern: String, _ text: String) throws -> Bool {
            // Go's `$` (used by the API server) ends only at the end of the text; ICU's also before a
            // final line break, so require the match to cover the whole text.
            let regex = try NSRegularExpression(pattern: pattern)
            let whole = NSRange(text.startIndex..., in: text)
            return regex.firstMatch(in: text, range: whole)?.range == whole
        }
        let patterns = ImageSpecSchema.Patterns.self
        for text in Self.validApt + Self.validPip + Self.validConda + ["-c", "--channel"] {
            #expect(try matches(patterns.singleLine, text), "\(text)")
        }
        // What PrimeHub's filter let through, the grammar refuses and the CRD still takes.
        let primeHubFilter = "^[a-zA-Z0-9-_:=\\.]+$"
        for text in ["Curl", "numpy=1.17", "Tensorflow", "a:b:c", "-_-", "..."] {
            #expect(try matches(primeHubFilter, text) && matches(patterns.singleLine, text), "\(text)")
        }
        // What the items' pattern refuses, PrimeHub's filter refused too.
        for text in ["a\u{202E}b", "a\nb", "numpy\n", "curl\tvim", "x\u{0}"] {
            #expect(try !matches(patterns.singleLine, text) && !matches(primeHubFilter, text), "\(text)")
        }
        #expect(try matches(patterns.singleLine, "TensorFlow (GPU) ✓"))
        #expect(try matches(patterns.environmentName, "PATH") && !matches(patterns.environmentName, "1X"))
        #expect(try !matches(patterns.dnsSubdomain, "Data_Science"))
    }

    @Test func quotingForDockerfileWords() {
        #expect(Quoting.dockerfileWord("C.UTF-8") == "'C.UTF-8'")
        #expect(Quoting.dockerfileWord("it's") == "'it'\"'\"'s'")
        #expect(Quoting.dockerfileWord("$(id) `id` ${HOME}") == "'$(id) `id` ${HOME}'")
        #expect(Quoting.dockerfileWord("a\\b") == nil)
        #expect(Quoting.dockerfileWord("a\nb") == nil)
        #expect(Quoting.json("a\"b\\c\n\u{1}") == "\"a\\\"b\\\\c\\n\\u0001\"")
        #expect(Quoting.displayed(String(repeating: "x", count: 500)).count < 130)
    }
}
