import Foundation
import ImageBuilder
import KubeClient
import KubeTypes
import Testing

@Suite struct ConfigTests {
    static func load(_ yaml: String) -> Result<OperatorConfigLoader.Loaded, ConfigFailure> { OperatorConfigLoader.load(yaml: yaml) }

    @Test func nativeExample() throws {
        let config = try Fixtures.config(Repository.text(Repository.examples.appendingPathComponent("config.yaml")))
        #expect(config.watchNamespaces == ["hub"])
        #expect(config.registry.push == .prefix("registry.example.com:5000/primehub"))
        #expect(config.registry.pushSecret == "registry-push")
        #expect(config.registry.pullSecret == "registry-pull")
        #expect(config.builder.timeoutSeconds == 5400)
        #expect(config.builder.cacheRepo == "registry.example.com:5000/primehub/cache")
        #expect(config.builder.ephemeralStorage == "30Gi")
        #expect(config.builder.resourcesWithEphemeralStorage?.limits?["ephemeral-storage"] == "30Gi")
        #expect(config.builder.strategy == .buildah)
        #expect(config.builder.resources?.requests?["cpu"] == "500m")
        #expect(config.builder.tolerations?.first?.key == "dedicated")
        #expect(config.historyLimit == 5)
    }

    @Test func primeHubValuesCarryOver() throws {
        guard case .success(let loaded) = Self.load(try Repository.text(Repository.examples.appendingPathComponent("primehub-values.yaml"))) else {
            Issue.record("expected the PrimeHub configuration to load")
            return
        }
        #expect(loaded.config.registry.push == .repository("registry.example.com/primehub/images"))
        #expect(loaded.config.registry.pushSecret == "primehub-push")
        #expect(loaded.config.registry.pullSecret == nil)
        #expect(loaded.config.builder.resources?.limits?["memory"] == "1500Mi")
        #expect(loaded.config.builder.ephemeralStorage == "30Gi")
        #expect(loaded.config.builder.resourcesWithEphemeralStorage?.requests?["ephemeral-storage"] == "30Gi")
        // PrimeHub's build image is a buildah image: it becomes the buildah strategy's image, and
        // PrimeHub's insecureSkipVerify applies to every registry the build touches.
        #expect(loaded.config.builder.strategy == .buildah)
        #expect(loaded.config.builder.effectiveImage == "quay.io/buildah/stable:v1.28.0")
        #expect(loaded.config.registry.insecureEverywhere == false)
        #expect(loaded.warnings.contains { $0.contains("jobSubmission") })
    }

    @Test func emptyIsDefault() throws {
        let config = try Fixtures.config("")
        #expect(config == OperatorConfig())
        #expect(config.registry.push == nil)
    }

    @Test func clearErrorsWithPositions() {
        let yaml = """
            registry:
              pushRepo: Registry/Bad
              pushRepoPrefix: registry.example.com/x
              pushSecret: push
              insecure: maybe
            builder:
              timeout: soon
              backoffLimit: -1
              resources: {limits: {memory: lots}}
              extraArgs: [verbose]
              imagee: typo
            customImage:
              pushSecretName: other
            """
        guard case .failure(let failure) = Self.load(yaml) else {
            Issue.record("expected problems")
            return
        }
        let lines = failure.problems.map { $0.line(file: "c.yaml") }
        for expected in ["c.yaml:2:13: registry.pushRepo: not a valid repository", "c.yaml:5:13: registry.insecure: expected true or false",
                         "c.yaml:7:12: builder.timeout: not a duration", "c.yaml:8:17: builder.backoffLimit: must be at least 0",
                         "c.yaml:9:32: builder.resources.limits.memory: not a resource quantity", "c.yaml:10:15: builder.extraArgs[0]: must be a long option",
                         "c.yaml:11:11: builder.imagee: unknown field (did you mean \"image\"?)"] {
            #expect(lines.contains { $0.hasPrefix(expected) }, "\(expected)\n\(lines.joined(separator: "\n"))")
        }
    }

    @Test func conflictsAndBothDestinations() {
        guard case .failure(let both) = Self.load("registry: {pushRepo: r.example.com/a, pushRepoPrefix: r.example.com}") else {
            Issue.record("expected a failure")
            return
        }
        #expect(both.problems.map(\.problem.path.description) == ["registry.pushRepoPrefix"])
        guard case .failure(let conflict) = Self.load("registry: {pushSecret: a}\ncustomImage: {pushSecretName: b}") else {
            Issue.record("expected a failure")
            return
        }
        #expect(conflict.problems.first?.problem.reason.contains("customImage.pushSecretName") == true)
        // Equal values, or an empty PrimeHub value, are no conflict.
        guard case .success = Self.load("registry: {pushSecret: a}\ncustomImage: {pushSecretName: a, pushRepo: ''}") else {
            Issue.record("expected success")
            return
        }
    }

    @Test func aCarriedOverConfigurationWithoutAPullSecretIsWarnedAbout() throws {
        guard case .success(let carried) = Self.load("customImage: {pushRepoPrefix: r.example.com/ph, pushSecretName: push}") else {
            Issue.record("expected PrimeHub's keys to load")
            return
        }
        let warning = try #require(carried.warnings.first { $0.contains("registry.pullSecret") })
        #expect(warning.contains("no spec.pullSecret") && warning.contains("the push secret push as spec.pullSecret"))
        guard case .success(let withPull) = Self.load("customImage: {pushSecretName: push}\nregistry: {pullSecret: pull}"),
              case .success(let native) = Self.load("registry: {pushSecret: push}")
        else {
            Issue.record("expected both to load")
            return
        }
        #expect(!withPull.warnings.contains { $0.contains("registry.pullSecret") })
        #expect(!native.warnings.contains { $0.contains("registry.pullSecret") }, "a native configuration chose so")
    }

    @Test func strategiesAndTheirKeys() throws {
        let defaults = try Fixtures.config("")
        #expect(defaults.builder.strategy == .buildah)
        #expect(defaults.builder.effectiveImage == OperatorConfig.Builder.defaultBuildahImage)
        #expect(defaults.builder.storageDriver == .vfs)
        #expect(defaults.builder.seccompProfile == .localhost("image-builder/buildah.json"))
        #expect(defaults.builder.privileged == false)
        #expect(defaults.builder.isolatePushCredentials == true)
        #expect(defaults.builder.pipBreakSystemPackages == false)

        let kaniko = try Fixtures.config("builder: {strategy: kaniko}")
        #expect(kaniko.builder.effectiveImage == OperatorConfig.Builder.defaultKanikoImage)
        let buildah = try Fixtures.config("""
            builder: {strategy: buildah, storageDriver: overlay, seccompProfile: Unconfined, privileged: true,
                      isolatePushCredentials: false, pipBreakSystemPackages: true, image: quay.io/buildah/stable:v1.28.0}
            """)
        #expect(buildah.builder.storageDriver == .overlay)
        #expect(buildah.builder.seccompProfile == .unconfined)
        #expect(buildah.builder.privileged && buildah.builder.pipBreakSystemPackages && !buildah.builder.isolatePushCredentials)
        #expect(try Fixtures.config("builder: {seccompProfile: profiles/b.json}").builder.seccompProfile == .localhost("profiles/b.json"))

        // PrimeHub's buildah image carries over to buildah, and is ignored (with a warning) by kaniko.
        guard case .success(let primeHub) = Self.load("customImage: {buildJob: {image: quay.io/buildah/stable:v1.28.0}, insecureSkipVerify: true}") else {
            Issue.record("expected PrimeHub's keys to load")
            return
        }
        #expect(primeHub.config.builder.effectiveImage == "quay.io/buildah/stable:v1.28.0")
        #expect(primeHub.config.registry.insecureEverywhere && primeHub.config.registry.insecure)
        guard case .success(let ignored) = Self.load("builder: {strategy: kaniko}\ncustomImage: {buildJob: {image: quay.io/buildah/stable:v1.28.0}}") else {
            Issue.record("expected success")
            return
        }
        #expect(ignored.config.builder.effectiveImage == OperatorConfig.Builder.defaultKanikoImage)
        #expect(ignored.warnings.contains { $0.contains("customImage.buildJob.image") })
        if case .success = Self.load("builder: {image: a.example.com/x:1}\ncustomImage: {buildJob: {image: b.example.com/y:2}}") {
            Issue.record("a builder.image that disagrees with customImage.buildJob.image must be refused")
        }

        let yaml = """
            builder:
              strategy: podman
              storageDriver: btrfs
              seccompProfile: ../etc/profile.json
              privileged: sometimes
            """
        guard case .failure(let failure) = Self.load(yaml) else {
            Issue.record("expected problems")
            return
        }
        let lines = failure.problems.map { $0.line(file: "c.yaml") }
        for expected in ["c.yaml:2:13: builder.strategy: ", "c.yaml:3:18: builder.storageDriver: ", "c.yaml:5:15: builder.privileged: expected true or false"] {
            #expect(lines.contains { $0.hasPrefix(expected) }, "\(expected)\n\(lines.joined(separator: "\n"))")
        }
        guard case .failure(let profile) = Self.load("builder:\n  seccompProfile: /etc/x.json\n") else {
            Issue.record("an absolute seccomp profile must be refused")
            return
        }
        #expect(profile.problems.map { $0.line(file: "c.yaml") }.first?.hasPrefix("c.yaml:2:19: builder.seccompProfile: a Localhost seccomp profile is a path relative") == true,
                "\(profile.problems)")
    }

    @Test func durationsAndQuantities() throws {
        #expect(try Fixtures.config("builder: {timeout: 90}").builder.timeoutSeconds == 90)
        #expect(try Fixtures.config("builder: {timeout: 1h30m}").builder.timeoutSeconds == 5400)
        #expect(try Fixtures.config("builder: {timeout: 2.5m}").builder.timeoutSeconds == 150)
        #expect(try Fixtures.config("builder: {resources: {requests: {cpu: 2, memory: 1.5Gi}}}").builder.resources?.requests == ["cpu": "2", "memory": "1.5Gi"])
        if case .success = Self.load("builder: {timeout: 0}") { Issue.record("a zero timeout must be refused") }
        if case .success = Self.load("a: 1\n---\nb: 2") { Issue.record("two documents must be refused") }
    }
}
