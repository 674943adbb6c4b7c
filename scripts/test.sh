#!/usr/bin/env bash
# Runs the whole test suite: unit tests and the integration tests against a real etcd,
# kube-apiserver (+ kube-controller-manager), docker-registry and the single-node tier that the
# tests start themselves. Installs what is missing first (scripts/install-deps.sh). Extra arguments
# go to `swift test` (e.g. --filter KubeClientIntegrationTests).
#
# Two longer checks run after `swift test` when asked for (each needs a release build of its own,
# which does not fit CI's time budget yet):
#   IMAGE_BUILDER_DEMO=1           the README's first command end to end (scripts/demo-test.sh:
#                                  scripts/demo.sh in a fresh directory, the operator as a Pod from
#                                  deploy/, a leader change during a build, a second run, `down`);
#   IMAGE_BUILDER_FUZZ_SECONDS=N   N seconds of every fuzz target (scripts/fuzz.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
swift build --build-tests
swift test --skip-build "$@"
if [ -n "${IMAGE_BUILDER_DEMO:-}" ] && [ "${IMAGE_BUILDER_DEMO}" != 0 ]; then
  bash scripts/demo-test.sh
fi
fuzz_seconds=${IMAGE_BUILDER_FUZZ_SECONDS:-0}
if [ "$fuzz_seconds" != 0 ]; then
  bash scripts/fuzz.sh --seconds "$fuzz_seconds"
fi
