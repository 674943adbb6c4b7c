import Foundation
import ImageBuilder
import KubeTypes

/// Operator configurations the ImageSpec target plans with: both build strategies, both ways of
/// naming the push repository.
enum PlanningConfigs {
    static let all: [OperatorConfig] = [
        """
        registry: {pushRepoPrefix: registry.example.com/primehub, pushSecret: push, pullSecret: pull}
        """,
        """
        registry: {pushRepo: registry.example.com:5000/primehub/images, insecure: true}
        builder: {strategy: kaniko}
        """,
    ].map { text in
        guard case .success(let loaded) = OperatorConfigLoader.load(yaml: text) else {
            fatalError("a planning configuration of the fuzz target does not load: \(text)")
        }
        return loaded.config
    }

    static let users: [ImageUser] = ["", "1000:100"].map { try! ImageUser(parsing: $0) }

    /// Plans a build; a plan that was made must render in every format.
    static func planAndRender(_ spec: ValidImageSpec, config: OperatorConfig, user: ImageUser) {
        guard let plan = try? BuildPlanner.plan(BuildInputs(imageSpec: spec, config: config, baseImageUser: user)) else { return }
        do {
            _ = try plan.manifests()
            _ = try RenderOutput.text(plan, spec: spec)
            _ = try RenderOutput.yaml(plan)
            _ = try RenderOutput.json(plan)
        } catch {
            FuzzCheck.require(false, "a plan that was made does not render: \(error)")
        }
    }
}

/// ImageSpec YAML as `image-builder validate` and `render` read it. Properties: every diagnostic
/// names a field and says something; a spec valid as a document is valid as the typed object the
/// API returns; a valid spec plans and renders without error.
enum ImageSpecTarget {
    static func run(_ data: Data) {
        let text = String(decoding: data, as: UTF8.self)
        let report = ImageSpecDocuments.check(text)
        for diagnostic in report.diagnostics {
            FuzzCheck.require(!diagnostic.field.isEmpty && !diagnostic.message.isEmpty, "a diagnostic without field or message")
            _ = diagnostic.line(file: "fuzz.yaml")
        }
        FuzzCheck.require(report.imageSpecs.count <= report.imageSpecCount, "more valid ImageSpecs than ImageSpecs")
        for spec in report.imageSpecs.prefix(4) {
            if case .failure(let failure) = ImageSpecValidator.validate(spec.imageSpec) {
                FuzzCheck.require(false, "a valid ImageSpec document is invalid as a typed ImageSpec: \(failure)")
            }
            for config in PlanningConfigs.all {
                for user in PlanningConfigs.users {
                    PlanningConfigs.planAndRender(spec, config: config, user: user)
                }
            }
        }
    }
}

/// Operator configuration YAML (`--config`). Properties: every problem has a position or names the
/// root; a loaded configuration plans and renders a fixed valid ImageSpec without error.
enum OperatorConfigTarget {
    static let spec: ValidImageSpec = {
        let report = ImageSpecDocuments.check("""
            apiVersion: primehub.io/v1alpha1
            kind: ImageSpec
            metadata: {name: data-science, namespace: hub}
            spec:
              baseImage: jupyter/base-notebook:python-3.11
              pullSecret: dockerhub-pull
              packages:
                apt: [curl, graphviz]
                conda: ["-c", "conda-forge", "numpy>=1.26,<2"]
                pip: ["pandas[performance]>=2.1"]
              env:
                - {name: TZ, value: UTC}
            """)
        guard let spec = report.imageSpecs.first, report.diagnostics.isEmpty else {
            fatalError("the fuzz target's ImageSpec is invalid: \(report.diagnostics)")
        }
        return spec
    }()

    static func run(_ data: Data) {
        let text = String(decoding: data, as: UTF8.self)
        switch OperatorConfigLoader.load(yaml: text) {
        case .success(let loaded):
            for user in PlanningConfigs.users {
                PlanningConfigs.planAndRender(spec, config: loaded.config, user: user)
            }
        case .failure(let failure):
            FuzzCheck.require(!failure.problems.isEmpty, "a failure without problems")
            for problem in failure.problems {
                FuzzCheck.require(!problem.line(file: "config.yaml").isEmpty, "an empty problem line")
            }
        }
    }
}
