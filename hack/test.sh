#!/usr/bin/env bash
# The README's test command (`make test`): installs what is missing, then runs the whole suite.
#
# On a fresh machine the control plane's Go build is the longest part of a run, so it does not
# wait for it: the build starts first and the tests that need no built binary (the unit tests
# and the Prometheus-only integration modules: `not controlplane`) run beside it; one of them that
# asks for the binaries fails at once (VIGIL_CONTROLPLANE_NO_WAIT) rather than wait. The tests that
# need the control plane (the other integration tests and the chart renders, marked
# `controlplane`) run when it is built, whatever the first phase gave; the command fails if either
# phase does.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
step() { echo "==> [test $(( $(date +%s) - start ))s] $*" >&2; }
pytest_args=(-q -p no:cacheprovider -n auto --maxprocesses 4 --dist loadfile --durations 8)

# The build runs in a process group of its own, stopped with this script however it ends.
set -m
bash hack/controlplane/build.sh >/dev/null &
build_pid=$!
set +m
trap 'kill -- -"$build_pid" 2>/dev/null || true' EXIT
# Ctrl-C stops the whole run: pytest handles the interrupt and exits 2, so without this the script
# would go on to the next phase.
trap 'exit 130' INT TERM

bash hack/setup.sh --without-controlplane

step "tests that need no control plane (unit, Prometheus-only), beside its build"
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

step "tests without the control plane: $( ((unit)) && echo "FAILED (exit $unit)" || echo passed); tests on it: $( ((integration)) && echo "FAILED (exit $integration)" || echo passed)"
exit $(( unit || integration ))
