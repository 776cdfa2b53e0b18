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
    lognormal_cdf,
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
    (below, _, ok_below), (above, _, ok_above) = tail_edges(LATENCY_EDGES, probs * 1e6, 0.99, TOL)
    assert ok_below and ok_above
    assert LATENCY_EDGES[below] == 0.3 and LATENCY_EDGES[above] == 0.5  # true p99 is 0.347 s
    assert quantile(latency_cdf(), 0.99) == pytest.approx(0.347, abs=0.001)


@pytest.mark.parametrize("world", [latency_cdf, lognormal_cdf])
def test_the_bounds_enclose_the_exceedance_ratio_a_stretch_really_causes(world) -> None:
    """Fail's rho0 is at least the ratio a tolerated stretch causes, at both edges (Fail
    averages the two e-processes, so both must be valid). Pass's is at most the ratio a
    regression stretch causes at one edge at least (Pass needs both edges, so one valid
    edge suffices): in the two-population world the lower edge sits where the body hands
    over to the slow tail, the log-survival is convex there and its Pass bound is not."""
    cdf, probs = world(), bins(world()) * 1e7
    pass_ok = []
    for (j, fail, ok), (k, passed, ok_pass) in zip(tail_edges(LATENCY_EDGES, probs, 0.99, TOL, "fail"),
                                                   tail_edges(LATENCY_EDGES, probs, 0.99, REG, "pass")):
        u = LATENCY_EDGES[j]
        assert ok and ok_pass and j == k
        assert fail >= (1 - cdf(u / (1 + TOL))) / (1 - cdf(u))
        assert passed >= 1.0
        pass_ok.append(passed <= (1 - cdf(u / (1 + REG))) / (1 - cdf(u)))
    assert any(pass_ok)
    if world is lognormal_cdf:
        assert all(pass_ok)


def test_the_former_plug_in_was_below_the_true_ratio_for_a_lognormal_tail() -> None:
    """Log-log interpolation over the bucket below the edge: what failed canaries at exactly
    the tolerance (issue 11). Kept here as the reason for the bound."""
    cdf = lognormal_cdf()
    u, lower = 0.5, 0.3
    plug_in = ((1 - cdf(lower)) / (1 - cdf(u))) ** (np.log(1 + TOL) / np.log(u / lower))
    assert plug_in < (1 - cdf(u / (1 + TOL))) / (1 - cdf(u))


@pytest.mark.parametrize("world, rpm, seed", [(latency_cdf, 1000, 1), (latency_cdf, 5000, 2), (lognormal_cdf, 5000, 3),
                                              (lognormal_cdf, 200, 4)])
def test_a_canary_stretched_by_exactly_the_tolerance_is_rarely_failed(world, rpm: int, seed: int) -> None:
    c, b = histogram_counts(np.random.default_rng(seed), rpm, 0.1, bins(world(1 + TOL)), bins(world()), REPS)
    kind, _ = first(latency_evidence(LATENCY_EDGES, c, b, 0.99, TOL, REG))
    assert (kind == FAIL).mean() <= LIMIT


def test_a_slower_tail_is_caught_as_far_as_the_buckets_allow() -> None:
    """The bound costs power where the buckets are coarse: a +30% p99 from a slower 3% tail
    needs 5000 req/min with the contract's buckets (x1.33-1.67 apart), while a lognormal
    latency stretched by 30% is caught at 1000 req/min; buckets 1.1x apart catch the tail."""
    slower = latency_cdf(tail_scale=tail_scale_for_p99(0.30))
    assert quantile(slower, 0.99) / quantile(latency_cdf(), 0.99) == pytest.approx(1.3, rel=1e-6)
    assert quantile(slower, 0.5) == pytest.approx(quantile(latency_cdf(), 0.5), rel=0.01)
    rng = np.random.default_rng(5)
    c, b = histogram_counts(rng, 5000, 0.1, bins(slower), bins(latency_cdf()), REPS)
    kind, minute = first(latency_evidence(LATENCY_EDGES, c, b, 0.99, TOL, REG))
    assert ((kind == FAIL) & (minute <= 60)).mean() >= 0.6
    c, b = histogram_counts(rng, 1000, 0.1, bins(lognormal_cdf(1.3)), bins(lognormal_cdf()), REPS)
    kind, minute = first(latency_evidence(LATENCY_EDGES, c, b, 0.99, TOL, REG))
    assert ((kind == FAIL) & (minute <= 30)).mean() >= 0.95
    fine = np.append(np.geomspace(0.005, 5, 73), np.inf)
    c, b = histogram_counts(rng, 5000, 0.1, bins(slower, fine), bins(latency_cdf(), fine), REPS)
    kind, minute = first(latency_evidence(fine, c, b, 0.99, TOL, REG))
    assert ((kind == FAIL) & (minute <= 30)).mean() >= 0.9


def test_a_zero_or_negative_bucket_is_folded_into_the_first_positive_one() -> None:
    """Some exporters have a `le="0"` bucket (a coarse timer rounds fast requests down to zero)
    and a malformed one may have a negative edge. Latency is judged on log latency, so such
    edges are folded into the first positive bucket: the verdict and the plan are exactly those
    of the same requests without the extra edges, and numpy warns of no log of zero or less."""
    import dataclasses
    import warnings

    from vigil.stats import CounterPanel, CounterSeries, analyze
    from vigil.stats.data import LatencyHistogram

    from bench.timing import GATES, fresh, window

    data = fresh(window(10))
    gates = [g for g in GATES if g.metric in (MetricKind.LATENCY_P50, MetricKind.LATENCY_P99)]

    def with_edges(panel: CounterPanel, extra: dict[str, float]) -> CounterPanel:
        first = min((s for s in panel.series), key=lambda s: float(s.labels["le"]) if s.labels["le"] != "+Inf"
                    else np.inf)
        added = [CounterSeries({**first.labels, "le": le}, first.values * share) for le, share in extra.items()]
        return CounterPanel(panel.timestamps, tuple(panel.series) + tuple(added))

    def verdicts(extra: dict[str, float]) -> list[dict]:
        latency = {}
        for kind in (MetricKind.LATENCY_P50, MetricKind.LATENCY_P99):
            item = data[kind]
            assert isinstance(item, LatencyHistogram)
            latency[kind] = dataclasses.replace(item, baseline=with_edges(item.baseline, extra),
                                                canary=with_edges(item.canary, extra))
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            result = analyze(gates, latency, alpha_fail=0.05, alpha_pass=0.05, min_samples=500)
        return [v.to_dict() for v in result.verdicts]

    plain = verdicts({})
    assert all(v["plan"]["timeToPassSeconds"] is not None for v in plain)
    assert verdicts({"0": 0.25}) == plain  # a quarter of the first bucket's requests timed at zero
    assert verdicts({"-1": 0.0, "0": 0.25}) == plain
