"""Which histogram edges a latency gate watches, and the exceedance ratio a tolerated stretch
could produce there (see `vigil.stats.latency` for the method).

Split from `latency` because every latency verdict and plan asks for it several times (both
sides, at every prefix): the Fail and Pass sides share their edges and survival bounds, and the
gathers run on flat indices, which costs a fraction of the generic take-along-axis route.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from vigil.stats.evidence import nan_to_num, ratio
from vigil.stats.quiet import quiet

Z_BOUND = 1.0
"""One-sided 84% Poisson score bounds on the baseline counts behind rho0, so that a small,
noisy baseline tail widens the bound instead of tightening it."""

_MAX = float(np.finfo(float).max)


def _survival_bounds(above: np.ndarray, total: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) bounds on S at every edge from the counts above it (score bounds)."""
    half, root = Z_BOUND**2 / 2, Z_BOUND * np.sqrt(above + Z_BOUND**2 / 4)
    lo = ratio(np.maximum(above + half - root, 0.0), total[..., None])
    hi = ratio(np.minimum(above + half + root, total[..., None]), total[..., None])
    return lo, hi


Survival = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def survival(counts: np.ndarray) -> Survival:
    """(total, survival at every edge, its lower and upper score bounds) of bin counts (..., B):
    what both sides of `tail_edges` read, so a caller asking for both computes it once."""
    total = counts.sum(axis=-1)
    above = total[..., None] - np.add.accumulate(counts, axis=-1)
    surv = ratio(above, total[..., None])
    s_lo, s_hi = _survival_bounds(above, total)
    return total, surv, s_lo, s_hi


def _gather(values: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """i -> values[..., i] elementwise, for (..., B) values and (...) indices already in [0, B)."""
    if values.ndim == 1:
        return lambda i: values[i]
    flat = np.ascontiguousarray(values).reshape(-1)
    base = np.arange(0, flat.size, values.shape[-1]).reshape(values.shape[:-1])
    return lambda i: flat[base + i]


def _clip_slope(slope: np.ndarray) -> np.ndarray:
    """np.clip(np.nan_to_num(slope), 0, None) without their wrappers: NaN -> 0, +inf -> the
    largest float, negative -> 0."""
    return np.minimum(np.maximum(np.where(np.isnan(slope), 0.0, slope), 0.0), _MAX)


Slot = tuple[np.ndarray, np.ndarray, np.ndarray]


def tail_edges(edges: np.ndarray, counts: np.ndarray, quantile: float, tolerance: float, side: str = "fail",
               geometry: Survival | None = None) -> list[Slot]:
    """The two edges that bracket the baseline's quantile, each as (index, rho0, usable).

    `counts` are baseline bin counts (..., B) (bin i ends at edges[i]). The first edge is
    the highest one the baseline still exceeds with probability >= 1 - q, the second the
    lowest one it exceeds less often: a slower tail shows at one or both. An edge is usable
    once the baseline has 5 / (1 - q) requests and exceeds it at all.

    rho0 bounds the exceedance ratio S_b(u/s) / S_b(u) that a stretch s = 1 + tolerance of
    the baseline would produce at edge u, from the bucket geometry rather than a plug-in:

    * side="fail" (null: no slower than s): an *upper* bound. Monotonicity alone gives
      S_b(e_k) / S_b(u) with e_k the largest edge <= u/s (valid always, but wide); if the
      tail's log-survival is concave in log latency (lognormal, Weibull and normal tails;
      power laws exactly at the limit), its local slope at u is at most the secant over the
      bucket *above* u, which gives (S(u) / S(u_next)) ** (log s / log(u_next / u)). The
      smaller of the two is used. (The former plug-in, the secant of the bucket below u,
      is biased low for such tails and failed canaries at exactly the tolerance.)
    * side="pass" (null: at least as slow as s = 1 + regression): a *lower* bound, the
      larger of 1, S_b(e_m) / S_b(u) (e_m the smallest edge >= u/s) and the secant over the
      last whole bucket below u/s, which under the same concavity is no steeper than the
      slope between u/s and u.

    Survival values enter through one-sided 84% Poisson bounds in the conservative
    direction, so sparse baseline tails widen the bound.
    """
    fail, passed = tail_sides(edges, counts, quantile, tolerance if side == "fail" else None,
                              tolerance if side != "fail" else None, geometry)
    return fail if side == "fail" else passed


def tail_sides(edges: np.ndarray, counts: np.ndarray, quantile: float, tolerance: float | None,
               regression: float | None, geometry: Survival | None = None) -> tuple[list[Slot], list[Slot]]:
    """`tail_edges` for the Fail side at `tolerance` and the Pass side at `regression` at once
    (either may be None, then its list is empty): both bracket the same edges."""
    fail, passed = tail_rows(edges, counts, quantile, tolerance, regression, geometry)
    return _split(fail), _split(passed)


def _split(rows: Slot | None) -> list[Slot]:
    """The two slots of `tail_rows`' rows (below, above) as (index, rho0, usable) each."""
    if rows is None:
        return []
    j, rho0, usable = rows
    return [(j[0], rho0[0], usable[0]), (j[1], rho0[1], usable[1])]


def tail_rows(edges: np.ndarray, counts: np.ndarray, quantile: float, tolerance: float | None,
              regression: float | None, geometry: Survival | None = None) -> tuple[Slot | None, Slot | None]:
    """`tail_sides` with both slots as the rows of a leading axis: (index, rho0, usable) shaped
    (2, ...) for the Fail side and for the Pass side (None where its margin is None), so that a
    caller can test both edges in one call."""
    total, surv, s_lo, s_hi = geometry if geometry is not None else survival(counts)
    size = edges.size
    index = np.arange(size)
    finite = np.isfinite(edges)
    log_edge = np.log(np.where(finite, edges, 1.0))
    log_finite = log_edge[finite]
    eligible = finite & (index >= 1) & (surv > 0)
    enough = total >= 5 / (1 - quantile)
    high = surv >= 1 - quantile
    below_ok = eligible & high
    above_ok = eligible & (surv < 1 - quantile)
    j_below = np.where(below_ok, index, -1).max(axis=-1)
    j_above = np.where(above_ok, index, size).min(axis=-1)
    lo_at, hi_at = _gather(s_lo), _gather(s_hi)
    # both slots at once, as the rows of a leading axis (below, above): every operation is
    # elementwise, so each slot's values are what its own pass gives, at half the calls
    j = np.minimum(np.maximum(np.array([j_below, j_above]), 1), size - 1)
    ok = np.array([below_ok.any(axis=-1), above_ok.any(axis=-1)]) & enough
    fails: Slot | None = None
    passes: Slot | None = None
    with quiet(divide="ignore", invalid="ignore", over="ignore"):
        lo_j, hi_j = lo_at(j), hi_at(j)
        if tolerance is not None:
            stretch = np.log1p(tolerance)
            target = log_edge[j] - stretch  # log(u / s)
            nxt = np.minimum(j + 1, size - 1)
            has_next = (j + 1 < size) & finite[nxt]
            lo_next = lo_at(nxt)
            slope = np.log(hi_j / lo_next) / (log_edge[nxt] - log_edge[j])
            concave = np.where(has_next & (lo_next > 0), np.exp(stretch * slope), np.inf)
            k = np.searchsorted(log_finite, target, side="right") - 1  # largest edge <= u/s
            geometric = np.where(k >= 0, hi_at(np.maximum(k, 0)), 1.0) / lo_j
            fails = _slot(j, np.minimum(concave, geometric), ok)
        if regression is not None:
            stretch = np.log1p(regression)
            target = log_edge[j] - stretch
            k = np.searchsorted(log_finite, target, side="right") - 1
            k0, k1 = np.maximum(k, 0), np.maximum(k - 1, 0)
            span = log_edge[k0] - log_edge[k1]
            slope = np.log(lo_at(k1) / hi_at(k0)) / np.where(span > 0, span, 1.0)
            concave = np.where((k >= 1) & (span > 0), np.exp(stretch * _clip_slope(slope)), 1.0)
            m = np.searchsorted(log_finite, target, side="left")  # smallest edge >= u/s
            geometric = np.where(m < j, lo_at(np.minimum(m, size - 1)) / hi_j, 1.0)
            passes = _slot(j, np.maximum(np.maximum(concave, nan_to_num(geometric, 1.0)), 1.0), ok)
    return fails, passes


def _slot(j: np.ndarray, rho0: np.ndarray, ok: np.ndarray) -> Slot:
    usable = ok & np.isfinite(rho0) & (rho0 > 0)
    return j, np.where(usable, rho0, 1.0), usable
