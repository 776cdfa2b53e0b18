"""A fresh baseline is compared on its own pods: the baseline arm's selector gets track="baseline"."""

from __future__ import annotations

from vigil.api.gates import MetricKind
from vigil.api.modeldeployment import ModelDeploymentStatus, Phase
from vigil.api.policy import RiskPolicySpec
from vigil.metrics import AnalysisTarget
from vigil.metrics.queries import counters_query
from vigil.reconciler import fresh_baseline_matchers


def test_only_the_baseline_selector_is_narrowed_to_the_fresh_pods() -> None:
    target = AnalysisTarget("ns", "fraud", "v1", "v2", baseline_matchers={"track": "baseline"})
    target.validate()
    query = counters_query(MetricKind.ERROR_RATE, target)
    baseline, canary = query.split(" or ")
    assert 'version="v1"' in baseline and 'track="baseline"' in baseline
    assert 'version="v2"' in canary and "track" not in canary


def test_reconciler_asks_for_the_fresh_baseline_during_canary_steps_only() -> None:
    fresh = RiskPolicySpec.model_validate({"baseline": "fresh"})
    assert fresh_baseline_matchers(fresh, ModelDeploymentStatus(phase=Phase.CANARY)) == {"track": "baseline"}
    assert fresh_baseline_matchers(fresh, ModelDeploymentStatus(phase=Phase.SHADOW)) == {}
    assert fresh_baseline_matchers(RiskPolicySpec(), ModelDeploymentStatus(phase=Phase.CANARY)) == {}


def test_hostile_baseline_matchers_are_refused() -> None:
    import pytest

    from vigil.metrics import InvalidLabel

    with pytest.raises(InvalidLabel):
        AnalysisTarget("ns", "fraud", "v1", "v2", baseline_matchers={"version": "v9"}).validate()
