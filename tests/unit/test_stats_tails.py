"""The latency gate's edge geometry (`tails`) gives exactly what its first implementation gave.

The reference below is that implementation, kept verbatim but for its name: the rewrite shares
the two sides' work and gathers on flat indices, and must not change one bit.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from vigil.stats.tails import survival, tail_edges, tail_sides

EDGES = np.array([0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.5, 5.0, np.inf])


def _at(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """values[..., index] elementwise, for (..., B) values and (...) indices (a plain gather on
    the flattened leading axes: the same elements as take_along_axis, without its overhead)."""
    index = np.clip(index, 0, values.shape[-1] - 1)
    if values.ndim == 1:
        return values[index]
    index = np.broadcast_to(index, values.shape[:-1])
    flat = values.reshape(-1, values.shape[-1])
    return flat[np.arange(flat.shape[0]), index.reshape(-1)].reshape(index.shape)


def reference_tail_edges(edges: np.ndarray, counts: np.ndarray, quantile: float, tolerance: float,
                         side: str = "fail") -> list:
    """The implementation before `tails` (kept as the reference)."""
    total, surv, s_lo, s_hi = survival(counts)
    index = np.arange(edges.size)
    finite = np.isfinite(edges)
    log_edge = np.log(np.where(finite, edges, 1.0))
    eligible = finite & (index >= 1) & (surv > 0)
    enough = total >= 5 / (1 - quantile)
    below_ok = eligible & (surv >= 1 - quantile)
    above_ok = eligible & (surv < 1 - quantile)
    j_below = np.where(below_ok, index, -1).max(axis=-1)
    j_above = np.where(above_ok, index, edges.size).min(axis=-1)
    stretch = np.log1p(tolerance)
    result = []
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for j, ok in ((j_below, below_ok.any(axis=-1)), (j_above, above_ok.any(axis=-1))):
            j = np.clip(j, 1, edges.size - 1)
            target = log_edge[j] - stretch  # log(u / s)
            if side == "fail":
                nxt = np.minimum(j + 1, edges.size - 1)
                has_next = (j + 1 < edges.size) & finite[nxt]
                slope = np.log(_at(s_hi, j) / _at(s_lo, nxt)) / (log_edge[nxt] - log_edge[j])
                concave = np.where(has_next & (_at(s_lo, nxt) > 0), np.exp(stretch * slope), np.inf)
                k = np.searchsorted(log_edge[finite], target, side="right") - 1  # largest edge <= u/s
                geometric = np.where(k >= 0, _at(s_hi, k), 1.0) / _at(s_lo, j)
                rho0 = np.minimum(concave, geometric)
            else:
                k = np.searchsorted(log_edge[finite], target, side="right") - 1
                span = log_edge[np.clip(k, 0, None)] - log_edge[np.clip(k - 1, 0, None)]
                slope = np.log(_at(s_lo, k - 1) / _at(s_hi, k)) / np.where(span > 0, span, 1.0)
                concave = np.where((k >= 1) & (span > 0), np.exp(stretch * np.clip(np.nan_to_num(slope), 0, None)), 1.0)
                m = np.searchsorted(log_edge[finite], target, side="left")  # smallest edge >= u/s
                geometric = np.where(m < j, _at(s_lo, m) / _at(s_hi, j), 1.0)
                rho0 = np.maximum(np.maximum(concave, np.nan_to_num(geometric, nan=1.0)), 1.0)
            usable = ok & enough & np.isfinite(rho0) & (rho0 > 0)
            result.append((j, np.where(usable, rho0, 1.0), usable))
    return result


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and bool(np.all((a == b) | (np.isnan(a) & np.isnan(b))))


histograms = st.tuples(st.integers(0, 2**32 - 1), st.integers(1, 40), st.floats(0.0, 3000.0), st.floats(0.3, 3.0),
                       st.booleans(), st.booleans())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histograms, st.sampled_from([0.5, 0.9, 0.99]), st.sampled_from([0.0, 0.05, 0.1, 0.3, 1.0]),
       st.sampled_from([0.15, 0.3, 0.6, 2.0]))
def test_tail_edges_are_the_reference(case: tuple, quantile: float, tolerance: float, regression: float) -> None:
    seed, t, rate, scale, cumulative, no_inf = case
    rng = np.random.default_rng(seed)
    edges = EDGES[:-1] if no_inf else EDGES
    cdf = np.append(np.clip(np.log(edges[:-1] / (0.06 * scale)) / 2.0 + 0.5, 0, 1), 1.0)
    counts = rng.poisson(rate * np.diff(cdf, prepend=0.0), size=(t, edges.size)).astype(float)
    if cumulative:  # what the evidence passes: the counts before each interval
        counts = np.cumsum(counts, axis=0) - counts
    for shaped in (counts, counts.sum(axis=0)):
        fails, passes = tail_sides(edges, shaped, quantile, tolerance, regression, survival(shaped))
        for got, side, margin in ((fails, "fail", tolerance), (passes, "pass", regression)):
            want = reference_tail_edges(edges, shaped, quantile, margin, side)
            assert len(got) == len(want) == 2
            for g, w in zip(got, want):
                assert all(_same(x, y) for x, y in zip(g, w))
            assert all(_same(x, y) for g, w in zip(tail_edges(edges, shaped, quantile, margin, side), want)
                       for x, y in zip(g, w))
