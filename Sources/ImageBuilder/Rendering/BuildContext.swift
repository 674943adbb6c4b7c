import KubeTypes
import RegistryTypes

/// The user the built image runs as at the end, as the base image's configuration names it
/// (`1000`, `jovyan`, `1000:100`); empty means root.
public struct ImageUser: Sendable, Hashable, CustomStringConvertible {
    public let text: String

    /// Accepts `user[:group]`, each part letters, digits, '_', '.', '-' (not starting with '-').
    public init(parsing text: String) throws(ValidationProblem) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        let valid = text.isEmpty || (parts.count <= 2 && text.utf8.count <= 64 && parts.allSatisfy { part in
            guard let first = part.utf8.first, first != UInt8(ascii: "-"), first != UInt8(ascii: ".") else { return false }
            return part.utf8.allSatisfy { PackageGrammar.isAlnum($0) || "_.-".utf8.contains($0) }
        })
        guard valid else {
            throw ValidationProblem(FieldPath("baseUser"), "a user is name-or-uid[:group-or-gid] of letters, digits, '_', '.', '-'", value: text)
        }
        self.text = text
    }

    public static let root = ImageUser(unchecked: "root")

    init(unchecked text: String) { self.text = text }

    /// What `USER` is set to at the end: the base user, or root when the base image names none.
    public var finalUser: String { text.isEmpty ? "root" : text }

    public var description: String { text }
}

/// A build context: the Dockerfile, files beside it, and build arguments. The same context is
/// built by every strategy (kaniko, buildah).
public struct BuildContext: Sendable, Hashable {
    public static let dockerfileName = "Dockerfile"
    /// Build arguments carrying the package lists, one item per line. The Dockerfile declares them
    /// with `ARG` and the install steps split them on line breaks into one argument per item, so
    /// no package string is ever written into the Dockerfile, parsed by a shell, or copied into a
    /// layer of the image.
    public static let aptPackagesArgument = "IMAGE_BUILDER_APT_PACKAGES"
    /// Architectures of `name:arch` apt items, added with `dpkg --add-architecture` first.
    public static let aptArchitecturesArgument = "IMAGE_BUILDER_APT_ARCHITECTURES"
    public static let condaChannelsArgument = "IMAGE_BUILDER_CONDA_CHANNELS"
    public static let condaSpecsArgument = "IMAGE_BUILDER_CONDA_SPECS"
    public static let pipRequirementsArgument = "IMAGE_BUILDER_PIP_REQUIREMENTS"
    /// The cache-bust argument the package steps use: the spec's `updateTime`, so a rebuild (a
    /// newer `updateTime`) runs them again even when a layer cache holds an older result.
    public static let rebuildArgument = "IMAGE_BUILDER_REBUILD"
    /// Build arguments carrying environment values that a Dockerfile cannot hold inline.
    public static let envArgumentPrefix = "IMAGE_BUILDER_ENV_"

    public var dockerfile: String
    /// Files beside the Dockerfile, by name.
    public var files: [String: String]
    /// `--build-arg` values, in order.
    public var buildArgs: [BuildArg]

    /// One `--build-arg NAME=VALUE`; the value may span lines (the package lists do).
    public struct BuildArg: Sendable, Hashable {
        public var name: String
        public var value: String

        public init(name: String, value: String) {
            self.name = name
            self.value = value
        }
    }

    /// All files of the context, the Dockerfile included, by name.
    public var allFiles: [String: String] {
        files.merging([Self.dockerfileName: dockerfile]) { current, _ in current }
    }

    /// The value of the build argument `name`, if the context passes it.
    public func buildArg(_ name: String) -> String? {
        buildArgs.first { $0.name == name }?.value
    }
}

/// Choices of the rendered build that come from the operator's configuration.
public struct RenderOptions: Sendable, Hashable {
    /// With pip packages and an externally managed base Python (PEP 668): pass
    /// `--break-system-packages` (true) or fail early with a message saying what to do (false).
    public var pipBreakSystemPackages: Bool

    public init(pipBreakSystemPackages: Bool = false) {
        self.pipBreakSystemPackages = pipBreakSystemPackages
    }
}

/// Renders the build context of a validated ImageSpec. Package strings never appear in the
/// Dockerfile: each list is a build argument, split on line breaks (with globbing off) into one
/// argument per item, so no shell ever parses an item, and nothing of the lists is left in a layer.
public enum BuildContextRenderer {
    /// The message of the early PEP 668 check, printed to the build log.
    public static let externallyManagedMessage = "image-builder: the base image's Python is externally managed (PEP 668: an EXTERNALLY-MANAGED file in its standard library), so pip refuses to install into it. Use a base image with conda or a virtual environment first on PATH, install the packages with spec.packages.apt (python3-...), or allow pip to install over the system packages with builder.pipBreakSystemPackages: true in the operator configuration."

    /// `baseImageDigest`, when known, pins `FROM` to what the rebuild decision saw.
    public static func render(_ spec: ValidImageSpec, user: ImageUser, baseImageDigest: String? = nil,
                              options: RenderOptions = RenderOptions()) -> BuildContext {
        let packages = spec.spec.packages
        let apt = packages.apt ?? []
        let pip = packages.pip ?? []
        let conda = spec.conda
        var lines: [String] = []
        var buildArgs: [BuildContext.BuildArg] = []
        func argument(_ name: String, _ items: [String]) {
            lines.append("ARG \(name)")
            buildArgs.append(BuildContext.BuildArg(name: name, value: items.joined(separator: "\n")))
        }

        lines.append("# Generated by image-builder. The package lists are build arguments, one item per line.")
        lines.append("FROM \(fromReference(spec.spec.baseImage, digest: baseImageDigest))")
        lines.append("USER root")

        let installs = !apt.isEmpty || !conda.specs.isEmpty || !pip.isEmpty
        if installs {
            let updateTime = spec.spec.updateTime.map(KubeJSON.formatTimestamp) ?? ""
            lines.append("ARG \(BuildContext.rebuildArgument)")
            buildArgs.append(BuildContext.BuildArg(name: BuildContext.rebuildArgument, value: updateTime))
        }
        // Fail before anything is installed when pip could not install anyway.
        if !pip.isEmpty, !options.pipBreakSystemPackages {
            lines.append(run([
                "if [ \"$(\(externallyManagedProbe))\" = externally-managed ]; then echo \"\(externallyManagedMessage)\" >&2; exit 1; fi",
            ]))
        }
        let owner = user.finalUser == "root" || user.text.split(separator: ":").first == "0" ? nil : user.text

        if !apt.isEmpty {
            argument(BuildContext.aptPackagesArgument, apt)
            var steps = [rebuildStep, oneOutputStream, "export DEBIAN_FRONTEND=noninteractive"]
            let architectures = aptArchitectures(apt)
            if !architectures.isEmpty {
                argument(BuildContext.aptArchitecturesArgument, architectures)
                steps.append("\(splitOnLines) && for arch in ${\(BuildContext.aptArchitecturesArgument)}; do dpkg --add-architecture \"$arch\" || exit 1; done && \(restoreSplitting)")
            }
            steps += [
                "\(splitOnLines) && set -- ${\(BuildContext.aptPackagesArgument)} && \(restoreSplitting)",
                "apt-get update",
                "apt-get install -y --no-install-recommends -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \"$@\"",
                "apt-get clean",
                "rm -rf /var/lib/apt/lists/*",
            ]
            lines.append(run(steps))
        }
        if !conda.specs.isEmpty {
            var steps = [rebuildStep, oneOutputStream, rootHome, "set --"]
            if !conda.channels.isEmpty {
                argument(BuildContext.condaChannelsArgument, conda.channels)
                steps.append("\(splitOnLines) && for channel in ${\(BuildContext.condaChannelsArgument)}; do set -- \"$@\" --channel \"$channel\"; done && \(restoreSplitting)")
            }
            argument(BuildContext.condaSpecsArgument, conda.specs)
            steps.append("\(splitOnLines) && set -- \"$@\" ${\(BuildContext.condaSpecsArgument)} && \(restoreSplitting)")
            steps += ["conda install --quiet --yes \"$@\"", "conda clean --all -f -y"]
            if let owner { steps.append(fixPermissions(owner: owner)) }
            lines.append(run(steps))
        }
        if !pip.isEmpty {
            argument(BuildContext.pipRequirementsArgument, pip)
            var steps = [rebuildStep, oneOutputStream, rootHome, "set --"]
            if options.pipBreakSystemPackages {
                steps.append("if [ \"$(\(externallyManagedProbe))\" = externally-managed ]; then set -- --break-system-packages; fi")
            }
            steps += [
                "requirements=$(mktemp -d)",
                "printf '%s\\n' \"${\(BuildContext.pipRequirementsArgument)}\" > \"$requirements/requirements.txt\"",
                "pip install --no-cache-dir \"$@\" --requirement \"$requirements/requirements.txt\"",
                "rm -rf \"$requirements\"",
            ]
            if let owner { steps.append(fixPermissions(owner: owner)) }
            lines.append(run(steps))
        }

        for variable in spec.spec.env ?? [] {
            let value = variable.value ?? ""
            if let word = Quoting.dockerfileWord(value) {
                lines.append("ENV \(variable.name)=\(word)")
            } else {
                let name = BuildContext.envArgumentPrefix + String(buildArgs.count { $0.name.hasPrefix(BuildContext.envArgumentPrefix) })
                buildArgs.append(BuildContext.BuildArg(name: name, value: value))
                lines.append("ARG \(name)")
                lines.append("ENV \(variable.name)=\"${\(name)}\"")
            }
        }
        lines.append("USER \(user.finalUser)")
        return BuildContext(dockerfile: lines.joined(separator: "\n") + "\n", files: [:], buildArgs: buildArgs)
    }

    /// Makes the step depend on the rebuild argument (a layer cache keys on it).
    static let rebuildStep = ": \"rebuild ${\(BuildContext.rebuildArgument)}\""
    /// The step's errors go where its output goes, one ordered stream: seen in a real build, apt's
    /// `E: Unable to locate package …` line (stderr) was missing from the failed build's log while
    /// the output around it (stdout) was there — and that line is what says why the build failed.
    static let oneOutputStream = "exec 2>&1"
    /// Root's steps keep root's files out of the user's home (the base may set HOME to it).
    static let rootHome = "export HOME=/root"
    /// Word splitting on line breaks only, globbing off: `${LIST}` then gives one word per item.
    static let splitOnLines = "set -f && newline=$(printf '\\n_') && IFS=${newline%_}"
    static let restoreSplitting = "set +f && unset IFS"
    /// Prints `externally-managed` when `python3` is a system Python marked by PEP 668 (not a
    /// virtual environment, an EXTERNALLY-MANAGED file in its standard library directory).
    static let externallyManagedProbe = "python3 -c 'import os, sys, sysconfig; print(\"externally-managed\" if sys.prefix == sys.base_prefix and os.path.isfile(os.path.join(sysconfig.get_path(\"stdlib\"), \"EXTERNALLY-MANAGED\")) else \"\")' 2>/dev/null"

    /// After root installed into conda or the home, the files belong to the notebook user again:
    /// jupyter/docker-stacks' `fix-permissions` where the base has it, else the base user's
    /// ownership on CONDA_DIR and the user's home (files not owned by the user, never `/`).
    /// `owner` is a validated `user[:group]` (letters, digits, '_', '.', '-'), so single quotes hold it.
    static func fixPermissions(owner: String) -> String {
        "if command -v fix-permissions > /dev/null 2>&1 && [ -n \"${CONDA_DIR:-}\" ] && [ -n \"${NB_USER:-}\" ]; "
            + "then fix-permissions \"$CONDA_DIR\" && fix-permissions \"/home/$NB_USER\"; "
            + "else owner='\(owner)' && user=${owner%%:*} && home=$(getent passwd \"$user\" | cut -d: -f6) "
            + "&& for dir in ${CONDA_DIR:+\"$CONDA_DIR\"} ${home:+\"$home\"}; do "
            + "if [ \"$dir\" != / ] && [ -d \"$dir\" ]; then find \"$dir\" \\! -user \"$user\" -exec chown -h \"$owner\" {} + || exit 1; fi; done; fi"
    }

    /// The distinct architectures of `name:arch[...]` items, in order.
    static func aptArchitectures(_ items: [String]) -> [String] {
        var seen: [String] = []
        for item in items {
            // The architecture is before any `=version` (whose epoch may hold a ':') or `/release`.
            let name = item.prefix { $0 != "=" && $0 != "/" }
            guard let colon = name.firstIndex(of: ":") else { continue }
            let arch = String(name[name.index(after: colon)...])
            if !arch.isEmpty, !seen.contains(arch) { seen.append(arch) }
        }
        return seen
    }

    /// A `RUN` of shell steps joined by `&&`, one per line.
    static func run(_ steps: [String]) -> String {
        "RUN " + steps.joined(separator: " \\\n && ")
    }

    /// The base image, pinned to `digest` when one is given and the reference has none.
    static func fromReference(_ baseImage: String, digest: String?) -> String {
        guard let digest, !baseImage.contains("@"), (try? ImageReference(parsing: baseImage + "@" + digest)) != nil else {
            return baseImage
        }
        return baseImage + "@" + digest
    }
}
