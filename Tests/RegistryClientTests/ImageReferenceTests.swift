import Foundation
import RegistryTestSupport
import RegistryTypes
import Testing

@testable import RegistryClient

private let sha = "sha256:" + String(repeating: "ab", count: 32)

@Suite("Image references")
struct ImageReferenceTests {
    /// input → (registry, repository, tag, digest, familiar form)
    static let valid: [(String, String, String, String?, String?, String)] = [
        ("ubuntu", "docker.io", "library/ubuntu", nil, nil, "ubuntu"),
        ("ubuntu:22.04", "docker.io", "library/ubuntu", "22.04", nil, "ubuntu:22.04"),
        ("library/ubuntu", "docker.io", "library/ubuntu", nil, nil, "ubuntu"),
        ("docker.io/ubuntu", "docker.io", "library/ubuntu", nil, nil, "ubuntu"),
        ("index.docker.io/ubuntu:20.04", "docker.io", "library/ubuntu", "20.04", nil, "ubuntu:20.04"),
        ("jupyter/base-notebook:lab-4.0", "docker.io", "jupyter/base-notebook", "lab-4.0", nil, "jupyter/base-notebook:lab-4.0"),
        ("docker.io/library/python:3.11-slim", "docker.io", "library/python", "3.11-slim", nil, "python:3.11-slim"),
        // Found by the image-reference fuzz target: a Docker Hub path whose first part reads as a
        // domain keeps `docker.io/` in its familiar form, which otherwise named another registry.
        ("docker.io/nde8.docker.io/library/x", "docker.io", "nde8.docker.io/library/x", nil, nil, "docker.io/nde8.docker.io/library/x"),
        ("docker.io/localhost/x:1", "docker.io", "localhost/x", "1", nil, "docker.io/localhost/x:1"),
        ("quay.io/jupyter/scipy-notebook", "quay.io", "jupyter/scipy-notebook", nil, nil, "quay.io/jupyter/scipy-notebook"),
        ("localhost/app", "localhost", "app", nil, nil, "localhost/app"),
        ("localhost:5000/team/app:v1", "localhost:5000", "team/app", "v1", nil, "localhost:5000/team/app:v1"),
        ("127.0.0.1:5000/a/b/c:V_1.0-rc", "127.0.0.1:5000", "a/b/c", "V_1.0-rc", nil, "127.0.0.1:5000/a/b/c:V_1.0-rc"),
        ("[::1]:5000/app:1", "[::1]:5000", "app", "1", nil, "[::1]:5000/app:1"),
        ("Registry.Example.com/app", "Registry.Example.com", "app", nil, nil, "Registry.Example.com/app"),
        ("MyHost/app", "MyHost", "app", nil, nil, "MyHost/app"),
        ("ghcr.io/org/app@\(sha)", "ghcr.io", "org/app", nil, sha, "ghcr.io/org/app@\(sha)"),
        ("ghcr.io/org/app:1.0@\(sha)", "ghcr.io", "org/app", "1.0", sha, "ghcr.io/org/app:1.0@\(sha)"),
        ("a__b/c.d/e---f_g", "docker.io", "a__b/c.d/e---f_g", nil, nil, "a__b/c.d/e---f_g"),
        ("busybox:_tag", "docker.io", "library/busybox", "_tag", nil, "busybox:_tag"),
        ("localhost:5000", "docker.io", "library/localhost", "5000", nil, "localhost:5000"),
        ("x:" + String(repeating: "t", count: 128), "docker.io", "library/x", String(repeating: "t", count: 128), nil,
         "x:" + String(repeating: "t", count: 128)),
    ]

    @Test(arguments: valid.indices)
    func parsesValidReferences(_ index: Int) throws {
        let (input, registry, repository, tag, digest, familiar) = Self.valid[index]
        let reference = try ImageReference(parsing: input)
        #expect(reference.registry == registry)
        #expect(reference.repository == repository)
        #expect(reference.tag == tag)
        #expect(reference.digest?.description == digest)
        #expect(reference.familiar == familiar)
        // The full form parses back to the same reference.
        #expect(try ImageReference(parsing: reference.description) == reference)
    }

    /// input → a piece of the expected reason
    static let invalid: [(String, String)] = [
        ("", "empty"),
        (" ubuntu", "a space"),
        ("ubuntu ", "a space"),
        ("ubu ntu", "a space"),
        ("ubuntu\n", "U+A"),
        ("ubuntu\u{0}", "U+0"),
        ("ubuntü", "U+FC"),
        ("Ubuntu", "must be lowercase"),
        ("docker.io/Library/ubuntu", "must be lowercase"),
        ("ubuntu:", "tag after \":\" is empty"),
        ("ubuntu:-x", "not valid"),
        ("ubuntu:.x", "not valid"),
        ("ubuntu:a/b", "port"),
        ("ubuntu:" + String(repeating: "t", count: 129), "at most 128"),
        ("ubuntu@sha256:abc", "64 lowercase"),
        ("ubuntu@sha256:" + String(repeating: "A", count: 64), "64 lowercase"),
        ("ubuntu@md5:" + String(repeating: "a", count: 32), "not supported"),
        ("ubuntu@:abc", "not a digest algorithm"),
        ("ubuntu@sha256", "algorithm:hex"),
        ("ubuntu@\(sha)@\(sha)", "more than one"),
        ("/ubuntu", "empty"),
        ("ubuntu/", "empty component"),
        ("a//b", "empty component"),
        ("registry.io/", "path is empty"),
        ("registry.io:5000/", "path is empty"),
        (":tag", "empty"),
        ("@\(sha)", "empty"),
        ("-ubuntu", "not a valid repository path component"),
        ("ubuntu-", "not a valid repository path component"),
        ("a_-b", "not a valid repository path component"),
        ("a___b", "not a valid repository path component"),
        ("a..b", "not a valid repository path component"),
        ("../../etc/passwd", "not a valid host name"),
        ("registry.io/../x", "not a valid repository path component"),
        ("registry.io:0/x", "port"),
        ("registry.io:99999/x", "port"),
        ("registry.io:abc/x", "port"),
        ("registry.io:/x", "port"),
        ("-bad.io/x", "not a valid host name"),
        ("bad-.io/x", "not a valid host name"),
        ("bad..io/x", "not a valid host name"),
        ("bad_host.io/x", "not a valid host name"),
        ("[::1/x", "no closing"),
        ("[zz]/x", "not an IPv6 address"),
        ("[::1]x/y", "unexpected text"),
        ("user:pass@registry.io/x", "digest"),
        ("registry.io/x;rm -rf", "a space"),
        ("registry.io/x$(id)", "not a valid repository path component"),
        ("registry.io/x?y=1", "not a valid repository path component"),
        ("registry.io/x#frag", "not a valid repository path component"),
        ("registry.io/x%2f", "not a valid repository path component"),
        ("http://registry.io/x", "port"),
        ("a/" + String(repeating: "b", count: 260), "longer than 255"),
        (String(repeating: "a", count: 5000), "longer than 4096"),
    ]

    @Test(arguments: invalid.indices)
    func rejectsInvalidReferences(_ index: Int) {
        let (input, reason) = Self.invalid[index]
        do {
            let parsed = try ImageReference(parsing: input)
            Issue.record("\(input.debugDescription) parsed as \(parsed)")
        } catch {
            #expect(error.description.contains(reason), "\(input.debugDescription): \(error.description)")
            #expect(error.description.hasPrefix("invalid image reference"))
        }
    }

    @Test func errorMessagesQuoteHostileInputSafely() {
        let error = #expect(throws: ImageReference.ParseError.self) { try ImageReference(parsing: "x\u{1b}[31m\"y") }
        let text = error?.description ?? ""
        #expect(!text.contains("\u{1b}"))
        #expect(text.contains("\\u{1b}"))
        let long = #expect(throws: ImageReference.ParseError.self) { try ImageReference(parsing: String(repeating: "A", count: 300)) }
        #expect((long?.description.count ?? 0) < 200)
    }

    @Test func derivedForms() throws {
        let reference = try ImageReference(parsing: "jupyter/base-notebook")
        #expect(reference.manifestReference == "latest")
        #expect(reference.withDefaultTag.description == "docker.io/jupyter/base-notebook:latest")
        #expect(reference.apiHost == "registry-1.docker.io")
        #expect(reference.isDockerHub)
        let digest = try Digest(parsing: sha)
        let pinned = try ImageReference(parsing: "quay.io/a/b:1").pinned(to: digest)
        #expect(pinned.description == "quay.io/a/b@\(sha)")
        #expect(pinned.manifestReference == sha)
        #expect(pinned.apiHost == "quay.io")
        #expect(try pinned.withTag("2").description == "quay.io/a/b:2")
        #expect(throws: ImageReference.ParseError.self) { try pinned.withTag("-bad") }
        #expect(try ImageReference(registry: "h:1", repository: "r", tag: "t").description == "h:1/r:t")
        #expect(ImageReference.parse("UPPER") == nil)
    }

    @Test func codableAsText() throws {
        let reference = try ImageReference(parsing: "ubuntu:22.04")
        let data = try JSONEncoder().encode([reference])
        #expect(String(decoding: data, as: UTF8.self) == #"["docker.io\/library\/ubuntu:22.04"]"#)
        #expect(try JSONDecoder().decode([ImageReference].self, from: data) == [reference])
        #expect(throws: DecodingError.self) { try JSONDecoder().decode([ImageReference].self, from: Data(#"["Bad Ref"]"#.utf8)) }
        #expect(throws: DecodingError.self) { try JSONDecoder().decode([Digest].self, from: Data(#"["sha256:12"]"#.utf8)) }
    }

    @Test func digests() throws {
        let data = Data("hello".utf8)
        let digest = Digest.of(data)
        #expect(digest.description == "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")
        #expect(digest.verifies(data))
        #expect(!digest.verifies(Data("hello!".utf8)))
        #expect(digest.short == "2cf24dba5fb0")
        let sha512 = Digest.of(data, algorithm: "sha512")
        #expect(sha512.hex.count == 128)
        #expect(try Digest(parsing: sha512.description) == sha512)
        #expect(Digest(algorithm: "sha256", hex: "zz") == nil)
    }

    @Test func tagGrammar() {
        #expect(ImageReference.isTag("v1.2.3-rc_1"))
        #expect(ImageReference.isTag("_"))
        #expect(!ImageReference.isTag(""))
        #expect(!ImageReference.isTag(".hidden"))
        #expect(!ImageReference.isTag("a+b"))
        #expect(ImageReference.isPathComponent("a-b"))
        #expect(ImageReference.isPathComponent("a--b"))
        #expect(!ImageReference.isPathComponent("a-"))
        #expect(!ImageReference.isPathComponent("A"))
    }
}
