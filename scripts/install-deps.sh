#!/usr/bin/env bash
# Installs everything the build and the tests need on Debian 12 (bookworm), from nothing:
# apt packages; the control plane (kube-apiserver, kube-controller-manager) and the node tier
# (kube-scheduler, kubelet, kube-proxy, kubectl 1.20.2) built from Debian's `kubernetes` source
# package; and the node tier's test images (base, builder, pause) built from Debian packages with
# mmdebstrap. Everything built is cached outside the repository; a second run takes seconds.
#
#   IMAGE_BUILDER_CACHE   where the built binaries and images live (default /var/cache/image-builder)
#
# Layout of the cache:
#   bin/                  the six binaries; bin/.recipe (control plane) and bin/.node-recipe (node
#                         binaries) name the recipe they were built with
#   images/registry/      a docker-registry storage tree holding harness/base, harness/builder and
#                         harness/pause (tag latest); the node tier copies it into its registry
#   images/images.txt     "name digest" of each image; images/.recipe the images' recipe
#   build.log             the last kubernetes build's output; images.log the last image build's
set -euo pipefail

CACHE=${IMAGE_BUILDER_CACHE:-/var/cache/image-builder}
BIN="$CACHE/bin"
IMAGES="$CACHE/images"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive

log() { printf '[install-deps] %s\n' "$*" >&2; }
now() { date +%s; }

# --- apt --------------------------------------------------------------------------------------
APT_PACKAGES=(
  libcurl4-openssl-dev libssl-dev pkg-config openssl ca-certificates curl
  etcd-server etcd-client
  docker-registry apache2-utils
  golang-1.19-go golang-github-modern-go-reflect2-dev dpkg-dev rsync
  # The node tier: container runtime, CNI plugins, image tools, kube-proxy's needs.
  containerd runc containernetworking-plugins buildah mmdebstrap iptables conntrack
  busybox-static iproute2 util-linux
  # The Argo CD health check's test runs its Lua with Debian's interpreter.
  lua5.4
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

# Bump when a build recipe changes, so cached binaries are rebuilt. The control plane and the node
# binaries have separate markers: adding the node binaries does not rebuild the control plane.
RECIPE="kubernetes-1.20.2 reflect2-1.0.2 openapi-empty-string-fix"
NODE_RECIPE="$RECIPE node-1"
CONTROL_PLANE_BINARIES=(kube-apiserver kube-controller-manager)
NODE_BINARIES=(kube-scheduler kubelet kube-proxy kubectl)

stale() { # marker recipe binaries… → true when one is missing or the marker differs
  local marker=$1 recipe=$2; shift 2
  [ "$(cat "$marker" 2>/dev/null)" = "$recipe" ] || return 0
  for b in "$@"; do [ -x "$BIN/$b" ] || return 0; done
  return 1
}
build=()
if stale "$BIN/.recipe" "$RECIPE" "${CONTROL_PLANE_BINARIES[@]}"; then build+=("${CONTROL_PLANE_BINARIES[@]}"); fi
if stale "$BIN/.node-recipe" "$NODE_RECIPE" "${NODE_BINARIES[@]}"; then build+=("${NODE_BINARIES[@]}"); fi

if [ "${#missing[@]}" -gt 0 ] || [ "${#build[@]}" -gt 0 ]; then
  if [ "${#build[@]}" -gt 0 ] && ! grep -rqs "^Types:.*deb-src" /etc/apt/sources.list.d/ && \
     ! grep -qs "^deb-src" /etc/apt/sources.list; then
    log "adding a deb-src entry for bookworm main"
    printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      | $SUDO tee /etc/apt/sources.list.d/image-builder-src.sources >/dev/null
  fi
  log "apt-get update"
  $SUDO apt-get update -qq
fi
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing: ${missing[*]}"
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Some packages start system services; the tests run their own instances.
for svc in etcd docker-registry containerd; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
    $SUDO systemctl stop "$svc" || true
  fi
done

# --- kubernetes binaries ----------------------------------------------------------------------
# One `make WHAT=…` for everything missing (all six on a cold machine, one Go build cache); the
# source tree and Go cache are removed afterwards.
if [ "${#build[@]}" -gt 0 ]; then
  began=$(now)
  SRC="$CACHE/src"
  $SUDO mkdir -p "$CACHE" "$BIN"
  rm -rf "$SRC"; mkdir -p "$SRC"
  log "downloading the kubernetes source package"
  (cd "$SRC" && apt-get source --download-only -qq kubernetes >/dev/null)
  dsc=$(ls "$SRC"/kubernetes_*.dsc | head -n1)
  (cd "$SRC" && dpkg-source -x --no-check "$dsc" tree >/dev/null)
  TREE="$SRC/tree"
  # The vendored reflect2 v1.0.1 faults under Go >= 1.18; use Debian's 1.0.2.
  REFLECT2=/usr/share/gocode/src/github.com/modern-go/reflect2
  rm -rf "$TREE/vendor/github.com/modern-go/reflect2"
  cp -r "$REFLECT2" "$TREE/vendor/github.com/modern-go/reflect2"
  # Under Go >= 1.19 the OpenAPI type validator mistakes "" (and 0, false) for null, because the
  # runtime shares one zero value: `reflect.DeepEqual(reflect.Zero(T), reflect.ValueOf(v))` becomes
  # true. Custom resources then refuse empty strings ("must be of type string: null"). Only a real
  # nil is null (the later upstream fix).
  for f in vendor/k8s.io/kube-openapi/pkg/validation/validate/type.go vendor/github.com/go-openapi/validate/type.go; do
    sed -i 's/if data == nil || reflect.DeepEqual(reflect.Zero(reflect.TypeOf(data)), reflect.ValueOf(data)) {/if data == nil {/' "$TREE/$f"
    grep -q 'if data == nil {' "$TREE/$f" || { log "patching $f failed"; exit 1; }
  done
  mkdir -p "$TREE/.go/src/k8s.io"
  ln -sfn ../../.. "$TREE/.go/src/k8s.io/kubernetes"
  what=""
  for b in "${build[@]}"; do what="$what cmd/$b"; done
  log "building ${build[*]} (about 5 minutes for the first, 1 more for each further one, on 2 cores)"
  (
    export PATH=/usr/lib/go-1.19/bin:$PATH GOPATH="$TREE/.go" CGO_ENABLED=0 GOPROXY=off \
           GOCACHE="$CACHE/gocache" HOME="$CACHE/home"
    mkdir -p "$HOME"
    cd "$TREE/.go/src/k8s.io/kubernetes"
    make WHAT="${what# }" KUBE_BUILD_PLATFORMS=linux/amd64 >"$CACHE/build.log" 2>&1
  ) || { tail -n 40 "$CACHE/build.log" >&2; exit 1; }
  for b in "${build[@]}"; do
    out=$(find "$TREE/_output" -type f -name "$b" -perm -u+x | head -n1)
    [ -n "$out" ] || { log "the build produced no $b"; exit 1; }
    install -m 0755 "$out" "$BIN/$b"
  done
  case " ${build[*]} " in *" kube-apiserver "*) echo "$RECIPE" > "$BIN/.recipe" ;; esac
  case " ${build[*]} " in *" kubelet "*) echo "$NODE_RECIPE" > "$BIN/.node-recipe" ;; esac
  rm -rf "$SRC" "$CACHE/gocache" "$CACHE/home"
  log "built ${build[*]} in $(( $(now) - began )) s"
fi

# --- node tier images -------------------------------------------------------------------------
# Built from Debian bookworm packages with mmdebstrap, each rootfs tarball committed with buildah
# (`from scratch`, `add`, `config`, `commit`; vfs storage under the cache), then pushed once into
# a docker-registry whose storage tree is kept: a NodeCluster copies that tree into its own
# registry, which is faster than pushing the images at every start. The host's extra CA
# certificates (/usr/local/share/ca-certificates) go into every image, since HTTPS leaving these
# machines may be re-signed by a local CA; they are part of the recipe.
MIRROR=${IMAGE_BUILDER_DEBIAN_MIRROR:-http://deb.debian.org/debian}
host_cas=$(cat /usr/local/share/ca-certificates/*.crt 2>/dev/null | sha256sum | cut -c1-16)
IMAGE_RECIPE="bookworm $MIRROR base(minbase,python3,python3-pip,ca-certificates,jovyan:1000) builder(apt,buildah,ca-certificates) pause(busybox-static) cas:$host_cas v1"
if [ "$(cat "$IMAGES/.recipe" 2>/dev/null)" != "$IMAGE_RECIPE" ] || [ ! -s "$IMAGES/images.txt" ] || \
   [ ! -d "$IMAGES/registry/docker" ]; then
  began=$(now)
  WORK="$CACHE/images.work"
  rm -rf "$WORK"; mkdir -p "$WORK"
  ILOG="$CACHE/images.log"; : > "$ILOG"
  fail() { log "$1 (log: $ILOG)"; tail -n 30 "$ILOG" >&2; exit 1; }
  # Host CAs into the rootfs, then update-ca-certificates there.
  ca_hook='mkdir -p "$1/usr/local/share/ca-certificates"; for c in /usr/local/share/ca-certificates/*.crt; do [ -e "$c" ] && cp "$c" "$1/usr/local/share/ca-certificates/"; done; chroot "$1" update-ca-certificates >/dev/null'
  strap() { # variant packages output [extra mmdebstrap options…]
    local variant=$1 packages=$2 output=$3; shift 3
    mmdebstrap --quiet --variant="$variant" --include="$packages" --skip=output/dev \
      --customize-hook="$ca_hook" "$@" \
      --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/log/*.log' \
      bookworm "$output" "deb $MIRROR bookworm main" >>"$ILOG" 2>&1
  }
  log "building the base image (mmdebstrap minbase + python3, pip; about 1 minute)"
  # A notebook-like image: user jovyan (uid 1000) is the image's USER, as in Jupyter images; pip
  # may install into the system Python (no PEP 668 marker), as in images whose Python pip owns.
  strap minbase python3,python3-pip,ca-certificates "$WORK/base.tar" \
    --customize-hook='chroot "$1" useradd --create-home --uid 1000 --user-group --shell /bin/bash jovyan' \
    --customize-hook='rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED' || fail "mmdebstrap of the base image failed"
  log "building the builder image (mmdebstrap apt + buildah)"
  strap apt buildah,ca-certificates "$WORK/builder.tar" || fail "mmdebstrap of the builder image failed"
  log "building the pause image (busybox-static)"
  mkdir -p "$WORK/pause/bin"
  cp /bin/busybox "$WORK/pause/bin/busybox"
  ln -s busybox "$WORK/pause/bin/sleep"
  ln -s busybox "$WORK/pause/bin/sh"
  tar -C "$WORK/pause" -cf "$WORK/pause.tar" .

  B=(buildah --root "$WORK/storage" --runroot "$WORK/run" --storage-driver vfs)
  commit() { # name tarball config-options…
    local name=$1 tarball=$2 ctr; shift 2
    ctr=$("${B[@]}" from scratch 2>>"$ILOG") || fail "buildah from scratch failed"
    "${B[@]}" add "$ctr" "$tarball" / >>"$ILOG" 2>&1 || fail "buildah add of $name failed"
    "${B[@]}" config --os linux --arch amd64 \
      --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      --label org.opencontainers.image.title="image-builder test $name" "$@" "$ctr" >>"$ILOG" 2>&1 \
      || fail "buildah config of $name failed"
    "${B[@]}" commit --rm "$ctr" "localhost/harness/$name:latest" >>"$ILOG" 2>&1 || fail "buildah commit of $name failed"
  }
  log "committing the images (buildah, vfs)"
  commit base "$WORK/base.tar" --user 1000 --workingdir /home/jovyan --env HOME=/home/jovyan \
    --env LANG=C.UTF-8 --cmd '["python3"]'
  commit builder "$WORK/builder.tar" --env BUILDAH_ISOLATION=chroot --env STORAGE_DRIVER=vfs \
    --cmd '["/bin/sh"]'
  commit pause "$WORK/pause.tar" --entrypoint '["/bin/sleep","infinity"]' --cmd '[]'

  # Push them into a registry started only for this, on a free loopback port.
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null \
    || echo 45123)
  mkdir -p "$WORK/registry"
  cat > "$WORK/registry.yml" <<EOF
version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: $WORK/registry}
http: {addr: 127.0.0.1:$port}
EOF
  docker-registry serve "$WORK/registry.yml" >>"$ILOG" 2>&1 &
  registry_pid=$!
  trap 'kill "$registry_pid" 2>/dev/null || true' EXIT
  for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && break; sleep 0.1; done
  : > "$WORK/images.txt"
  for name in base builder pause; do
    "${B[@]}" push --tls-verify=false --digestfile "$WORK/$name.digest" "localhost/harness/$name:latest" \
      "docker://127.0.0.1:$port/harness/$name:latest" >>"$ILOG" 2>&1 || fail "pushing $name failed"
    echo "$name $(cat "$WORK/$name.digest")" >> "$WORK/images.txt"
  done
  kill "$registry_pid"; wait "$registry_pid" 2>/dev/null || true
  trap - EXIT
  "${B[@]}" rmi --all >>"$ILOG" 2>&1 || true
  rm -rf "$IMAGES"; mkdir -p "$IMAGES"
  mv "$WORK/registry" "$IMAGES/registry"
  mv "$WORK/images.txt" "$IMAGES/images.txt"
  echo "$IMAGE_RECIPE" > "$IMAGES/.recipe"
  rm -rf "$WORK"
  log "built the images in $(( $(now) - began )) s: $(tr '\n' ' ' < "$IMAGES/images.txt")"
fi

for b in "${CONTROL_PLANE_BINARIES[@]}" "${NODE_BINARIES[@]}"; do
  [ -x "$BIN/$b" ] || { log "missing $BIN/$b"; exit 1; }
done
"$BIN/kube-apiserver" --version >&2
log "ready: $BIN, $IMAGES"
