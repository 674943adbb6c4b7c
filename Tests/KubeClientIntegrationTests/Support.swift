// Shared with the other integration test targets.
import KubeTestSupport
