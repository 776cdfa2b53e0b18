"""The apiserver restarted in the middle of a rollout (as an upgrade of the control plane does):
the operator's requests are refused and its watches dropped while it is down; afterwards the
rollout finishes with no decision lost or repeated, and the audit chain verifies."""

from __future__ import annotations

from vigil.audit import chain

from ..conftest import KubeHandle, wait_for
from .test_operator import Cluster, policy_body, reach_step_one, running_operator


def test_a_restarted_apiserver_loses_no_decision(kube: KubeHandle, namespace: str) -> None:
    c = Cluster(kube, namespace)
    c.create("riskpolicies", policy_body(steps=[10, 30, 50], bakeTime="3s"))
    with running_operator(kube):
        reach_step_one(c)
        kube.cluster.restart_apiserver()  # watches drop, requests are refused for a while
        # Succeeded with no open intent: the rollout's last move and its outcome are on the record
        # (stableVersion is v2 from the promote intent on, before the old version is scaled down)
        wait_for(lambda: c.status().get("stableVersion") == "v2" and c.phase_is("Succeeded"),
                 timeout=120, what="v2 promoted after the apiserver came back")
    records = sorted(c.kube.audit_records(namespace, "fraud"), key=lambda r: r["seq"])
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))  # one record per number
    assert chain.verify(records, expected_head=c.status()["auditHead"]).ok
    decided = [r["weight"] for r in records if r["action"] in ("start", "step") and r.get("stage") != "outcome"]
    assert decided == [10, 30, 50], f"a step was repeated or skipped: {decided}"
    intents = sorted(r["seq"] for r in records if r.get("stage") == "intent")
    assert sorted(r["of"] for r in records if r.get("stage") == "outcome") == intents
