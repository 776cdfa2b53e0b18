"""The operator against the real apiserver: rollouts, routers, events, audit, restarts, bad input.

The analysis is a test double here (a version listed in BAD fails, others pass); the real
statistics on real Prometheus data are exercised by the demo and the metrics tests.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any, Iterator

import pytest
from kopf.testing import KopfRunner
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from vigil.api.names import GROUP, VERSION
from vigil.audit import chain
from vigil.handlers.config import configure
from vigil.kube.client import Kube, audit_record_name
from vigil.metrics import AnalysisTarget
from vigil.stats.result import Outcome

from ..conftest import KubeHandle, wait_for
from ..doubles import AnalysisDouble

BAD: set[str] = set()


class VersionMetrics:
    """Metrics double: reports which version is the canary, so the analyzer double can judge it."""

    def collect(self, target: AnalysisTarget, gates: Any, start: Any, end: Any) -> dict:
        return {"canary": target.canary_version}


def judge(gates: Any, metrics: dict, **_: Any) -> AnalysisDouble:
    return AnalysisDouble(Outcome.FAIL if metrics.get("canary") in BAD else Outcome.PASS)


@contextlib.contextmanager
def running_operator(kube: KubeHandle, analyzer: Any = judge, metrics: Any = None,
                     modules: tuple[str, ...] = ()) -> Iterator[KopfRunner]:
    """The real operator (kopf, all namespaces) in this process, on the test's doubles."""
    os.environ["KUBECONFIG"] = str(kube.kubeconfig)
    configure(api_client=kube.client_for(), metrics=metrics or VersionMetrics(), analyzer=analyzer)
    extra = [arg for module in modules for arg in ("-m", module)]
    with KopfRunner(["run", "-m", "vigil.handlers.operator", *extra, "--standalone", "--all-namespaces"]) as runner:
        yield runner
    assert runner.exception is None, runner.exception


@pytest.fixture
def operator(kube: KubeHandle) -> Iterator[KopfRunner]:
    with running_operator(kube) as runner:
        yield runner



def policy_body(**spec: Any) -> dict:
    base = {"steps": [20, 50], "maxWeight": 50, "bakeTime": "2s", "analysisInterval": "1s", "minSamples": 1}
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "RiskPolicy", "metadata": {"name": "policy"},
            "spec": {**base, **spec}}


def md_body(version: str, router: str = "gatewayapi", policy: str = "policy") -> dict:
    traffic: dict[str, Any] = {"router": router}
    if router == "gatewayapi":
        traffic["gatewayRef"] = {"name": "gw"}
    return {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelDeployment", "metadata": {"name": "fraud"},
        "spec": {"model": "fraud", "version": version,
                 "artifact": {"uri": f"s3://models/fraud/{version}", "digest": "sha256:" + (version[-1] * 64)},
                 "server": {"image": "example/model-server:1"}, "replicas": 2,
                 "policyRef": {"name": policy}, "traffic": traffic},
    }


class Cluster:
    def __init__(self, kube: KubeHandle, namespace: str) -> None:
        self.ns = namespace
        self.custom = k8s.CustomObjectsApi(kube.api_client)
        self.apps = k8s.AppsV1Api(kube.api_client)
        self.kube = Kube(kube.api_client)

    def create(self, plural: str, body: dict) -> dict:
        return self.custom.create_namespaced_custom_object(GROUP, VERSION, self.ns, plural, body)

    def md(self) -> dict:
        return self.custom.get_namespaced_custom_object(GROUP, VERSION, self.ns, "modeldeployments", "fraud")

    def set_version(self, version: str) -> None:
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.ns, "modeldeployments", "fraud", {
            "spec": {"version": version, "artifact": {"uri": f"s3://models/fraud/{version}",
                                                      "digest": "sha256:" + version[-1] * 64}}})

    def status(self) -> dict:
        return self.md().get("status") or {}

    def route_weights(self, router: str) -> dict[str, int] | None:
        if router == "gatewayapi":
            r = self.kube.get("gateway.networking.k8s.io/v1", "HTTPRoute", self.ns, "fraud")
            return None if r is None else {b["name"]: b["weight"] for b in r["spec"]["rules"][0]["backendRefs"]}
        if router == "istio":
            r = self.kube.get("networking.istio.io/v1", "VirtualService", self.ns, "fraud")
            return None if r is None else {x["destination"]["host"]: x["weight"] for x in r["spec"]["http"][0]["route"]}
        deps = self.apps.list_namespaced_deployment(self.ns).items
        return {d.metadata.name: d.spec.replicas for d in deps if d.spec.replicas}

    def deploy_v1(self, router: str = "istio") -> None:
        """v1 of the model created and served (its first deployment finished, on the record)."""
        self.create("modeldeployments", md_body("v1", router))
        wait_for(lambda: self.phase_is("Succeeded"), what="v1 deployed")

    def phase_is(self, phase: str) -> dict | None:
        s = self.status()
        settled = s.get("openIntent") is None  # the last move's outcome is on the record too
        return s if s.get("phase") == phase and settled and s.get("observedGeneration") == self.md()["metadata"]["generation"] else None

    def conditions(self) -> dict[str, tuple[str, str]]:
        return {c["type"]: (c["status"], c["reason"]) for c in self.status().get("conditions", [])}

    def events(self) -> list[str]:
        return [e.reason for e in self.kube.events_for(self.ns, "fraud")]


@pytest.mark.parametrize("router", ["gatewayapi", "istio", "replicas"])
def test_good_version_promoted_bad_version_rolled_back(kube: KubeHandle, namespace: str, operator: KopfRunner,
                                                       router: str) -> None:
    c = Cluster(kube, namespace)
    BAD.add("v3")
    c.create("riskpolicies", policy_body())
    c.deploy_v1(router)
    assert c.conditions()["Ready"][0] == "True"
    if router != "replicas":
        assert c.route_weights(router) == {"fraud-v1": 100}

    # a good version: weights go up step by step and it is promoted
    c.set_version("v2")
    seen: list[dict] = []

    def promoted():
        w = c.route_weights(router)
        if w and (not seen or seen[-1] != w):
            seen.append(w)
        s = c.status()
        # status says Succeeded as soon as the promotion is recorded, before traffic moves;
        # the promotion is done once its outcome is on the record too (no open intent)
        return (s.get("phase") == "Succeeded" and s.get("stableVersion") == "v2"
                and s.get("openIntent") is None)

    wait_for(promoted, timeout=90, what="v2 promoted")
    if router == "replicas":
        assert c.status()["routerApproximate"] is True
        assert c.route_weights(router) == {"fraud-v2": 2}
    else:
        canary_weights = [w.get("fraud-v2", 0) for w in seen]
        assert 20 in canary_weights and 50 in canary_weights and canary_weights[-1] == 100
        assert canary_weights == sorted(canary_weights), f"canary weight went down: {seen}"
        assert c.route_weights(router) == {"fraud-v2": 100}
    # Events follow the action and its outcome record, so they may land just after status
    wait_for(lambda: {"RolloutStarted", "StepPassed", "Promoting", "Promoted"} <= set(c.events()),
             timeout=30, what="the rollout's events")

    # a bad version: rolled back, canary at zero, Stalled
    c.set_version("v3")
    wait_for(lambda: c.phase_is("RolledBack"), timeout=60, what="v3 rolled back")
    if router != "replicas":
        assert c.route_weights(router) == {"fraud-v2": 100}
    assert c.apps.read_namespaced_deployment("fraud-v3", namespace).spec.replicas == 0
    cond = c.conditions()
    assert cond["Stalled"][0] == "True" and cond["Reconciling"][0] == "False" and cond["Ready"][0] == "False"
    assert "RolledBack" in c.events()

    # audit: one record per decision, chained, matching status
    status = c.status()
    records = c.kube.audit_records(namespace, "fraud")
    report = chain.verify(records, expected_head=status["auditHead"])
    assert report.ok, report.summary()
    actions = [r["action"] for r in sorted(records, key=lambda r: r["seq"]) if r.get("stage") != "outcome"]
    assert actions[:2] == ["deploy", "deployed"] and "promote" in actions and actions[-1] == "rolled-back"
    intents = sorted(r["seq"] for r in records if r.get("stage") == "intent")
    assert intents and sorted(r["of"] for r in records if r.get("stage") == "outcome") == intents
    rollback = next(r for r in records if r["action"] == "rollback")
    assert rollback["evidence"]["analysis"]["verdicts"][0]["outcome"] == "Fail"
    assert rollback["policy"].startswith("sha256:")


def test_audit_records_are_immutable_and_tampering_is_detected(kube: KubeHandle, namespace: str,
                                                                operator: KopfRunner) -> None:
    c = Cluster(kube, namespace)
    c.create("riskpolicies", policy_body())
    c.deploy_v1()
    c.set_version("v2")
    wait_for(lambda: c.status().get("stableVersion") == "v2", timeout=60, what="v2 promoted")
    uid = c.md()["metadata"]["uid"]
    name = audit_record_name("fraud", uid, 1)
    with pytest.raises(ApiException) as err:
        c.custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, "auditrecords", name,
                                                {"spec": {"message": "nothing to see"}})
    assert err.value.status == 422 and "immutable" in err.value.body
    # a deleted record breaks the chain, and the verify command says so
    c.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, "auditrecords", audit_record_name("fraud", uid, 2))
    report = chain.verify(c.kube.audit_records(namespace, "fraud"), expected_head=c.status()["auditHead"])
    assert not report.ok and "missing" in report.summary()
    from vigil.cli.main import main

    assert main(["--kubeconfig", str(kube.kubeconfig), "audit", "verify", "fraud", "-n", namespace]) == 1


def test_invalid_modeldeployment_rejected_with_field_named(kube: KubeHandle, namespace: str) -> None:
    c = Cluster(kube, namespace)
    bad = md_body("v1")
    bad["spec"]["artifact"]["digest"] = "md5:1234"
    with pytest.raises(ApiException) as err:
        c.create("modeldeployments", bad)
    assert err.value.status == 422 and "spec.artifact.digest" in err.value.body
    no_gateway = md_body("v1")
    del no_gateway["spec"]["traffic"]["gatewayRef"]
    with pytest.raises(ApiException) as err:
        c.create("modeldeployments", no_gateway)
    assert err.value.status == 422 and "gatewayRef is required" in err.value.body
    bad_policy = policy_body(steps=[50, 20])
    with pytest.raises(ApiException) as err:
        c.create("riskpolicies", bad_policy)
    assert err.value.status == 422 and "strictly increasing" in err.value.body


def test_missing_policy_stalls_with_no_traffic_change(kube: KubeHandle, namespace: str, operator: KopfRunner) -> None:
    c = Cluster(kube, namespace)
    c.create("modeldeployments", md_body("v1", "gatewayapi", policy="nope"))
    wait_for(lambda: c.status().get("phase") == "Failed", what="Failed phase")
    cond = c.conditions()
    assert cond["Stalled"] == ("True", "PolicyNotFound")
    md = c.md()
    stalled = next(x for x in md["status"]["conditions"] if x["type"] == "Stalled")
    assert "'nope' not found" in stalled["message"]
    assert c.route_weights("gatewayapi") is None
    assert c.apps.list_namespaced_deployment(namespace).items == []
    # the policy appears: the ModelDeployment recovers by itself
    c.create("riskpolicies", {**policy_body(), "metadata": {"name": "nope"}})
    wait_for(lambda: c.phase_is("Succeeded"), what="recovered after the policy appeared")


def reach_step_one(c: Cluster) -> None:
    """v1 deployed, then v2 rolling out at its second step (the moment the fault tests strike)."""
    c.deploy_v1()
    c.set_version("v2")
    wait_for(lambda: (c.status().get("step") or {}).get("index") == 1, timeout=60, what="step 1")


def test_status_is_one_managed_field(kube: KubeHandle, namespace: str, operator: KopfRunner) -> None:
    """The apiserver tracks the operator's status as one field (the CRD marks it atomic): tracked
    key by key, managedFields grew with every key of the last analysis, in every copy of every
    ModelDeployment the operator and kopf hold."""
    c = Cluster(kube, namespace)
    c.create("riskpolicies", policy_body())
    c.deploy_v1()
    assert c.status().get("conditions")
    entries = [m for m in c.md()["metadata"]["managedFields"] if m.get("subresource") == "status"]
    assert [m["fieldsV1"] for m in entries] == [{"f:status": {}}]


def test_the_log_keeps_kopf_lines_but_not_a_success_line_per_watch_event(kube: KubeHandle, namespace: str) -> None:
    """kopf says "Handler '<id>' succeeded." after every call of a watch-event handler: one line
    per event of every object, tens a second at scale. The handlers that only wake a daemon are
    quiet; kopf's other lines (a daemon's, for one) still show."""
    with running_operator(kube) as runner:
        c = Cluster(kube, namespace)
        c.create("riskpolicies", policy_body())
        c.deploy_v1()  # several status writes: each one a watch event for _md_changed
        c.set_version("v2")
        wait_for(lambda: c.phase_is("Succeeded") and c.status().get("stableVersion") == "v2", timeout=90,
                 what="v2 promoted")
    out = runner.output
    assert "Handler '_md_changed' succeeded." not in out and "Handler '_policy_changed' succeeded." not in out
    assert "Daemon 'modeldeployment_loop'" in out, out[-2000:]


def test_restart_mid_rollout_resumes_at_the_same_step(kube: KubeHandle, namespace: str) -> None:
    c = Cluster(kube, namespace)
    c.create("riskpolicies", policy_body(steps=[10, 30, 50], bakeTime="4s"))
    with running_operator(kube):
        reach_step_one(c)
    stopped_at = c.status()
    assert stopped_at["step"]["index"] == 1 and stopped_at["phase"] == "Canary"
    time.sleep(1)
    assert c.route_weights("istio") == {"fraud-v1": 70, "fraud-v2": 30}  # nothing moves while it is down
    with running_operator(kube):
        wait_for(lambda: c.status().get("stableVersion") == "v2" and c.phase_is("Succeeded"),
                 timeout=90, what="v2 promoted after restart, its outcome recorded")
    records = sorted(c.kube.audit_records(namespace, "fraud"), key=lambda r: r["seq"])
    assert chain.verify(records, expected_head=c.status()["auditHead"]).ok
    step_weights = [r["weight"] for r in records if r["action"] in ("start", "step") and r.get("stage") != "outcome"]
    assert step_weights == [10, 30, 50], f"a step was repeated or skipped: {step_weights}"


def test_route_changed_behind_vigils_back_stops_the_loop(kube: KubeHandle, namespace: str,
                                                        operator: KopfRunner) -> None:
    c = Cluster(kube, namespace)
    c.create("riskpolicies", policy_body())
    c.deploy_v1("gatewayapi")
    # another controller (or a person) edits the route Vigil owns
    c.custom.patch_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", namespace, "httproutes", "fraud",
        {"spec": {"rules": [{"backendRefs": [{"name": "fraud-v1", "port": 80, "weight": 100},
                                             {"name": "elsewhere", "port": 80, "weight": 100}]}]}})
    c.set_version("v2")
    wait_for(lambda: c.conditions().get("Stalled", ("", ""))[1] == "RouteConflict", what="RouteConflict")
    status = c.status()
    assert status["phase"] == "Failed" and "changed outside Vigil" in status["message"]
    # Vigil did not touch the route: the foreign backend is still there, no canary was added
    assert c.route_weights("gatewayapi") == {"fraud-v1": 100, "elsewhere": 100}


def test_a_recreated_modeldeployment_starts_a_new_chain(kube: KubeHandle, namespace: str, operator: KopfRunner) -> None:
    c = Cluster(kube, namespace)
    c.create("riskpolicies", policy_body())
    c.deploy_v1()
    first = c.md()["metadata"]["uid"]
    c.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, "modeldeployments", "fraud")
    wait_for(lambda: not c.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "modeldeployments")["items"],
             what="the first ModelDeployment gone")
    c.create("modeldeployments", md_body("v1", "istio"))
    wait_for(lambda: c.phase_is("Succeeded"), what="v1 deployed again")
    second = c.md()["metadata"]["uid"]
    old, new = c.kube.audit_records(namespace, "fraud", first), c.kube.audit_records(namespace, "fraud", second)
    assert old and new and min(r["seq"] for r in new) == 1 and {r["uid"] for r in new} == {second}
    assert chain.verify(new, expected_head=c.status()["auditHead"]).ok
    assert chain.verify(old).ok  # the old object's chain stays whole, apart


def test_a_quota_that_blocks_audit_records_moves_no_traffic(kube: KubeHandle, namespace: str,
                                                           operator: KopfRunner) -> None:
    """The record is written before traffic moves: when the apiserver refuses it, nothing moves."""
    c = Cluster(kube, namespace)
    c.create("riskpolicies", policy_body())
    c.deploy_v1()
    records = len(c.kube.audit_records(namespace, "fraud"))
    k8s.CoreV1Api(kube.api_client).create_namespaced_resource_quota(namespace, k8s.V1ResourceQuota(
        metadata=k8s.V1ObjectMeta(name="no-audit"),
        spec=k8s.V1ResourceQuotaSpec(hard={"count/auditrecords.vigil.dev": str(records)})))
    time.sleep(2)  # the quota controller computes usage before it enforces
    c.set_version("v2")
    wait_for(lambda: c.conditions().get("Stalled") == ("True", "AuditWriteFailed"), timeout=60,
             what="Stalled=AuditWriteFailed")
    assert c.route_weights("istio") == {"fraud-v1": 100}
    assert not [d for d in c.apps.list_namespaced_deployment(namespace).items if d.metadata.name == "fraud-v2"]
    k8s.CoreV1Api(kube.api_client).delete_namespaced_resource_quota("no-audit", namespace)
    wait_for(lambda: (c.route_weights("istio") or {}).get("fraud-v2"), timeout=90, what="the rollout goes on, on the record")
    # verified once settled: while the rollout goes on, a record may land between the list and the status read
    wait_for(lambda: c.phase_is("Succeeded"), timeout=90, what="v2 promoted, every outcome recorded")
    assert chain.verify(c.kube.audit_records(namespace, "fraud"), expected_head=c.status()["auditHead"]).ok
