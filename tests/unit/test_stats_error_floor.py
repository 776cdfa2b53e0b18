"""The error-rate gate's absolute floor: how an error-free service can pass, and why the floor
never lets a real regression through or makes a false pass likelier than its budget."""

from __future__ import annotations

import math

import numpy as np

from vigil.api.gates import Gate, MetricKind
from vigil.stats.evidence import Thresholds
from vigil.stats.rates import with_absolute_floor
from vigil.stats.result import Outcome, Verdict
from vigil.stats.sequential import proportion_interval

TH = Thresholds(alpha_fail=0.05, alpha_pass=0.05, min_samples=200)


def verdict(outcome: Outcome) -> Verdict:
    return Verdict(metric=MetricKind.ERROR_RATE, outcome=outcome, explanation="ratio test")


def test_gate_accepts_a_floor_beside_the_relative_tolerance() -> None:
    gate = Gate.model_validate({"metric": "errorRate", "maxRelativeIncrease": 0.1, "maxAbsoluteIncrease": 0.005})
    assert gate.tolerance == 0.1 and gate.max_absolute_increase == 0.005


def test_error_free_versions_pass_on_the_floor_and_only_with_enough_requests() -> None:
    assert with_absolute_floor(verdict(Outcome.INCONCLUSIVE), 0.01, (0, 2000), (0, 2000), TH).outcome is Outcome.PASS
    # too few requests to bound the increase below one point: still inconclusive
    assert with_absolute_floor(verdict(Outcome.INCONCLUSIVE), 0.01, (0, 150), (0, 150), TH).outcome is Outcome.INCONCLUSIVE


def test_a_failed_ratio_needs_an_increase_above_the_floor() -> None:
    # 2% vs 1% is x2, but one point is within a floor of five points: not a regression here
    out = with_absolute_floor(verdict(Outcome.FAIL), 0.05, (200, 10_000), (100, 10_000), TH)
    assert out.outcome is Outcome.INCONCLUSIVE and "not shown to exceed" in out.explanation
    # 6% vs 1% clears a one-point floor: the failure stands
    out = with_absolute_floor(verdict(Outcome.FAIL), 0.01, (600, 10_000), (100, 10_000), TH)
    assert out.outcome is Outcome.FAIL


def test_increase_exactly_at_the_floor_rarely_passes_however_often_one_looks() -> None:
    """Canary 2%, baseline 1%, floor 1 point (the boundary of the null): the share of rollouts
    that ever pass over 20 looks stays within alpha + 3 standard errors."""
    rng = np.random.default_rng(11)
    reps, looks, per_look_c, per_look_b = 400, 20, 300, 2700
    x_c = np.cumsum(rng.binomial(per_look_c, 0.02, (reps, looks)), axis=1)
    x_b = np.cumsum(rng.binomial(per_look_b, 0.01, (reps, looks)), axis=1)
    passed = 0
    for r in range(reps):
        for t in range(looks):
            n_c, n_b = per_look_c * (t + 1), per_look_b * (t + 1)
            hi = proportion_interval(x_c[r, t], n_c, 0.025)[1] - proportion_interval(x_b[r, t], n_b, 0.025)[0]
            if hi < 0.01:
                passed += 1
                break
    limit = 0.05 + 3 * math.sqrt(0.05 * 0.95 / reps)
    assert passed / reps <= limit
