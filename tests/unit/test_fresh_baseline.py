"""A fresh baseline is compared on its own pods: the baseline arm's selector gets track="baseline"."""

from __future__ import annotations

from vigil.api.gates import MetricKind
from vigil.api.modeldeployment import ModelDeploymentStatus, Phase
from vigil.api.policy import RiskPolicySpec
from vigil.metrics import AnalysisTarget
from vigil.metrics.queries import counters_query
from vigil.core.model import Arm, Track
from vigil.core.plan import Stage, arms
from vigil.reconciler import arm_matchers


def test_only_the_baseline_selector_is_narrowed_to_the_fresh_pods() -> None:
    target = AnalysisTarget("ns", "fraud", "v1", "v2", baseline_matchers={"track": "baseline"})
    target.validate()
    query = counters_query(MetricKind.ERROR_RATE, target)
    baseline, canary = query.split(" or ")
    assert 'version="v1"' in baseline and 'track="baseline"' in baseline
    assert 'version="v2"' in canary and "track" not in canary


def test_the_plan_compares_with_the_fresh_baseline_during_canary_steps_only() -> None:
    fresh = RiskPolicySpec.model_validate({"baseline": "fresh"})
    status = ModelDeploymentStatus(phase=Phase.CANARY, stable_version="v1", canary_version="v2")
    assert arms(Stage.CANARY, status, fresh) == (Arm("v1", Track.BASELINE), Arm("v2"))
    assert arms(Stage.SHADOW, status, fresh) == (Arm("v1"), Arm("v2"))
    assert arms(Stage.CANARY, status, RiskPolicySpec()) == (Arm("v1"), Arm("v2"))
    assert arm_matchers(Arm("v1", Track.BASELINE)) == {"track": "baseline"}
    assert arm_matchers(Arm("v1")) == {}


def test_hostile_baseline_matchers_are_refused() -> None:
    import pytest

    from vigil.metrics import InvalidLabel

    with pytest.raises(InvalidLabel):
        AnalysisTarget("ns", "fraud", "v1", "v2", baseline_matchers={"version": "v9"}).validate()
