"""Latency quantiles from histogram buckets."""

from __future__ import annotations

import numpy as np
import pytest
from vigil.api.gates import DEFAULT_REGRESSION, DEFAULT_TOLERANCE, MetricKind
from vigil.stats.evidence import FAIL
from vigil.stats.latency import histogram_quantile, latency_evidence, tail_edges

from tests.unit.test_stats_worlds import (
    LATENCY_EDGES,
    bins,
    first,
    histogram_counts,
    latency_cdf,
    limit,
    quantile,
    tail_scale_for_p99,
)

REPS = 2000
LIMIT = limit(REPS)
TOL, REG = DEFAULT_TOLERANCE[MetricKind.LATENCY_P99], DEFAULT_REGRESSION[MetricKind.LATENCY_P99]


def test_histogram_quantile_interpolates_inside_the_bucket_like_prometheus() -> None:
    edges = np.array([0.1, 0.2, 0.4, np.inf])
    counts = np.array([50.0, 30.0, 20.0, 0.0])
    # rank 90 lies in (0.2, 0.4]: 80 below, 20 inside -> 0.2 + 0.2 * 10/20
    assert histogram_quantile(edges, counts, 0.9) == pytest.approx(0.3)
    assert histogram_quantile(edges, np.array([0.0, 0.0, 0.0, 5.0]), 0.5) == 0.4  # +Inf bucket: last finite edge


def test_tail_edges_bracket_the_baseline_quantile() -> None:
    probs = bins(latency_cdf())
    (below, rho_below, ok_below), (above, rho_above, ok_above) = tail_edges(LATENCY_EDGES, probs * 1e6, 0.99, 0.02)
    assert ok_below and ok_above
    assert LATENCY_EDGES[below] == 0.3 and LATENCY_EDGES[above] == 0.5  # true p99 is 0.347 s
    assert quantile(latency_cdf(), 0.99) == pytest.approx(0.347, abs=0.001)
    assert 1.0 < rho_below < rho_above < 1.5


def test_a_canary_stretched_by_exactly_the_tolerance_is_rarely_failed() -> None:
    c, b = histogram_counts(np.random.default_rng(1), 1000, 0.1, bins(latency_cdf(1 + TOL)), bins(latency_cdf()), REPS)
    kind, _ = first(latency_evidence(LATENCY_EDGES, c, b, 0.99, TOL, REG))
    assert (kind == FAIL).mean() <= LIMIT


def test_a_30_percent_slower_p99_with_the_same_median_is_caught() -> None:
    """Within 30 minutes at the tolerance this test was first written for (0.02); at the
    default tolerance (0.10, reset from the benchmark-tuned 0.02) the price is time: within
    60 minutes (77% within 30, see docs/analysis.md)."""
    slower = latency_cdf(tail_scale=tail_scale_for_p99(0.30))
    assert quantile(slower, 0.99) / quantile(latency_cdf(), 0.99) == pytest.approx(1.3, rel=1e-6)
    assert quantile(slower, 0.5) == pytest.approx(quantile(latency_cdf(), 0.5), rel=0.01)
    c, b = histogram_counts(np.random.default_rng(2), 1000, 0.1, bins(slower), bins(latency_cdf()), REPS)
    kind, minute = first(latency_evidence(LATENCY_EDGES, c, b, 0.99, 0.02, REG))
    assert ((kind == FAIL) & (minute <= 30)).mean() >= 0.94
    kind, minute = first(latency_evidence(LATENCY_EDGES, c, b, 0.99, TOL, REG))
    assert ((kind == FAIL) & (minute <= 60)).mean() >= 0.95
