// Shared with the other integration test targets.
@_exported import KubeTestSupport
