import Foundation
import RegistryTypes

/// What `image-builder inspect` prints about a resolved image, as text or JSON.
public struct InspectReport: Sendable, Hashable, Codable {
    public var image: String
    public var registry: String
    public var repository: String
    /// The digest the reference points at (the index for a multi-platform image).
    public var digest: String
    public var mediaType: String
    /// `name@digest`, the reference a build pins.
    public var pinned: String
    /// The platform image's manifest digest (equal to `digest` for a single-platform image).
    public var manifestDigest: String
    public var platform: String
    /// The index's platforms; empty for a single-platform image.
    public var indexPlatforms: [String]
    public var configDigest: String
    /// nil when unset (root).
    public var user: String?
    public var workingDir: String?
    public var env: [String]
    public var entrypoint: [String]
    public var cmd: [String]
    public var labels: [String: String]
    public var authentication: String
    public var conda: String?
    public var jupyter: [String]

    public init(_ image: ResolvedImage) {
        self.image = image.reference.description
        registry = image.reference.registry
        repository = image.reference.repository
        digest = image.digest.description
        mediaType = image.mediaType
        pinned = image.pinnedReference.description
        manifestDigest = image.manifestDigest.description
        platform = image.platform.description
        indexPlatforms = image.indexPlatforms.map(\.description)
        configDigest = image.configDigest.description
        user = image.config.user
        workingDir = image.config.workingDir
        env = image.config.env
        entrypoint = image.config.entrypoint
        cmd = image.config.cmd
        labels = image.config.labels
        authentication = image.authentication.description
        conda = condaEvidence(config: image.config)
        jupyter = jupyterEvidence(config: image.config)
    }

    /// Aligned `Name: value` lines.
    public var text: String {
        var rows: [(String, String)] = [
            ("Image", image),
            ("Digest", digest),
            ("Media type", mediaType),
            ("Pinned", pinned),
        ]
        if manifestDigest != digest || !indexPlatforms.isEmpty {
            rows.append(("Manifest", manifestDigest))
            rows.append(("Index platforms", indexPlatforms.joined(separator: ", ")))
        }
        rows += [
            ("Platform", platform),
            ("Config", configDigest),
            ("User", user ?? "(not set: root)"),
            ("Working dir", workingDir ?? "(not set: /)"),
            ("Entrypoint", entrypoint.isEmpty ? "(none)" : Self.quoted(entrypoint)),
            ("Cmd", cmd.isEmpty ? "(none)" : Self.quoted(cmd)),
            ("Conda", conda.map { "yes (\($0))" } ?? "no"),
            ("JupyterHub-ready", jupyter.isEmpty ? "no (suits Job Submission only)" : "yes (\(jupyter.joined(separator: ", ")))"),
            ("Authentication", authentication),
        ]
        let width = (rows.map(\.0.count) + ["Labels".count, "Env".count]).max()! + 1
        func line(_ name: String, _ value: String) -> String {
            (name + ":").padding(toLength: width + 1, withPad: " ", startingAt: 0) + value
        }
        var lines = rows.map(line)
        lines.append(line("Env", env.isEmpty ? "(none)" : ""))
        lines += env.map { "  " + $0 }
        if !labels.isEmpty {
            lines.append(line("Labels", ""))
            lines += labels.sorted { $0.key < $1.key }.map { "  \($0.key)=\($0.value)" }
        }
        return lines.map { $0.replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression) }
            .joined(separator: "\n") + "\n"
    }

    /// Pretty JSON with sorted keys.
    public var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let data = (try? encoder.encode(self)) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    private static func quoted(_ words: [String]) -> String {
        words.map { word in
            word.contains(where: { $0 == " " || $0 == "\"" }) || word.isEmpty
                ? "\"" + word.replacingOccurrences(of: "\"", with: "\\\"") + "\"" : word
        }.joined(separator: " ")
    }
}
