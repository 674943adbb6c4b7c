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
            $0.builder.strategy = .kaniko
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
        #expect(pod.initContainers == nil)
        #expect(plan.strategy == .kaniko)
        let container = try #require(pod.containers.first)
        #expect(container.image == OperatorConfig.Builder.defaultKanikoImage)
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
        #expect(mounts.contains(VolumeMount(name: "context", mountPath: "/workspace/Dockerfile", subPath: "Dockerfile", readOnly: true)))
        #expect(args.contains("--build-arg=IMAGE_BUILDER_APT_PACKAGES=curl"))
        #expect(pod.volumes?.first { $0.name == "docker-config" }?.secret?.items == [KeyToPath(key: ".dockerconfigjson", path: "config.json")])
        #expect(plan.configMap.data?.keys.sorted() == ["Dockerfile", "registry-ca.crt"])
        #expect(plan.configMap.data?["registry-ca.crt"]?.contains("BEGIN CERTIFICATE") == true)
        #expect(plan.configMap.immutable == true)
        #expect(plan.registrySecretName == "better-96ff7925")
        #expect(plan.registrySecret == nil)
    }

    @Test func noSecretsNoDockerConfig() throws {
        let plan = try Self.plan(spec: ImageSpecSpec(baseImage: "ubuntu"), config: { $0.registry.pushSecret = nil; $0.builder.strategy = .kaniko })
        #expect(plan.registrySecretName == nil)
        #expect(plan.job.spec?.template.spec?.volumes?.map(\.name) == ["context"])
        let buildah = try Self.plan(spec: ImageSpecSpec(baseImage: "ubuntu"), config: { $0.registry.pushSecret = nil })
        let pod = try #require(buildah.job.spec?.template.spec)
        #expect(pod.volumes?.map(\.name) == ["context", "storage", "var-tmp", "run"])
        #expect((pod.initContainers ?? []).allSatisfy { !($0.args ?? []).contains { $0.hasPrefix("--authfile") } })
    }

    @Test func kanikoEphemeralStorageAndInsecureEverywhere() throws {
        let plan = try Self.plan(config: {
            $0.builder.strategy = .kaniko
            $0.builder.ephemeralStorage = "30Gi"
            $0.registry.insecureEverywhere = true
        })
        let container = try #require(plan.job.spec?.template.spec?.containers.first)
        #expect(container.resources?.requests?["ephemeral-storage"] == "30Gi")
        #expect(container.resources?.limits?["ephemeral-storage"] == "30Gi")
        for flag in ["--insecure", "--skip-tls-verify", "--insecure-pull", "--skip-tls-verify-pull"] {
            #expect(container.args?.contains(flag) == true, "\(flag)")
        }
    }

    /// The buildah Pod: a build step (init container) that never sees the push credentials, then
    /// the builder container, the Pod's only one, which replays the build log and pushes.
    @Test func buildahPodSeparatesTheBuildFromThePushCredentials() throws {
        let push = Fixtures.secret("push", #"{"auths":{"registry.example.com":{"auth":"cHVzaDpzZWNyZXQ="}}}"#)
        let pull = Fixtures.secret("pull", #"{"auths":{"quay.io":{"auth":"cHVsbDpwdWxs"}}}"#)
        let registryPull = Fixtures.secret("registry-pull", #"{"auths":{"registry.example.com":{"auth":"cmVhZDpyZWFk"}}}"#)
        let credentials = try RegistryCredentials.merge(push: push, pull: pull, registryPull: registryPull)
        let plan = try Self.plan(config: {
            $0.builder.ephemeralStorage = "30Gi"
            $0.builder.resources = ResourceRequirements(limits: ["memory": "4Gi"])
            $0.registry.caBundle = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
        }, credentials: credentials)
        #expect(plan.strategy == .buildah)
        let pod = try #require(plan.job.spec?.template.spec)
        #expect(pod.containers.map(\.name) == [BuildPlanner.containerName])
        let build = try #require(pod.initContainers?.first)
        let builder = pod.containers[0]
        #expect(pod.initContainers?.count == 1 && build.name == BuildPlanner.buildStepContainerName)

        // Which volumes each container mounts: the push credentials only in the builder.
        let volumes = Dictionary(uniqueKeysWithValues: (pod.volumes ?? []).map { ($0.name, $0) })
        let buildVolumes = Set((build.volumeMounts ?? []).map(\.name))
        let builderVolumes = Set((builder.volumeMounts ?? []).map(\.name))
        #expect(!buildVolumes.contains("push-auth") && buildVolumes.contains("build-auth"))
        #expect(builderVolumes.contains("push-auth") && !builderVolumes.contains("build-auth"))
        for name in buildVolumes {
            let items = volumes[name]?.secret?.items?.map(\.key) ?? []
            #expect(!items.contains(RegistryCredentials.secretKey), "the build step mounts the push credentials through \(name)")
        }
        #expect(volumes["build-auth"]?.secret?.items == [KeyToPath(key: BuildPlanner.buildAuthKey, path: "auth.json")])
        #expect(volumes["push-auth"]?.secret?.items == [KeyToPath(key: ".dockerconfigjson", path: "auth.json")])
        // The build step's credentials: the ImageSpec's pull secret and the operator's pull
        // secret, not the push secret's password.
        let secret = try #require(plan.registrySecret)
        let buildAuth = String(decoding: try #require(secret.data?[BuildPlanner.buildAuthKey]), as: UTF8.self)
        #expect(buildAuth == #"{"auths":{"quay.io":{"auth":"cHVsbDpwdWxs"},"registry.example.com":{"auth":"cmVhZDpyZWFk"}}}"#)
        #expect(!buildAuth.contains("cHVzaDpzZWNyZXQ="))
        #expect(String(decoding: try #require(secret.data?[".dockerconfigjson"]), as: UTF8.self).contains("cHVzaDpzZWNyZXQ="))

        // Storage, scratch and /run are emptyDirs; the build's disk is the storage sizeLimit.
        #expect(volumes["storage"]?.emptyDir == EmptyDirVolumeSource(sizeLimit: "30Gi"))
        #expect(volumes["run"]?.emptyDir == EmptyDirVolumeSource(medium: "Memory"))
        #expect(volumes["var-tmp"]?.emptyDir == EmptyDirVolumeSource())
        for container in [build, builder] {
            let mounts = Dictionary(uniqueKeysWithValues: (container.volumeMounts ?? []).map { ($0.mountPath, $0.name) })
            #expect(mounts["/var/lib/containers"] == "storage" && mounts["/var/tmp"] == "var-tmp" && mounts["/run"] == "run")
            #expect(container.resources == ResourceRequirements(limits: ["memory": "4Gi"]))
            #expect(container.terminationMessagePolicy == "FallbackToLogsOnError")
            #expect(container.image == OperatorConfig.Builder.defaultBuildahImage)
            // The narrowest security context that worked (see README, "What buildah needs").
            let context = try #require(container.securityContext)
            #expect(context.runAsUser == 0 && context.privileged == false && context.allowPrivilegeEscalation == false)
            #expect(context.readOnlyRootFilesystem == true)
            #expect(context.capabilities == Capabilities(add: ["SETFCAP", "SETGID", "SETUID"], drop: ["ALL"]))
            #expect(context.seccompProfile == SeccompProfile(type: "Localhost", localhostProfile: "image-builder/buildah.json"))
        }

        // The build: buildah's flags, then the push after a successful build only, with the
        // digest written by buildah push.
        let args = build.args ?? []
        #expect(Array(args.prefix(3)) == ["--storage-driver=vfs", "build", "--isolation=chroot"])
        for flag in ["--file=/workspace/Dockerfile", "--tag=registry.example.com/ph/images:better-96ff7925",
                     "--authfile=/etc/image-builder/build-auth/auth.json", "--cert-dir=/etc/image-builder/certs",
                     "--label=image-builder.primehub.io/spec-hash=96ff7925"] {
            #expect(args.contains(flag), "\(flag)")
        }
        #expect(args.last == "/workspace")
        #expect(!args.contains("--tls-verify=false"))
        #expect(builder.args == ["registry.example.com/ph/images:better-96ff7925", "--storage-driver=vfs", "push",
                                 "--digestfile=/dev/termination-log", "--retry=3", "--authfile=/etc/image-builder/push-auth/auth.json",
                                 "--cert-dir=/etc/image-builder/certs"])
        #expect(builder.command?.prefix(2) == ["/bin/sh", "-c"])
        let mounts = Dictionary(uniqueKeysWithValues: (build.volumeMounts ?? []).map { ($0.mountPath, $0.subPath) })
        #expect(mounts["/etc/image-builder/certs/ca.crt"] == "registry-ca.crt")
        #expect(mounts["/etc/image-builder/registries.conf"] == "registries.conf")
        #expect(build.env?.contains(EnvVar(name: "CONTAINERS_REGISTRIES_CONF", value: "/etc/image-builder/registries.conf")) == true)
    }

    @Test func buildahOptions() throws {
        let plan = try Self.plan(config: {
            $0.builder.cacheRepo = "registry.example.com/ph/cache"
            $0.builder.storageDriver = .overlay
            $0.builder.seccompProfile = .unconfined
            $0.registry.insecure = true
            $0.registry.insecureRegistries = ["base.example.com:5000"]
            $0.builder.extraArgs = ["--jobs=2"]
        })
        let pod = try #require(plan.job.spec?.template.spec)
        let build = try #require(pod.initContainers?.first)
        let args = build.args ?? []
        #expect(args.first == "--storage-driver=overlay")
        #expect(args.suffix(5) == ["--layers", "--cache-from=registry.example.com/ph/cache", "--cache-to=registry.example.com/ph/cache",
                                   "--jobs=2", "/workspace"])
        #expect(build.securityContext?.seccompProfile == SeccompProfile(type: "Unconfined"))
        #expect(build.securityContext?.capabilities?.add == ["SETFCAP", "SETGID", "SETUID"])
        // Insecure registries are marked one by one, not with --tls-verify=false.
        let conf = try #require(plan.configMap.data?["registries.conf"])
        #expect(conf.contains("unqualified-search-registries = [\"docker.io\"]"))
        #expect(conf.contains("[[registry]]\nlocation = \"base.example.com:5000\"\ninsecure = true"))
        #expect(conf.contains("[[registry]]\nlocation = \"registry.example.com\"\ninsecure = true"))
        #expect(!args.contains("--tls-verify=false"))

        let everywhere = try Self.plan(config: { $0.registry.insecureEverywhere = true })
        let everywherePod = try #require(everywhere.job.spec?.template.spec)
        #expect(everywherePod.initContainers?.first?.args?.contains("--tls-verify=false") == true)
        #expect(everywherePod.containers.first?.args?.contains("--tls-verify=false") == true)

        // The privileged fallback.
        let privileged = try Self.plan(config: { $0.builder.privileged = true })
        let context = try #require(privileged.job.spec?.template.spec?.containers.first?.securityContext)
        #expect(context.privileged == true && context.capabilities == nil && context.seccompProfile == nil)
        #expect(context.allowPrivilegeEscalation == nil)

        // One container, build and push, when push credentials need not be isolated.
        let combined = try Self.plan(config: { $0.builder.isolatePushCredentials = false })
        let combinedPod = try #require(combined.job.spec?.template.spec)
        #expect(combinedPod.initContainers == nil)
        #expect(combinedPod.containers.map(\.name) == [BuildPlanner.containerName])
        let container = combinedPod.containers[0]
        #expect(container.args?.first == combined.targetImage)
        #expect(container.args?.contains("--authfile=/etc/image-builder/push-auth/auth.json") == true)
        #expect(combinedPod.volumes?.contains { $0.name == "build-auth" } == false)
    }

    @Test func cacheCredentialsForTheBuildStep() throws {
        let push = Fixtures.secret("push", #"{"auths":{"registry.example.com":{"auth":"cHVzaA=="},"cache.example.com":{"auth":"Y2FjaGU="}}}"#)
        let credentials = try RegistryCredentials.merge(push: push, pull: nil)
        #expect(credentials.buildStepConfig(cacheRegistry: nil).entries.isEmpty)
        #expect(credentials.buildStepConfig(cacheRegistry: "cache.example.com").entries.map(\.host) == ["cache.example.com"])
        #expect(credentials.buildStepConfig(cacheRegistry: "other.example.com").entries.isEmpty)
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
