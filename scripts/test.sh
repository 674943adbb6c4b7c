#!/usr/bin/env bash
# Runs the whole test suite: unit tests and the integration tests against a real etcd,
# kube-apiserver (+ kube-controller-manager) and docker-registry that the tests start themselves.
# Installs what is missing first (scripts/install-deps.sh). Extra arguments go to `swift test`
# (e.g. --filter KubeClientIntegrationTests). Then a short run of every fuzz target
# (scripts/fuzz.sh; IMAGE_BUILDER_FUZZ_SECONDS a target, default 10; 0 skips it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
swift build --build-tests
swift test --skip-build "$@"
fuzz_seconds=${IMAGE_BUILDER_FUZZ_SECONDS:-10}
if [[ "$fuzz_seconds" != 0 ]]; then
    bash scripts/fuzz.sh --seconds "$fuzz_seconds"
fi
