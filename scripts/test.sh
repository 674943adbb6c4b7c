#!/usr/bin/env bash
# Runs the whole test suite: unit tests and the integration tests against a real etcd,
# kube-apiserver (+ kube-controller-manager) and docker-registry that the tests start themselves;
# then, for a whole run (no arguments), the README's first command end to end:
# scripts/demo-test.sh (`scripts/demo.sh` in a fresh directory, the operator as a Pod from deploy/,
# a leader change during a build, a second run, `down`). IMAGE_BUILDER_SKIP_DEMO=1 leaves it out.
# Installs what is missing first (scripts/install-deps.sh). Extra arguments go to `swift test`
# (e.g. --filter KubeClientIntegrationTests).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
swift build --build-tests
swift test --skip-build "$@"
if [ "$#" = 0 ] && [ -z "${IMAGE_BUILDER_SKIP_DEMO:-}" ]; then
  bash scripts/demo-test.sh
fi
