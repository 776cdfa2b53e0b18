"""The plan on every verdict: projected time to Pass and the smallest detectable effect.

Both are computed with the gate's own evidence on an expected path; the tests compare them
with simulated medians of the real (noisy) process. The expected path crosses where the
e-process's mean drift does; a noisy first passage comes earlier in the median (an inverse
Gaussian's median is below its mean), so the plan may err on the slow side, by design.
"""

from __future__ import annotations

import numpy as np
import pytest
from vigil.api.gates import Gate, MetricKind
from vigil.stats import Outcome, analyze
from vigil.stats.evidence import FAIL, PASS
from vigil.stats.rates import gate_error_evidence

from tests.unit.test_stats_worlds import (
    GROUP_POSITIVE,
    errors,
    first,
    group_predictions,
    groups,
    request_counts,
)

GATE = Gate(metric="errorRate")
ALPHA_FAIL, BETA, MIN_SAMPLES = 0.01, 0.05, 200


def judge(n_c: np.ndarray, x_c: np.ndarray, n_b: np.ndarray, x_b: np.ndarray, horizon_s: float = 4 * 3600.0):
    return analyze([GATE], {MetricKind.ERROR_RATE: request_counts(n_c, x_c, n_b, x_b)}, alpha_fail=ALPHA_FAIL,
                   alpha_pass=BETA, min_samples=MIN_SAMPLES, horizon_s=horizon_s).verdicts[0]


@pytest.mark.parametrize("rpm, seed", [(1000, 1), (5000, 2)])
def test_time_to_pass_is_close_to_the_simulated_median_for_a_healthy_canary(rpm: int, seed: int) -> None:
    counts = errors(np.random.default_rng(seed), rpm, 0.1, 0.01, 0.01, 400, 240)
    kind, minute = first(gate_error_evidence(*counts, GATE), ALPHA_FAIL, BETA, MIN_SAMPLES)
    assert (kind == PASS).mean() >= 0.95
    median = float(np.median(minute)) * 60
    plans = [judge(*(a[rep, :15] for a in counts)).time_to_pass_s for rep in range(10)]
    assert all(p is not None and np.isfinite(p) for p in plans)
    assert 0.9 * median <= np.median(plans) <= 1.5 * median


def test_no_canary_traffic_gives_no_projection_and_says_why() -> None:
    zero = np.zeros(10)
    verdict = judge(zero, zero, np.full(10, 900.0), np.full(10, 9.0))
    assert verdict.time_to_pass_s is None and verdict.plan is not None and not verdict.plan.beyond_horizon
    assert "no traffic" in verdict.plan.note


def test_a_pass_beyond_the_horizon_is_reported_as_such() -> None:
    counts = errors(np.random.default_rng(3), 100, 0.05, 0.01, 0.01, 1, 15)
    verdict = judge(*(a[0] for a in counts), horizon_s=3600.0)
    assert verdict.outcome is Outcome.INCONCLUSIVE
    assert verdict.time_to_pass_s is None and verdict.plan.beyond_horizon
    assert "beyond the 60 min horizon" in verdict.explanation
    record = verdict.to_dict()
    assert record["plan"]["beyondHorizon"] is True and record["plan"]["timeToPassSeconds"] is None


def test_the_detectable_effect_is_caught_in_about_half_the_runs_within_the_horizon_and_half_of_it_is_not() -> None:
    horizon = 3600.0
    counts = errors(np.random.default_rng(4), 1000, 0.1, 0.01, 0.01, 1, 15)
    verdict = judge(*(a[0] for a in counts), horizon_s=horizon)
    effect, seconds = verdict.detectable_effect, verdict.plan.detectable_time_s
    assert effect is not None and 0 < seconds <= horizon
    assert f"x{1 + effect:.2f} errors" in verdict.explanation
    rng = np.random.default_rng(5)
    for ratio, low, high in ((1 + effect, 0.5, 1.0), (np.sqrt(1 + effect), 0.0, 0.5)):
        kind, minute = first(gate_error_evidence(*errors(rng, 1000, 0.1, 0.01 * ratio, 0.01, 400, 60), GATE), ALPHA_FAIL)
        caught = ((kind == FAIL) & (minute * 60 <= horizon)).mean()
        assert low <= caught <= high, ratio


def test_a_small_group_at_low_traffic_says_what_it_could_detect() -> None:
    """At 40 canary requests a minute, a group with 5% of the traffic can only show large gaps."""
    rng = np.random.default_rng(6)
    shares = np.array([0.6, 0.35, 0.05])
    tot_c, pos_c, tot_b, pos_b = groups(rng, 400, 0.1, GROUP_POSITIVE, GROUP_POSITIVE, 1, 30)
    # re-split the same requests into the three groups with a 5% group
    def regroup(tot: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = tot[0].sum(axis=-1)
        t = rng.multinomial(n.astype(int), shares).astype(float)
        return t, rng.binomial(t.astype(int), GROUP_POSITIVE).astype(float)
    c, b = regroup(tot_c, pos_c), regroup(tot_b, pos_b)
    gate = Gate(metric="fairnessGap")
    verdict = analyze([gate], {MetricKind.FAIRNESS_GAP: group_predictions(c[0], c[1], b[0], b[1])},
                      alpha_fail=ALPHA_FAIL, alpha_pass=BETA, min_samples=MIN_SAMPLES).verdicts[0]
    assert verdict.outcome is Outcome.INCONCLUSIVE
    effect = verdict.detectable_effect
    assert effect is not None and effect > gate.regression  # a 5% group cannot show a 10-point gap in 4 h
    assert f"{100 * effect:.0f}-point gap in group 'c' (5% of traffic)" in verdict.explanation
    assert verdict.figures["detectableEffect"] == effect
