"""Latency quantiles from Prometheus histogram buckets, compared canary vs baseline.

A histogram only says how many requests fell between bucket edges, so a quantile shift is
tested through what it does at an edge: if the canary's latencies were the baseline's
stretched by a factor s, the share of canary requests slower than an edge u would equal
the baseline's share slower than u/s. The gate therefore

1. picks the edge u whose baseline exceedance is closest to 1 - q (about 1% for p99),
   from the baseline counts *before* each interval, so the choice is predictable;
2. bounds the exceedance ratio rho0 = S_b(u/(1+tol)) / S_b(u) a tolerated stretch could
   produce there, from the bucket geometry and the baseline's counts (from above for Fail,
   from below, at the regression stretch, for Pass; see `tail_edges`);
3. runs the rate-ratio e-process on "slower than u" counts against rho0.

Resolution: only requests crossing an edge are visible. A shift that keeps every request
inside its bucket cannot be detected; the bound on rho0 is what the bucket geometry allows
under a concave log-survival in log latency. With the contract's buckets
(..., 0.2, 0.3, 0.5, 0.75, 1, ...) neighbouring edges are 1.33-1.67x apart, so shifts of
10-30% are seen through the share of requests they push past the next edge, which is
large in a tail but can be small when the quantile sits just below an edge.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from vigil.api.gates import Gate, MetricKind
from vigil.stats.data import LatencyHistogram
from vigil.stats.evidence import (
    EvidenceCall,
    GateEvidence,
    Thresholds,
    all_of,
    any_of,
    cumulative,
    not_computed,
    ratio,
)
from vigil.stats.rates import CHANGE_ALTERNATIVES, with_change
from vigil.stats.report import gate_verdict
from vigil.stats.result import Verdict
from vigil.stats.sequential import (
    TAIL_PRIOR,
    exposure_ratio,
    mantel_haenszel_ratio,
    rate_ratio_interval,
    rate_ratio_llr,
    rate_ratio_side,
    shiryaev_roberts_log_e,
)
from vigil.stats.tails import Survival, survival, tail_edges, tail_rows, tail_sides  # noqa: F401  (re-exported)

SLOT_WEIGHTS = [1.0, 3.0]  # the edge just above the quantile carries most of a slower tail's signal
QUANTILE = {MetricKind.LATENCY_P50: 0.5, MetricKind.LATENCY_P99: 0.99}


def exceeding(counts: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Counts above edge j (bins after j), for (..., B) counts and indices broadcastable to (...)."""
    size = counts.shape[-1]
    base = np.arange(0, counts.size, size).reshape(counts.shape[:-1])  # a flat gather: take_along_axis's elements
    return counts.sum(axis=-1) - np.add.accumulate(counts, axis=-1).reshape(-1)[base + j]


def latency_evidence(edges: np.ndarray, c: np.ndarray, b: np.ndarray, quantile: float, tolerance: float,
                     regression: float | None = None, last: bool = False, pass_rows: int | None = None,
                     fail_side: bool = True) -> GateEvidence:
    """Bin counts per interval c (canary), b (baseline) shaped (..., T, B).

    One e-process per bracketing edge, each choosing its edge before the interval from
    the baseline's history (predictable, so each stays a test martingale); Fail averages
    the two (weights fixed in advance) against a (1 + tolerance) stretch, Pass needs both
    against a (1 + regression) stretch.

    `b` may have fewer leading axes than `c` (one baseline for a batch of canaries, as in the
    plan): what depends on the baseline alone, the edges and their bounds, is computed once.
    `last`: only the evidence at the end of the window, shaped (..., 1) (all a verdict reads).
    `pass_rows`: the Pass evidence only for the first rows of the leading axis (the plan
    reads the first row's); `fail_side=False`: Pass only (an edge is still usable only where
    both sides' bounds are, so both are bounded).
    """
    c, b = np.asarray(c, dtype=float), np.asarray(b, dtype=float)
    before = np.add.accumulate(b, axis=-2) - b
    reg = tolerance if regression is None else regression
    at_fail, at_pass = tail_rows(edges, before, quantile, tolerance, reg)
    assert at_fail is not None and at_pass is not None  # both margins are given
    # both edges at once: the slot is a leading axis, with the canary's extra leading axes (a
    # plan's effects) left as ones where only the baseline's history chose the edges
    j, rho0, usable = (_slot_axis(v, c.ndim - b.ndim) for v in at_fail)
    _, rho0_pass, usable_pass = (_slot_axis(v, c.ndim - b.ndim) for v in at_pass)
    usable = usable & usable_pass
    n_c_all, n_b_all = c.sum(axis=-1), b.sum(axis=-1)
    n_c = np.where(usable, n_c_all, 0.0)
    n_b = np.where(usable, n_b_all, 0.0)
    x_c, x_b = exceeding(c, j), exceeding(b, j)
    fail = rate_ratio_side(x_c, x_b, n_c, n_b, rho0, TAIL_PRIOR, True, last) if fail_side else None
    if pass_rows is not None:
        x_c, n_c = x_c[:, :pass_rows], n_c[:, :pass_rows]
    both = rate_ratio_side(x_c, x_b, n_c, n_b, rho0_pass, TAIL_PRIOR, False, last)
    n_c_cum, n_b_cum = cumulative(n_c_all), cumulative(n_b_all)
    if last:
        n_c_cum, n_b_cum = n_c_cum[..., -1:], n_b_cum[..., -1:]
    passed = all_of([both[0], both[1]])
    return GateEvidence(any_of([fail[0], fail[1]], SLOT_WEIGHTS) if fail is not None else not_computed(passed),
                        passed, n_c_cum, n_b_cum)


def _slot_axis(rows: np.ndarray, extra: int) -> np.ndarray:
    """`tail_rows`' rows (2, ...) with `extra` axes of one after the slot axis, so that they
    broadcast against a canary with that many more leading axes than the baseline."""
    rows = np.asarray(rows)
    return rows.reshape(rows.shape[:1] + (1,) * extra + rows.shape[1:]) if extra > 0 else rows


def latency_change_log_e(edges: np.ndarray, c: np.ndarray, b: np.ndarray, quantile: float, tolerance: float
                         ) -> np.ndarray:
    """Log of a change detector (..., T) for "the canary's tail has become slower than the
    tolerated stretch at some point": at each bracketing edge (chosen predictably, as in
    `latency_evidence`), the Shiryaev-Roberts e-detector of the per-interval likelihood ratios
    of its exceedance counts at CHANGE_ALTERNATIVES x the bound rho0; the two edges' detectors
    averaged with SLOT_WEIGHTS (a mean of e-detectors is one)."""
    c, b = np.asarray(c, dtype=float), np.asarray(b, dtype=float)
    before = np.add.accumulate(b, axis=-2) - b
    llrs = []
    for j, rho0, usable in tail_edges(edges, before, quantile, tolerance, "fail"):
        a = exposure_ratio(np.where(usable, c.sum(axis=-1), 0.0), np.where(usable, b.sum(axis=-1), 0.0), rho0)
        llrs.append(rate_ratio_llr(exceeding(c, j), exceeding(b, j), a, CHANGE_ALTERNATIVES))
    both = shiryaev_roberts_log_e(np.stack(llrs, axis=-3))  # both edges' detectors in one recursion
    return any_of([both[..., 0, :], both[..., 1, :]], SLOT_WEIGHTS)


def histogram_quantile(edges: np.ndarray, counts: np.ndarray, quantile: float) -> float:
    """Prometheus' histogram_quantile on bin counts: linear interpolation inside the bucket."""
    total = counts.sum()
    if total <= 0:
        return float("nan")
    cum = np.add.accumulate(counts)
    i = int(np.searchsorted(cum, quantile * total))
    if i >= edges.size or not np.isfinite(edges[i]):
        return float(edges[np.isfinite(edges)][-1])
    lo = 0.0 if i == 0 else float(edges[i - 1])
    below = 0.0 if i == 0 else float(cum[i - 1])
    inside = float(counts[i])
    return lo + (float(edges[i]) - lo) * ((quantile * total - below) / inside if inside > 0 else 1.0)


def latency_evidence_call(data: LatencyHistogram, gate: Gate) -> EvidenceCall:
    """The verdict's evidence (`latency_evidence` at the end of the window) as a shareable call;
    windows share it only with the same bucket edges."""
    edges, b = data.buckets(data.baseline)
    _, c = data.buckets(data.canary)
    return EvidenceCall.of(gate, (c, b), partial(latency_evidence, edges, quantile=QUANTILE[gate.metric],
                                                 tolerance=gate.tolerance, regression=gate.regression, last=True),
                           edges.tobytes())


def latency_verdict(data: LatencyHistogram, gate: Gate, th: Thresholds, ev: GateEvidence | None = None) -> Verdict:
    """`ev`: the evidence of `latency_evidence_call`, when computed with other windows'."""
    q = QUANTILE[gate.metric]
    edges, _ = data.buckets(data.baseline)
    call = latency_evidence_call(data, gate)
    c, b = call.arrays
    ev = call() if ev is None else ev
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
    verdict = gate_verdict(gate.metric, ev, th, describe=describe, statistic=statistic, tolerance=gate.tolerance,
                           regression=gate.regression, effect=rr - 1, interval=(lo - 1, hi - 1), figures=figures)
    if th.change_alpha is None:
        return verdict
    return with_change(verdict, latency_change_log_e(edges, c, b, q, gate.tolerance), data.timestamps, th)


def _ms(seconds: float) -> str:
    return "n/a" if not np.isfinite(seconds) else f"{1000 * seconds:.0f}ms"
