import Foundation
import ImageBuilder
import KubeTypes
import RegistryTypes
import Testing

// PrimeHub's "Build Custom Image" without a server: an Image's build request seen as an ImageSpec
// (`ImagePath.imageSpec(of:)`), the Image once a status is decided (`ImagePath.image`), and the
// decision on that path (`source: .image`): the Job named and owned for the Image, PrimeHub's
// record named after the Image with its labels.

enum ImageWorld {
    static let name = "notebook"
    static let uid = "uid-image"

    /// An Image as PrimeHub's console writes it for a build: `spec.imageSpec` with a base image.
    static func image(apt: [String] = ["curl"], updateTime: Date? = nil, cancel: Bool? = nil, pullSecret: String? = "pull",
                      annotations: [String: String]? = nil, status: Image.Status? = nil) -> Image {
        var metadata = ObjectMeta(name: name, namespace: World.namespace, annotations: annotations, resourceVersion: "100")
        metadata.uid = uid
        metadata.generation = 7
        metadata.creationTimestamp = World.t0.addingTimeInterval(-86_400)
        metadata.labels = ["team": "data"]
        return Image(metadata: metadata, spec: Image.Spec(
            displayName: "Notebook", description: "kept", type: "both", groupName: "data",
            imageSpec: Image.BuildRequest(baseImage: World.baseImage, pullSecret: pullSecret, packages: Packages(apt: apt),
                                          updateTime: updateTime, cancel: cancel)), status: status)
    }
}

@Suite struct ImagePathDecisionTests {
    // MARK: - The Image's build request as an ImageSpec

    @Test func aRegularImageIsNoBuildRequest() {
        let regular = Image(metadata: ObjectMeta(name: "plain", namespace: World.namespace),
                            spec: Image.Spec(displayName: "Plain", url: "docker.io/jupyter/base-notebook:1"))
        #expect(ImagePath.imageSpec(of: regular) == nil)
        // A request without a base image is none either (PrimeHub's console clears it so).
        var emptied = ImageWorld.image()
        emptied.spec.imageSpec?.baseImage = ""
        #expect(ImagePath.imageSpec(of: emptied) == nil)
        emptied.spec.imageSpec?.baseImage = nil
        #expect(ImagePath.imageSpec(of: emptied) == nil)
    }

    @Test func theRequestIsSeenAsAnImageSpecWithItsBuildStateAsStatus() throws {
        let identity = try World.identity(try #require(ImagePath.imageSpec(of: ImageWorld.image())), source: .image)
        let state = World.succeededStatus(identity)
        let stateText = String(decoding: try KubeJSON.encoder.encode(state), as: UTF8.self)
        let image = ImageWorld.image(updateTime: World.t0, cancel: true,
                                     annotations: [MetadataKeys.imageBuildState: stateText, MetadataKeys.rebuildOnBaseChange: "true"])
        let imageSpec = try #require(ImagePath.imageSpec(of: image))
        #expect(imageSpec.metadata.name == ImageWorld.name)
        #expect(imageSpec.metadata.namespace == World.namespace)
        #expect(imageSpec.metadata.uid == ImageWorld.uid)
        #expect(imageSpec.metadata.resourceVersion == "100")
        #expect(imageSpec.metadata.creationTimestamp == image.metadata.creationTimestamp)
        #expect(imageSpec.metadata.generation == nil, "each status write moves an Image's generation")
        #expect(imageSpec.metadata.labels == ["team": "data"])
        #expect(imageSpec.metadata.annotations == [MetadataKeys.rebuildOnBaseChange: "true"], "the build state is not an annotation of the spec")
        #expect(imageSpec.spec == ImageSpecSpec(baseImage: World.baseImage, pullSecret: "pull", packages: Packages(apt: ["curl"]),
                                                updateTime: World.t0, cancel: true))
        #expect(imageSpec.status == state)
        #expect(ImagePath.buildState(of: image) == state)

        // Before its first build, or with a state that cannot be read: no status, as after a lost one.
        #expect(try #require(ImagePath.imageSpec(of: ImageWorld.image())).status == nil)
        let garbled = ImageWorld.image(annotations: [MetadataKeys.imageBuildState: "{not json"])
        #expect(ImagePath.buildState(of: garbled) == nil)
        #expect(try #require(ImagePath.imageSpec(of: garbled)).status == nil)
    }

    // MARK: - The Image once a status is decided

    @Test func aBuildInProgressWritesTheJobConditionAndTheStateOnly() throws {
        let image = ImageWorld.image()
        let identity = try World.identity(try #require(ImagePath.imageSpec(of: image)), source: .image)
        let status = World.startedStatus(identity)
        let updated = ImagePath.image(image, with: status, identity: identity, config: World.config())
        #expect(updated.status?.jobCondition == Image.JobCondition(phase: "Pending", jobName: ImageWorld.name, image: ""))
        #expect(ImagePath.buildState(of: updated) == status)
        #expect(updated.spec == image.spec, "nothing of the spec changes before a success")
        #expect(updated.metadata.resourceVersion == "100", "the update is guarded by the resourceVersion read")
        #expect(updated.metadata.labels == image.metadata.labels)
    }

    @Test func aSuccessSetsTheURLsAndThePullSecret() throws {
        let image = ImageWorld.image()
        let identity = try World.identity(try #require(ImagePath.imageSpec(of: image)), source: .image)
        let status = World.succeededStatus(identity)
        let built = ImagePath.image(image, with: status, identity: identity, config: World.config())
        #expect(built.spec.url == identity.targetImage)
        #expect(built.spec.urlForGpu == identity.targetImage)
        #expect(built.status?.jobCondition == Image.JobCondition(phase: "Succeeded", jobName: ImageWorld.name, image: identity.targetImage))
        #expect(built.spec.pullSecret == "hub-pull", "the configured pull secret")
        #expect(built.spec.displayName == "Notebook" && built.spec.description == "kept" && built.spec.type == "both")
        #expect(built.spec.groupName == "data")
        #expect(built.spec.imageSpec == image.spec.imageSpec)

        // Without a configured pull secret: the push secret, as PrimeHub does it.
        let pushOnly = ImagePath.image(image, with: status, identity: identity, config: World.config { $0.registry.pullSecret = nil })
        #expect(pushOnly.spec.pullSecret == "push")
        // Neither configured: the Image's own is kept.
        var own = image
        own.spec.pullSecret = "their-own"
        let neither = ImagePath.image(own, with: status, identity: identity, config: World.config {
            $0.registry.pullSecret = nil
            $0.registry.pushSecret = nil
        })
        #expect(neither.spec.pullSecret == "their-own")

        // A success without an image to show is no success for the Image yet.
        var empty = status
        empty.image = ""
        let notYet = ImagePath.image(image, with: empty, identity: identity, config: World.config())
        #expect(notYet.spec.url == nil && notYet.spec.urlForGpu == nil && notYet.spec.pullSecret == nil)
        #expect(notYet.status?.jobCondition.image == "")
    }

    @Test func aFailureOrACancelKeepsTheLastGoodURL() throws {
        let image = ImageWorld.image()
        let identity = try World.identity(try #require(ImagePath.imageSpec(of: image)), source: .image)
        let built = ImagePath.image(image, with: World.succeededStatus(identity), identity: identity, config: World.config())

        for phase in [BuildPhase.failed, .cancelled, .pending, .running] {
            var status = World.succeededStatus(identity)
            status.phase = phase.rawValue
            status.setState(.stalled(reason: Reason.buildFailed.rawValue, message: "failed"), generation: nil, now: World.now)
            let after = ImagePath.image(built, with: status, identity: identity, config: World.config { $0.registry.pullSecret = "changed" })
            #expect(after.spec.url == identity.targetImage, "\(phase)")
            #expect(after.spec.urlForGpu == identity.targetImage)
            #expect(after.spec.pullSecret == "hub-pull", "only a success sets the pull secret")
            #expect(after.status?.jobCondition == Image.JobCondition(phase: phase.rawValue, jobName: ImageWorld.name,
                                                                     image: identity.targetImage))
            #expect(ImagePath.buildState(of: after) == status)
        }

        // A first build that fails: no URL, no image in the job condition.
        var failed = World.startedStatus(identity)
        failed.phase = BuildPhase.failed.rawValue
        let first = ImagePath.image(image, with: failed, identity: identity, config: World.config())
        #expect(first.spec.url == nil && first.spec.urlForGpu == nil)
        #expect(first.status?.jobCondition == Image.JobCondition(phase: "Failed", jobName: ImageWorld.name, image: ""))

        // An invalid request (no identity): the job condition names the Image.
        let invalid = ImagePath.image(image, with: failed, identity: nil, config: World.config())
        #expect(invalid.status?.jobCondition.jobName == ImageWorld.name)
    }

    // MARK: - The decision on the Image path

    @Test func aStartOnTheImagePathNamesAndOwnsItsBuildForTheImage() throws {
        let image = ImageWorld.image()
        let imageSpec = try #require(ImagePath.imageSpec(of: image))
        let identity = try World.identity(imageSpec, source: .image)
        #expect(identity.jobName == "image-\(ImageWorld.name)-\(identity.hash)")
        #expect(identity.recordName == ImageWorld.name)

        let pass = try Decide.pass(DecisionTable.observe(imageSpec), source: .image)
        #expect(pass.steps == DecisionTable.start)
        let job = try #require(pass.createdJob)
        #expect(job.metadata.name == identity.jobName)
        #expect(job.metadata.controllerReference?.kind == "Image")
        #expect(job.metadata.controllerReference?.uid == ImageWorld.uid)
        #expect(job.metadata.controllerReference?.name == ImageWorld.name)
        #expect(job.metadata.labels?[MetadataKeys.imageName] == ImageWorld.name)
        #expect(job.metadata.labels?["app"] == "primehub-image")
        #expect(job.metadata.labels?[MetadataKeys.imageSpecName] == nil, "not PrimeHub's ImageSpec label")
        #expect(job.metadata.annotations?[MetadataKeys.imageHash] == identity.hash)

        let record = try #require(pass.ensuredRecord)
        #expect(record.metadata.name == ImageWorld.name, "PrimeHub keeps one record per Image, named after it")
        #expect(record.metadata.labels?[MetadataKeys.imageName] == ImageWorld.name)
        #expect(record.metadata.labels?["app"] == "primehub-image")
        #expect(record.metadata.labels?[MetadataKeys.imageSpecName] == nil)
        #expect(record.metadata.annotations == [MetadataKeys.imageHash: identity.hash])
        #expect(record.metadata.controllerReference?.kind == "Image")
        #expect(record.metadata.controllerReference?.uid == ImageWorld.uid)
        #expect(record.spec.targetImage == identity.targetImage)
        #expect(record.spec.baseImage == World.baseImage)
        #expect(record.spec.pullSecret == "pull")
        #expect(pass.recordStatusWrites == [ImageWorld.name: ImageSpecJob.Status(phase: "Pending", podName: "", startTime: World.now)])
        #expect(pass.status.jobName == identity.jobName)
    }

    @Test func aBuildOnTheImagePathRunsToSuccessAndTheImagePointsAtIt() throws {
        var image = ImageWorld.image()
        let imageSpec = try #require(ImagePath.imageSpec(of: image))
        let identity = try World.identity(imageSpec, source: .image)
        var cluster = Cluster(imageSpec: imageSpec)
        cluster.source = .image
        try cluster.pass()
        #expect(cluster.jobs.map(\.metadata.name) == [identity.jobName])
        #expect(cluster.records.map(\.metadata.name) == [ImageWorld.name])

        try cluster.startRunning(identity.jobName)
        let podName = try #require(cluster.pods[identity.jobName]?.metadata.name)
        cluster.advance(10)
        let running = try cluster.pass(.none)
        #expect(running.recordStatusWrites == [ImageWorld.name: ImageSpecJob.Status(phase: "Running", podName: podName, startTime: World.t0)])
        image = ImagePath.image(image, with: cluster.status, identity: identity, config: cluster.config)
        #expect(image.status?.jobCondition == Image.JobCondition(phase: "Running", jobName: ImageWorld.name, image: ""))
        #expect(image.spec.url == nil)

        cluster.advance(50)
        try cluster.finish(identity.jobName, message: World.imageDigest)
        let succeeded = try cluster.pass(.none)
        #expect(succeeded.status.phase == "Succeeded")
        #expect(cluster.record(ImageWorld.name)?.status == ImageSpecJob.Status(
            phase: "Succeeded", podName: podName, startTime: World.t0, finishTime: World.t0.addingTimeInterval(60)))
        image = ImagePath.image(image, with: cluster.status, identity: identity, config: cluster.config)
        #expect(image.spec.url == identity.targetImage)
        #expect(image.status?.jobCondition == Image.JobCondition(phase: "Succeeded", jobName: ImageWorld.name, image: identity.targetImage))
        // The state read back from the Image decides nothing new.
        let readBack = try #require(ImagePath.imageSpec(of: image))
        #expect(readBack.status == cluster.status)

        // A rebuild (a newer updateTime) removes the build and its record, then starts again.
        cluster.advance(3600)
        let clicked = cluster.now.addingTimeInterval(-5)
        cluster.edit { $0.updateTime = clicked }
        let oldJob = try #require(cluster.job(identity.jobName))
        let rebuilding = try cluster.pass(.none)
        #expect(rebuilding.actions == [.deleteJob(oldJob), .deleteConfigMap(name: identity.jobName, namespace: World.namespace),
                                       .deleteImageSpecJob(name: ImageWorld.name, namespace: World.namespace)])
        #expect(cluster.records.isEmpty)
        let restarted = try cluster.pass()
        #expect(restarted.steps == DecisionTable.start)
        #expect(cluster.record(ImageWorld.name)?.spec.updateTime == clicked)
        image = ImagePath.image(image, with: cluster.status, identity: identity, config: cluster.config)
        #expect(image.spec.url == identity.targetImage, "the last good URL stays while the rebuild runs")
        #expect(image.status?.jobCondition.phase == "Pending")
    }
}

/// The decision's state on an ImageSpec whose CRD prunes the status (PrimeHub's own).
@Suite struct BuildStateAnnotationTests {
    @Test func aPrunedStatusIsRestoredFromTheAnnotationAndOnlyThen() throws {
        let identity = try World.identity()
        let full = World.succeededStatus(identity)
        let text = try #require(BuildStateAnnotation.text(of: full))
        // As PrimeHub's CRD keeps it: the three fields only.
        let pruned = ImageSpecStatus(phase: full.phase, jobName: full.jobName, image: full.image)
        let stored = World.imageSpec(status: pruned, annotations: [MetadataKeys.imageBuildState: text])
        #expect(BuildStateAnnotation.restored(stored).status == full)
        #expect(BuildStateAnnotation.wasPruned(sent: full, written: stored))
        // A status that kept its conditions wins over an old annotation, and is not pruned.
        let kept = World.imageSpec(status: full, annotations: [MetadataKeys.imageBuildState: "{}"])
        #expect(BuildStateAnnotation.restored(kept).status == full)
        #expect(!BuildStateAnnotation.wasPruned(sent: full, written: kept))
        // No annotation, or an unreadable one: the status as it is.
        #expect(BuildStateAnnotation.restored(World.imageSpec(status: pruned)).status == pruned)
        let garbled = World.imageSpec(status: pruned, annotations: [MetadataKeys.imageBuildState: "{not json"])
        #expect(BuildStateAnnotation.restored(garbled).status == pruned)
    }
}
