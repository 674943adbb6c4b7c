#!/usr/bin/env bash
# Runs the whole test suite: unit tests and the integration tests against a real etcd,
# kube-apiserver (+ kube-controller-manager), docker-registry and the single-node tier that the
# tests start themselves. Installs what is missing first (scripts/install-deps.sh). Extra arguments
# go to `swift test` (e.g. --filter KubeClientIntegrationTests).
#
# The chaos scenarios (Tests/ChaosTests; IMAGE_BUILDER_CHAOS_SPECS ImageSpecs each, default 200)
# run after the other suites, on their own, one scenario at a time; IMAGE_BUILDER_CHAOS=0 skips them.
#
# Longer checks run after `swift test` when asked for:
#   IMAGE_BUILDER_DEMO=1           the README's first command end to end (scripts/demo-test.sh:
#                                  scripts/demo.sh in a fresh directory, the operator as a Pod from
#                                  deploy/, a leader change during a build, a second run, `down`),
#                                  with the operator image made from the debug build just made
#                                  (IMAGE_BUILDER_DEMO_BUILD=release for the release one);
#   IMAGE_BUILDER_FUZZ_SECONDS=N   N seconds of every fuzz target (scripts/fuzz.sh; a release build
#                                  of its own, with every module instrumented).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
swift build --build-tests
if [ "$#" = 0 ]; then
  # The chaos scenarios load the machine with a control plane, operators and a burst of their
  # own: they run on their own after the other suites, whose servers they would starve beside them.
  swift test --skip-build --skip ChaosTests
  if [ "${IMAGE_BUILDER_CHAOS:-1}" != 0 ]; then
    echo "== $(date -u +%FT%TZ) chaos scenarios"
    start=$SECONDS
    swift test --skip-build --filter ChaosTests
    echo "== $(date -u +%FT%TZ) chaos scenarios took $((SECONDS - start)) s"
  fi
else
  swift test --skip-build "$@"
fi
if [ -n "${IMAGE_BUILDER_DEMO:-}" ] && [ "${IMAGE_BUILDER_DEMO}" != 0 ]; then
  IMAGE_BUILDER_DEMO_BUILD=${IMAGE_BUILDER_DEMO_BUILD:-debug} bash scripts/demo-test.sh
fi
fuzz_seconds=${IMAGE_BUILDER_FUZZ_SECONDS:-0}
if [ "$fuzz_seconds" != 0 ]; then
  bash scripts/fuzz.sh --seconds "$fuzz_seconds"
fi
