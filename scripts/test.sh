#!/usr/bin/env bash
# Runs the whole test suite: unit tests and the integration tests against a real etcd,
# kube-apiserver (+ kube-controller-manager), docker-registry and the single-node tier that the
# tests start themselves. Installs what is missing first (scripts/install-deps.sh). Extra arguments
# go to `swift test` (e.g. --filter KubeClientIntegrationTests).
#
# Run without arguments (what CI runs), after `swift test`, each step timed:
#   - the chaos scenarios (Tests/ChaosTests; IMAGE_BUILDER_CHAOS_SPECS ImageSpecs each, default 200),
#     on their own, one scenario at a time; IMAGE_BUILDER_CHAOS=0 skips them;
#   - the README's first command end to end (IMAGE_BUILDER_DEMO=0 skips it): scripts/demo-test.sh
#     runs scripts/demo.sh in a fresh directory and checks the operator as a Pod from deploy/, a
#     leader change during a build, a second run and `down`; the operator image is made from the
#     debug build just made (IMAGE_BUILDER_DEMO_BUILD=release for a release one);
#   - a short run of every fuzz target, 10 s each (IMAGE_BUILDER_FUZZ_SECONDS=N for N seconds, 0 to
#     skip; with arguments it runs only when IMAGE_BUILDER_FUZZ_SECONDS is set). scripts/fuzz.sh
#     makes a release build of its own with every module instrumented, in a copy of the sources
#     under $IMAGE_BUILDER_CACHE/fuzz (default /var/cache/image-builder/fuzz), so that after the
#     first run only what changed is compiled again.
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
if [ "$#" = 0 ] && [ "${IMAGE_BUILDER_DEMO:-1}" != 0 ]; then
  echo "== $(date -u +%FT%TZ) the demo, end to end"
  start=$SECONDS
  IMAGE_BUILDER_DEMO_BUILD=${IMAGE_BUILDER_DEMO_BUILD:-debug} bash scripts/demo-test.sh
  echo "== $(date -u +%FT%TZ) the demo took $((SECONDS - start)) s"
fi
if [ "$#" = 0 ]; then fuzz_seconds=${IMAGE_BUILDER_FUZZ_SECONDS:-10}; else fuzz_seconds=${IMAGE_BUILDER_FUZZ_SECONDS:-0}; fi
if [ "$fuzz_seconds" != 0 ]; then
  echo "== $(date -u +%FT%TZ) fuzzing, ${fuzz_seconds} s a target"
  start=$SECONDS
  bash scripts/fuzz.sh --seconds "$fuzz_seconds" --cache "${IMAGE_BUILDER_CACHE:-/var/cache/image-builder}/fuzz"
  echo "== $(date -u +%FT%TZ) fuzzing took $((SECONDS - start)) s"
fi
