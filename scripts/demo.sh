#!/usr/bin/env bash
# The whole product on this machine, for real: a local single-node cluster (the test harness's node
# tier, through `local-cluster`) with a registry, the operator's own container image built here and
# deployed from deploy/ with `kubectl apply -k` of a local overlay, and an example ImageSpec
# (examples/demo.yaml) built, pushed, published and run.
#
#   bash scripts/demo.sh [up] [--non-interactive]   start or reuse everything, build the example
#   bash scripts/demo.sh status                     is the demo cluster running? (its environment)
#   bash scripts/demo.sh down                       stop every process it started, remove its state
#
#   IMAGE_BUILDER_DEMO_DIR   the demo's state (default /tmp/image-builder-demo): kubeconfig, env,
#                            the local-cluster state, the overlay, buildah storage, logs
#   IMAGE_BUILDER_CACHE      the machine's cache (default /var/cache/image-builder); the operator
#                            image's root filesystem is kept in $IMAGE_BUILDER_CACHE/operator-image
#   IMAGE_BUILDER_DEMO_BUILD release (default): a release build with Swift's runtime linked
#                            statically; debug: the debug build (what `swift build --build-tests`
#                            already made, as in CI), the image then also holds the Swift runtime
#                            libraries the binary links
#   CI=1 or --non-interactive  no colours, no prompts; any failure exits non-zero with diagnostics
#
# Needs root (the node tier creates a bridge and runs containerd) on Debian 12. Idempotent: a second
# `up` reuses the running cluster, the pushed operator image, the Deployment and the built image.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEMO_DIR=${IMAGE_BUILDER_DEMO_DIR:-/tmp/image-builder-demo}
CACHE=${IMAGE_BUILDER_CACHE:-/var/cache/image-builder}
MIRROR=${IMAGE_BUILDER_DEBIAN_MIRROR:-http://deb.debian.org/debian}
NAMESPACE=hub
SPEC_NAME=demo-tools
BUILD=${IMAGE_BUILDER_DEMO_BUILD:-release}
case "$BUILD" in
  # One set of flags for every release product, so the second build is incremental.
  release) SWIFT_BUILD=(swift build -c release --static-swift-stdlib) ;;
  debug) SWIFT_BUILD=(swift build) ;;
  *) echo "demo.sh: IMAGE_BUILDER_DEMO_BUILD is release or debug (got '$BUILD')" >&2; exit 2 ;;
esac
BIN="$ROOT/.build/$BUILD"

command=up
interactive=1
[ -t 1 ] || interactive=0
[ -z "${CI:-}" ] || interactive=0
for argument in "$@"; do
  case "$argument" in
    up|down|status) command=$argument ;;
    __follow) command=__follow ;;
    --non-interactive|--ci) interactive=0 ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) [ "$command" = __follow ] && { follow_pod=$argument; continue; }
       echo "demo.sh: unknown argument '$argument' (usage: demo.sh [up|down|status] [--non-interactive])" >&2; exit 2 ;;
  esac
done

if [ "$interactive" = 1 ]; then BOLD=$'\e[1m'; DIM=$'\e[2m'; RED=$'\e[31m'; OFF=$'\e[0m'; else BOLD=""; DIM=""; RED=""; OFF=""; fi
began=$SECONDS
step_began=$SECONDS
timings=()
step() { # name: starts a step, closing the previous one
  [ -z "${current_step:-}" ] || timings+=("${current_step%% (*}: $(( SECONDS - step_began ))s")
  current_step=$1; step_began=$SECONDS
  printf '\n%s== %s%s %s(%ss)%s\n' "$BOLD" "$1" "$OFF" "$DIM" "$(( SECONDS - began ))" "$OFF"
}
say() { printf '%s\n' "$*"; }
die() { printf '%sdemo: %s%s\n' "$RED" "$*" "$OFF" >&2; exit 1; }

# Stops the local cluster of $DEMO_DIR (by the pid local-cluster recorded) and removes the state.
down() {
  if [ -s "$DEMO_DIR/pid" ]; then
    if [ -x "$BIN/local-cluster" ]; then
      "$BIN/local-cluster" down --state-dir "$DEMO_DIR"
    else
      pid=$(cat "$DEMO_DIR/pid")
      if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        for _ in $(seq 900); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        ! kill -0 "$pid" 2>/dev/null || die "local-cluster (pid $pid) did not stop within 3 minutes"
      fi
    fi
  fi
  rm -rf "$DEMO_DIR"
  say "demo stopped; $DEMO_DIR removed"
}

# Follows every container of a build Pod in turn, as its containers start (init containers first).
# Runs as a process group of its own (`setsid demo.sh __follow POD`), which the script ends.
follow_build_log() { # pod
  local pod=$1 containers state c
  containers=$(k get pod "$pod" -n "$NAMESPACE" -o 'jsonpath={.spec.initContainers[*].name} {.spec.containers[*].name}')
  for c in $containers; do
    for _ in $(seq 1800); do
      state=$(k get pod "$pod" -n "$NAMESPACE" -o "jsonpath={.status.initContainerStatuses[?(@.name==\"$c\")].state} {.status.containerStatuses[?(@.name==\"$c\")].state}" 2>/dev/null || true)
      case "$state" in *running*|*terminated*) break ;; esac
      sleep 1
    done
    k logs -f "$pod" -n "$NAMESPACE" -c "$c" 2>&1 | sed "s/^/  ${DIM}[$c]${OFF} /" || true
  done
}
k() { "$KUBECTL" --kubeconfig "$DEMO_DIR/kubeconfig" "$@"; }

case "$command" in
  __follow)
    # shellcheck disable=SC1091
    . "$DEMO_DIR/env"
    follow_build_log "$follow_pod"; exit 0 ;;
  down) down; exit 0 ;;
  status)
    [ -x "$BIN/local-cluster" ] || die "not built ($BIN/local-cluster missing)"
    exec "$BIN/local-cluster" status --state-dir "$DEMO_DIR" ;;
esac

[ "$(id -u)" = 0 ] || die "needs root (the local cluster creates a bridge and runs containerd); run it with sudo"
mkdir -p "$DEMO_DIR"

# Background helpers (the build-log follower) end with the script.
helpers=()
cleanup() {
  for pid in "${helpers[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
  for pid in "${helpers[@]}"; do wait "$pid" 2>/dev/null || true; done
}
diagnose() {
  [ -s "$DEMO_DIR/env" ] || return 0
  printf '\n%s== diagnostics%s\n' "$BOLD" "$OFF" >&2
  k get imagespec,jobs,pods,deployments -n "$NAMESPACE" -o wide >&2 || true
  k describe imagespec "$SPEC_NAME" -n "$NAMESPACE" >&2 || true
  k describe deployment image-builder -n "$NAMESPACE" >&2 || true
  k logs -n "$NAMESPACE" -l app.kubernetes.io/name=image-builder --tail=40 --prefix >&2 || true
  k get events -n "$NAMESPACE" --sort-by=.lastTimestamp >&2 || true
}
on_exit() {
  status=$?
  cleanup
  if [ "$status" != 0 ]; then
    diagnose
    printf '%sdemo failed (exit %s); state in %s; `bash scripts/demo.sh down` stops it%s\n' "$RED" "$status" "$DEMO_DIR" "$OFF" >&2
  fi
}
trap on_exit EXIT

# --- 1. dependencies and the release build ----------------------------------------------------
step "installing dependencies (scripts/install-deps.sh)"
bash "$ROOT/scripts/install-deps.sh" 2>&1 | sed "s/^/  /"

step "$BUILD build (image-builder, local-cluster)"
(cd "$ROOT" && "${SWIFT_BUILD[@]}" --product image-builder 2>&1 | tail -n 3 | sed "s/^/  /")
(cd "$ROOT" && "${SWIFT_BUILD[@]}" --product local-cluster 2>&1 | tail -n 1 | sed "s/^/  /")
missing_libraries=$(ldd "$BIN/image-builder" | grep "not found" || true)
[ -z "$missing_libraries" ] || die "the $BUILD binary misses libraries: $missing_libraries"
# The libraries the image needs beside Debian's: none for the release build (Swift's runtime is
# linked statically); for the debug build, the toolchain's Swift runtime, at the paths it has here.
runtime_libraries=()
if [ "$BUILD" = debug ]; then
  while read -r library; do runtime_libraries+=("$library"); done \
    < <(ldd "$BIN/image-builder" | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | grep -v -E '^/(usr/)?lib(64)?/' || true)
fi

# --- 2. the local cluster ---------------------------------------------------------------------
step "local cluster (node tier: apiserver, kubelet, containerd, registry)"
if "$BIN/local-cluster" status --state-dir "$DEMO_DIR" >/dev/null 2>&1; then
  say "  reusing the running cluster (pid $(cat "$DEMO_DIR/pid"))"
else
  say "  starting (30-60 s; it waits for another test's node tier on this machine to finish)"
  "$BIN/local-cluster" up --detach --state-dir "$DEMO_DIR" >/dev/null
fi
# shellcheck disable=SC1091
. "$DEMO_DIR/env"
say "  API server $API_SERVER, registry $REGISTRY (Pods: $POD_REGISTRY), node $NODE_NAME"

# --- 3. the operator's image --------------------------------------------------------------------
# Debian bookworm minbase + libcurl4 and CA certificates (the host's extra CAs too), plus the
# release binary (Swift's runtime linked statically; `ldd` shows only Debian libraries). Built
# with mmdebstrap and buildah, nothing pulled from a registry outside; pushed to the local
# registry under a tag derived from the binary and the recipe.
step "operator image (mmdebstrap rootfs + $BUILD binary, buildah)"
ROOTFS="$CACHE/operator-image"
host_cas=$(cat /usr/local/share/ca-certificates/*.crt 2>/dev/null | sha256sum | cut -c1-16)
ROOTFS_RECIPE="bookworm $MIRROR minbase libcurl4,ca-certificates cas:$host_cas v1"
if [ "$(cat "$ROOTFS/.recipe" 2>/dev/null)" != "$ROOTFS_RECIPE" ] || [ ! -s "$ROOTFS/rootfs.tar" ]; then
  say "  building the root filesystem (mmdebstrap minbase + libcurl4, ca-certificates; about a minute)"
  rm -rf "$ROOTFS"; mkdir -p "$ROOTFS"
  ca_hook='mkdir -p "$1/usr/local/share/ca-certificates"; for c in /usr/local/share/ca-certificates/*.crt; do [ -e "$c" ] && cp "$c" "$1/usr/local/share/ca-certificates/"; done; chroot "$1" update-ca-certificates >/dev/null'
  mmdebstrap --quiet --format=tar --variant=minbase --include=libcurl4,ca-certificates --skip=output/dev \
    --customize-hook="$ca_hook" \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/log/*.log' \
    bookworm "$ROOTFS/rootfs.tar.part" "deb $MIRROR bookworm main" >"$ROOTFS/mmdebstrap.log" 2>&1 \
    || { tail -n 20 "$ROOTFS/mmdebstrap.log" >&2; die "mmdebstrap of the operator's root filesystem failed"; }
  mv "$ROOTFS/rootfs.tar.part" "$ROOTFS/rootfs.tar"
  echo "$ROOTFS_RECIPE" > "$ROOTFS/.recipe"
fi
tag=$( { sha256sum "$BIN/image-builder" "${runtime_libraries[@]}" | cut -d' ' -f1; echo "$ROOTFS_RECIPE"; } | sha256sum | cut -c1-16)
OPERATOR_REPO="$REGISTRY/image-builder/operator"
manifest_accept='application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json'
if curl -fsS -o /dev/null -H "Accept: $manifest_accept" "http://$REGISTRY/v2/image-builder/operator/manifests/$tag" 2>/dev/null; then
  say "  reusing $OPERATOR_REPO:$tag"
else
  B=(buildah --root "$DEMO_DIR/buildah/storage" --runroot "$DEMO_DIR/buildah/run" --storage-driver vfs)
  blog="$DEMO_DIR/buildah.log"
  if ! "${B[@]}" inspect --type image "localhost/image-builder:$tag" >/dev/null 2>&1; then
    ctr=$("${B[@]}" from scratch 2>>"$blog")
    "${B[@]}" add "$ctr" "$ROOTFS/rootfs.tar" / >>"$blog" 2>&1 || die "buildah add failed (log: $blog)"
    "${B[@]}" copy --chmod 0755 "$ctr" "$BIN/image-builder" /usr/local/bin/image-builder >>"$blog" 2>&1 \
      || die "buildah copy failed (log: $blog)"
    for library in "${runtime_libraries[@]}"; do
      "${B[@]}" copy "$ctr" "$library" "$library" >>"$blog" 2>&1 || die "buildah copy of $library failed (log: $blog)"
    done
    # As deploy/Dockerfile: non-root, `run` by default.
    "${B[@]}" config --os linux --arch amd64 --user 65532:65532 \
      --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      --entrypoint '["/usr/local/bin/image-builder"]' --cmd '["run","--config=/etc/image-builder/config.yaml"]' \
      --label org.opencontainers.image.title=image-builder "$ctr" >>"$blog" 2>&1 || die "buildah config failed (log: $blog)"
    "${B[@]}" commit --rm "$ctr" "localhost/image-builder:$tag" >>"$blog" 2>&1 || die "buildah commit failed (log: $blog)"
  fi
  "${B[@]}" push --tls-verify=false "localhost/image-builder:$tag" "docker://$OPERATOR_REPO:$tag" >>"$blog" 2>&1 \
    || die "pushing the operator image failed (log: $blog)"
  say "  pushed $OPERATOR_REPO:$tag"
fi

# --- 4. deploy/ through a local overlay -------------------------------------------------------
# The overlay changes only the image and the configuration (the local registry, the node tier's
# builder image and seccomp profile); ServiceAccount, RBAC, Deployment and Service are deploy/'s.
step "deploying the operator (kubectl apply -k $DEMO_DIR/overlay)"
mkdir -p "$DEMO_DIR/overlay"
deploy_relative=$(realpath --relative-to="$DEMO_DIR/overlay" "$ROOT/deploy")
cat > "$DEMO_DIR/overlay/kustomization.yaml" <<EOF
# Generated by scripts/demo.sh: deploy/ with the local registry's image and configuration.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
bases:
  - $deploy_relative
images:
  - name: ghcr.io/example/image-builder
    newName: $OPERATOR_REPO
    newTag: "$tag"
patchesStrategicMerge:
  - config.yaml
EOF
cat > "$DEMO_DIR/overlay/config.yaml" <<EOF
apiVersion: v1
kind: ConfigMap
metadata:
  name: image-builder-config
data:
  config.yaml: |
    watchNamespaces: [$NAMESPACE]
    registry:
      pushRepoPrefix: $POD_REGISTRY/demo    # the local registry as Pods reach it (plain HTTP)
      insecure: true
      insecureRegistries: [$POD_REGISTRY, $REGISTRY]
    builder:
      strategy: buildah
      image: $BUILDER_IMAGE
      seccompProfile: $SECCOMP_PROFILE
      timeout: 20m
    historyLimit: 5
EOF
k create namespace "$NAMESPACE" --dry-run=client -o yaml | k apply -f - >/dev/null
k apply -k "$DEMO_DIR/overlay" | sed "s/^/  /"
k wait --for=condition=Established --timeout=60s crd/imagespecs.primehub.io crd/images.primehub.io \
  crd/imagespecjobs.primehub.io >/dev/null
k rollout status deployment/image-builder -n "$NAMESPACE" --timeout=300s | sed "s/^/  /"
leader=""
for _ in $(seq 60); do
  leader=$(k get lease image-builder -n "$NAMESPACE" -o 'jsonpath={.spec.holderIdentity}' 2>/dev/null || true)
  [ -z "$leader" ] || break
  sleep 1
done
say "  $(k get pods -n "$NAMESPACE" -l app.kubernetes.io/name=image-builder --no-headers | wc -l) replicas ready; leader: ${leader:-none yet}"

# --- 5. the example ImageSpec -------------------------------------------------------------------
step "building examples/demo.yaml (ImageSpec $NAMESPACE/$SPEC_NAME)"
sed "s|registry.local:5000|$POD_REGISTRY|g" "$ROOT/examples/demo.yaml" > "$DEMO_DIR/demo.yaml"
k apply -f "$DEMO_DIR/demo.yaml" | sed "s/^/  /"

last=""; followed=""; ready=""; deadline=$(( SECONDS + 1800 ))
jsonpath='{.status.phase}|{.status.conditions[?(@.type=="Ready")].status}|{.status.conditions[?(@.type=="Stalled")].status}|{.status.conditions[?(@.type=="Reconciling")].reason}|{.status.conditions[?(@.type=="Stalled")].reason}|{.status.conditions[?(@.type=="Ready")].reason}|{.status.jobName}|{.status.conditions[?(@.type=="Stalled")].message}|{.status.observedGeneration}|{.metadata.generation}'
while :; do
  line=$(k get imagespec "$SPEC_NAME" -n "$NAMESPACE" -o "jsonpath=$jsonpath" 2>/dev/null || true)
  IFS='|' read -r phase is_ready is_stalled reconciling stalled_reason ready_reason job stalled_message observed generation <<<"$line"
  reason=${reconciling:-${stalled_reason:-$ready_reason}}
  [ "$is_stalled" = True ] && reason=$stalled_reason
  shown="phase=${phase:-<none>} reason=${reason:-<none>}${job:+ job=$job}"
  if [ "$shown" != "$last" ]; then say "  ${BOLD}$shown${OFF}"; last=$shown; fi
  if [ -n "$job" ] && [ "$job" != "$followed" ]; then
    pod=$(k get pods -n "$NAMESPACE" -l "job-name=$job" -o 'jsonpath={.items[0].metadata.name}' 2>/dev/null || true)
    if [ -n "$pod" ] && [ "$phase" != Succeeded ]; then
      setsid bash "$0" __follow "$pod" $([ "$interactive" = 1 ] || echo --non-interactive) & helpers+=($!)
      followed=$job
    fi
  fi
  if [ "$observed" = "$generation" ] && [ "$is_ready" = True ]; then ready=1; break; fi
  if [ "$observed" = "$generation" ] && [ "$is_stalled" = True ]; then
    die "ImageSpec $SPEC_NAME stalled: $stalled_reason: $stalled_message"
  fi
  [ "$SECONDS" -lt "$deadline" ] || die "ImageSpec $SPEC_NAME not Ready within 30 minutes (last: $shown)"
  sleep 2
done
# Let the log follower print the build's last lines, then end it.
for pid in "${helpers[@]}"; do
  for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
done
cleanup; helpers=()

image=$(k get imagespec "$SPEC_NAME" -n "$NAMESPACE" -o 'jsonpath={.status.image}')
digest=$(k get imagespec "$SPEC_NAME" -n "$NAMESPACE" -o 'jsonpath={.status.digest}')
say "  ${BOLD}Ready${OFF}: $image"
say "  digest: $digest"
registry_digest=$(curl -fsSI -H "Accept: $manifest_accept" "http://$REGISTRY/v2/demo/$SPEC_NAME/manifests/${image##*:}" \
  | tr -d '\r' | sed -n 's/^[Dd]ocker-[Cc]ontent-[Dd]igest: //p')
[ "$registry_digest" = "$digest" ] || die "the registry has $image at ${registry_digest:-nothing}, the status says $digest"
say "  the registry serves the same digest"
say "  published Image:"
k get images.primehub.io "$SPEC_NAME" -n "$NAMESPACE" \
  -o 'custom-columns=NAME:.metadata.name,DISPLAY NAME:.spec.displayName,TYPE:.spec.type,URL:.spec.url' | sed "s/^/    /"

# --- 6. run the built image -------------------------------------------------------------------
step "running the built image"
runner="$SPEC_NAME-run"
# The kubelet pulls through the registry's loopback address (the same registry, the same digest).
pull="$REGISTRY/demo/$SPEC_NAME@$digest"
k delete pod "$runner" -n "$NAMESPACE" --ignore-not-found --wait=true >/dev/null
k run "$runner" -n "$NAMESPACE" --restart=Never --image="$pull" --command -- sh -c \
  'echo "jq: $(jq --version)"; echo "tree: $(tree --version | cut -d" " -f1-2)"; python3 -c "import six, idna; print(\"six\", six.__version__); print(\"idna\", idna.__version__)"; echo "GREETING=$GREETING"; echo "uid $(id -u)"' >/dev/null
phase=""
for _ in $(seq 300); do
  phase=$(k get pod "$runner" -n "$NAMESPACE" -o 'jsonpath={.status.phase}' 2>/dev/null || true)
  case "$phase" in Succeeded|Failed) break ;; esac
  sleep 1
done
k logs "$runner" -n "$NAMESPACE" | sed "s/^/  | /"
[ "$phase" = Succeeded ] || die "the Pod running $pull ended ${phase:-not at all within 5 minutes}"
k delete pod "$runner" -n "$NAMESPACE" --wait=false >/dev/null

step "done"
timings+=("total $(( SECONDS - began ))s")
say "  timings:"
printf '    %s\n' "${timings[@]}"
cat <<EOF

The cluster keeps running. To use it:

  export KUBECONFIG=$DEMO_DIR/kubeconfig
  alias kubectl=$KUBECTL        # the cluster's kubectl (1.20)
  kubectl get ispec -n $NAMESPACE
  kubectl describe imagespec $SPEC_NAME -n $NAMESPACE
  kubectl logs -n $NAMESPACE deployment/image-builder
  kubectl get images.primehub.io -n $NAMESPACE

Edit $DEMO_DIR/demo.yaml (e.g. add a pip package) and \`kubectl apply -f\` it to build again.
Base image for your own ImageSpecs: $POD_REGISTRY/harness/base:latest
Stop everything: bash scripts/demo.sh down
EOF
