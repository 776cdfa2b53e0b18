#!/usr/bin/env bash
# The README's test command (`make test`): installs what is missing, then runs the whole suite.
#
# On a fresh machine the control plane's Go build is the longest part of a run, so it does not
# wait for it: the build starts first and the tests that need no built binary (the unit tests,
# marked `not controlplane`) run beside it; one of them that asks for the binaries fails at once
# (VIGIL_CONTROLPLANE_NO_WAIT) rather than wait. The tests that need the control plane (the
# integration tests and the chart renders, marked `controlplane`) run when it is built. Both
# phases always run; the command fails if either does.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
step() { echo "==> [test $(( $(date +%s) - start ))s] $*" >&2; }
pytest_args=(-q -p no:cacheprovider -n auto --maxprocesses 4 --dist loadfile --durations 8)

# The build runs in a process group of its own, stopped with this script however it ends.
build_out=$(mktemp)
set -m
bash hack/controlplane/build.sh >"$build_out" &
build_pid=$!
set +m
trap 'kill -- -"$build_pid" 2>/dev/null || true; rm -f "$build_out"' EXIT

bash hack/setup.sh --without-controlplane

step "unit tests, beside the control plane build"
unit=0
VIGIL_CONTROLPLANE_NO_WAIT=1 python3 -m pytest "${pytest_args[@]}" -m "not controlplane" || unit=$?

step "waiting for the control plane build"
if ! wait "$build_pid"; then
  echo "error: building the control plane failed (see above); the tests that need it did not run" >&2
  exit 1
fi

step "tests on the real control plane and Prometheus"
integration=0
python3 -m pytest "${pytest_args[@]}" -m controlplane || integration=$?

step "unit tests: $( ((unit)) && echo "FAILED (exit $unit)" || echo passed); tests on real servers: $( ((integration)) && echo "FAILED (exit $integration)" || echo passed)"
exit $(( unit || integration ))
