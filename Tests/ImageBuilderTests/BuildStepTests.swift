import Foundation
import ImageBuilder
import KubeTypes
import Testing

/// Runs the shell text the build and the builder containers run, with fake tools on PATH that
/// record the arguments they get, so the tests see exactly what conda, pip, apt and buildah
/// would be given. Nothing outside a temporary directory is touched.
struct ShellHarness {
    let directory: URL
    let bin: URL

    /// Fakes for `tools`: each appends its arguments (NUL after each, RS after the call) to
    /// `<name>.calls`. `pip` also keeps the requirements file it is given; `python3` prints
    /// `externally-managed` when FAKE_EXTERNALLY_MANAGED=1; `getent` knows jovyan.
    init(tools: [String]) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("image-builder-shell-\(UUID().uuidString)")
        bin = directory.appendingPathComponent("bin")
        try FileManager.default.createDirectory(at: bin, withIntermediateDirectories: true)
        for tool in tools {
            var body = """
                #!/bin/sh
                { for a in "$@"; do printf '%s\\0' "$a"; done; printf '\\036'; } >> '\(directory.path)/\(tool).calls'
                printf '%s\\n' "$HOME" >> '\(directory.path)/\(tool).home'

                """
            switch tool {
            case "pip":
                body += """
                    previous=
                    for a in "$@"; do if [ "$previous" = --requirement ]; then cp "$a" '\(directory.path)/pip.requirements'; fi; previous=$a; done

                    """
            case "python3":
                body += "[ \"${FAKE_EXTERNALLY_MANAGED:-0}\" = 1 ] && echo externally-managed\n"
            case "getent":
                body += "[ \"$2\" = jovyan ] || [ \"$2\" = 1000 ] && echo 'jovyan:x:1000:100::/home/jovyan:/bin/bash'\n"
            default:
                break
            }
            body += "exit 0\n"
            let file = bin.appendingPathComponent(tool)
            try body.write(to: file, atomically: true, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: file.path)
        }
    }

    func remove() { try? FileManager.default.removeItem(at: directory) }

    /// Runs `/bin/sh -c script name arguments…` with `environment` (PATH puts the fakes first).
    func run(_ script: String, name: String = "sh", arguments: [String] = [], environment: [String: String] = [:]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", script, name] + arguments
        var env = ["PATH": bin.path + ":/usr/bin:/bin", "HOME": "/home/jovyan"]
        env.merge(environment) { _, new in new }
        process.environment = env
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// The calls of a fake, each as its argument list.
    func calls(_ tool: String) -> [[String]] {
        guard let data = FileManager.default.contents(atPath: directory.appendingPathComponent("\(tool).calls").path) else { return [] }
        return data.split(separator: 0x1E, omittingEmptySubsequences: false).dropLast().map { call in
            call.split(separator: 0, omittingEmptySubsequences: false).dropLast().map { String(decoding: $0, as: UTF8.self) }
        }
    }

    func text(_ file: String) -> String? {
        FileManager.default.contents(atPath: directory.appendingPathComponent(file).path).map { String(decoding: $0, as: UTF8.self) }
    }
}

/// The shell text of a Dockerfile's RUN instructions (continuation lines joined as the shell
/// would read them), with the environment the build arguments give.
enum DockerfileRuns {
    static func scripts(_ dockerfile: String) -> [String] {
        var scripts: [String] = []
        var current: String?
        for line in dockerfile.split(separator: "\n", omittingEmptySubsequences: false) {
            if let text = current {
                current = text + "\n" + line
            } else if line.hasPrefix("RUN ") {
                current = String(line.dropFirst(4))
            } else {
                continue
            }
            if !line.hasSuffix("\\") {
                scripts.append(current!)
                current = nil
            }
        }
        return scripts
    }

    static func environment(_ context: BuildContext) -> [String: String] {
        Dictionary(context.buildArgs.map { ($0.name, $0.value) }) { first, _ in first }
    }

    static func script(_ context: BuildContext, containing marker: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        try #require(scripts(context.dockerfile).first { $0.contains(marker) }, sourceLocation: sourceLocation)
    }
}

@Suite struct BuildStepTests {
    static func context(_ packages: Packages, user: String = "1000", updateTime: Date? = nil, options: RenderOptions = RenderOptions()) throws -> BuildContext {
        var spec = ImageSpecSpec(baseImage: "jupyter/base-notebook", packages: packages)
        spec.updateTime = updateTime
        let valid = try Fixtures.valid(Fixtures.imageSpec(spec: spec))
        return BuildContextRenderer.render(valid, user: try ImageUser(parsing: user), options: options)
    }

    /// conda gets every item as one command-line argument (conda before 25.9 cannot read
    /// `name version` lines from a --file), and each argument is a conda match spec.
    @Test func condaGetsEachItemAsOneArgument() throws {
        let items = ["-c", "conda-forge", "--channel", "bioconda", "scipy 1.11*", "numpy 1.0|1.1", "numpy~=1.2",
                     "conda-forge::numpy==1.17*", "numpy=1.11.1=py36_0", "gdal>=3.6,<4"]
        let context = try Self.context(Packages(conda: items))
        let harness = try ShellHarness(tools: ["conda", "fix-permissions", "find", "chown", "getent"])
        defer { harness.remove() }
        let result = try harness.run(try DockerfileRuns.script(context, containing: "conda install"), environment: DockerfileRuns.environment(context))
        #expect(result.status == 0, "\(result.output)")
        let calls = harness.calls("conda")
        #expect(calls.count == 2)
        let install = try #require(calls.first)
        #expect(install == ["install", "--quiet", "--yes", "--channel", "conda-forge", "--channel", "bioconda",
                            "scipy 1.11*", "numpy 1.0|1.1", "numpy~=1.2", "conda-forge::numpy==1.17*", "numpy=1.11.1=py36_0", "gdal>=3.6,<4"])
        #expect(!install.contains("--file"))
        let specs = Array(install.dropFirst(7))
        for spec in specs { #expect(PackageGrammar.condaSpecProblem(spec) == nil, "\(spec)") }
        #expect(CondaRequest.parse(Array(install.dropFirst(3))).problems.isEmpty)
        #expect(calls.last == ["clean", "--all", "-f", "-y"])
        // Root's step does not write into the user's home.
        #expect(harness.text("conda.home")?.split(separator: "\n").allSatisfy { $0 == "/root" } == true)
    }

    /// After root installed, jupyter/docker-stacks' fix-permissions runs on CONDA_DIR and the home.
    @Test func filesBelongToTheNotebookUserAgain() throws {
        let context = try Self.context(Packages(pip: ["flask"], conda: ["numpy"]))
        let environment = DockerfileRuns.environment(context).merging(["CONDA_DIR": "/opt/conda", "NB_USER": "jovyan"]) { $1 }
        for marker in ["conda install", "pip install"] {
            let harness = try ShellHarness(tools: ["conda", "pip", "python3", "fix-permissions", "find", "chown", "getent"])
            defer { harness.remove() }
            let result = try harness.run(try DockerfileRuns.script(context, containing: marker), environment: environment)
            #expect(result.status == 0, "\(result.output)")
            #expect(harness.calls("fix-permissions") == [["/opt/conda"], ["/home/jovyan"]], "\(marker)")
            #expect(harness.calls("find").isEmpty)
        }
        // Without fix-permissions: files not owned by the base user are given to it, in CONDA_DIR
        // and the user's home, never "/".
        let harness = try ShellHarness(tools: ["conda", "find", "chown", "getent"])
        defer { harness.remove() }
        try FileManager.default.createDirectory(at: harness.directory.appendingPathComponent("conda"), withIntermediateDirectories: true)
        let conda = harness.directory.appendingPathComponent("conda").path
        let result = try harness.run(try DockerfileRuns.script(context, containing: "conda install"),
                                     environment: DockerfileRuns.environment(context).merging(["CONDA_DIR": conda]) { $1 })
        #expect(result.status == 0, "\(result.output)")
        #expect(harness.calls("find") == [[conda, "!", "-user", "1000", "-exec", "chown", "-h", "1000", "{}", "+"]])
        // A root base image needs none of it.
        let root = try Self.context(Packages(conda: ["numpy"]), user: "")
        #expect(!(try DockerfileRuns.script(root, containing: "conda install")).contains("fix-permissions"))
    }

    @Test func pipUsesATemporaryRequirementsFileAndRootsHome() throws {
        let requirements = ["flask", "pandas[performance]>=2.1", "torch==2.1.0+cpu ; platform_machine == 'x86_64'"]
        let context = try Self.context(Packages(pip: requirements))
        let harness = try ShellHarness(tools: ["pip", "python3", "fix-permissions", "find", "chown", "getent"])
        defer { harness.remove() }
        let result = try harness.run(try DockerfileRuns.script(context, containing: "pip install"), environment: DockerfileRuns.environment(context))
        #expect(result.status == 0, "\(result.output)")
        let call = try #require(harness.calls("pip").first)
        #expect(Array(call.prefix(3)) == ["install", "--no-cache-dir", "--requirement"])
        #expect(harness.text("pip.requirements") == requirements.joined(separator: "\n") + "\n")
        #expect(harness.text("pip.home") == "/root\n")
        // The temporary file is gone when the step ends.
        #expect(!FileManager.default.fileExists(atPath: try #require(call.last)))
    }

    /// PEP 668: an externally managed base Python is detected at build time; the build fails
    /// early saying what to do, or (when allowed) pip gets --break-system-packages.
    @Test func externallyManagedPython() throws {
        let refusing = try Self.context(Packages(apt: ["curl"], pip: ["flask"]))
        let scripts = DockerfileRuns.scripts(refusing.dockerfile)
        let check = try #require(scripts.first)
        #expect(check.contains("EXTERNALLY-MANAGED") && !check.contains("pip install"), "the check runs before anything is installed")
        let harness = try ShellHarness(tools: ["python3"])
        defer { harness.remove() }
        let managed = try harness.run(check, environment: ["FAKE_EXTERNALLY_MANAGED": "1"])
        #expect(managed.status == 1)
        #expect(managed.output.contains("builder.pipBreakSystemPackages: true"))
        #expect(managed.output.contains(BuildContextRenderer.externallyManagedMessage))
        #expect(try harness.run(check).status == 0)
        #expect(!refusing.dockerfile.contains("--break-system-packages"))

        let allowing = try Self.context(Packages(pip: ["flask"]), options: RenderOptions(pipBreakSystemPackages: true))
        #expect(!allowing.dockerfile.contains(BuildContextRenderer.externallyManagedMessage))
        for (flag, expected) in [("1", ["install", "--no-cache-dir", "--break-system-packages"]), ("0", ["install", "--no-cache-dir", "--requirement"])] {
            let harness = try ShellHarness(tools: ["pip", "python3", "fix-permissions", "find", "chown", "getent"])
            defer { harness.remove() }
            let result = try harness.run(try DockerfileRuns.script(allowing, containing: "pip install"),
                                         environment: DockerfileRuns.environment(allowing).merging(["FAKE_EXTERNALLY_MANAGED": flag]) { $1 })
            #expect(result.status == 0, "\(result.output)")
            #expect(Array(harness.calls("pip").first?.prefix(3) ?? []) == expected, "\(flag)")
        }
    }

    /// apt keeps existing configuration files, runs without prompts, and adds the architectures
    /// of `name:arch` items first.
    @Test func aptKeepsConfigurationAndAddsArchitectures() throws {
        let items = ["curl", "libc6:i386=2.36-9", "libpq5=1:15.6-0", "zlib1g:arm64", "libc6-dev:i386"]
        let context = try Self.context(Packages(apt: items))
        #expect(context.buildArg(BuildContext.aptArchitecturesArgument) == "i386\narm64")
        let harness = try ShellHarness(tools: ["apt-get", "dpkg", "rm"])
        defer { harness.remove() }
        let script = try DockerfileRuns.script(context, containing: "apt-get install")
        #expect(script.contains("export DEBIAN_FRONTEND=noninteractive"))
        let result = try harness.run(script, environment: DockerfileRuns.environment(context))
        #expect(result.status == 0, "\(result.output)")
        #expect(harness.calls("dpkg") == [["--add-architecture", "i386"], ["--add-architecture", "arm64"]])
        #expect(harness.calls("apt-get") == [
            ["update"],
            ["install", "-y", "--no-install-recommends", "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold"] + items,
            ["clean"],
        ])
        // Globbing is back on for the clean-up.
        #expect(harness.calls("rm").count == 1 && harness.calls("rm").first?.first == "-rf")
        #expect(try Self.context(Packages(apt: ["curl"])).buildArg(BuildContext.aptArchitecturesArgument) == nil)
    }

    /// A rebuild runs the package steps again even with a layer cache: they depend on a build
    /// argument carrying the spec's updateTime.
    @Test func rebuildsBustTheLayerCache() throws {
        let first = try Self.context(Packages(apt: ["curl"], pip: ["flask"], conda: ["numpy"]), updateTime: Date(timeIntervalSince1970: 1_700_000_000))
        let second = try Self.context(Packages(apt: ["curl"], pip: ["flask"], conda: ["numpy"]), updateTime: Date(timeIntervalSince1970: 1_700_000_600))
        #expect(first.dockerfile == second.dockerfile)
        #expect(first.buildArg(BuildContext.rebuildArgument) == "2023-11-14T22:13:20Z")
        #expect(first.buildArg(BuildContext.rebuildArgument) != second.buildArg(BuildContext.rebuildArgument))
        let lines = first.dockerfile.split(separator: "\n").map(String.init)
        let declared = try #require(lines.firstIndex(of: "ARG \(BuildContext.rebuildArgument)"))
        let packageSteps = DockerfileRuns.scripts(first.dockerfile).filter {
            $0.contains("apt-get install") || $0.contains("conda install") || $0.contains("pip install --no-cache-dir")
        }
        #expect(packageSteps.count == 3)
        for step in packageSteps { #expect(step.hasPrefix(": \"rebuild ${\(BuildContext.rebuildArgument)}\""), "\(step)") }
        let firstRun = try #require(lines.firstIndex { $0.hasPrefix("RUN ") })
        #expect(declared < firstRun)
        // Nothing to install: no cache-bust argument.
        #expect(try Self.context(Packages()).buildArg(BuildContext.rebuildArgument) == nil)
    }

    /// Nothing of the build context ends up in the image: no COPY or ADD (a copied file stays in
    /// its layer even when a later step deletes it), and no step writes a context file that
    /// outlives it.
    @Test func nothingOfTheContextIsLeftInTheImage() throws {
        let context = try Self.context(Packages(apt: ["curl"], pip: ["flask"], conda: ["-c", "conda-forge", "numpy"]))
        for line in context.dockerfile.split(separator: "\n") {
            #expect(!line.hasPrefix("COPY") && !line.hasPrefix("ADD"), "\(line)")
            #expect(!line.contains("/tmp/image-builder") && !line.contains("/workspace"), "\(line)")
        }
        let pip = try DockerfileRuns.script(context, containing: "pip install")
        #expect(pip.contains("requirements=$(mktemp -d)") && pip.contains("rm -rf \"$requirements\""))
        #expect(context.files.isEmpty)
    }

    /// The buildah containers run constant shell text: every value (target, labels, build
    /// arguments with hostile environment values) is an argument, passed on unchanged.
    @Test func buildahScriptsTakeEveryValueAsAnArgument() throws {
        let hostile = try RenderingTests.plan("hostile/inert-env-values.yaml")
        let plain = try RenderingTests.plan("better-base-notebook.yaml")
        let hostilePod = try #require(hostile.job.spec?.template.spec)
        let plainPod = try #require(plain.job.spec?.template.spec)
        let build = try #require(hostilePod.initContainers?.first)
        let push = try #require(hostilePod.containers.first)
        // The same script text whatever the spec says.
        #expect(build.command == plainPod.initContainers?.first?.command)
        #expect(push.command == plainPod.containers.first?.command)
        let values = hostile.context.buildArgs.map(\.value) + [hostile.targetImage]
        for command in [build.command ?? [], push.command ?? []] {
            for value in values where value.count > 3 { #expect(!command.joined().contains(value), "\(value)") }
        }
        #expect(hostile.context.buildArgs.contains { $0.value.contains("$(") || $0.value.contains("\n") || $0.value.contains("'") || $0.value.contains("`") },
                "the corpus should hold hostile values")

        let harness = try ShellHarness(tools: ["buildah"])
        defer { harness.remove() }
        let state = harness.directory.appendingPathComponent("state").path
        func local(_ command: [String]) throws -> (script: String, name: String) {
            let script = try #require(command.count == 4 ? command[2] : nil)
            return (script.replacingOccurrences(of: BuildPlanner.buildahStateDirectory, with: state), command[3])
        }
        let (buildScript, buildName) = try local(build.command ?? [])
        let built = try harness.run(buildScript, name: buildName, arguments: build.args ?? [])
        #expect(built.status == 0, "\(built.output)")
        #expect(harness.calls("buildah") == [build.args ?? []])
        #expect(try String(contentsOfFile: state + "/build-status", encoding: .utf8) == "0\n")

        let (pushScript, pushName) = try local(push.command ?? [])
        let pushed = try harness.run(pushScript, name: pushName, arguments: push.args ?? [])
        #expect(pushed.status == 0, "\(pushed.output)")
        let args = push.args ?? []
        #expect(harness.calls("buildah").last == Array(args.dropFirst()) + [hostile.targetImage, "docker://" + hostile.targetImage])
        #expect(pushed.output.contains(BuildPlanner.pushMarker + hostile.targetImage))

        // A failed build: the builder replays its log, exits non-zero, and pushes nothing.
        try "100\n".write(toFile: state + "/build-status", atomically: true, encoding: .utf8)
        try "Error: building at STEP \"RUN apt-get update\": exit status 100\n".write(toFile: state + "/build.log", atomically: true, encoding: .utf8)
        let before = harness.calls("buildah").count
        let failed = try harness.run(pushScript, name: pushName, arguments: args)
        #expect(failed.status == 1)
        #expect(failed.output.contains("building at STEP"))
        #expect(harness.calls("buildah").count == before)
        // A build step killed (the memory limit, as a rule) is reported as such.
        try "137\n".write(toFile: state + "/build-status", atomically: true, encoding: .utf8)
        let killed = try harness.run(pushScript, name: pushName, arguments: args)
        #expect(killed.status == 137)
        #expect(killed.output.contains(BuildPlanner.killedMarker))
        let (reason, _) = BuildAssessmentProbe.reason(exitCode: killed.status, log: killed.output)
        #expect(reason == "OutOfMemory")
        #expect(harness.calls("buildah").count == before)
    }

    /// In one container (isolatePushCredentials: false): the build, then the push only after it
    /// succeeded; the push flags in the script are constants of the configuration.
    @Test func combinedBuildahContainer() throws {
        var config = OperatorConfig()
        config.registry.push = .prefix("registry.example.com/ph")
        config.registry.pushSecret = "push"
        config.builder.isolatePushCredentials = false
        let valid = try Fixtures.valid(Fixtures.imageSpec(spec: ImageSpecSpec(baseImage: "ubuntu", packages: Packages(apt: ["curl"]))))
        let plan = try BuildPlanner.plan(BuildInputs(imageSpec: valid, config: config, baseImageUser: .root))
        let container = try #require(plan.job.spec?.template.spec?.containers.first)
        let command = container.command ?? []
        let harness = try ShellHarness(tools: ["buildah"])
        defer { harness.remove() }
        let result = try harness.run(command[2], name: command[3], arguments: container.args ?? [])
        #expect(result.status == 0, "\(result.output)")
        let calls = harness.calls("buildah")
        #expect(calls.first == Array((container.args ?? []).dropFirst()))
        #expect(calls.last == ["--storage-driver=vfs", "push", "--digestfile=/dev/termination-log", "--retry=3",
                               "--authfile=/etc/image-builder/push-auth/auth.json", plan.targetImage, "docker://" + plan.targetImage])
        #expect(!command[2].contains(plan.targetImage))
    }
}

/// BuildAssessment's reading of a builder container that ended with `log` as its termination
/// message (FallbackToLogsOnError).
enum BuildAssessmentProbe {
    static func reason(exitCode: Int32, log: String) -> (String, String) {
        let job = Job(metadata: ObjectMeta(name: "j", namespace: "hub"), spec: JobSpec(template: PodTemplateSpec()),
                      status: JobStatus(conditions: [JobCondition(type: "Failed", status: "True", reason: "BackoffLimitExceeded")]))
        let pod = Pod(metadata: ObjectMeta(name: "p", namespace: "hub"), spec: PodSpec(containers: [Container(name: BuildPlanner.containerName)]),
                      status: PodStatus(phase: "Failed", containerStatuses: [ContainerStatus(
                          name: BuildPlanner.containerName, state: ContainerState(terminated: ContainerStateTerminated(exitCode: exitCode, message: log)))]))
        guard case .failed(let reason, let message, _) = BuildAssessment.assess(job: job, pod: pod, now: Date(), pendingTimeout: 600) else {
            return ("", "")
        }
        return (reason, message)
    }
}
