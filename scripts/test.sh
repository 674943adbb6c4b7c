#!/usr/bin/env bash
# Runs the whole test suite: unit tests and the integration tests against a real etcd,
# kube-apiserver (+ kube-controller-manager) and docker-registry that the tests start themselves.
# Installs what is missing first (scripts/install-deps.sh). Extra arguments go to `swift test`
# (e.g. --filter KubeClientIntegrationTests).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
swift build --build-tests
swift test --skip-build "$@"
