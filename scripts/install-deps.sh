#!/usr/bin/env bash
# Installs everything the build and the tests need on Debian 12 (bookworm), from nothing:
# apt packages, then the control plane (kube-apiserver, kube-controller-manager) built from
# Debian's `kubernetes` source package and cached outside the repository.
#
#   IMAGE_BUILDER_CACHE   where the built binaries live (default /var/cache/image-builder)
set -euo pipefail

CACHE=${IMAGE_BUILDER_CACHE:-/var/cache/image-builder}
BIN="$CACHE/bin"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive

log() { printf '[install-deps] %s\n' "$*" >&2; }

# --- apt --------------------------------------------------------------------------------------
APT_PACKAGES=(
  libcurl4-openssl-dev pkg-config openssl ca-certificates
  etcd-server etcd-client
  docker-registry apache2-utils
  golang-1.19-go golang-github-modern-go-reflect2-dev dpkg-dev rsync
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

# Bump when the build recipe changes, so cached binaries are rebuilt.
RECIPE="kubernetes-1.20.2 reflect2-1.0.2 openapi-empty-string-fix"
need_src=0
if [ ! -x "$BIN/kube-apiserver" ] || [ ! -x "$BIN/kube-controller-manager" ] || \
   [ "$(cat "$BIN/.recipe" 2>/dev/null)" != "$RECIPE" ]; then
  need_src=1
fi

if [ "${#missing[@]}" -gt 0 ] || [ "$need_src" = 1 ]; then
  if [ "$need_src" = 1 ] && ! grep -rqs "^Types:.*deb-src" /etc/apt/sources.list.d/ && \
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
# etcd and docker-registry packages start system services; the tests run their own instances.
for svc in etcd docker-registry; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
    $SUDO systemctl stop "$svc" || true
  fi
done

# --- control plane ------------------------------------------------------------------------------
if [ "$need_src" = 1 ]; then
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
  export PATH=/usr/lib/go-1.19/bin:$PATH GOPATH="$TREE/.go" CGO_ENABLED=0 GOPROXY=off \
         GOCACHE="$CACHE/gocache" HOME="$CACHE/home"
  mkdir -p "$HOME"
  log "building kube-apiserver and kube-controller-manager (about 5 minutes on 2 cores)"
  (cd "$TREE/.go/src/k8s.io/kubernetes" && \
    make WHAT="cmd/kube-apiserver cmd/kube-controller-manager" KUBE_BUILD_PLATFORMS=linux/amd64 >"$CACHE/build.log" 2>&1) || {
    tail -n 40 "$CACHE/build.log" >&2; exit 1; }
  for what in kube-apiserver kube-controller-manager; do
    out=$(find "$TREE/_output" -type f -name "$what" -perm -u+x | head -n1)
    [ -n "$out" ] || { log "the build produced no $what"; exit 1; }
    install -m 0755 "$out" "$BIN/$what"
  done
  echo "$RECIPE" > "$BIN/.recipe"
  rm -rf "$SRC" "$CACHE/gocache" "$CACHE/home"
fi
"$BIN/kube-apiserver" --version >&2
log "ready: $BIN"
