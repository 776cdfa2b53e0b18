#!/usr/bin/env bash
# Builds the local control plane from Go modules: kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl (k8s.io/kubernetes), etcd (go.etcd.io/etcd/server/v3), kwok and
# helm, and extracts the Gateway API and Istio CRDs from their modules.
#
# Versions are pinned in versions.env and in one Go module (module/go.mod, checksums in
# module/go.sum): one module means one version of each shared dependency, so a package that
# several binaries use (client-go, grpc, ...) is compiled once, not once per binary. The
# result is cached outside the repo, keyed by those files, so a second run returns in well
# under a second. The last line of stdout is always `VIGIL_BIN_DIR=<dir>` on success.
#
# Usage: hack/controlplane/build.sh [--print-dir]
#   --print-dir   print the cache dir for the pinned versions and exit (builds nothing)
# Exit status 3: another build holds the cache and VIGIL_CONTROLPLANE_NO_WAIT is set.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"

cache_root=${VIGIL_CACHE:-$HOME/.cache/vigil}
k8s_minor=$(echo "$KUBERNETES_VERSION" | cut -d. -f2)
ver_pkg_flags() {  # -X flags so `kubectl version` and the apiserver report the real version
  local pkg=$1
  echo "-X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$k8s_minor -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
}
# One link line for all seven binaries: an -X for a package a binary does not hold is ignored.
# -s -w leave debug information out of the binaries, and -gcflags=all=-dwarf=false keeps the compiler
# from generating it in the first place (stack traces come from the symbol table, which stays).
ldflags="-s -w $(ver_pkg_flags k8s.io/component-base/version) $(ver_pkg_flags k8s.io/client-go/pkg/version)"
ldflags+=" -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
go_build_flags=(-trimpath -gcflags=all=-dwarf=false "-ldflags=$ldflags")

# The key covers what decides the binaries: versions, module checksums and the build flags (a
# changed flag must not reuse binaries built without it).
module="$here/module"
key=$( { cat "$here/versions.env" "$module/go.mod" "$module/go.sum" "$module/etcd/main.go"; printf '%s\n' "${go_build_flags[@]}"; } | sha256sum | cut -c1-12)
dest="$cache_root/bin/${KUBERNETES_VERSION}-${key}"
binaries=(kube-apiserver kube-controller-manager kube-scheduler kubectl etcd kwok helm)
crd_files=(gateway-api-httproutes.yaml gateway-api-standard.yaml istio-crds.yaml kwok-stages.yaml)

if [[ "${1:-}" == "--print-dir" ]]; then
  echo "$dest"; exit 0
fi

binaries_complete() {
  local b
  for b in "${binaries[@]}"; do [[ -x "$dest/$b" ]] || return 1; done
}

complete() {
  binaries_complete || return 1
  local b
  for b in "${crd_files[@]}"; do [[ -s "$dest/crds/$b" ]] || return 1; done
}

# reuse_if_complete HOW: when every binary and asset is in the cache, say so and exit with its dir.
reuse_if_complete() {
  complete || return 0
  echo "control plane ${KUBERNETES_VERSION}: $1 $dest" >&2
  echo "VIGIL_BIN_DIR=$dest"
  exit 0
}

reuse_if_complete "reusing cached binaries in"

die() { echo "error: $*" >&2; exit 1; }

# One build at a time per cache (parallel test workers, or a demo started beside the tests):
# the others wait for it and then reuse its result.
mkdir -p "$cache_root"
exec 9>"$cache_root/build.lock"
# VIGIL_CONTROLPLANE_NO_WAIT=1 fails at once instead (hack/test.sh's unit phase: a test that needs
# the binaries there is missing its `controlplane` mark, and would otherwise wait out its timeout).
if ! flock -n 9; then
  if [[ -n "${VIGIL_CONTROLPLANE_NO_WAIT:-}" ]]; then
    echo "control plane ${KUBERNETES_VERSION}: another build is running and VIGIL_CONTROLPLANE_NO_WAIT is set; not waiting" >&2
    exit 3
  fi
  echo "control plane ${KUBERNETES_VERSION}: another build is running; waiting for it" >&2
  flock 9
fi
reuse_if_complete "built by the other run, reusing"

command -v go >/dev/null 2>&1 || die "the Go toolchain is not on PATH; install Go >= ${GO_MIN_VERSION} (Debian: apt-get install golang-go, or put go on PATH) and run again"
go_have=$(go env GOVERSION | sed 's/^go//')
if [[ "$(printf '%s\n%s\n' "$GO_MIN_VERSION" "$go_have" | sort -V | head -1)" != "$GO_MIN_VERSION" ]]; then
  die "Go $go_have is too old to build Kubernetes ${KUBERNETES_VERSION}; need >= ${GO_MIN_VERSION} (set GOTOOLCHAIN=go1.27.3 to let go fetch a newer toolchain)"
fi


elapsed() { local s=$(( $(date +%s) - start )); printf '%dm%02ds' $((s / 60)) $((s % 60)); }

# with_progress WHAT LOG COMMAND...: runs COMMAND with its output in LOG and prints a line every
# 20 s: for `go build -v`, the packages compiled so far (of $total when it is known).
with_progress() {
  local what=$1 log=$2; shift 2
  "$@" >>"$log" 2>&1 &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 20
    if kill -0 "$pid" 2>/dev/null; then
      if [[ $what == compiling ]]; then
        echo "      compiling: $(grep -vc '^#' "$log" || true) of about $total packages, $(elapsed) elapsed" >&2
      else
        echo "      $what: $(elapsed) elapsed" >&2
      fi
    fi
  done
  wait "$pid"
}

# versions.env names the versions, module/go.mod decides them: refuse to build when they differ.
check_pins() {
  local mod want have
  while read -r mod want; do
    have=$(cd "$module" && go list -m -f '{{.Version}}' "$mod") || die "could not resolve $mod in $module/go.mod (go env GOPROXY)"
    [[ "$have" == "$want" ]] || die "$module/go.mod has $mod $have but versions.env says $want; run 'go get $mod@$want && go mod tidy' in $module, or fix versions.env"
  done <<PINS
k8s.io/kubernetes $KUBERNETES_VERSION
go.etcd.io/etcd/server/v3 $ETCD_VERSION
sigs.k8s.io/kwok $KWOK_VERSION
helm.sh/helm/v3 $HELM_VERSION
PINS
}

# build_binaries OUT_DIR: the seven binaries in one `go build`, so a shared package compiles once.
build_binaries() {
  local out=$1 log="$log_dir/build-controlplane-${KUBERNETES_VERSION}-${key}.log"
  : >"$log"
  echo "[1/2] downloading Go modules ... (log: $log)" >&2
  ( cd "$module" && with_progress downloading "$log" go mod download ) || {
    tail -n 20 "$log" >&2
    die "downloading Go modules failed (full log: $log); check that the Go module proxy is reachable (go env GOPROXY)"
  }
  check_pins
  total=$(cd "$module" && go list -deps tool ./etcd | wc -l)
  echo "[2/2] compiling about $total packages into ${binaries[*]} ... (log: $log)" >&2
  : >"$log"
  if ! ( cd "$module" && with_progress compiling "$log" go build -v "${go_build_flags[@]}" -o "$out/" tool ./etcd ); then
    tail -n 20 "$log" >&2
    die "building the control plane failed (full log: $log). Try: check that the Go module proxy is reachable (go env GOPROXY), that GOFLAGS has no -mod=vendor, and rerun; if a version is not served, change it in hack/controlplane/versions.env and run 'go get <module>@<version> && go mod tidy' in $module"
  fi
  echo "      compiled and linked at $(elapsed)" >&2
}

mod_dir() { (cd "$module" && go mod download -json "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])'); }

# extract_assets DIR: CRDs of Gateway API and Istio, and kwok's stage configuration, taken from
# their modules as the Go module proxy serves them (never written by hand).
extract_assets() {
  local out=$1/crds
  mkdir -p "$out"
  echo "[assets] Gateway API ${GATEWAY_API_VERSION} and Istio ${ISTIO_CLIENT_GO_VERSION} CRDs, kwok ${KWOK_VERSION} stages" >&2
  local gw istio kwok
  gw=$(mod_dir "sigs.k8s.io/gateway-api@${GATEWAY_API_VERSION}") || die "could not fetch sigs.k8s.io/gateway-api@${GATEWAY_API_VERSION} from the Go module proxy (go env GOPROXY)"
  cp "$gw/config/crd/standard/gateway.networking.k8s.io_httproutes.yaml" "$out/gateway-api-httproutes.yaml"
  : > "$out/gateway-api-standard.yaml"
  for f in "$gw"/config/crd/standard/gateway.networking.k8s.io_*.yaml; do
    [[ "$f" == *_vap_* ]] && continue  # an admission policy, not a CRD
    { echo "---"; cat "$f"; } >> "$out/gateway-api-standard.yaml"
  done
  istio=$(mod_dir "istio.io/api@${ISTIO_CLIENT_GO_VERSION}") || die "could not fetch istio.io/api@${ISTIO_CLIENT_GO_VERSION} from the Go module proxy (go env GOPROXY)"
  cp "$istio/kubernetes/customresourcedefinitions.gen.yaml" "$out/istio-crds.yaml"
  kwok=$(mod_dir "sigs.k8s.io/kwok@${KWOK_VERSION}") || die "could not fetch sigs.k8s.io/kwok@${KWOK_VERSION} from the Go module proxy (go env GOPROXY)"
  local f
  : > "$out/kwok-stages.yaml"
  for f in "$kwok"/kustomize/stage/node/fast/node-initialize.yaml \
           "$kwok"/kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
           "$kwok"/kustomize/stage/pod/fast/*.yaml; do
    [[ "$(basename "$f")" == kustomization.yaml ]] && continue
    { echo "---"; cat "$f"; } >> "$out/kwok-stages.yaml"
  done
  chmod -R u+w "$out"
}

start=$(date +%s)
if binaries_complete; then
  # Binaries are there, only assets are missing (for example a new asset was added).
  extract_assets "$dest"
else
  work="$dest.partial"
  rm -rf "$work"
  mkdir -p "$work"
  log_dir="$cache_root/logs"
  mkdir -p "$log_dir"
  echo "building the control plane (Kubernetes ${KUBERNETES_VERSION}, etcd ${ETCD_VERSION}, kwok ${KWOK_VERSION}, helm ${HELM_VERSION}) into $dest" >&2
  echo "a cold build takes about 16 minutes on 2 idle cores, 25 or more on a busy machine; later runs reuse the cache" >&2
  build_binaries "$work"
  extract_assets "$work"
  rm -rf "$dest"
  mv "$work" "$dest"
fi
complete || die "the build finished but $dest is incomplete; remove it and run again"
echo "control plane ready in $(elapsed): $dest" >&2
echo "VIGIL_BIN_DIR=$dest"
