"""Operator metrics from passes: what a dashboard and the alert rules read."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from vigil.api.modeldeployment import (
    Condition,
    ModelDeploymentStatus,
    Phase,
    RolloutPlan,
    StepStatus,
)
from vigil.core.model import Action, Decision, EventSpec
from vigil.observability.metrics import OperatorMetrics


def md(status: dict[str, Any] | None = None, name: str = "fraud") -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": name}, "status": status or {}}


def decision(action: Action, reason: str | None = None, **status: Any) -> Decision:
    events = (EventSpec("Normal", reason, "msg"),) if reason else ()
    return Decision(action, ModelDeploymentStatus(**status), None, None, events)


def value(m: OperatorMetrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, labels)


VERDICTS = {"outcome": "Inconclusive", "verdicts": [
    {"metric": "errorRate", "outcome": "Inconclusive", "eFail": 2.5, "thresholdFail": 40.0, "ePass": 7.0,
     "effect": 0.01, "interval": [-0.02, 0.04], "samples": {"baseline": 900, "canary": 100}},
    {"metric": "latencyP99", "outcome": "Pass", "eFail": 0.5, "thresholdFail": 40.0},
]}


def test_phase_gauge_is_one_for_the_current_phase_only() -> None:
    m = OperatorMetrics(CollectorRegistry())
    m.passed(md(), decision(Action.START, "RolloutStarted", phase=Phase.CANARY, canary_version="v2",
                            step=StepStatus(index=0, weight=20)), 0.1)
    assert value(m, "vigil_modeldeployment_phase", namespace="ns", model="fraud", phase="Canary") == 1
    assert value(m, "vigil_modeldeployment_phase", namespace="ns", model="fraud", phase="Succeeded") == 0
    assert value(m, "vigil_canary_weight_percent", namespace="ns", model="fraud") == 20
    assert value(m, "vigil_decisions_total", namespace="ns", model="fraud", action="start", reason="RolloutStarted") == 1


def test_rollout_time_histograms_exist_at_zero_from_a_models_first_pass() -> None:
    """A series born at its first observation has no increase() in Prometheus: the dashboard's
    median time to rollback would stay empty after a model's first rollback."""
    m = OperatorMetrics(CollectorRegistry())
    m.passed(md(), decision(Action.NONE, phase=Phase.SUCCEEDED, stable_version="v1"), 0.1)
    labels = {"namespace": "ns", "model": "fraud"}
    for histogram in ("vigil_time_to_rollback_seconds", "vigil_time_to_promotion_seconds"):
        assert value(m, f"{histogram}_count", **labels) == 0
        assert value(m, f"{histogram}_bucket", le="+Inf", **labels) == 0


def test_rollback_counts_and_time_to_rollback_from_the_rollout_start() -> None:
    m = OperatorMetrics(CollectorRegistry())
    before = {"phase": "Canary", "canaryVersion": "v3", "stableVersion": "v2"}
    m.passed(md(before), decision(Action.ROLLBACK, "AnalysisFailed", phase=Phase.ROLLING_BACK, canary_version="v3",
                                  rollout_started_at="2026-01-01T00:00:00Z", phase_started_at="2026-01-01T00:10:00Z"), 0.2)
    labels = {"namespace": "ns", "model": "fraud"}
    assert value(m, "vigil_rollbacks_total", **labels) == 1
    assert value(m, "vigil_rollouts_completed_total", outcome="rolled_back", **labels) == 1
    assert value(m, "vigil_rollouts_completed_total", outcome="promoted", **labels) == 0  # exists at zero
    assert value(m, "vigil_time_to_rollback_seconds_sum", **labels) == 600
    assert value(m, "vigil_time_to_rollback_seconds_count", **labels) == 1


def test_outcomes_follow_status_transitions_promotion_once_with_holdback() -> None:
    m = OperatorMetrics(CollectorRegistry())
    labels = {"namespace": "ns", "model": "fraud"}
    times = {"rollout_started_at": "2026-01-01T00:00:00Z", "phase_started_at": "2026-01-01T01:00:00Z"}
    v2 = {"canary_version": "v2", "stable_version": "v2", "rollout_id": "2-a"}
    m.passed(md({"phase": "Promoting", "canaryVersion": "v2", "stableVersion": "v2"}),
             decision(Action.HOLDBACK, "Holdback", phase=Phase.HOLDBACK, **v2, **times), 0.1)
    assert value(m, "vigil_rollouts_completed_total", outcome="promoted", **labels) == 0
    # the completing pass is not seen as a decision (e.g. finished from its open intent): status tells
    m.passed(md(), decision(Action.NONE, phase=Phase.SUCCEEDED, stable_version="v2", **times), 0.1)
    m.passed(md(), decision(Action.NONE, phase=Phase.SUCCEEDED, stable_version="v2", **times), 0.1)
    assert value(m, "vigil_rollouts_completed_total", outcome="promoted", **labels) == 1
    assert value(m, "vigil_time_to_promotion_seconds_sum", **labels) == 3600
    m.passed(md(), decision(Action.START, "RolloutStarted", phase=Phase.CANARY, canary_version="v3",
                            stable_version="v2", rollout_id="3-b"), 0.1)
    m.passed(md(), decision(Action.START, "RolloutStarted", phase=Phase.CANARY, canary_version="v4",
                            stable_version="v2", rollout_id="4-c"), 0.1)
    assert value(m, "vigil_rollouts_completed_total", outcome="superseded", **labels) == 1
    m.passed(md(), decision(Action.CANCEL, "RolloutCancelled", phase=Phase.SUCCEEDED, stable_version="v2"), 0.1)
    assert value(m, "vigil_rollouts_completed_total", outcome="cancelled", **labels) == 1
    assert value(m, "vigil_rollbacks_total", **labels) == 0


def test_gate_gauges_follow_the_last_analysis_and_stale_gates_disappear() -> None:
    m = OperatorMetrics(CollectorRegistry())
    m.passed(md(), decision(Action.NONE, phase=Phase.CANARY, last_analysis=VERDICTS), 0.1)
    gate = {"namespace": "ns", "model": "fraud", "gate": "errorRate"}
    assert value(m, "vigil_gate_e_value", **gate) == 2.5
    assert value(m, "vigil_gate_e_value_threshold", **gate) == 40
    assert value(m, "vigil_gate_effect_upper_bound", **gate) == 0.04
    assert value(m, "vigil_gate_verdict", **{**gate, "gate": "latencyP99"}) == 1
    assert value(m, "vigil_gate_pass_e_value", **{**gate, "gate": "latencyP99"}) is None  # not reported: no series
    only_p99 = {"outcome": "Pass", "verdicts": [VERDICTS["verdicts"][1]]}
    m.passed(md(), decision(Action.NONE, phase=Phase.CANARY, last_analysis=only_p99), 0.1)
    assert value(m, "vigil_gate_e_value", **gate) is None  # a gate no longer judged has no series
    assert value(m, "vigil_gate_e_value", **{**gate, "gate": "latencyP99"}) == 0.5
    m.passed(md(), decision(Action.NONE, phase=Phase.CANARY, last_analysis=VERDICTS), 0.1)
    m.passed(md(), decision(Action.START, "RolloutStarted", phase=Phase.CANARY), 0.1)  # a new rollout: no analysis yet
    assert value(m, "vigil_gate_e_value", **gate) is None
    text = generate_latest(m.registry).decode()
    assert "v2" not in text and "rollout_id" not in text  # no unbounded labels


def test_budget_deadline_and_stalled_reason() -> None:
    m = OperatorMetrics(CollectorRegistry())
    stalled = Condition(type="Stalled", status="True", reason="BudgetExceeded", last_transition_time="2026-01-01T00:00:00Z")
    m.passed(md(), decision(Action.BUDGET, "BudgetExceeded", phase=Phase.CANARY, canary_version="v2",
                            step=StepStatus(index=0, weight=20), last_analysis_at="2026-01-01T00:00:00Z",
                            plan=RolloutPlan(eta_seconds=900, budget_seconds=-60), conditions=[stalled]), 0.1)
    labels = {"namespace": "ns", "model": "fraud"}
    assert value(m, "vigil_rollout_budget_deadline_timestamp_seconds", **labels) == 1767225600 - 60
    assert value(m, "vigil_rollout_eta_seconds", **labels) == 900
    assert value(m, "vigil_modeldeployment_stalled", reason="BudgetExceeded", **labels) == 1
    m.passed(md(), decision(Action.PROMOTED, "Promoted", phase=Phase.SUCCEEDED), 0.1)
    assert value(m, "vigil_modeldeployment_stalled", reason="BudgetExceeded", **labels) is None
    assert value(m, "vigil_rollout_budget_deadline_timestamp_seconds", **labels) is None


def test_audit_failures_errors_leader_queue_and_forget() -> None:
    m = OperatorMetrics(CollectorRegistry())
    m.passed(md(), decision(Action.BLOCKED, "AuditWriteFailed", phase=Phase.FAILED), 0.1)
    labels = {"namespace": "ns", "model": "fraud"}
    assert value(m, "vigil_audit_write_failures_total", reason="AuditWriteFailed", **labels) == 1
    assert value(m, "vigil_audit_write_failures_total", reason="AuditConflict", **labels) == 0
    m.failed("ns", "fraud", "ApiError500")
    assert value(m, "vigil_reconcile_errors_total", reason="ApiError500", **labels) == 1
    m.set_leader(True)
    m.set_queue_depth(3)
    assert value(m, "vigil_leader") == 1 and value(m, "vigil_reconcile_queue_depth") == 3
    m.forget("ns", "fraud")
    assert value(m, "vigil_modeldeployment_phase", phase="Failed", **labels) is None
    assert value(m, "vigil_reconcile_errors_total", reason="ApiError500", **labels) is None


def test_a_broken_status_never_raises_into_the_pass() -> None:
    m = OperatorMetrics(CollectorRegistry())
    m.passed({"metadata": {}}, decision(Action.NONE), 0.1)  # missing namespace: logged, not raised
    m.passed(md(), decision(Action.NONE, last_analysis={"verdicts": ["junk", {"metric": "errorRate", "eFail": "x"}]}), 0.1)
    assert value(m, "vigil_gate_e_value", namespace="ns", model="fraud", gate="errorRate") is None


def test_a_scrape_time_histogram_buckets_like_prometheus_client() -> None:
    """The per-model histograms are plain counts made into samples at scrape time: a value on a
    bucket's bound counts in that bucket (`le`), as prometheus_client's own Histogram has it."""
    from prometheus_client import Histogram
    from vigil.observability.metrics import ROLLOUT_BUCKETS
    from vigil.observability.model_series import Histo

    values = [0.0, 10, 10.5, 60, 599.9, 600, 604800, 604801, 1e9]
    reference = Histogram("h", "h", buckets=ROLLOUT_BUCKETS, registry=CollectorRegistry())
    ours = Histo(ROLLOUT_BUCKETS)
    for v in values:
        reference.observe(v)
        ours.observe(v)
    expected = [(s.labels["le"], s.value) for s in reference.collect()[0].samples if s.name == "h_bucket"]
    assert ours.exposition() == expected
    assert ours.total == sum(values)
