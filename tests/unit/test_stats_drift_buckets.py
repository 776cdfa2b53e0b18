"""Drift that a global distance dilutes (issue 11): a large relative change in one rare score
bucket. Per-bucket tests (the Fail budget split between the global test and the buckets)
catch it; a bucket inside its tolerated ratio is rarely failed; a bucket at its regression
ratio is rarely promoted."""

from __future__ import annotations

import numpy as np

from tests.unit.test_stats_worlds import first, histogram_counts, limit, score_bins
from vigil.stats.drift import bucket_ratio, drift_evidence
from vigil.stats.evidence import FAIL, PASS

REPS = 1000
LIMIT = limit(REPS)
TOL, REG = 0.02, 0.10
BUCKETS = 11  # the contract's score edges 0.1 ... 1.0 and +Inf


def top_bucket(factor: float) -> np.ndarray:
    p = score_bins()
    p[-1] *= factor  # the top bucket holds about 1% of scores
    return p / p.sum()


def test_the_tolerated_bucket_ratio_spends_the_whole_tolerance_in_an_average_bucket() -> None:
    r = bucket_ratio(TOL, BUCKETS)
    assert abs((r - 1) * np.log(r) / BUCKETS - TOL) < 1e-9
    assert 1.4 < r < 1.6 and bucket_ratio(REG, BUCKETS) > 2


def test_three_times_the_scores_in_a_rare_bucket_are_caught_where_the_global_distance_is_not() -> None:
    c, b = histogram_counts(np.random.default_rng(1), 1000, 0.1, top_bucket(3.0), score_bins(), REPS)
    kind, minute = first(drift_evidence(c, b, TOL, regression=REG), min_samples=200)
    assert ((kind == FAIL) & (minute <= 45)).mean() >= 0.95
    alone, minute = first(drift_evidence(c, b, TOL, regression=REG, per_bucket=False), min_samples=200)
    assert ((alone == FAIL) & (minute <= 45)).mean() <= 0.1


def test_a_bucket_at_its_tolerated_ratio_is_rarely_rolled_back() -> None:
    c, b = histogram_counts(np.random.default_rng(2), 5000, 0.1, top_bucket(bucket_ratio(TOL, BUCKETS)), score_bins(),
                            REPS)
    kind, _ = first(drift_evidence(c, b, TOL, regression=REG))
    assert (kind == FAIL).mean() <= LIMIT


def test_a_bucket_at_its_regression_ratio_is_rarely_promoted_though_unchanged_scores_are() -> None:
    rng = np.random.default_rng(3)
    c, b = histogram_counts(rng, 5000, 0.1, top_bucket(bucket_ratio(REG, BUCKETS)), score_bins(), REPS, 120)
    kind, _ = first(drift_evidence(c, b, TOL, regression=REG))
    assert (kind == PASS).mean() <= LIMIT
    c, b = histogram_counts(rng, 1000, 0.1, score_bins(), score_bins(), 300)
    kind, _ = first(drift_evidence(c, b, TOL, regression=REG), min_samples=200)
    assert (kind == PASS).mean() >= 0.9
