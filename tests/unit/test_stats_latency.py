"""Latency quantiles from histogram buckets."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.methods import first_decision, quantile_from_bins, vigil
from bench.scenarios import LATENCY_EDGES, Scenario, World, _bins, latency_mixture, tail_scale_for_p99
from bench.simulate import simulate
from vigil.api.gates import DEFAULT_TOLERANCE, MetricKind
from vigil.stats.evidence import FAIL
from vigil.stats.latency import histogram_quantile, tail_edges

ALPHA, REPS = 0.05, 2000
LIMIT = ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / REPS)


def test_histogram_quantile_interpolates_inside_the_bucket_like_prometheus() -> None:
    edges = np.array([0.1, 0.2, 0.4, np.inf])
    counts = np.array([50.0, 30.0, 20.0, 0.0])
    # rank 90 lies in (0.2, 0.4]: 80 below, 20 inside -> 0.2 + 0.2 * 10/20
    assert histogram_quantile(edges, counts, 0.9) == pytest.approx(0.3)
    assert quantile_from_bins(np.array([[50.0, 30.0, 20.0, 0.0]]), 0.9, edges)[0] == pytest.approx(0.3)
    assert histogram_quantile(edges, np.array([0.0, 0.0, 0.0, 5.0]), 0.5) == 0.4  # +Inf bucket: last finite edge


def test_tail_edges_bracket_the_baseline_quantile() -> None:
    probs = _bins(latency_mixture())
    (below, rho_below, ok_below), (above, rho_above, ok_above) = tail_edges(LATENCY_EDGES, probs * 1e6, 0.99, 0.02)
    assert ok_below and ok_above
    assert LATENCY_EDGES[below] == 0.3 and LATENCY_EDGES[above] == 0.5  # true p99 is 0.347 s
    assert 1.0 < rho_below < rho_above < 1.5


def test_a_canary_stretched_by_exactly_the_tolerance_is_rarely_failed() -> None:
    tol = DEFAULT_TOLERANCE[MetricKind.LATENCY_P99]
    stretched = _bins(lambda x: latency_mixture()(x / (1 + tol)))
    kind, _ = first_decision(vigil("latencyP99", simulate(Scenario("b", "latencyP99", canary=World(latency=stretched)), 1000, REPS, 1)))
    assert (kind == FAIL).mean() <= LIMIT


def test_a_30_percent_slower_p99_with_the_same_median_is_caught_within_30_minutes() -> None:
    slower = _bins(latency_mixture(tail_scale_for_p99(0.30)))
    kind, minute = first_decision(vigil("latencyP99", simulate(Scenario("p99", "latencyP99", canary=World(latency=slower)), 1000, REPS, 2)))
    assert ((kind == FAIL) & (minute <= 30)).mean() >= 0.94
