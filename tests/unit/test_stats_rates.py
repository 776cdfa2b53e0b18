"""Error rate and shadow disagreement: error rates checked by simulation (fixed seeds).

Tolerances cannot pass by accident: a false-alarm rate is asserted to be at most
alpha + 3 standard errors over 2000 simulated rollouts with a look every minute for an
hour, at the *boundary* of the null (the hardest case), not only in A/A.
"""

from __future__ import annotations

import numpy as np
from vigil.api.gates import DEFAULT_TOLERANCE, Gate, MetricKind
from vigil.stats import analyze
from vigil.stats.evidence import FAIL, PASS, classify
from vigil.stats.rates import error_rate_evidence, shadow_evidence

from tests.unit.test_stats_worlds import (
    arms,
    errors,
    first,
    limit,
    poisson,
    request_counts,
)

ALPHA = 0.05
REPS = 2000
LIMIT = limit(REPS)
TOL = DEFAULT_TOLERANCE[MetricKind.ERROR_RATE]


def test_canary_exactly_at_the_tolerated_error_rate_is_rarely_failed() -> None:
    for rpm, seed in ((200, 1), (1000, 2), (5000, 3)):
        kind, _ = first(error_rate_evidence(*errors(np.random.default_rng(seed), rpm, 0.1, 0.011, 0.01, REPS), TOL))
        assert (kind == FAIL).mean() <= LIMIT, rpm


def test_without_an_indifference_zone_the_tolerated_rate_is_rarely_passed() -> None:
    kind, _ = first(error_rate_evidence(*errors(np.random.default_rng(4), 5000, 0.1, 0.011, 0.01, REPS), TOL))
    assert (kind == PASS).mean() <= LIMIT


def test_doubled_error_rate_is_rolled_back_fast_at_1000_requests_per_minute() -> None:
    """Within 15 minutes in the median with the exact Poisson likelihood ratio; the default,
    burst-robust test pays a few minutes for its robustness (test_stats_bursts.py)."""
    data = errors(np.random.default_rng(5), 1000, 0.1, 0.02, 0.01, REPS)
    kind, minute = first(error_rate_evidence(*data, TOL, 0.5, robust=False))
    assert (kind == FAIL).mean() >= 0.98
    assert np.median(minute) <= 15
    kind, minute = first(error_rate_evidence(*data, TOL, 0.5))
    assert (kind == FAIL).mean() >= 0.98
    assert np.median(minute) <= 20


def test_changing_weight_with_a_shared_error_trend_does_not_fail_the_canary() -> None:
    """Weights 10 -> 25 -> 50% while both versions' error rate climbs 1% -> 2%: pooled counts
    make the canary look worse (it got more of the late, bad minutes); the stratified test
    does not, while a repeated z-test on the pooled counts fails most rollouts."""
    rng = np.random.default_rng(6)
    t = np.arange(60)
    share = np.where(t < 15, 0.1, np.where(t < 30, 0.25, 0.5))
    p = 0.01 + 0.01 * t / 60
    lam_c, lam_b = 1000 * share, 1000 * (1 - share)
    x_c, x_b = poisson(rng, lam_c * p, REPS), poisson(rng, lam_b * p, REPS)
    n_c, n_b = x_c + poisson(rng, lam_c * (1 - p), REPS), x_b + poisson(rng, lam_b * (1 - p), REPS)
    kind, _ = first(error_rate_evidence(n_c, x_c, n_b, x_b, TOL, 0.5))
    assert (kind == FAIL).mean() <= LIMIT
    X_c, N_c, X_b, N_b = (np.cumsum(a, axis=-1) for a in (x_c, n_c, x_b, n_b))
    pooled = (X_c + X_b) / (N_c + N_b)
    z = (X_c / N_c - X_b / N_b) / np.sqrt(pooled * (1 - pooled) * (1 / N_c + 1 / N_b))
    assert (z > 1.645).any(axis=-1).mean() >= 0.3


def test_evidence_never_passes_below_min_samples() -> None:
    rng = np.random.default_rng(0)
    n_c, n_b = np.full(30, 100.0), np.full(30, 900.0)
    ev = error_rate_evidence(n_c, rng.poisson(0.2, 30) * 1.0, n_b, rng.poisson(9.0, 30) * 1.0, TOL, 0.5, None, 0.001)
    assert (classify(ev, ALPHA, ALPHA, min_samples=10_000) != PASS).all()


def test_shadow_disagreement_at_the_tolerance_is_rarely_failed_and_3_percent_above_it_is_caught() -> None:
    tol = DEFAULT_TOLERANCE[MetricKind.SHADOW_DISAGREEMENT]
    rng = np.random.default_rng(7)
    m, _ = arms(1000, 0.1, 60)

    def run(share: float) -> tuple[np.ndarray, np.ndarray]:
        x = poisson(rng, m * share, REPS)
        return first(shadow_evidence(x + poisson(rng, m * (1 - share), REPS), x, tol, 0.05))

    kind, _ = run(tol)
    assert (kind == FAIL).mean() <= LIMIT
    kind, minute = run(tol + 0.03)
    assert ((kind == FAIL) & (minute <= 30)).mean() >= 0.95


def test_error_rate_verdict_reports_rates_ratio_interval_and_margins() -> None:
    n_c, x_c, n_b, x_b = (a[0] for a in errors(np.random.default_rng(9), 1000, 0.1, 0.02, 0.01, 1, 30))
    verdict = analyze([Gate(metric="errorRate")], {MetricKind.ERROR_RATE: request_counts(n_c, x_c, n_b, x_b)},
                      alpha_fail=0.05, alpha_pass=0.05, min_samples=200).verdicts[0]
    assert verdict.outcome.value == "Fail"
    lo, hi = verdict.interval
    assert lo < verdict.effect < hi and lo > TOL  # the whole interval is beyond the tolerance
    assert verdict.figures["canaryRate"] > verdict.figures["baselineRate"]
    assert verdict.samples[1] > 2000 and verdict.samples[0] > 20000
    assert (verdict.tolerance, verdict.regression) == (0.1, 0.5)
    assert "error rate" in verdict.explanation and "regression x1.50" in verdict.explanation
    assert "\n" not in verdict.explanation
