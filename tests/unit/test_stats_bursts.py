"""Errors that do not arrive one by one (issue 11): bursts in each arm, a flaky pod whose
errors cluster. The error-rate gate must keep false rollback at the tolerance and false
promotion at the regression margin within their budgets; the exact Poisson likelihood
ratio, kept as `robust=False`, shows what happens otherwise (and that these tests can fail).
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.unit.test_stats_worlds import bursty_errors, errors, first, flaky_pod_errors, limit
from vigil.stats.evidence import FAIL, PASS
from vigil.stats.rates import error_rate_evidence
from vigil.stats.sequential import baseline_dispersion

REPS = 1000
LIMIT = limit(REPS)
TOL, REG = 0.10, 0.50


@pytest.mark.parametrize("size, rpm, seed", [(3, 200, 1), (3, 1000, 2), (3, 5000, 3), (10, 200, 4), (10, 1000, 5),
                                             (10, 5000, 6)])
def test_bursts_at_the_tolerance_are_rarely_rolled_back(size: float, rpm: int, seed: int) -> None:
    data = bursty_errors(np.random.default_rng(seed), rpm, 0.1, 0.01 * (1 + TOL), 0.01, REPS, 60, size)
    kind, _ = first(error_rate_evidence(*data, TOL, REG))
    assert (kind == FAIL).mean() <= LIMIT
    plain, _ = first(error_rate_evidence(*data, TOL, REG, robust=False))
    assert (plain == FAIL).mean() >= 0.15  # the binomial split of each interval's errors is fooled


@pytest.mark.parametrize("size, rpm, seed", [(3, 1000, 7), (10, 1000, 8), (10, 5000, 9)])
def test_bursts_at_the_regression_margin_are_rarely_promoted(size: float, rpm: int, seed: int) -> None:
    data = bursty_errors(np.random.default_rng(seed), rpm, 0.1, 0.01 * (1 + REG), 0.01, REPS, 120, size)
    kind, _ = first(error_rate_evidence(*data, TOL, REG))
    assert (kind == PASS).mean() <= LIMIT


@pytest.mark.parametrize("rpm, seed", [(1000, 10), (5000, 11)])
def test_one_flaky_pod_in_each_version_does_not_roll_back_a_canary_at_the_tolerance(rpm: int, seed: int) -> None:
    data = flaky_pod_errors(np.random.default_rng(seed), rpm, 0.1, 0.01 * (1 + TOL), 0.01, REPS)
    kind, _ = first(error_rate_evidence(*data, TOL, REG))
    assert (kind == FAIL).mean() <= LIMIT


def test_the_baseline_dispersion_reads_the_burst_size() -> None:
    rng = np.random.default_rng(12)
    poisson_like = baseline_dispersion(*errors(rng, 5000, 0.1, 0.01, 0.01, 200, 120)[2:])[:, -1]
    bursts = baseline_dispersion(*bursty_errors(rng, 5000, 0.1, 0.01, 0.01, 200, 120, 10.0)[2:])[:, -1]
    assert 1.0 <= np.median(poisson_like) <= 1.5  # 1, times the 84% bound's factor
    assert np.median(bursts) >= 10  # geometric bursts of mean 10: E[k^2] / E[k] = 19


def test_what_robustness_costs_on_clean_poisson_traffic() -> None:
    """Errors x2 at 1000 req/min (10%): still caught within the hour; a healthy canary still
    passes within four hours. Medians are reported in docs/analysis.md."""
    rng = np.random.default_rng(13)
    kind, minute = first(error_rate_evidence(*errors(rng, 1000, 0.1, 0.02, 0.01, REPS), TOL, REG))
    assert (kind == FAIL).mean() >= 0.98 and np.median(minute) <= 20
    kind, minute = first(error_rate_evidence(*errors(rng, 1000, 0.1, 0.01, 0.01, REPS, 240), TOL, REG), min_samples=200)
    assert (kind == PASS).mean() >= 0.95 and np.median(minute) <= 90
