"""The apiserver restarted in the middle of a rollout (as an upgrade of the control plane does):
the operator's requests are refused and its watches dropped while it is down; afterwards the
rollout finishes with no decision lost or repeated, and the audit chain verifies."""

from __future__ import annotations

import os

from kopf.testing import KopfRunner

from vigil.audit import chain
from vigil.handlers.config import configure

from ..conftest import KubeHandle, wait_for
from .test_operator import Cluster, VersionMetrics, judge, md_body, policy_body


def test_a_restarted_apiserver_loses_no_decision(kube: KubeHandle, namespace: str) -> None:
    c = Cluster(kube, namespace)
    os.environ["KUBECONFIG"] = str(kube.kubeconfig)
    configure(api_client=kube.client_for(), metrics=VersionMetrics(), analyzer=judge)
    c.create("riskpolicies", policy_body(steps=[10, 30, 50], bakeTime="3s"))
    args = ["run", "-m", "vigil.handlers.operator", "--standalone", "--all-namespaces"]
    with KopfRunner(args) as runner:
        c.create("modeldeployments", md_body("v1", "istio"))
        wait_for(lambda: c.phase_is("Succeeded"), what="v1 deployed")
        c.set_version("v2")
        wait_for(lambda: (c.status().get("step") or {}).get("index") == 1, timeout=60, what="step 1")
        kube.cluster.restart_apiserver()  # watches drop, requests are refused for a while
        wait_for(lambda: c.status().get("stableVersion") == "v2" and c.status().get("openIntent") is None,
                 timeout=120, what="v2 promoted after the apiserver came back")
    assert runner.exception is None
    records = sorted(c.kube.audit_records(namespace, "fraud"), key=lambda r: r["seq"])
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))  # one record per number
    assert chain.verify(records, expected_head=c.status()["auditHead"]).ok
    decided = [r["weight"] for r in records if r["action"] in ("start", "step") and r.get("stage") != "outcome"]
    assert decided == [10, 30, 50], f"a step was repeated or skipped: {decided}"
    intents = sorted(r["seq"] for r in records if r.get("stage") == "intent")
    assert sorted(r["of"] for r in records if r.get("stage") == "outcome") == intents
