import Foundation
import ImageBuilder
import KubeTypes
import RegistryClient
import RegistryTypes

// Reading a build's target tag before the first build of a hash, so that a build done before the
// operator ran it (by PrimeHub, or by an earlier operator whose status was lost) is adopted instead
// of rebuilt and pushed again — as BinderHub checks the registry before it builds.

extension RegistryInspector {
    /// Without a registry to ask, no tag is known (fakes for failure-path tests).
    public func inspectTargetImage(_ reference: String, credential: RegistryCredential?) async throws -> TargetImageFacts? {
        nil
    }
}

extension LiveRegistryInspector {
    /// The target tag's digest and its config's labels and creation time; nil when the registry
    /// has no such tag (or repository).
    public func inspectTargetImage(_ reference: String, credential: RegistryCredential?) async throws -> TargetImageFacts? {
        let parsed = try ImageReference(parsing: reference)
        do {
            let resolved = try await client.resolve(parsed, credential: credential)
            return TargetImageFacts(digest: resolved.digest.description, labels: resolved.config.labels,
                                    created: resolved.config.created.flatMap(KubeJSON.parseTimestamp))
        } catch let error as RegistryError where error.isNotFound {
            return nil
        }
    }
}

extension BuildShell {
    /// The answer to `Fact.targetImage`: what the registry holds under the tag, or why it cannot say.
    func targetImage(_ reference: String, credential: RegistryCredential?) async -> TargetImageAnswer {
        do {
            return try await registry.inspectTargetImage(reference, credential: credential).map(TargetImageAnswer.present) ?? .absent
        } catch {
            return .unknown("\(error)")
        }
    }
}
