"""Whole rollouts through the real plan, decide and analyze on seeded simulated traffic.

These pin down what a user relies on: a healthy version under the shipped example policy is
promoted, a clear regression is rolled back while still in shadow, and an operator restart in
the middle changes nothing because status is the only memory.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bench.rollout_sim import Version, run_rollout
from bench.scenarios import BASE_ERROR
from vigil.api.policy import RiskPolicySpec

EXAMPLE = Path(__file__).resolve().parents[2] / "manifests" / "examples" / "riskpolicy.yaml"


@pytest.fixture(scope="module")
def example() -> RiskPolicySpec:
    return RiskPolicySpec.model_validate(yaml.safe_load(EXAMPLE.read_text())["spec"])


@pytest.mark.parametrize("seed", [1, 2])
def test_healthy_version_is_promoted_under_the_example_policy(example: RiskPolicySpec, seed: int) -> None:
    outcome = run_rollout(example, Version(), rpm=1000, seed=seed)
    assert outcome.end == "promoted" and outcome.minutes is not None
    assert outcome.minutes >= 70  # never faster than its shadow and bake times
    assert outcome.plan_at is not None and outcome.plan_at <= 3  # the plan shows from the first analysis


@pytest.mark.parametrize("seed", [1, 3])
def test_doubled_errors_are_rolled_back_early(example: RiskPolicySpec, seed: int) -> None:
    """Caught in shadow (before any user request reaches it) or at the first canary steps."""
    outcome = run_rollout(example, Version(error=2 * BASE_ERROR), rpm=1000, seed=seed)
    assert outcome.end == "rolled-back" and outcome.minutes is not None and outcome.minutes <= 31
    assert outcome.rolled_back_in in ("shadow", "canary")


def test_an_operator_restart_mid_rollout_changes_nothing(example: RiskPolicySpec) -> None:
    straight = run_rollout(example, Version(), rpm=1000, seed=5)
    for minute in (7, 25, 45):  # in shadow, at a canary step, at the last step
        assert run_rollout(example, Version(), rpm=1000, seed=5, restart_at=minute) == straight


def test_budget_stops_a_rollout_that_traffic_cannot_decide(example: RiskPolicySpec) -> None:
    tight = example.model_copy(update={"budget": example.budget.model_copy(update={"max_duration": "90m"})})
    outcome = run_rollout(tight, Version(), rpm=30, seed=1)
    assert outcome.end == "budget" and outcome.minutes is not None and 90 <= outcome.minutes <= 95
    assert outcome.first_plan is not None and "traffic too low" in outcome.first_plan
