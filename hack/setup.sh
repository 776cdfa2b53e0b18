#!/usr/bin/env bash
# Installs everything Vigil needs on a fresh Debian machine, showing progress, reusing what
# is already there: Debian packages (Prometheus, Chromium for the report test), the Python
# package with its demo, dev and test extras, and the control plane built from Go modules (cached).
#
# Usage: hack/setup.sh [--without-controlplane]
#   --without-controlplane   leave the control plane to the caller (hack/test.sh builds it beside
#                            the unit tests)
set -euo pipefail
with_controlplane=1
case "${1:-}" in
  "") ;;
  --without-controlplane) with_controlplane=0 ;;
  *) echo "usage: hack/setup.sh [--without-controlplane] (got '$1')" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
start=$(date +%s)
step() { echo "==> [setup $(( $(date +%s) - start ))s] $*" >&2; }

apt_packages=(prometheus chromium)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: Debian packages ${missing[*]} are missing and apt-get is not available; install them with your package manager" >&2
    exit 1
  fi
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  step "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" \
    | grep -E '^(Setting up|Unpacking)' || true
  # the Debian package may start a system Prometheus on :9090. Vigil never stops a process it did
  # not start: its own Prometheus always runs on a free loopback port, so the two do not meet.
else
  step "Debian packages present: ${apt_packages[*]}"
fi

# The control plane builds (or is found in its cache) while pip installs: the build is the long
# part of a first setup, and both start by downloading. It runs in a process group of its own, so
# a failed setup stops all of it.
if ((with_controlplane)); then
  step "building the control plane from Go modules in the background (cached after the first run)"
  set -m
  bash hack/controlplane/build.sh >/dev/null &
  build_pid=$!
  set +m
  trap 'kill -- -"$build_pid" 2>/dev/null || true' EXIT
fi

# pip runs again when pyproject.toml changes or this checkout is not the installed one (CI
# clones elsewhere); a stamp in the cache remembers the last good install.
stamp_dir=${VIGIL_CACHE:-$HOME/.cache/vigil}/stamps
stamp="$stamp_dir/pip-$( (cat pyproject.toml; pwd -P) | sha256sum | cut -c1-16)"
if [[ -z "${VIGIL_FORCE_PIP:-}" && -f "$stamp" ]] && python3 -c '
import os, vigil
assert os.path.realpath(vigil.__file__).startswith(os.path.realpath("operator") + os.sep)
' >/dev/null 2>&1; then
  step "Python package already installed from this checkout (VIGIL_FORCE_PIP=1 reinstalls)"
else
  step "installing the Python package with its demo, dev and test extras (pip)"
  python3 -m pip install --progress-bar off -q -e '.[demo,dev,test]'
  mkdir -p "$stamp_dir" && touch "$stamp"
fi

if ((with_controlplane)); then
  step "waiting for the control plane build"
  wait "$build_pid" || { echo "error: building the control plane failed (see above)" >&2; exit 1; }
  trap - EXIT
fi
step "done"
