"""Prediction drift: has the canary's score distribution moved away from the baseline's?

The gate tests the whole histogram at once. Writing d_j = (p_canary,j - p_baseline,j) /
sqrt(p_pooled,j), the squared length |d|^2 is the chi-square distance between the two
histograms, which for small shifts equals the PSI users know (PSI = sum (p-q) ln(p/q) ~
sum (p-q)^2 / p). The tolerance is a PSI-scale radius: Fail needs evidence that |d|^2 >
tolerance, Pass needs evidence that |d|^2 < tolerance (see `sequential.ball_log_e`).
Bins with fewer than 5 expected counts on either side are merged, so the normal
approximation behind the test holds also at low traffic.

PSI and Jensen-Shannon are reported too, but never used alone: at small counts their
plug-in values are dominated by noise (E[PSI] ~ (bins-1) * (1/n_canary + 1/n_baseline)
with no drift at all), which is why a fixed "PSI > 0.1" rule rolls back healthy canaries.
"""

from __future__ import annotations

import functools
from functools import partial

import numpy as np

from vigil.api.gates import Gate, MetricKind
from vigil.stats.data import ScoreHistogram
from vigil.stats.evidence import EvidenceCall, GateEvidence, Thresholds, any_of, nan_to_num, ratio
from vigil.stats.quiet import quiet
from vigil.stats.report import gate_verdict
from vigil.stats.result import Verdict
from vigil.stats.roots import brentq
from vigil.stats.sequential import TAIL_PRIOR, ball_log_e, rate_ratio_evidence, rate_ratio_side

DRIFT_SCALE = 0.1  # prior sd of each standardised bin shift (PSI of a few tenths spread over bins)
MIN_EXPECTED = 5.0


def chi_distance(C: np.ndarray, B: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(|S|, information, dimension) from cumulative bin counts C (canary), B (baseline) (..., K).

    S = information * d where information = n_c n_b / (n_c + n_b) is the effective sample
    size of a difference of two proportions.
    """
    n_c, n_b = C.sum(axis=-1), B.sum(axis=-1)
    n = n_c + n_b
    pooled = C + B
    share_c = ratio(n_c, n)[..., None]
    big = (pooled * share_c >= MIN_EXPECTED) & (pooled * (1 - share_c) >= MIN_EXPECTED)
    rest_c = np.where(big, 0.0, C).sum(axis=-1, keepdims=True)
    rest_b = np.where(big, 0.0, B).sum(axis=-1, keepdims=True)
    cells_c = np.concatenate([np.where(big, C, 0.0), rest_c], axis=-1)
    cells_b = np.concatenate([np.where(big, B, 0.0), rest_b], axis=-1)
    used = np.concatenate([big, (rest_c + rest_b) > 0], axis=-1)
    p_c, p_b = ratio(cells_c, n_c[..., None]), ratio(cells_b, n_b[..., None])
    p = ratio(cells_c + cells_b, n[..., None])
    d2 = np.where(used & (p > 0), (p_c - p_b) ** 2 / np.where(p > 0, p, 1.0), 0.0).sum(axis=-1)
    dim = np.maximum(used.sum(axis=-1) - 1, 0)
    info = np.where((dim > 0) & (n_c > 0) & (n_b > 0), ratio(n_c * n_b, n), 0.0)
    info = nan_to_num(info)
    return info * np.sqrt(nan_to_num(d2)), info, dim


@functools.lru_cache(maxsize=1024)
def bucket_ratio(tolerance: float, buckets: int) -> float:
    """The share ratio tolerated in *every* bucket: the change that would use the whole
    PSI-scale tolerance in a bucket of average share 1/K, where p (r - 1) ln r = tolerance.
    It depends on the policy and the bucket count only, so each root is found once."""
    target = max(buckets, 1) * tolerance
    return brentq(lambda r: float((r - 1.0) * np.log(r) - target), 1.0 + 1e-9, 1e6)


def bucket_log_e(c: np.ndarray, b: np.ndarray, margin: float, inner: bool = False, last: bool = False
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Per-bucket e-processes (..., K, T), r = `bucket_ratio`(margin, K), each bucket's
    counts as events and all requests as exposure (the rate-ratio test of `sequential`).

    inner=False (Fail): against "share ratio canary/baseline <= r" and against ">= 1/r": a
    large relative change in one rare bucket, which the global distance dilutes, shows here.
    inner=True (Pass): against ">= r" and against "<= 1/r" (the bucket shown unchanged).
    `last`: only the end of the window, (..., K, 1)."""
    c, b = np.asarray(c, dtype=float), np.asarray(b, dtype=float)
    r = bucket_ratio(margin, c.shape[-1])
    # every bucket has the same exposure (all requests), so it stays one row (..., 1, T): the rate-ratio
    # terms that depend on the exposure alone are computed once, not once per bucket (the same values)
    n_c, n_b = c.sum(axis=-1)[..., None, :], b.sum(axis=-1)[..., None, :]
    x_c, x_b = np.moveaxis(c, -1, -2), np.moveaxis(b, -1, -2)
    if inner:
        above, below = rate_ratio_evidence(x_c, x_b, n_c, n_b, 1.0 / r, TAIL_PRIOR, rho0_pass=r, last=last)
        return below, above
    return rate_ratio_evidence(x_c, x_b, n_c, n_b, r, TAIL_PRIOR, rho0_pass=1.0 / r, last=last)


def bucket_tests(c: np.ndarray, b: np.ndarray, tolerance: float, regression: float, last: bool = False
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`bucket_log_e` at the tolerance (up, down: Fail) and inside the regression (below, above:
    Pass), the four as two calls: each side's two ratios are the rows of a leading axis (every
    operation of a side is elementwise over its rows, so each is what its own call gives)."""
    c, b = np.asarray(c, dtype=float), np.asarray(b, dtype=float)
    r_fail, r_pass = bucket_ratio(tolerance, c.shape[-1]), bucket_ratio(regression, c.shape[-1])
    n_c, n_b = c.sum(axis=-1)[..., None, :], b.sum(axis=-1)[..., None, :]
    x_c, x_b = np.moveaxis(c, -1, -2), np.moveaxis(b, -1, -2)
    rows = (2,) + (1,) * x_c.ndim
    # against "ratio <= rho0": up at the tolerance, above inside the regression; against ">= rho0":
    # down at the tolerance, below inside the regression
    against_up = rate_ratio_side(x_c, x_b, n_c, n_b, np.array([r_fail, 1.0 / r_pass]).reshape(rows),
                                 TAIL_PRIOR, True, last)
    against_down = rate_ratio_side(x_c, x_b, n_c, n_b, np.array([1.0 / r_fail, r_pass]).reshape(rows),
                                   TAIL_PRIOR, False, last)
    return against_up[0], against_down[0], against_down[1], against_up[1]


RARE_SHARE = 0.005
"""A bucket with under 0.5% of the baseline's scores cannot be shown unchanged in useful time;
once the baseline has shown it that rare (20 scores in 20 / RARE_SHARE), it does not block Pass."""


def buckets_shown(c: np.ndarray, b: np.ndarray, regression: float, last: bool = False,
                  inside: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Log evidence (..., T) that no bucket's share ratio is beyond the regression's bucket
    ratio: the weakest bucket's, over the buckets that are not shown rare. Whether a bucket
    counts is decided from the baseline *before* each interval, so the rule is predictable;
    at the start every bucket counts. `last`: only the end of the window, (..., 1). `inside`:
    (below, above) of `bucket_log_e(..., inner=True)` when the caller has them."""
    below, above = bucket_log_e(c, b, regression, inner=True, last=last) if inside is None else inside
    before = np.moveaxis(np.add.accumulate(b, axis=-2) - b, -1, -2)  # (..., K, T)
    if last:
        before = before[..., -1:]
    total = before.sum(axis=-2, keepdims=True)
    rare = (total >= 20 / RARE_SHARE) & (before < 20)
    return np.min(np.where(rare, np.inf, np.minimum(below, above)), axis=-2)


def drift_evidence(c: np.ndarray, b: np.ndarray, tolerance: float, scale: float = DRIFT_SCALE,
                   regression: float | None = None, per_bucket: bool = True, last: bool = False) -> GateEvidence:
    """Score-bin counts per interval c (canary), b (baseline) shaped (..., T, K).

    Fail: against "distance <= tolerance and every bucket's share ratio within
    [1/r, r]" (`bucket_log_e`): the global ball test carries half the weight, the 2K
    one-sided bucket tests share the other half (a mean of e-values with fixed weights is an
    e-value for the intersection, never weaker than Bonferroni). Pass: against a distance
    >= regression and against any bucket's ratio beyond the regression's bucket ratio
    (`buckets_shown`; Pass needs all, an intersection-union: no split needed).
    `last`: only the evidence at the end of the window, shaped (..., 1) (all a verdict reads)."""
    C, B = np.add.accumulate(c, axis=-2), np.add.accumulate(b, axis=-2)
    if last:
        C, B = C[..., -1:, :], B[..., -1:, :]
    norm_s, info, dim = chi_distance(C, B)
    reg = tolerance if regression is None else regression
    fail, _ = ball_log_e(norm_s, info, dim, np.sqrt(tolerance), scale)
    _, passed = ball_log_e(norm_s, info, dim, np.sqrt(reg), scale)
    if per_bucket and c.shape[-1] > 1:
        up, down, below, above = bucket_tests(c, b, tolerance, reg, last=last)
        parts = [np.moveaxis(up, -2, 0), np.moveaxis(down, -2, 0)]
        buckets = [p[k] for p in parts for k in range(p.shape[0])]
        fail = any_of([fail, *buckets], [float(len(buckets))] + [1.0] * len(buckets),
                      in_order=last and c.shape[-2] > 1)
        passed = np.minimum(passed, buckets_shown(c, b, reg, last=last, inside=(below, above)))
    return GateEvidence(fail, passed, C.sum(axis=-1), B.sum(axis=-1))


def psi(p: np.ndarray, q: np.ndarray) -> float:
    """Population stability index of two histograms (counts), with half-count smoothing."""
    p = (p + 0.5) / (p.sum() + 0.5 * p.size)
    q = (q + 0.5) / (q.sum() + 0.5 * q.size)
    return float(np.sum((p - q) * np.log(p / q)))


def jensen_shannon(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence (natural log, in [0, ln 2]) of two histograms (counts)."""
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        return float(np.sum(np.where(a > 0, a * np.log(np.where(a > 0, a, 1.0) / np.where(m > 0, m, 1.0)), 0.0)))

    return 0.5 * kl(p) + 0.5 * kl(q)


def bucket_ratios(c: np.ndarray, b: np.ndarray, n_c: np.ndarray, n_b: np.ndarray, counted: np.ndarray) -> np.ndarray:
    """`mantel_haenszel_ratio` of every bucket (counts per interval (T, K)) at once, NaN where
    not `counted`: each bucket's terms summed as one contiguous row, as the per-bucket call sums them."""
    n = n_c + n_b
    with quiet(divide="ignore", invalid="ignore", over="ignore"):  # absurd counts: inf, as the scalar path
        num = np.nansum(np.where(n > 0, np.ascontiguousarray(c.T) * n_b / n, 0.0), axis=-1)
        den = np.nansum(np.where(n > 0, np.ascontiguousarray(b.T) * n_c / n, 0.0), axis=-1)
        out = np.where(den == 0, np.where(num > 0, np.inf, np.nan), num / np.where(den == 0, 1.0, den))
    return np.where(counted, out, np.nan)


def distance_interval(norm_s: float, info: float, dim: int, alpha: float, scale: float = DRIFT_SCALE
                      ) -> tuple[float, float]:
    """Radii^2 (PSI scale) not rejected by either ball test at level alpha."""
    radii = np.linspace(0.0, 1.0, 1001)
    fail, passed = ball_log_e(norm_s, info, dim, radii, scale)
    kept = radii[(fail < np.log(1 / alpha)) & (passed < np.log(1 / alpha))] ** 2
    if kept.size == 0:
        return float("nan"), float("nan")
    return float(kept[0]), float(kept[-1])


def drift_evidence_call(data: ScoreHistogram, gate: Gate) -> EvidenceCall:
    """The verdict's evidence (`drift_evidence` at the end of the window), never shared: its
    per-bucket sums over a window's intervals are not always added in the same order in a
    stacked call (the last bit of a few e-values moved), and it is arithmetic, not call
    overhead, so it costs more stacked than alone."""
    _, b = data.buckets(data.baseline)
    _, c = data.buckets(data.canary)
    return EvidenceCall(None, (c, b),
                        partial(drift_evidence, tolerance=gate.tolerance, regression=gate.regression, last=True))


def drift_verdict(data: ScoreHistogram, gate: Gate, th: Thresholds, ev: GateEvidence | None = None) -> Verdict:
    """`ev`: the evidence of `drift_evidence_call`, when computed with other windows'."""
    call = drift_evidence_call(data, gate)
    c, b = call.arrays
    ev = call() if ev is None else ev
    C, B = c.sum(axis=0), b.sum(axis=0)
    norm_s, info, dim = (float(v) for v in chi_distance(C, B))
    distance = (norm_s / info) ** 2 if info > 0 else float("nan")
    unbiased = max(distance - dim / info, 0.0) if info > 0 else float("nan")
    psi_value = psi(C, B) if C.sum() and B.sum() else float("nan")
    js = jensen_shannon(C, B) if C.sum() and B.sum() else float("nan")
    lo, hi = distance_interval(norm_s, info, int(dim), th.alpha_fail)
    describe = (f"score distribution distance {unbiased:.3f} (PSI {psi_value:.3f}, JS {js:.3f}; "
                f"tolerated {gate.tolerance:.3f}, regression {gate.regression:.3f})")
    edges, _ = data.buckets(data.baseline)
    n_c, n_b = c.sum(axis=-1), b.sum(axis=-1)
    ratios = bucket_ratios(c, b, n_c, n_b, C + B >= 10)
    figures = {"psi": psi_value, "jensenShannon": js, "chiSquareDistance": distance}
    finite = np.isfinite(ratios) & (ratios > 0)
    if finite.any():
        k = int(np.nanargmax(np.where(finite, np.abs(np.log(np.where(finite, ratios, 1.0))), -1.0)))
        upper = "+Inf" if not np.isfinite(edges[k]) else f"{edges[k]:g}"
        r_tol = bucket_ratio(gate.tolerance, C.size)
        describe += f"; most changed bucket (le {upper}) x{ratios[k]:.2f} (tolerated x{1 / r_tol:.2f}..x{r_tol:.2f})"
        figures |= {"worstBucketRatio": float(ratios[k]), "worstBucketUpperEdge": float(edges[k]),
                    "bucketToleratedRatio": r_tol}
    return gate_verdict(
        MetricKind.PREDICTION_DRIFT, ev, th, describe=describe,
        statistic="chi-square distance between score histograms (PSI scale), bias-corrected",
        tolerance=gate.tolerance, regression=gate.regression, effect=unbiased, interval=(lo, hi),
        figures=figures,
    )
