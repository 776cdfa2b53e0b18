"""Error rate and shadow disagreement: error rates checked by simulation (fixed seeds).

Tolerances cannot pass by accident: a false-alarm rate is asserted to be at most
alpha + 3 standard errors over 2000 simulated rollouts with a look every minute for an
hour, at the *boundary* of the null (the hardest case), not only in A/A.
"""

from __future__ import annotations

import math

import numpy as np

from bench.methods import first_decision, vigil, z_two_proportions
from bench.scenarios import BASE_ERROR, Scenario, World
from bench.simulate import simulate
from vigil.api.gates import DEFAULT_TOLERANCE, Gate, MetricKind
from vigil.stats import analyze
from vigil.stats.evidence import FAIL, PASS
from vigil.stats.rates import error_rate_evidence

ALPHA = 0.05
REPS = 2000
LIMIT = ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / REPS)
TOL = DEFAULT_TOLERANCE[MetricKind.ERROR_RATE]


def decisions(scenario: Scenario, rpm: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    return first_decision(vigil(scenario.family, simulate(scenario, rpm, REPS, seed)))


def test_canary_exactly_at_the_tolerated_error_rate_is_rarely_failed() -> None:
    at_limit = Scenario("boundary", "errorRate", canary=World(error=BASE_ERROR * (1 + TOL)))
    for rpm, seed in ((200, 1), (1000, 2), (5000, 3)):
        kind, _ = decisions(at_limit, rpm, seed)
        assert (kind == FAIL).mean() <= LIMIT, rpm


def test_canary_exactly_at_the_tolerated_error_rate_is_rarely_passed() -> None:
    at_limit = Scenario("boundary", "errorRate", canary=World(error=BASE_ERROR * (1 + TOL)))
    kind, _ = decisions(at_limit, 5000, 4)
    assert (kind == PASS).mean() <= LIMIT


def test_doubled_error_rate_is_rolled_back_fast_at_1000_requests_per_minute() -> None:
    doubled = Scenario("x2", "errorRate", canary=World(error=2 * BASE_ERROR))
    kind, minute = decisions(doubled, 1000, 5)
    assert (kind == FAIL).mean() >= 0.98
    assert np.median(minute) <= 15


def test_changing_weight_with_a_shared_error_trend_does_not_fail_the_canary() -> None:
    """Weights 10 -> 25 -> 50% while both versions' error rate climbs 1% -> 2%: pooled counts
    make the canary look worse (it got more of the late, bad minutes); the stratified test
    does not, while a repeated z-test on the pooled counts fails most rollouts."""
    scenario = Scenario("steps", "errorRate", weights=((0, 0.1), (15, 0.25), (30, 0.5)), error_trend=0.01)
    counts = simulate(scenario, 1000, REPS, 6)
    kind, _ = first_decision(vigil("errorRate", counts))
    assert (kind == FAIL).mean() <= LIMIT
    cumulative = [np.cumsum(a, axis=-1) for a in (counts.errors_c, counts.requests_c, counts.errors_b, counts.requests_b)]
    pooled_z_fails = (z_two_proportions(*cumulative) > 1.645).any(axis=-1).mean()
    assert pooled_z_fails >= 0.3


def test_evidence_never_passes_below_min_samples() -> None:
    rng = np.random.default_rng(0)
    n_c, n_b = np.full(30, 100.0), np.full(30, 900.0)
    ev = error_rate_evidence(n_c, rng.poisson(0.2, 30) * 1.0, n_b, rng.poisson(9.0, 30) * 1.0, TOL)
    from vigil.stats.evidence import classify

    assert (classify(ev, ALPHA, ALPHA, min_samples=10_000) != PASS).all()


def test_shadow_disagreement_at_the_tolerance_is_rarely_failed_and_3_percent_is_caught() -> None:
    tol = DEFAULT_TOLERANCE[MetricKind.SHADOW_DISAGREEMENT]
    kind, _ = decisions(Scenario("b", "shadowDisagreement", canary=World(disagreement=tol)), 1000, 7)
    assert (kind == FAIL).mean() <= LIMIT
    kind, minute = decisions(Scenario("bad", "shadowDisagreement", canary=World(disagreement=0.03)), 1000, 8)
    assert ((kind == FAIL) & (minute <= 30)).mean() >= 0.95


def test_error_rate_verdict_reports_rates_ratio_and_interval() -> None:
    from bench.windows import window

    counts = simulate(Scenario("x2", "errorRate", canary=World(error=0.02)), 1000, 1, 9, minutes=30)
    verdict = analyze([Gate(metric="errorRate")], window(counts, 0), confidence=0.95, min_samples=200).verdicts[0]
    assert verdict.outcome.value == "Fail"
    lo, hi = verdict.interval
    assert lo < verdict.effect < hi and lo > TOL  # the whole interval is beyond the tolerance
    assert verdict.figures["canaryRate"] > verdict.figures["baselineRate"]
    assert verdict.samples[1] > 2000 and verdict.samples[0] > 20000
    assert "error rate" in verdict.explanation and "\n" not in verdict.explanation
