"""Late regressions (issue 11): after hours of healthy traffic, a cumulative e-process has to
pay back the evidence it piled up for "healthy" before it can fail; the change detector
(a Shiryaev-Roberts e-detector) does not, at a false-alarm rate fixed for the horizon."""

from __future__ import annotations

import numpy as np

from tests.unit.test_stats_worlds import arms, first, limit, poisson, request_counts
from vigil.api.gates import Gate, MetricKind
from vigil.stats import Outcome, analyze
from vigil.stats.evidence import FAIL
from vigil.stats.rates import error_change_log_e, error_rate_evidence

TOL, REG = 0.10, 0.50


def late(rng: np.random.Generator, rpm: float, reps: int, healthy: int, after: int, ratio: float = 2.0):
    """Errors at 1% in both arms for `healthy` minutes, then `ratio` x in the canary."""
    minutes = healthy + after
    lam_c, lam_b = arms(rpm, 0.1, minutes)
    p = np.where(np.arange(minutes) < healthy, 0.01, 0.01 * ratio)
    x_c, x_b = poisson(rng, lam_c * p, reps), poisson(rng, lam_b * 0.01, reps)
    return x_c + poisson(rng, lam_c * (1 - p), reps), x_c, x_b + poisson(rng, lam_b * 0.99, reps), x_b


def alarm(log_e: np.ndarray, horizon: int, alpha: float) -> np.ndarray:
    hit = log_e >= np.log(horizon / alpha)
    return np.where(hit.any(axis=-1), np.argmax(hit, axis=-1) + 1.0, np.inf)


def test_a_canary_at_the_tolerance_rarely_raises_a_false_alarm_within_the_horizon() -> None:
    reps, horizon, alpha = 1000, 360, 0.05
    n_c, x_c, n_b, x_b = late(np.random.default_rng(1), 5000, reps, horizon, 0, ratio=1.0)
    x_c = x_c + poisson(np.random.default_rng(2), arms(5000, 0.1, horizon)[0] * 0.001, reps)  # 1.1% vs 1%
    assert (alarm(error_change_log_e(n_c, x_c, n_b, x_b, TOL), horizon, alpha) <= horizon).mean() <= limit(reps, alpha)


def test_errors_doubling_after_six_healthy_hours_are_caught_about_as_fast_as_fresh_ones() -> None:
    reps, healthy, horizon, alpha = 300, 360, 1440, 0.01
    for rpm, most in ((1000, 45), (10000, 10)):
        data = late(np.random.default_rng(rpm), rpm, reps, healthy, 120)
        at = alarm(error_change_log_e(*data, TOL), horizon, alpha)
        assert (at <= healthy).mean() <= limit(reps, alpha)
        delay = at[at > healthy] - healthy
        assert np.median(delay) <= most, rpm
        cumulative, minute = first(error_rate_evidence(*data, TOL, REG), alpha)
        slow = np.where(cumulative == FAIL, minute - healthy, np.inf)
        assert np.median(slow) > 2 * np.median(delay)  # what the cumulative test alone would do


def test_analyze_runs_the_detector_when_asked_and_names_it() -> None:
    data = [a[0] for a in late(np.random.default_rng(3), 10000, 1, 360, 30)]
    window = {MetricKind.ERROR_RATE: request_counts(*data)}
    plain = analyze([Gate(metric="errorRate")], window, alpha_fail=0.05, alpha_pass=0.05, min_samples=200,
                    horizon_s=24 * 3600.0).verdicts[0]
    watched = analyze([Gate(metric="errorRate")], window, alpha_fail=0.05, alpha_pass=0.05, min_samples=200,
                      horizon_s=24 * 3600.0, detect_change=True).verdicts[0]
    assert plain.outcome is not Outcome.FAIL
    assert watched.outcome is Outcome.FAIL and "change detected" in watched.explanation
    assert watched.threshold_fail == 2 * plain.threshold_fail  # half the gate's share for each test
    assert watched.figures["changeLogE"] >= watched.figures["changeLogThreshold"]


def test_a_tail_that_slows_after_six_healthy_hours_is_caught_by_the_latency_detector() -> None:
    from tests.unit.test_stats_worlds import LATENCY_EDGES, bins, lognormal_cdf
    from vigil.stats.latency import latency_change_log_e

    reps, healthy, after, horizon, alpha = 300, 360, 60, 1440, 0.01
    rng = np.random.default_rng(4)
    lam_c, lam_b = arms(5000, 0.1, healthy + after)
    slow = np.where(np.arange(healthy + after)[:, None] < healthy, bins(lognormal_cdf()), bins(lognormal_cdf(1.5)))
    c = poisson(rng, lam_c[:, None] * slow, reps)
    b = poisson(rng, lam_b[:, None] * bins(lognormal_cdf()), reps)
    at = alarm(latency_change_log_e(LATENCY_EDGES, c, b, 0.99, TOL), horizon, alpha)
    assert (at <= healthy).mean() <= limit(reps, alpha)
    assert np.median(at[at > healthy] - healthy) <= 15
    at_tolerance = poisson(rng, lam_c[:, None] * bins(lognormal_cdf(1 + TOL)), reps)
    quiet = alarm(latency_change_log_e(LATENCY_EDGES, at_tolerance, b, 0.99, TOL), horizon, alpha)
    assert (quiet <= healthy + after).mean() <= limit(reps, alpha)
