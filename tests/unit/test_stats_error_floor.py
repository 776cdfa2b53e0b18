"""The error-rate gate's absolute floors: how an error-free service can pass, and why the floors
never let a real regression through or make a false decision likelier than its budget."""

from __future__ import annotations

import numpy as np
import pytest
from vigil.api.gates import Gate
from vigil.stats.sequential import bernoulli_bounds, difference_floor_log_e

from tests.unit.test_stats_worlds import limit

LEVEL = np.log(1 / 0.05)


def floor_e(canary: tuple[float, float], baseline: tuple[float, float], floor: float, below: bool) -> float:
    (x_c, n_c), (x_b, n_b) = canary, baseline
    return float(difference_floor_log_e(np.array(x_c), np.array(n_c), np.array(x_b), np.array(n_b), floor, below))


def test_gate_accepts_floors_beside_the_relative_margins() -> None:
    gate = Gate.model_validate({"metric": "errorRate", "maxRelativeIncrease": 0.1, "maxAbsoluteIncrease": 0.005})
    assert gate.tolerance == 0.1 and gate.tolerance_floor == 0.005 and gate.regression_floor == 0.0075


def test_error_free_versions_are_shown_below_the_floor_only_with_enough_requests() -> None:
    assert floor_e((0, 2000), (0, 2000), 0.01, below=True) >= LEVEL
    assert floor_e((0, 150), (0, 150), 0.01, below=True) < LEVEL


def test_an_increase_must_be_shown_above_the_floor() -> None:
    # 2% vs 1% is x2, but one point is within a floor of five points
    assert floor_e((200, 10_000), (100, 10_000), 0.05, below=False) < LEVEL
    # 6% vs 1% clears a one-point floor
    assert floor_e((600, 10_000), (100, 10_000), 0.01, below=False) >= LEVEL


def test_the_floor_evidence_is_where_the_two_confidence_sequences_separate() -> None:
    """Reaching 1/a means: canary upper bound minus baseline lower bound (each at a/2) below the floor."""
    for x_c, n_c, x_b, n_b, floor in ((5, 3000, 30, 3000, 0.002), (3, 8000, 9, 9000, 0.001)):
        a = float(np.exp(-floor_e((x_c, n_c), (x_b, n_b), floor, below=True)))
        gap = bernoulli_bounds(x_c, n_c, a / 2)[1] - bernoulli_bounds(x_b, n_b, a / 2)[0]
        assert gap == pytest.approx(floor, abs=1e-6)


def test_bounds_cover_the_rate_and_shrink() -> None:
    lo, hi = bernoulli_bounds(20, 2000, 0.05)
    lo2, hi2 = bernoulli_bounds(200, 20000, 0.05)
    assert lo < 0.01 < hi and hi2 - lo2 < hi - lo
    assert bernoulli_bounds(0, 2000, 0.05)[0] == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("below, p_c", [(True, 0.02), (False, 0.02)])
def test_an_increase_exactly_at_the_floor_is_rarely_judged_either_way(below: bool, p_c: float) -> None:
    """Canary 2%, baseline 1%, floor 1 point (the boundary of both nulls): the share of
    rollouts whose evidence ever reaches 1/alpha stays within alpha + 3 standard errors."""
    rng = np.random.default_rng(11 + below)
    reps, looks = 2000, 60
    x_c = np.cumsum(rng.binomial(1000, p_c, (reps, looks)), axis=1).astype(float)
    x_b = np.cumsum(rng.binomial(9000, 0.01, (reps, looks)), axis=1).astype(float)
    n_c, n_b = 1000.0 * np.arange(1, looks + 1), 9000.0 * np.arange(1, looks + 1)
    log_e = difference_floor_log_e(x_c, n_c, x_b, n_b, 0.01, below)
    assert (log_e >= LEVEL).any(axis=1).mean() <= limit(reps)
