"""Two `vigil operator` processes with leader election on the real apiserver: only the Lease
holder acts; SIGKILL it mid-rollout and the other finishes the rollout, with exactly one audit
record per sequence number, no step repeated or skipped, and a chain that verifies.

The subprocess operators need a deterministic analysis. They run this module as their entry
point (`python -m tests.integration.test_leader_election <args>`): it injects the same metrics
and analysis doubles as tests/integration/test_operator.py through `configure()` and then runs
the real `vigil operator` command. Production code has no hook for it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from vigil.audit import chain

from ..conftest import KubeHandle, wait_for
from .test_operator import Cluster, VersionMetrics, judge, md_body, policy_body

ROOT = Path(__file__).resolve().parents[2]
LEASE = "vigil-operator"


def _die_with_parent() -> None:
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def start_operator(kube: KubeHandle, namespace: str, identity: str, log: Path) -> subprocess.Popen:
    env = {**os.environ, "KUBECONFIG": str(kube.kubeconfig), "VIGIL_POD_NAME": identity,
           "VIGIL_POD_NAMESPACE": namespace, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env.pop("VIGIL_PROMETHEUS_URL", None)
    return subprocess.Popen([sys.executable, "-m", "tests.integration.test_leader_election", "operator",
                             "--leader-elect", "--namespace", namespace],
                            cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            preexec_fn=_die_with_parent)


def holder(kube: KubeHandle, namespace: str) -> str | None:
    try:
        lease = k8s.CoordinationV1Api(kube.api_client).read_namespaced_lease(LEASE, namespace)
    except ApiException as err:
        if err.status == 404:
            return None
        raise
    return lease.spec.holder_identity or None


@pytest.fixture
def operators(kube: KubeHandle, namespace: str, tmp_path: Path) -> Iterator[dict[str, subprocess.Popen]]:
    procs: dict[str, subprocess.Popen] = {}
    yield procs
    for proc in procs.values():
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)
    for log in tmp_path.glob("*.log"):  # shown when the test failed
        print(f"--- {log.name}\n{log.read_text()[-4000:]}")


def test_killing_the_leader_mid_rollout_hands_over_without_a_repeated_or_skipped_step(
        kube: KubeHandle, namespace: str, operators: dict[str, subprocess.Popen], tmp_path: Path) -> None:
    c = Cluster(kube, namespace)
    c.create("riskpolicies", policy_body(steps=[10, 30, 50], bakeTime="4s"))
    c.create("modeldeployments", md_body("v1", "istio"))
    operators["a"] = start_operator(kube, namespace, "a", tmp_path / "a.log")
    wait_for(lambda: holder(kube, namespace) == "a", timeout=60, what="a holds the Lease")
    operators["b"] = start_operator(kube, namespace, "b", tmp_path / "b.log")
    wait_for(lambda: c.phase_is("Succeeded"), timeout=90, what="v1 deployed")

    c.set_version("v2")
    wait_for(lambda: (c.status().get("step") or {}).get("index") == 1, timeout=90, what="step 1 of v2")
    leader = holder(kube, namespace)
    assert leader in ("a", "b")
    follower = "b" if leader == "a" else "a"
    assert operators[follower].poll() is None
    operators[leader].send_signal(signal.SIGKILL)
    operators[leader].wait(30)

    wait_for(lambda: c.status().get("stableVersion") == "v2" and c.status().get("phase") == "Succeeded"
             and c.status().get("openIntent") is None,
             timeout=150, what="v2 promoted by the other replica")
    assert holder(kube, namespace) == follower
    assert c.route_weights("istio") == {"fraud-v2": 100}

    records = c.kube.audit_records(namespace, "fraud")
    seqs = sorted(r["seq"] for r in records)
    assert seqs == list(range(1, len(seqs) + 1)), f"one record per sequence number: {seqs}"
    report = chain.verify(records, expected_head=c.status()["auditHead"])
    assert report.ok, report.summary()
    ordered = sorted(records, key=lambda r: r["seq"])
    step_weights = [r["weight"] for r in ordered if r["action"] in ("start", "step") and r.get("stage") != "outcome"]
    assert step_weights == [10, 30, 50], f"a step was repeated or skipped: {step_weights}"
    assert [r["action"] for r in ordered if r.get("stage") != "outcome"].count("promote") == 1


if __name__ == "__main__":  # the subprocess operator of the test above
    from vigil.cli.main import main
    from vigil.handlers.config import configure

    configure(metrics=VersionMetrics(), analyzer=judge)
    sys.exit(main(sys.argv[1:]))
