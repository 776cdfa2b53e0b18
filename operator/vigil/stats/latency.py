"""Latency quantiles from Prometheus histogram buckets, compared canary vs baseline.

A histogram only says how many requests fell between bucket edges, so a quantile shift is
tested through what it does at an edge: if the canary's latencies were the baseline's
stretched by a factor s, the share of canary requests slower than an edge u would equal
the baseline's share slower than u/s. The gate therefore

1. picks the edge u whose baseline exceedance is closest to 1 - q (about 1% for p99),
   from the baseline counts *before* each interval, so the choice is predictable;
2. derives the tolerated exceedance ratio rho0 = S_b(u/(1+tol)) / S_b(u) from the
   baseline's own tail, interpolating the survival function log-linearly in log latency
   between the two edges around u/(1+tol) (exact for power-law tails);
3. runs the rate-ratio e-process on "slower than u" counts against rho0.

Resolution: only requests crossing an edge are visible. A shift that keeps every request
inside its bucket cannot be detected, and the tolerance is honoured only as well as the
log-linear interpolation fits the tail between two edges. With the contract's buckets
(..., 0.2, 0.3, 0.5, 0.75, 1, ...) neighbouring edges are 1.33-1.67x apart, so shifts of
10-30% are seen through the share of requests they push past the next edge, which is
large in a tail but can be small when the quantile sits just below an edge.
"""

from __future__ import annotations

import numpy as np

from vigil.api.gates import Gate, MetricKind
from vigil.stats.data import LatencyHistogram
from vigil.stats.evidence import (
    GateEvidence,
    Thresholds,
    all_of,
    any_of,
    cumulative,
    ratio,
)
from vigil.stats.report import gate_verdict
from vigil.stats.result import Verdict
from vigil.stats.sequential import (
    TAIL_PRIOR,
    mantel_haenszel_ratio,
    rate_ratio_evidence,
    rate_ratio_interval,
)

SLOT_WEIGHTS = [1.0, 3.0]  # the edge just above the quantile carries most of a slower tail's signal
QUANTILE = {MetricKind.LATENCY_P50: 0.5, MetricKind.LATENCY_P99: 0.99}


def tail_edges(edges: np.ndarray, counts: np.ndarray, quantile: float, tolerance: float
               ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The two edges that bracket the baseline's quantile, each as (index, rho0, usable).

    `counts` are baseline bin counts (..., B) (bin i ends at edges[i]). The first edge is
    the highest one the baseline still exceeds with probability >= 1 - q, the second the
    lowest one it exceeds less often: a slower tail shows at one or both. rho0 is the
    exceedance ratio a (1 + tolerance) stretch of the baseline would produce there. An
    edge is usable once the baseline has 5 / (1 - q) requests and exceeds it at all.
    """
    total = counts.sum(axis=-1)
    surv = ratio(total[..., None] - np.cumsum(counts, axis=-1), total[..., None])
    lower = np.concatenate([np.full(surv.shape[:-1] + (1,), np.nan), surv[..., :-1]], axis=-1)
    index = np.arange(edges.size)
    eligible = np.isfinite(edges) & (index >= 1) & (surv > 0)
    enough = total >= 5 / (1 - quantile)
    safe = np.where(np.isfinite(edges), edges, 1.0)
    below_ok = eligible & (surv >= 1 - quantile)
    above_ok = eligible & (surv < 1 - quantile)
    j_below = np.where(below_ok, index, -1).max(axis=-1)
    j_above = np.where(above_ok, index, edges.size).min(axis=-1)
    result = []
    for j, ok in ((j_below, below_ok.any(axis=-1)), (j_above, above_ok.any(axis=-1))):
        j = np.clip(j, 1, edges.size - 1)
        usable = ok & enough
        s_j = np.take_along_axis(surv, j[..., None], -1)[..., 0]
        s_lo = np.take_along_axis(lower, j[..., None], -1)[..., 0]
        span = np.log(safe[j] / safe[j - 1])
        with np.errstate(divide="ignore", invalid="ignore"):
            rho0 = (s_lo / s_j) ** (np.log1p(tolerance) / np.where(span > 0, span, 1.0))
        result.append((j, np.where(usable & np.isfinite(rho0), rho0, 1.0), usable & np.isfinite(rho0)))
    return result


def exceeding(counts: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Counts above edge j (bins after j), for (..., B) counts and (...) indices."""
    return counts.sum(axis=-1) - np.take_along_axis(np.cumsum(counts, axis=-1), j[..., None], -1)[..., 0]


def latency_evidence(edges: np.ndarray, c: np.ndarray, b: np.ndarray, quantile: float, tolerance: float,
                     regression: float | None = None) -> GateEvidence:
    """Bin counts per interval c (canary), b (baseline) shaped (..., T, B).

    One e-process per bracketing edge, each choosing its edge before the interval from
    the baseline's history (predictable, so each stays a test martingale); Fail averages
    the two (weights fixed in advance) against a (1 + tolerance) stretch, Pass needs both
    against a (1 + regression) stretch.
    """
    c, b = np.asarray(c, dtype=float), np.asarray(b, dtype=float)
    before = np.cumsum(b, axis=-2) - b
    fails, passes = [], []
    reg = tolerance if regression is None else regression
    slots = zip(tail_edges(edges, before, quantile, tolerance), tail_edges(edges, before, quantile, reg))
    for (j, rho0, usable), (_, rho0_pass, usable_pass) in slots:
        usable = usable & usable_pass
        n_c = np.where(usable, c.sum(axis=-1), 0.0)
        n_b = np.where(usable, b.sum(axis=-1), 0.0)
        fail, passed = rate_ratio_evidence(exceeding(c, j), exceeding(b, j), n_c, n_b, rho0, TAIL_PRIOR,
                                           rho0_pass=rho0_pass)
        fails.append(fail)
        passes.append(passed)
    return GateEvidence(any_of(fails, SLOT_WEIGHTS), all_of(passes), cumulative(c.sum(axis=-1)), cumulative(b.sum(axis=-1)))


def histogram_quantile(edges: np.ndarray, counts: np.ndarray, quantile: float) -> float:
    """Prometheus' histogram_quantile on bin counts: linear interpolation inside the bucket."""
    total = counts.sum()
    if total <= 0:
        return float("nan")
    cum = np.cumsum(counts)
    i = int(np.searchsorted(cum, quantile * total))
    if i >= edges.size or not np.isfinite(edges[i]):
        return float(edges[np.isfinite(edges)][-1])
    lo = 0.0 if i == 0 else float(edges[i - 1])
    below = 0.0 if i == 0 else float(cum[i - 1])
    inside = float(counts[i])
    return lo + (float(edges[i]) - lo) * ((quantile * total - below) / inside if inside > 0 else 1.0)


def latency_verdict(data: LatencyHistogram, gate: Gate, th: Thresholds) -> Verdict:
    q = QUANTILE[gate.metric]
    edges, b = data.buckets(data.baseline)
    _, c = data.buckets(data.canary)
    ev = latency_evidence(edges, c, b, q, gate.tolerance, gate.regression)
    q_c, q_b = histogram_quantile(edges, c.sum(axis=0), q), histogram_quantile(edges, b.sum(axis=0), q)
    name = f"p{round(q * 100)}"
    figures: dict[str, float | None] = {
        "canaryQuantile": q_c, "baselineQuantile": q_b,
        "relativeChange": q_c / q_b - 1 if q_b and np.isfinite(q_b) else None,
    }
    n_c, n_b = c.sum(axis=-1), b.sum(axis=-1)
    tested = []
    for j, rho0, usable in tail_edges(edges, b.sum(axis=0), q, gate.tolerance):
        if bool(usable):
            x_c, x_b = exceeding(c, np.full(c.shape[0], j)), exceeding(b, np.full(b.shape[0], j))
            tested.append((mantel_haenszel_ratio(x_c, x_b, n_c, n_b) / float(rho0), int(j), float(rho0), x_c, x_b))
    describe = f"{name} {_ms(q_c)} vs baseline {_ms(q_b)}"
    statistic = f"ratio of request shares slower than the bucket edges around the baseline's {name}"
    if not tested:
        return gate_verdict(gate.metric, ev, th, describe=describe + "; too few baseline requests to test the tail",
                            statistic=statistic, tolerance=gate.tolerance, regression=gate.regression,
                            figures=figures)
    _, j, rho0, x_c, x_b = max(tested, key=lambda t: t[0] if np.isfinite(t[0]) else -1.0)
    rr = mantel_haenszel_ratio(x_c, x_b, n_c, n_b)
    lo, hi = rate_ratio_interval(x_c, x_b, n_c, n_b, th.alpha_fail, TAIL_PRIOR)
    edge = float(edges[j])
    share_c, share_b = float(ratio(x_c.sum(), n_c.sum())), float(ratio(x_b.sum(), n_b.sum()))
    figures |= {"edgeSeconds": edge, "canaryShareAbove": share_c, "baselineShareAbove": share_b,
                "toleratedRatio": rho0}
    describe += (f"; slower than {_ms(edge)}: {100 * share_c:.2f}% vs {100 * share_b:.2f}% "
                 f"(x{rr:.2f}, tolerated x{rho0:.2f})")
    return gate_verdict(gate.metric, ev, th, describe=describe, statistic=statistic, tolerance=gate.tolerance,
                        regression=gate.regression, effect=rr - 1, interval=(lo - 1, hi - 1), figures=figures)


def _ms(seconds: float) -> str:
    return "n/a" if not np.isfinite(seconds) else f"{1000 * seconds:.0f}ms"
