#!/usr/bin/env bash
# Runs the whole test suite: unit tests and the integration tests against a real etcd,
# kube-apiserver (+ kube-controller-manager), docker-registry and the single-node tier that the
# tests start themselves. Installs what is missing first (scripts/install-deps.sh). Extra arguments
# go to `swift test` (e.g. --filter KubeClientIntegrationTests).
#
# Run without arguments (what CI runs), after `swift test`:
#   - the README's first command end to end, by default (IMAGE_BUILDER_DEMO=0 skips it):
#     scripts/demo-test.sh runs scripts/demo.sh in a fresh directory and checks the operator as a Pod
#     from deploy/, a leader change during a build, a second run and `down`; the operator image is
#     made from the debug build just made (IMAGE_BUILDER_DEMO_BUILD=release for a release one);
#   - IMAGE_BUILDER_CHAOS=1: the chaos scenarios (Tests/ChaosTests; IMAGE_BUILDER_CHAOS_SPECS
#     ImageSpecs each, default 100), on their own after the other suites.
#   - a short run of every fuzz target, by default 10 s each (IMAGE_BUILDER_FUZZ_SECONDS=N for N
#     seconds, 0 to skip; with arguments it runs only when IMAGE_BUILDER_FUZZ_SECONDS is set).
#     scripts/fuzz.sh makes a release build of its own with every module instrumented, in a copy of
#     the sources under $IMAGE_BUILDER_CACHE/fuzz (default /var/cache/image-builder/fuzz), so that
#     after the first run only what changed is compiled again.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
swift build --build-tests
if [ "$#" = 0 ]; then
  # The chaos scenarios start many control planes and operators at once: they run on their own
  # (IMAGE_BUILDER_CHAOS=1), not beside the other suites, whose servers they would starve.
  swift test --skip-build --skip ChaosTests
  if [ -n "${IMAGE_BUILDER_CHAOS:-}" ] && [ "${IMAGE_BUILDER_CHAOS}" != 0 ]; then
    swift test --skip-build --filter ChaosTests
  fi
else
  swift test --skip-build "$@"
fi
if [ "$#" = 0 ] && [ "${IMAGE_BUILDER_DEMO:-1}" != 0 ]; then
  IMAGE_BUILDER_DEMO_BUILD=${IMAGE_BUILDER_DEMO_BUILD:-debug} bash scripts/demo-test.sh
fi
if [ "$#" = 0 ]; then fuzz_seconds=${IMAGE_BUILDER_FUZZ_SECONDS:-10}; else fuzz_seconds=${IMAGE_BUILDER_FUZZ_SECONDS:-0}; fi
if [ "$fuzz_seconds" != 0 ]; then
  bash scripts/fuzz.sh --seconds "$fuzz_seconds" --cache "${IMAGE_BUILDER_CACHE:-/var/cache/image-builder}/fuzz"
fi
