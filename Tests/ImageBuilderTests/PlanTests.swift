import Foundation
import ImageBuilder
import KubeClient
import KubeTypes
import Testing

@Suite struct PlanTests {
    static func plan(spec: ImageSpecSpec = ImageSpecSpec(baseImage: "jupyter/base-notebook", pullSecret: "pull", packages: Packages(apt: ["curl"])),
                     config configure: (inout OperatorConfig) -> Void = { _ in }, credentials: RegistryCredentials? = nil) throws -> BuildPlan {
        var config = OperatorConfig()
        config.registry.push = .repository("registry.example.com/ph/images")
        config.registry.pushSecret = "push"
        configure(&config)
        let valid = try Fixtures.valid(Fixtures.imageSpec("better", uid: "uid-1", spec: spec))
        return try BuildPlanner.plan(BuildInputs(imageSpec: valid, config: config, baseImageUser: try ImageUser(parsing: "1000"), credentials: credentials))
    }

    @Test func jobFollowsTheIssue() throws {
        let plan = try Self.plan(config: {
            $0.builder.cacheRepo = "registry.example.com/ph/cache"
            $0.registry.insecure = true
            $0.registry.caBundle = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
            $0.builder.serviceAccountName = "builder"
            $0.builder.priorityClassName = "low"
            $0.builder.backoffLimit = 1
            $0.builder.timeoutSeconds = 900
            $0.builder.extraArgs = ["--verbosity=debug"]
            $0.builder.nodeSelector = ["pool": "builds"]
            $0.builder.tolerations = [Toleration(key: "dedicated", operator: "Exists", effect: "NoSchedule")]
            $0.builder.affinity = .object(["nodeAffinity": .object([:])])
            $0.builder.resources = ResourceRequirements(requests: ["cpu": "1"], limits: ["memory": "4Gi"])
        })
        #expect(plan.hash == "96ff7925")
        #expect(plan.jobName == "better-96ff7925")
        #expect(plan.targetImage == "registry.example.com/ph/images:better-96ff7925")
        let job = plan.job
        #expect(job.metadata.name == "better-96ff7925")
        #expect(job.metadata.namespace == "hub")
        #expect(job.metadata.labels?["imagespecs.primehub.io/name"] == "better")
        #expect(job.metadata.labels?["app.kubernetes.io/managed-by"] == "image-builder")
        #expect(job.metadata.annotations?["imagespecs.primehub.io/hash"] == "96ff7925")
        let owner = try #require(job.metadata.ownerReferences?.first)
        #expect(owner == OwnerReference(apiVersion: "primehub.io/v1alpha1", kind: "ImageSpec", name: "better", uid: "uid-1",
                                        controller: true, blockOwnerDeletion: true))
        #expect(plan.configMap.metadata.ownerReferences == [owner])
        let spec = try #require(job.spec)
        #expect(spec.backoffLimit == 1)
        #expect(spec.activeDeadlineSeconds == 900)
        let pod = try #require(spec.template.spec)
        #expect(pod.restartPolicy == "Never")
        #expect(pod.serviceAccountName == "builder")
        #expect(pod.priorityClassName == "low")
        #expect(pod.nodeSelector == ["pool": "builds"])
        #expect(pod.tolerations?.count == 1)
        #expect(pod.affinity != nil)
        let container = try #require(pod.containers.first)
        #expect(container.name == BuildPlanner.containerName)
        #expect(container.terminationMessagePolicy == "FallbackToLogsOnError")
        #expect(container.securityContext?.privileged == false)
        #expect(container.securityContext?.runAsUser == 0)
        #expect(container.securityContext?.capabilities?.drop == ["ALL"])
        let added = Set(container.securityContext?.capabilities?.add ?? [])
        #expect(added.isSuperset(of: ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID", "SETFCAP", "KILL"]))
        #expect(container.resources == ResourceRequirements(requests: ["cpu": "1"], limits: ["memory": "4Gi"]))
        let args = container.args ?? []
        for flag in ["--context=dir:///workspace", "--dockerfile=/workspace/Dockerfile",
                     "--destination=registry.example.com/ph/images:better-96ff7925", "--digest-file=/dev/termination-log",
                     "--snapshot-mode=redo", "--compressed-caching=false", "--ignore-path=/product_uuid", "--push-retry=3",
                     "--cache=true", "--cache-repo=registry.example.com/ph/cache", "--insecure-registry=registry.example.com",
                     "--skip-tls-verify-registry=registry.example.com", "--label=image-builder.primehub.io/spec-hash=96ff7925",
                     "--registry-certificate=registry.example.com=/kaniko/ssl/certs/image-builder-registry-ca.crt"] {
            #expect(args.contains(flag), "\(flag)")
        }
        #expect(args.last == "--verbosity=debug")
        let mounts = container.volumeMounts ?? []
        #expect(mounts.contains(VolumeMount(name: "docker-config", mountPath: "/kaniko/.docker", readOnly: true)))
        #expect(mounts.contains(VolumeMount(name: "context", mountPath: "/workspace/apt.txt", subPath: "apt.txt", readOnly: true)))
        #expect(pod.volumes?.first { $0.name == "docker-config" }?.secret?.items == [KeyToPath(key: ".dockerconfigjson", path: "config.json")])
        #expect(plan.configMap.data?["apt.txt"] == "curl\n")
        #expect(plan.configMap.data?["registry-ca.crt"]?.contains("BEGIN CERTIFICATE") == true)
        #expect(plan.configMap.immutable == true)
        #expect(plan.registrySecretName == "better-96ff7925")
        #expect(plan.registrySecret == nil)
    }

    @Test func noSecretsNoDockerConfig() throws {
        let plan = try Self.plan(spec: ImageSpecSpec(baseImage: "ubuntu"), config: { $0.registry.pushSecret = nil })
        #expect(plan.registrySecretName == nil)
        #expect(plan.job.spec?.template.spec?.volumes?.map(\.name) == ["context"])
    }

    @Test func mergedCredentials() throws {
        let push = Fixtures.secret("push", #"{"auths":{"registry.example.com":{"auth":"cHVzaA=="},"shared.example.com":{"auth":"cHVzaA=="}}}"#)
        let pull = Fixtures.secret("pull", #"{"auths":{"quay.io":{"auth":"cHVsbA=="},"shared.example.com":{"auth":"cHVsbA=="}}}"#)
        let merged = try RegistryCredentials.merge(push: push, pull: pull)
        #expect(String(decoding: merged.dockerConfigJSON, as: UTF8.self)
            == #"{"auths":{"quay.io":{"auth":"cHVsbA=="},"registry.example.com":{"auth":"cHVzaA=="},"shared.example.com":{"auth":"cHVzaA=="}}}"#)
        let legacy = Fixtures.secret("old", #"{"index.docker.io":{"auth":"b2xk"}}"#, key: ".dockercfg")
        let fromLegacy = try RegistryCredentials.merge(push: nil, pull: legacy)
        // Docker Hub's key forms all become the one docker and kaniko look up.
        #expect(String(decoding: fromLegacy.dockerConfigJSON, as: UTF8.self) == #"{"auths":{"https://index.docker.io/v1/":{"auth":"b2xk"}}}"#)
        #expect(merged.overriddenHosts == ["shared.example.com"])

        let plan = try Self.plan(credentials: merged)
        let secret = try #require(plan.registrySecret)
        #expect(secret.type == "kubernetes.io/dockerconfigjson")
        #expect(secret.data?[".dockerconfigjson"] == merged.dockerConfigJSON)
        #expect(secret.metadata.ownerReferences?.first?.controller == true)
        #expect(try plan.manifests().compactMap { $0["kind"]?.stringValue } == ["ConfigMap", "Secret", "Job"])

        for bad in [Fixtures.secret("x", "not json"), Fixtures.secret("x", #"{"auths":[]}"#), Fixtures.secret("x", #"{"auths":{"r":1}}"#),
                    Secret(metadata: ObjectMeta(name: "x"), type: "Opaque", data: ["other": Data()])] {
            #expect(throws: CredentialsError.self) { try RegistryCredentials.merge(push: bad, pull: nil) }
        }
    }

    @Test func longNamesStayValid() throws {
        let name = String(repeating: "very-long-name-", count: 6) + "x"
        var config = OperatorConfig()
        config.registry.push = .prefix("registry.example.com/ph")
        let valid = try Fixtures.valid(Fixtures.imageSpec(name, spec: ImageSpecSpec(baseImage: "ubuntu")))
        let plan = try BuildPlanner.plan(BuildInputs(imageSpec: valid, config: config, baseImageUser: .root))
        #expect(plan.jobName.count <= 63)
        #expect(plan.job.metadata.labels?["imagespecs.primehub.io/name"] == nil)
        #expect(plan.job.metadata.annotations?["image-builder.primehub.io/imagespec"] == name)
        #expect(plan.job.metadata.ownerReferences == nil)
        #expect(plan.targetImage == "registry.example.com/ph/\(name):\(plan.hash)")
    }
}

@Suite struct PublishTests {
    @Test func publishedImageEntry() throws {
        let spec = try Fixtures.example("published.yaml")
        var config = OperatorConfig()
        config.registry.pushSecret = "push"
        config.registry.pullSecret = "pull"
        let fresh = try #require(ImagePublisher.publish(spec, builtImage: "r.example.com/x:1", jobName: "j", config: config, existing: nil))
        #expect(fresh.metadata.name == "tf-gpu")
        #expect(fresh.metadata.namespace == "hub")
        #expect(fresh.spec.url == "r.example.com/x:1" && fresh.spec.urlForGpu == "r.example.com/x:1")
        #expect(fresh.spec.pullSecret == "pull")
        #expect(fresh.spec.type == "both" && fresh.spec.groupName == "vision")
        #expect(fresh.status?.jobCondition == Image.JobCondition(phase: "Succeeded", jobName: "j", image: "r.example.com/x:1"))
        #expect(ImagePublisher.isPublished(fresh, from: spec))

        // An existing entry keeps what publish does not set, and unknown members; a leaked push
        // secret is replaced.
        let existingJSON = #"{"apiVersion":"primehub.io/v1alpha1","kind":"Image","metadata":{"name":"tf-gpu","namespace":"hub"},"spec":{"displayName":"Old","pullSecret":"push","url":"old","extra":"kept"}}"#
        let existing = try KubeJSON.decoder.decode(Image.self, from: Data(existingJSON.utf8))
        config.registry.pullSecret = nil
        let updated = try #require(ImagePublisher.publish(spec, builtImage: "r.example.com/x:2", jobName: "j2", config: config, existing: existing))
        #expect(updated.spec.displayName == "TensorFlow (GPU, with OpenCV)")
        #expect(updated.spec.pullSecret == nil)
        let encoded = try JSONValue(encoding: updated)
        #expect(encoded.value(at: "spec", "extra") == .string("kept"))
        #expect(encoded.value(at: "spec", "pullSecret") == nil)

        let unpublished = try Fixtures.example("better-base-notebook.yaml")
        #expect(ImagePublisher.publish(unpublished, builtImage: "x", jobName: "j", config: config, existing: nil) == nil)
    }
}
