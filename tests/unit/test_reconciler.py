"""The reconciler's plan, act and record steps, with an in-memory Kubernetes API and provider.

The real router (Istio), the real decision core and the real audit chain run; only the API
server and Prometheus are replaced, so these tests pin down what the loop writes and when.
"""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from vigil.api.names import ANN_APPLIED, API_VERSION, LABEL_MD
from vigil.audit import chain
from vigil.core.model import Arm, EventSpec
from vigil.kube.client import Kube
from vigil.reconciler import Reconciler

from ..doubles import ScriptedAnalyzer

NS = "ml"
T0 = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.timezone.utc)


class Stored(dict):
    def to_dict(self) -> dict[str, Any]:
        return dict(self)


class FakeResource:
    def __init__(self, kube: "FakeKube", api_version: str, kind: str) -> None:
        self.kube, self.key = kube, (api_version, kind)

    def patch(self, name: str, namespace: str, body: dict[str, Any], **_: Any) -> None:
        obj = self.kube.objects[(*self.key, namespace, name)]
        obj["spec"].update(body["spec"])
        self.kube.writes.append(("patch", self.key[1], name, body))

    def create(self, body: dict[str, Any], namespace: str) -> Stored:
        """Create-only, as the apiserver: 409 if the name is taken, 403 when a quota refuses."""
        if self.kube.fail_audit:
            raise ApiException(status=403, reason="Forbidden: exceeded quota")
        key = (*self.key, namespace, body["metadata"]["name"])
        if key in self.kube.objects:
            raise ApiException(status=409, reason="AlreadyExists")
        self.kube.objects[key] = copy.deepcopy(body)
        self.kube.records.append(body["spec"])
        return Stored(copy.deepcopy(body))


class FakeKube(Kube):
    """An in-memory API: objects by (apiVersion, kind, namespace, name); Deployments become
    ready as soon as they are applied (as kwok makes them)."""

    def __init__(self) -> None:  # no API client
        self.objects: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        self.events: list[EventSpec] = []
        self.records: list[dict[str, Any]] = []
        self.writes: list[tuple[str, str, str, Any]] = []
        self.status_patches: list[dict[str, Any]] = []
        self.fail_audit = False
        self.fail_next_status_patch = False

    def resource(self, api_version: str, kind: str) -> Any:
        return FakeResource(self, api_version, kind)

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        obj = self.objects.get((api_version, kind, namespace, name))
        return copy.deepcopy(obj) if obj else None

    def list(self, api_version: str, kind: str, namespace: str, selector: str | None = None) -> list[dict[str, Any]]:
        key, _, value = (selector or "").partition("=")
        return [copy.deepcopy(o) for (a, k, ns, _n), o in self.objects.items()
                if (a, k, ns) == (api_version, kind, namespace)
                and (not selector or (o["metadata"].get("labels") or {}).get(key) == value)]

    def apply(self, body: dict[str, Any]) -> dict[str, Any]:
        body = copy.deepcopy(body)
        meta = body["metadata"]
        if body["kind"] == "Deployment":
            body["status"] = {"readyReplicas": body["spec"]["replicas"], "observedGeneration": 1}
            meta["generation"] = 1
        self.objects[(body["apiVersion"], body["kind"], meta.get("namespace", ""), meta["name"])] = body
        self.writes.append(("apply", body["kind"], meta["name"], body))
        return body

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        self.objects.pop((api_version, kind, namespace, name), None)
        self.writes.append(("delete", kind, name, None))

    def patch_status(self, md: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
        if self.fail_next_status_patch:  # the operator dies between the record and the status
            self.fail_next_status_patch = False
            raise ConnectionError("operator killed")
        stored = self.objects[(API_VERSION, "ModelDeployment", NS, md["metadata"]["name"])]
        stored["status"] = copy.deepcopy(status)
        self.status_patches.append(status)
        return stored

    def emit_event(self, md: dict[str, Any], event: EventSpec, now: dt.datetime) -> None:
        self.events.append(event)



class Counters:
    """A metrics provider double that records what it was asked for."""

    def __init__(self) -> None:
        self.asked: list[tuple[Any, dict[str, str], dt.datetime, dt.datetime]] = []
        self.presets: list[str] = []

    def collect(self, target: Any, gates: Any, start: dt.datetime, end: dt.datetime) -> dict:
        self.asked.append((target.canary_version, dict(target.baseline_matchers), start, end))
        self.presets.append(target.preset)
        return {"errorRate": object()}


def model(version: str, digest: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION, "kind": "ModelDeployment",
        "metadata": {"name": "fraud", "namespace": NS, "uid": "u-1", "generation": 1, "resourceVersion": "1"},
        "spec": {"model": "fraud", "version": version, "artifact": {"uri": f"s3://m/{version}", "digest": digest},
                 "server": {"image": "srv:1"}, "replicas": 2, "policyRef": {"name": "p"},
                 "traffic": {"router": "istio"}},
    }


D1, D2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64


@pytest.fixture
def cluster() -> tuple[FakeKube, Counters, Reconciler, dict[str, dt.datetime]]:
    kube, metrics, clock = FakeKube(), Counters(), {"now": T0}
    kube.objects[(API_VERSION, "RiskPolicy", NS, "p")] = {
        "spec": {"steps": [10, 50], "maxWeight": 50, "bakeTime": "2m", "analysisInterval": "1m", "minSamples": 1}}
    kube.objects[(API_VERSION, "ModelDeployment", NS, "fraud")] = model("v1", D1)
    rec = Reconciler(kube, metrics=metrics, analyzer=ScriptedAnalyzer(["Pass"]), clock=lambda: clock["now"])
    return kube, metrics, rec, clock


def run(kube: FakeKube, rec: Reconciler, clock: dict[str, dt.datetime], passes: int) -> None:
    for _ in range(passes):
        try:
            rec.reconcile(kube.get(API_VERSION, "ModelDeployment", NS, "fraud") or {})
        except ConnectionError:
            pass  # a killed pass; the next one starts from what was stored
        clock["now"] += dt.timedelta(minutes=1)


def route_weights(kube: FakeKube) -> dict[str, int]:
    vs = kube.get("networking.istio.io/v1", "VirtualService", NS, "fraud")
    assert vs is not None
    return {r["destination"]["host"]: r.get("weight", 100) for r in vs["spec"]["http"][0]["route"]}


def decisions(kube: FakeKube) -> list[dict[str, Any]]:
    """The records that decide something (intents and plain decisions), not the outcomes."""
    return [r for r in kube.records if r.get("stage") != "outcome"]


def assert_every_intent_has_one_outcome(kube: FakeKube) -> None:
    intents = [r["seq"] for r in kube.records if r.get("stage") == "intent"]
    outcomes = [r["of"] for r in kube.records if r.get("stage") == "outcome"]
    assert sorted(outcomes) == intents, (intents, outcomes)
    for r in kube.records:
        if r.get("stage") == "outcome":
            assert r["seq"] > r["of"]


def set_version(kube: FakeKube, version: str, digest: str) -> None:
    md = kube.objects[(API_VERSION, "ModelDeployment", NS, "fraud")]
    md["spec"] = model(version, digest)["spec"]
    md["metadata"]["generation"] += 1


def test_first_deploy_applies_workload_route_and_one_record(cluster) -> None:
    kube, _, rec, clock = cluster
    run(kube, rec, clock, 3)
    deployments = kube.list("apps/v1", "Deployment", NS, f"{LABEL_MD}=fraud")
    assert [d["metadata"]["name"] for d in deployments] == ["fraud-v1"]
    assert route_weights(kube) == {"fraud-v1": 100}
    vs = kube.get("networking.istio.io/v1", "VirtualService", NS, "fraud")
    assert vs is not None and ANN_APPLIED in vs["metadata"]["annotations"]
    # creating the workload and the route is an intent, confirmed by its outcome; then the decision
    assert [(r["action"], r["stage"]) for r in kube.records] == [
        ("deploy", "intent"), ("deploy", "outcome"), ("deployed", "decision")]
    assert kube.records[1]["served"] == {"fraud-v1": 100} and kube.records[1]["result"] == "completed"
    status = kube.get(API_VERSION, "ModelDeployment", NS, "fraud")["status"]
    assert status["phase"] == "Succeeded" and status["auditSeq"] == 3 and status["auditHead"] == kube.records[2]["hash"]
    assert status.get("openIntent") is None


def test_a_pass_with_nothing_new_writes_nothing(cluster) -> None:
    kube, _, rec, clock = cluster
    run(kube, rec, clock, 3)
    writes, patches = len(kube.writes), len(kube.status_patches)
    rec.reconcile(kube.get(API_VERSION, "ModelDeployment", NS, "fraud") or {})
    assert len(kube.writes) == writes and len(kube.status_patches) == patches


def test_rollout_executes_the_plan_and_records_every_traffic_change(cluster) -> None:
    kube, metrics, rec, clock = cluster
    run(kube, rec, clock, 3)
    set_version(kube, "v2", D2)
    run(kube, rec, clock, 12)
    status = kube.get(API_VERSION, "ModelDeployment", NS, "fraud")["status"]
    assert status["phase"] == "Succeeded" and status["stableVersion"] == "v2"
    assert route_weights(kube) == {"fraud-v2": 100}
    # the provider was asked exactly what the plan said: v2 against v1, from the stage start
    starts = {start for _, _, start, _ in metrics.asked}
    assert {v for v, *_ in metrics.asked} == {"v2"} and len(starts) == 1
    # every weight the route carried is in an audit record, in order, and the chain verifies
    weights = [r["weight"] for r in decisions(kube) if r["action"] in ("start", "step", "promote")]
    assert weights == [10, 50, 100]
    served = [r["served"] for r in kube.records if r.get("stage") == "outcome" and r["action"] in ("start", "step")]
    assert served == [{"fraud-v1": 90, "fraud-v2": 10}, {"fraud-v1": 50, "fraud-v2": 50}]
    assert_every_intent_has_one_outcome(kube)
    report = chain.verify(kube.records, status["auditHead"])
    assert report.ok, report.summary()
    # the previous version is kept, scaled to zero, for a quick rollback
    assert kube.get("apps/v1", "Deployment", NS, "fraud-v1")["spec"]["replicas"] == 0


def test_fresh_baseline_pods_and_matchers(cluster) -> None:
    kube, metrics, rec, clock = cluster
    kube.objects[(API_VERSION, "RiskPolicy", NS, "p")]["spec"]["baseline"] = "fresh"
    rec.analyzer = ScriptedAnalyzer(["Inconclusive"])
    run(kube, rec, clock, 3)
    set_version(kube, "v2", D2)
    run(kube, rec, clock, 3)  # start, pods ready, first analysis (the step bakes for 2m)
    assert route_weights(kube) == {"fraud-v1": 80, "fraud-v1-baseline": 10, "fraud-v2": 10}
    baseline = kube.get("apps/v1", "Deployment", NS, "fraud-v1-baseline")
    assert baseline is not None and baseline["metadata"]["labels"]["vigil.dev/track"] == "baseline"
    assert metrics.asked and all(m == {"track": "baseline"} for _, m, _, _ in metrics.asked)


def test_missing_policy_blocks_without_touching_traffic(cluster) -> None:
    kube, _, rec, clock = cluster
    run(kube, rec, clock, 3)
    del kube.objects[(API_VERSION, "RiskPolicy", NS, "p")]
    set_version(kube, "v2", D2)
    writes = len(kube.writes)
    run(kube, rec, clock, 2)
    assert len(kube.writes) == writes
    status = kube.get(API_VERSION, "ModelDeployment", NS, "fraud")["status"]
    assert status["phase"] == "Failed"
    assert any(c["type"] == "Stalled" and c["reason"] == "PolicyNotFound" for c in status["conditions"])


def test_workloads_are_keyed_by_arm(cluster) -> None:
    kube, _, rec, clock = cluster
    run(kube, rec, clock, 3)
    arms = Kube.workloads(kube, NS, "fraud")
    assert set(arms) == {Arm("v1")} and arms[Arm("v1")][1].ready()


def test_an_audit_record_that_cannot_be_written_moves_nothing(cluster) -> None:
    kube, _, rec, clock = cluster
    run(kube, rec, clock, 3)
    kube.fail_audit = True  # e.g. a ResourceQuota on AuditRecords
    set_version(kube, "v2", D2)
    writes = len(kube.writes)
    run(kube, rec, clock, 3)
    assert len(kube.writes) == writes and route_weights(kube) == {"fraud-v1": 100}
    status = kube.get(API_VERSION, "ModelDeployment", NS, "fraud")["status"]
    assert status["phase"] == "Failed"
    assert any(c["type"] == "Stalled" and c["reason"] == "AuditWriteFailed" for c in status["conditions"])
    retry = rec.reconcile(kube.get(API_VERSION, "ModelDeployment", NS, "fraud")).requeue_after
    assert retry <= 5.0, "a refused record is retried within seconds: lifting the quota wakes nothing"
    kube.fail_audit = False  # the quota is lifted: the rollout goes on, on the record
    run(kube, rec, clock, 3)
    assert route_weights(kube)["fraud-v2"] == 10
    assert chain.verify(kube.records, kube.get(API_VERSION, "ModelDeployment", NS, "fraud")["status"]["auditHead"]).ok


def test_a_planted_next_record_is_an_audit_conflict_never_adopted(cluster) -> None:
    from vigil.kube.client import audit_record_name

    kube, _, rec, clock = cluster
    run(kube, rec, clock, 3)
    head = kube.get(API_VERSION, "ModelDeployment", NS, "fraud")["status"]
    planted = chain.next_record(head["auditHead"], head["auditSeq"] + 1, modelDeployment="fraud", uid="u-1",
                                action="promote", phase="Succeeded", version="v9", weight=100, reason="Promoting")
    kube.objects[(API_VERSION, "AuditRecord", NS, audit_record_name("fraud", "u-1", head["auditSeq"] + 1))] = {
        "spec": planted}
    set_version(kube, "v2", D2)
    writes = len(kube.writes)
    run(kube, rec, clock, 2)
    assert len(kube.writes) == writes and route_weights(kube) == {"fraud-v1": 100}
    status = kube.get(API_VERSION, "ModelDeployment", NS, "fraud")["status"]
    assert any(c["type"] == "Stalled" and c["reason"] == "AuditConflict" for c in status["conditions"])


def test_a_crash_between_record_and_status_completes_the_same_decision_once(cluster) -> None:
    kube, _, rec, clock = cluster
    run(kube, rec, clock, 3)
    set_version(kube, "v2", D2)
    kube.fail_next_status_patch = True
    run(kube, rec, clock, 12)
    status = kube.get(API_VERSION, "ModelDeployment", NS, "fraud")["status"]
    assert status["stableVersion"] == "v2"
    starts = [r for r in decisions(kube) if r["action"] == "start"]
    assert len(starts) == 1  # the intent written before the crash was completed, not repeated
    assert chain.verify(kube.records, status["auditHead"]).ok
    assert [r["weight"] for r in decisions(kube) if r["action"] in ("start", "step", "promote")] == [10, 50, 100]
    assert_every_intent_has_one_outcome(kube)


@pytest.mark.parametrize("kind", ["Deployment", "VirtualService"])
def test_a_crash_between_intent_and_action_is_completed_on_the_record(cluster, kind) -> None:
    """Killed after the intent and status were written, before (all of) the action: the next
    pass applies that same action and records its outcome before deciding anything new."""
    kube, _, rec, clock = cluster
    run(kube, rec, clock, 3)
    set_version(kube, "v2", D2)
    real_apply = kube.apply
    killed: list[str] = []

    def apply_or_die(body: dict[str, Any]) -> dict[str, Any]:
        if body["kind"] == kind and not killed:
            killed.append(body["metadata"]["name"])
            raise ConnectionError("operator killed")
        return real_apply(body)

    kube.apply = apply_or_die  # type: ignore[method-assign]
    run(kube, rec, clock, 1)
    status = kube.get(API_VERSION, "ModelDeployment", NS, "fraud")["status"]
    assert killed and status["openIntent"] == status["auditSeq"]  # recorded, not confirmed
    assert route_weights(kube) == {"fraud-v1": 100}  # nothing was routed to v2 yet
    assert "RolloutStarted" not in [e.reason for e in kube.events]  # the killed pass posted no Event
    run(kube, rec, clock, 1)
    status = kube.get(API_VERSION, "ModelDeployment", NS, "fraud")["status"]
    assert status.get("openIntent") is None
    outcome = kube.records[-1]
    assert outcome["stage"] == "outcome" and outcome["result"] == "completed" and outcome["action"] == "start"
    assert outcome["served"] == {"fraud-v1": 90, "fraud-v2": 10} == route_weights(kube)
    # the pass that completed the intent posted the Event the killed pass would have posted
    started = [e for e in kube.events if e.reason == "RolloutStarted"]
    assert len(started) == 1 and "v2" in started[0].message and started[0].type == "Normal"
    run(kube, rec, clock, 12)
    assert [r["weight"] for r in decisions(kube) if r["action"] in ("start", "step", "promote")] == [10, 50, 100]
    assert_every_intent_has_one_outcome(kube)


def test_an_outcome_whose_status_write_conflicts_still_gets_its_events(cluster) -> None:
    """The outcome is recorded, then its status write is refused with a 409 (the user changed
    the spec a moment after status said Succeeded, as the demo does): the next pass adopts
    the stored outcome, and the Events of the intent are posted once, not lost."""
    kube, _, rec, clock = cluster
    run(kube, rec, clock, 3)
    set_version(kube, "v2", D2)
    real_patch = kube.patch_status
    refused: list[int] = []

    def conflict_on_outcome(md: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
        stored = kube.objects[(API_VERSION, "ModelDeployment", NS, "fraud")].get("status") or {}
        if stored.get("openIntent") and status.get("openIntent") is None and not refused:
            refused.append(stored["openIntent"])
            raise ApiException(status=409, reason="Conflict")
        return real_patch(md, status)

    kube.patch_status = conflict_on_outcome  # type: ignore[method-assign]
    with pytest.raises(ApiException):
        rec.reconcile(kube.get(API_VERSION, "ModelDeployment", NS, "fraud") or {})
    assert refused and not [e for e in kube.events if e.reason == "RolloutStarted"]
    run(kube, rec, clock, 12)
    assert kube.get(API_VERSION, "ModelDeployment", NS, "fraud")["status"]["stableVersion"] == "v2"
    assert [e.reason for e in kube.events].count("RolloutStarted") == 1
    assert_every_intent_has_one_outcome(kube)
    assert chain.verify(kube.records, kube.get(API_VERSION, "ModelDeployment", NS, "fraud")["status"]["auditHead"]).ok


def test_a_deleted_route_is_restored_on_the_record(cluster) -> None:
    kube, _, rec, clock = cluster
    run(kube, rec, clock, 3)
    del kube.objects[("networking.istio.io/v1", "VirtualService", NS, "fraud")]
    run(kube, rec, clock, 2)
    assert route_weights(kube) == {"fraud-v1": 100}
    restore = [r for r in kube.records if r["action"] == "restore"]
    assert [r["stage"] for r in restore] == ["intent", "outcome"]
    assert restore[0]["evidence"]["moves"] == {"route": {"fraud-v1": 100}}


def test_records_carry_the_uid_and_the_digest(cluster) -> None:
    kube, _, rec, clock = cluster
    run(kube, rec, clock, 3)
    set_version(kube, "v2", D2)
    run(kube, rec, clock, 2)
    start = next(r for r in decisions(kube) if r["action"] == "start")
    assert start["uid"] == "u-1" and start["digest"] == D2 and start["version"] == "v2"


def test_our_own_orphaned_intent_is_closed_as_abandoned_then_the_new_decision_is_recorded(cluster) -> None:
    """Killed between an intent record and its status write; by the next pass the decision has
    changed. The orphan is provably ours (our signature, our head), so it is closed as
    abandoned on the record, nothing moves for it, and the new decision follows."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from vigil.audit.signing import Signer

    kube, _, rec, clock = cluster
    key = Ed25519PrivateKey.generate()
    rec.signer = Signer(key)
    run(kube, rec, clock, 3)
    set_version(kube, "v2", D2)
    kube.fail_next_status_patch = True
    run(kube, rec, clock, 1)  # the "start" intent is stored, status is not
    orphan = kube.records[-1]
    assert orphan["action"] == "start" and orphan["stage"] == "intent"
    assert route_weights(kube) == {"fraud-v1": 100}
    set_version(kube, "v1", D1)  # the user reverts before the operator comes back: no rollout now
    set_version(kube, "v3", "sha256:" + "3" * 64)
    run(kube, rec, clock, 1)
    closing, new, confirmed = kube.records[-3:]
    assert closing["stage"] == "outcome" and closing["of"] == orphan["seq"] and closing["result"] == "abandoned"
    assert (new["stage"], new["action"], new["version"]) == ("intent", "start", "v3")
    assert confirmed["of"] == new["seq"] and confirmed["result"] == "completed"
    assert route_weights(kube) == {"fraud-v1": 90, "fraud-v3": 10}  # v2 never got traffic
    report = chain.verify(kube.records, kube.get(API_VERSION, "ModelDeployment", NS, "fraud")["status"]["auditHead"],
                          public_key=key.public_key())
    assert report.ok, report.summary()


def test_a_planted_intent_signed_by_another_key_stays_a_conflict(cluster) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from vigil.audit.signing import Signer
    from vigil.kube.client import audit_record_name

    kube, _, rec, clock = cluster
    rec.signer = Signer(Ed25519PrivateKey.generate())
    run(kube, rec, clock, 3)
    head = kube.get(API_VERSION, "ModelDeployment", NS, "fraud")["status"]
    planted = chain.next_record(head["auditHead"], head["auditSeq"] + 1, signer=Signer(Ed25519PrivateKey.generate()),
                                modelDeployment="fraud", uid="u-1", stage="intent", action="promote",
                                phase="Succeeded", version="v9", weight=100, reason="Promoting")
    kube.objects[(API_VERSION, "AuditRecord", NS, audit_record_name("fraud", "u-1", head["auditSeq"] + 1))] = {
        "spec": planted}
    set_version(kube, "v2", D2)
    run(kube, rec, clock, 2)
    assert route_weights(kube) == {"fraud-v1": 100}
    status = kube.get(API_VERSION, "ModelDeployment", NS, "fraud")["status"]
    assert any(c["type"] == "Stalled" and c["reason"] == "AuditConflict" for c in status["conditions"])


def test_a_route_changed_in_a_field_other_than_the_weights_stops_the_loop(cluster) -> None:
    """The tamper check covers every field Vigil set, not only the weights: a host or port
    changed behind its back is a RouteConflict, and nothing is applied over it."""
    kube, _, rec, clock = cluster
    run(kube, rec, clock, 3)
    vs = kube.objects[("networking.istio.io/v1", "VirtualService", NS, "fraud")]
    vs["spec"]["hosts"] = ["evil.example.com"]
    writes = len(kube.writes)
    set_version(kube, "v2", D2)
    run(kube, rec, clock, 2)
    assert len(kube.writes) == writes and kube.objects[("networking.istio.io/v1", "VirtualService", NS, "fraud")][
        "spec"]["hosts"] == ["evil.example.com"]
    status = kube.get(API_VERSION, "ModelDeployment", NS, "fraud")["status"]
    assert any(c["reason"] == "RouteConflict" and "outside Vigil" in c["message"] for c in status["conditions"])


def test_fields_the_apiserver_adds_to_a_route_are_not_tampering() -> None:
    from vigil.routing.base import owned_part

    rendered = {"rules": [{"backendRefs": [{"name": "a", "port": 80, "weight": 90}]}]}
    stored = {"rules": [{"backendRefs": [{"name": "a", "port": 80, "weight": 90, "group": "", "kind": "Service"}],
                         "matches": [{"path": {"type": "PathPrefix", "value": "/"}}]}]}
    assert owned_part(stored, rendered) == rendered
    stored["rules"][0]["backendRefs"][0]["port"] = 81
    assert owned_part(stored, rendered) != rendered
    stored["rules"].append({"backendRefs": []})  # a rule added behind Vigil's back
    assert owned_part(stored, rendered) != rendered


def test_an_abort_is_decided_without_asking_prometheus(cluster) -> None:
    """A slow or hung Prometheus must not delay an abort: the pass that acts on it measures nothing."""
    kube, metrics, rec, clock = cluster
    run(kube, rec, clock, 3)
    set_version(kube, "v2", D2)
    run(kube, rec, clock, 3)
    asked = len(metrics.asked)
    md = kube.objects[(API_VERSION, "ModelDeployment", NS, "fraud")]
    md["metadata"]["annotations"] = {"vigil.dev/abort": D2, "vigil.dev/requested-by": "alice"}
    run(kube, rec, clock, 1)
    assert len(metrics.asked) == asked
    assert kube.get(API_VERSION, "ModelDeployment", NS, "fraud")["status"]["phase"] in ("RollingBack", "RolledBack")


def test_the_specs_metrics_preset_reaches_the_provider(cluster) -> None:
    kube, metrics, rec, clock = cluster
    run(kube, rec, clock, 3)
    set_version(kube, "v2", D2)
    kube.objects[(API_VERSION, "ModelDeployment", NS, "fraud")]["spec"]["analysis"] = {"metricsPreset": "vllm"}
    run(kube, rec, clock, 3)
    assert metrics.presets and set(metrics.presets) == {"vllm"}


def test_a_decision_whose_status_write_meets_a_user_edit_still_lands_and_the_next_one_follows(cluster) -> None:
    """A plain decision is recorded, and its status write is refused with a 409 because the
    user paused the rollout a moment after the pass read the object. Status must still follow
    the chain: otherwise the next pass decides Pause from a status one record behind, meets
    the record just written, and stalls on an AuditConflict for good."""
    from vigil.api.names import ANN_PAUSED

    kube, _, rec, clock = cluster
    run(kube, rec, clock, 3)
    set_version(kube, "v2", D2)
    real_patch = kube.patch_status
    refused: list[int] = []

    def user_pauses_meanwhile(md: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
        stored = kube.objects[(API_VERSION, "ModelDeployment", NS, "fraud")]
        last = kube.records[-1] if kube.records else {}
        if (not refused and last.get("stage") == "decision" and status.get("auditSeq") == last["seq"]
                and md["metadata"]["resourceVersion"] == stored["metadata"]["resourceVersion"]):
            refused.append(last["seq"])
            stored["metadata"].setdefault("annotations", {})[ANN_PAUSED] = "true"
            stored["metadata"]["resourceVersion"] = str(int(stored["metadata"]["resourceVersion"]) + 1)
            raise ApiException(status=409, reason="Conflict")
        if md["metadata"]["resourceVersion"] != stored["metadata"]["resourceVersion"]:
            raise ApiException(status=409, reason="Conflict")
        return real_patch(md, status)

    kube.patch_status = user_pauses_meanwhile  # type: ignore[method-assign]
    for _ in range(8):
        try:
            rec.reconcile(kube.get(API_VERSION, "ModelDeployment", NS, "fraud") or {})
        except ApiException as err:  # as the operator's pass does: read again on the next one
            assert err.status == 409
        clock["now"] += dt.timedelta(minutes=1)
    assert refused, "no plain decision was recorded in this rollout"
    status = kube.get(API_VERSION, "ModelDeployment", NS, "fraud")["status"]
    assert status["phase"] == "Paused", status.get("message")
    assert not [r for r in kube.records if r.get("reason") == "AuditConflict"]
    assert status["auditSeq"] == kube.records[-1]["seq"] and [r["seq"] for r in kube.records] == list(
        range(1, len(kube.records) + 1))
    assert chain.verify(kube.records, status["auditHead"]).ok


def test_our_own_orphaned_plain_decision_is_closed_as_abandoned_when_the_next_pass_decides_otherwise(cluster) -> None:
    """Killed between a plain decision's record and its status write; before the operator
    comes back the user pauses the rollout, so the next pass decides Pause, not the same
    thing again. The orphan is provably ours, so it is closed as abandoned on the record and
    the pause follows; without that the rollout would stall on an AuditConflict for good."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from vigil.api.names import ANN_PAUSED
    from vigil.audit.signing import Signer

    kube, _, rec, clock = cluster
    key = Ed25519PrivateKey.generate()
    rec.signer = Signer(key)
    run(kube, rec, clock, 3)
    set_version(kube, "v2", D2)
    real_patch = kube.patch_status
    orphans: list[dict[str, Any]] = []

    def killed_after_a_plain_decision(md: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
        last = kube.records[-1] if kube.records else {}
        if not orphans and last.get("stage") == "decision" and status.get("auditSeq") == last["seq"]:
            orphans.append(last)
            stored = kube.objects[(API_VERSION, "ModelDeployment", NS, "fraud")]
            stored["metadata"].setdefault("annotations", {})[ANN_PAUSED] = "true"  # while the operator is down
            raise ConnectionError("operator killed")
        return real_patch(md, status)

    kube.patch_status = killed_after_a_plain_decision  # type: ignore[method-assign]
    for _ in range(8):
        try:
            rec.reconcile(kube.get(API_VERSION, "ModelDeployment", NS, "fraud") or {})
        except ConnectionError:
            pass  # the restarted operator's next pass reads the object again
        clock["now"] += dt.timedelta(minutes=1)
    assert orphans, "no plain decision was recorded in this rollout"
    orphan = orphans[0]
    status = kube.get(API_VERSION, "ModelDeployment", NS, "fraud")["status"]
    assert status["phase"] == "Paused", status.get("message")
    assert not [r for r in kube.records if r.get("reason") == "AuditConflict"]
    closing = next(r for r in kube.records if r["seq"] == orphan["seq"] + 1)
    assert (closing["stage"], closing["of"], closing["result"], closing["reason"]) == (
        "outcome", orphan["seq"], "abandoned", "DecisionAbandoned")
    assert status["auditSeq"] == kube.records[-1]["seq"]
    report = chain.verify(kube.records, status["auditHead"], public_key=key.public_key())
    assert report.ok, report.summary()
