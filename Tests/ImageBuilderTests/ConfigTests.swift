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
        #expect(config.builder.resources?.limits?["ephemeral-storage"] == "30Gi")
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
        #expect(loaded.config.builder.resources?.requests?["ephemeral-storage"] == "30Gi")
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

    @Test func durationsAndQuantities() throws {
        #expect(try Fixtures.config("builder: {timeout: 90}").builder.timeoutSeconds == 90)
        #expect(try Fixtures.config("builder: {timeout: 1h30m}").builder.timeoutSeconds == 5400)
        #expect(try Fixtures.config("builder: {timeout: 2.5m}").builder.timeoutSeconds == 150)
        #expect(try Fixtures.config("builder: {resources: {requests: {cpu: 2, memory: 1.5Gi}}}").builder.resources?.requests == ["cpu": "2", "memory": "1.5Gi"])
        if case .success = Self.load("builder: {timeout: 0}") { Issue.record("a zero timeout must be refused") }
        if case .success = Self.load("a: 1\n---\nb: 2") { Issue.record("two documents must be refused") }
    }
}
