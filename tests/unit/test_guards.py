"""The guards beside the analysis: the wrong artifact rolls back, a burning budget blocks a start.

Run through the real reconciler and decision core (in-memory API, readings from a double), so
the test covers what the core asks for, what it does with the answer, and what it records."""

from __future__ import annotations

from typing import Any

from vigil.api.names import API_VERSION
from vigil.api.policy import RiskPolicySpec
from vigil.core.guards import GuardPlan, budget_problem, plan_guards
from vigil.core.model import GuardReadings
from vigil.metrics.guards import burn_query, digest_query
from vigil.metrics.target import AnalysisTarget

from .test_reconciler import D1, D2, NS, cluster, decisions, route_weights, run, set_version  # noqa: F401

BUDGET = {"objective": 0.999}


class Readings:
    """A GuardReader double: answers with fixed readings and records what it was asked."""

    def __init__(self, readings: GuardReadings) -> None:
        self.readings, self.asked = readings, []

    def read(self, target: AnalysisTarget, plan: GuardPlan) -> GuardReadings:
        self.asked.append((target, plan))
        return self.readings


def status(kube: Any) -> dict[str, Any]:
    return kube.get(API_VERSION, "ModelDeployment", NS, "fraud")["status"]


def test_a_burning_stable_version_blocks_the_start_and_says_so(cluster) -> None:
    kube, _, rec, clock = cluster
    kube.objects[(API_VERSION, "RiskPolicy", NS, "p")]["spec"]["errorBudget"] = BUDGET
    rec.guards = Readings(GuardReadings(burn_rates={"1h": 20.0, "5m": 30.0, "6h": 1.0, "30m": 1.0}))
    run(kube, rec, clock, 3)
    set_version(kube, "v2", D2)
    run(kube, rec, clock, 2)
    s = status(kube)
    assert s.get("canaryVersion") is None and route_weights(kube) == {"fraud-v1": 100}
    assert any(c["reason"] == "ErrorBudgetBurning" for c in s["conditions"])
    assert "20.0x (1h)" in s["message"]
    _, plan = rec.guards.asked[-1]
    assert plan.budget_of == "v1" and set(plan.windows) == {"1h", "5m", "6h", "30m"}
    # the burn stops: the rollout starts on the next pass
    rec.guards.readings = GuardReadings(burn_rates={"1h": 20.0, "5m": 0.5, "6h": 1.0, "30m": 1.0})
    run(kube, rec, clock, 1)
    assert status(kube)["canaryVersion"] == "v2"


def test_an_unknown_burn_rate_is_not_a_healthy_one() -> None:
    policy = RiskPolicySpec.model_validate({"errorBudget": BUDGET})
    assert "unknown" in budget_problem(policy, GuardReadings(problem="Prometheus down"))
    assert budget_problem(policy, GuardReadings(burn_rates={"1h": 0, "5m": 0, "6h": 0, "30m": 0})) is None
    assert budget_problem(RiskPolicySpec(), None) is None  # no budget in the policy: no gate


def test_a_canary_that_reports_another_digest_is_rolled_back(cluster) -> None:
    kube, _, rec, clock = cluster
    rec.guards = Readings(GuardReadings(canary_digests=frozenset({D2})))
    run(kube, rec, clock, 3)
    set_version(kube, "v2", D2)
    run(kube, rec, clock, 3)
    assert status(kube)["canaryVersion"] == "v2" and status(kube)["phase"] == "Canary"
    rec.guards.readings = GuardReadings(canary_digests=frozenset({D1}))  # v2's pods serve v1's artifact
    run(kube, rec, clock, 3)
    s = status(kube)
    assert s["phase"] in ("RollingBack", "RolledBack")
    rollback = next(r for r in decisions(kube) if r["action"] == "rollback")
    assert rollback["reason"] == "ArtifactMismatch" and D1 in rollback["message"]


def test_a_required_report_that_is_missing_holds_the_canary(cluster) -> None:
    kube, _, rec, clock = cluster
    kube.objects[(API_VERSION, "RiskPolicy", NS, "p")]["spec"]["requireArtifactReport"] = True
    rec.guards = Readings(GuardReadings(canary_digests=frozenset()))
    run(kube, rec, clock, 3)
    set_version(kube, "v2", D2)
    run(kube, rec, clock, 6)
    s = status(kube)
    assert s["phase"] == "Canary" and s["step"]["weight"] == 10  # never advanced
    assert any(c["reason"] == "ArtifactUnverified" for c in s["conditions"])


def test_only_what_is_due_is_read() -> None:
    from vigil.api.modeldeployment import ModelDeploymentSpec, ModelDeploymentStatus

    spec = ModelDeploymentSpec.model_validate({
        "model": "m", "version": "v2", "artifact": {"uri": "s3://x", "digest": D2}, "server": {"image": "i"},
        "policyRef": {"name": "p"}, "traffic": {"router": "istio"}})
    serving = ModelDeploymentStatus.model_validate({"phase": "Succeeded", "stableVersion": "v2", "stableDigest": D2})
    assert not plan_guards(spec, RiskPolicySpec.model_validate({"errorBudget": BUDGET}), serving)


def test_queries_escape_labels_and_divide_by_the_budget() -> None:
    t = AnalysisTarget(namespace='a"b', model="m", baseline_version="v1", canary_version="v2")
    assert 'namespace="a\\"b"' in digest_query(t, "v2")
    q = burn_query(t, "v1", "1h", 0.999)
    assert q.endswith("/ 0.001") and 'outcome="error"' in q and "[1h]" in q


def test_an_emergency_change_in_a_freeze_window_starts_on_the_record(cluster) -> None:
    """The webhook admits a version change inside a freeze window only with a fresh reason and a
    policy that allows emergencies; the operator then starts it, recording who and why."""
    kube, _, rec, clock = cluster
    run(kube, rec, clock, 3)
    spec = kube.objects[(API_VERSION, "RiskPolicy", NS, "p")]["spec"]
    spec["freezeWindows"] = [{"start": "2026-12-01T00:00:00Z", "end": "2026-12-02T00:00:00Z", "reason": "peak"}]
    set_version(kube, "v2", D2)
    run(kube, rec, clock, 1)
    assert status(kube).get("canaryVersion") is None  # frozen: waits
    md = kube.objects[(API_VERSION, "ModelDeployment", NS, "fraud")]
    md["metadata"]["annotations"] = {"vigil.dev/emergency": "fraud spike, fix in v2",
                                     "vigil.dev/requested-by": "alice"}
    run(kube, rec, clock, 1)
    assert status(kube).get("canaryVersion") is None  # the policy does not allow emergencies
    spec["allowEmergencyPromotion"] = True
    run(kube, rec, clock, 1)
    start = next(r for r in decisions(kube) if r["action"] == "start")
    assert start["evidence"]["emergency"]["reason"] == "fraud spike, fix in v2" and start["actor"] == "alice"
