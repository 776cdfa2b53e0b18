"""The judges compared in the benchmark, each turning simulated counts into decisions.

Every method returns per-minute outcome codes (reps, minutes): FAIL (roll back), PASS
(promote now) or INCONCLUSIVE (keep watching). Only Vigil can say PASS early; the others
promote when the 60-minute analysis ends without a rollback, as Flagger and Kayenta do.

* vigil      - `vigil.stats` itself, through the same vectorised functions `analyze` uses.
* threshold  - what users configure today (Flagger/Argo style): a fixed limit checked on
               the last minute, rollback after 5 failed checks (Flagger `threshold: 5`).
* mannwhitney- Kayenta-like: Mann-Whitney U on the per-minute values of canary vs
               baseline since the start, re-run at every check, alpha 0.05.
* ztest      - a fixed-sample test (z, or chi-square for histograms) on the cumulative
               counts, re-run at every check at alpha 0.05.
* oracle     - an SPRT that knows the true canary and baseline distributions (for the
               error rate: the true ratio, against Vigil's own null boundary); the lower
               bound on time to detect for any test with the same error rate.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from bench.scenarios import CONFIDENCE_MID, LATENCY_EDGES, SCORE_EDGES, Scenario
from bench.simulate import Counts
from vigil.api.gates import DEFAULT_TOLERANCE, MetricKind
from vigil.stats.calibration import calibration_evidence, calibration_shift
from vigil.stats.drift import drift_evidence
from vigil.stats.evidence import FAIL, INCONCLUSIVE, PASS, classify
from vigil.stats.fairness import fairness_evidence
from vigil.stats.latency import latency_evidence
from vigil.stats.rates import error_rate_evidence, shadow_evidence
from vigil.stats.sequential import exposure_ratio, rate_ratio_llr

ALPHA = 0.05
MIN_SAMPLES = 200
FAILED_CHECKS = 5
FAMILIES = ("errorRate", "latencyP99", "predictionDrift", "calibration", "fairnessGap", "shadowDisagreement")


# ------------------------------------------------------------------------ vigil


def vigil_evidence(family: str, c: Counts):
    tol = DEFAULT_TOLERANCE[MetricKind(family)]
    if family == "errorRate":
        return error_rate_evidence(c.requests_c, c.errors_c, c.requests_b, c.errors_b, tol)
    if family == "latencyP99":
        return latency_evidence(LATENCY_EDGES, c.latency_c, c.latency_b, 0.99, tol)
    if family == "predictionDrift":
        return drift_evidence(c.score_c, c.score_b, tol)
    if family == "calibration":
        return calibration_evidence(c.labelled_c, c.correct_c, c.labelled_b, c.correct_b, tol)
    if family == "fairnessGap":
        return fairness_evidence(c.groups_c, c.positive_c, c.groups_b, c.positive_b, tol)
    if family == "shadowDisagreement":
        return shadow_evidence(c.compared, c.disagreed, tol)
    raise ValueError(family)


def vigil(family: str, c: Counts, alpha: float = ALPHA) -> np.ndarray:
    """Codes of one gate, or of all six gates with the false-Fail budget split among them."""
    families = FAMILIES if family == "all" else (family,)
    codes = [classify(vigil_evidence(f, c), alpha / len(families), alpha, MIN_SAMPLES) for f in families]
    stack = np.stack(codes)
    return np.where((stack == FAIL).any(axis=0), FAIL, np.where((stack == PASS).all(axis=0), PASS, INCONCLUSIVE))


# ------------------------------------------------------------------- helpers


def first_decision(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(outcome code, minute) of each rollout's first non-inconclusive answer; minute is
    counted from 1, and INCONCLUSIVE with minute = inf when nothing was decided."""
    decided = codes != INCONCLUSIVE
    has = decided.any(axis=-1)
    first = np.argmax(decided, axis=-1)
    kind = np.where(has, np.take_along_axis(codes, first[..., None], -1)[..., 0], INCONCLUSIVE)
    return kind, np.where(has, first + 1.0, np.inf)


def after_failed_checks(failed: np.ndarray, limit: int = FAILED_CHECKS) -> np.ndarray:
    return np.where(np.cumsum(failed, axis=-1) >= limit, FAIL, INCONCLUSIVE)


def at_once(failed: np.ndarray) -> np.ndarray:
    return np.where(failed, FAIL, INCONCLUSIVE)


def rate(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), 0.0)


def mann_whitney(canary: np.ndarray, baseline: np.ndarray, alternative: str, start: int = 3) -> np.ndarray:
    """p < alpha of Mann-Whitney on minutes [0, t] at every check t, shape (R, T)."""
    R, T = canary.shape[:2]
    failed = np.zeros((R, T), dtype=bool)
    for t in range(start - 1, T):
        res = stats.mannwhitneyu(canary[:, : t + 1], baseline[:, : t + 1], alternative=alternative,
                                 axis=1, method="asymptotic")
        failed[:, t] = np.nan_to_num(res.pvalue, nan=1.0) < ALPHA
    return failed


def z_two_proportions(x_c, n_c, x_b, n_b) -> np.ndarray:
    """z of p_c - p_b with the pooled standard error (cumulative counts)."""
    p = rate(x_c + x_b, n_c + n_b)
    se = np.sqrt(p * (1 - p) * (rate(1, n_c) + rate(1, n_b)))
    return rate(rate(x_c, n_c) - rate(x_b, n_b), se)


def quantile_from_bins(counts: np.ndarray, q: float, edges: np.ndarray = LATENCY_EDGES) -> np.ndarray:
    """histogram_quantile over the last axis, vectorised (the last finite edge for +Inf)."""
    total = counts.sum(axis=-1, keepdims=True)
    cum = np.cumsum(counts, axis=-1)
    rank = q * total
    i = np.argmax(cum >= rank, axis=-1)
    finite = edges[np.isfinite(edges)]
    i = np.minimum(i, finite.size - 1)
    upper = finite[i]
    lower = np.where(i > 0, finite[np.maximum(i - 1, 0)], 0.0)
    below = np.where(i > 0, np.take_along_axis(cum, np.maximum(i - 1, 0)[..., None], -1)[..., 0], 0.0)
    inside = np.take_along_axis(counts, i[..., None], -1)[..., 0]
    frac = rate(rank[..., 0] - below, inside)
    return np.where(total[..., 0] > 0, lower + (upper - lower) * np.clip(frac, 0, 1), np.nan)


def oracle_sprt(llr_per_minute: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    return np.where(np.cumsum(llr_per_minute, axis=-1) >= np.log(1 / alpha), FAIL, INCONCLUSIVE)


def smoothed(p: np.ndarray) -> np.ndarray:
    p = p + 0.5
    return p / p.sum(axis=-1, keepdims=True)


# ---------------------------------------------------------------- error rate


def error_methods(s: Scenario, c: Counts) -> dict[str, np.ndarray]:
    r_c, r_b = rate(c.errors_c, c.requests_c), rate(c.errors_b, c.requests_b)
    cum = [np.cumsum(a, axis=-1) for a in (c.errors_c, c.requests_c, c.errors_b, c.requests_b)]
    out = {
        "threshold (error > 1%, 5 checks)": after_failed_checks(r_c > 0.01),
        "Mann-Whitney per minute": at_once(mann_whitney(r_c, r_b, "greater")),
        "z-test, cumulative": at_once(z_two_proportions(*cum) > stats.norm.isf(ALPHA)),
    }
    if not s.healthy:
        rho0 = 1 + DEFAULT_TOLERANCE[MetricKind.ERROR_RATE]
        a = exposure_ratio(c.requests_c, c.requests_b, rho0)
        true_ratio = s.canary.error / s.baseline.error
        out["oracle SPRT"] = oracle_sprt(rate_ratio_llr(c.errors_c, c.errors_b, a, np.array([true_ratio / rho0]))[..., 0])
    return out


# ------------------------------------------------------------------- latency


def latency_methods(s: Scenario, c: Counts) -> dict[str, np.ndarray]:
    p99_c, p99_b = quantile_from_bins(c.latency_c, 0.99), quantile_from_bins(c.latency_b, 0.99)
    cum_c, cum_b = np.cumsum(c.latency_c, axis=1), np.cumsum(c.latency_b, axis=1)
    edge = 8  # 0.3 s, the bucket edge nearest the baseline's p99
    slow = [cum_c[..., edge + 1:].sum(-1), cum_c.sum(-1), cum_b[..., edge + 1:].sum(-1), cum_b.sum(-1)]
    out = {
        "threshold (p99 > 1.1x baseline, 5 checks)": after_failed_checks(np.nan_to_num(p99_c) > 1.1 * np.nan_to_num(p99_b)),
        "Mann-Whitney per minute": at_once(mann_whitney(np.nan_to_num(p99_c), np.nan_to_num(p99_b), "greater")),
        "z-test on share > 0.3s, cumulative": at_once(z_two_proportions(*slow) > stats.norm.isf(ALPHA)),
    }
    if not s.healthy:
        out["oracle SPRT"] = oracle_sprt(_multinomial_llr(c.latency_c, s.canary.latency, s.baseline.latency))
    return out


def _multinomial_llr(counts: np.ndarray, p_alt: np.ndarray, p_null: np.ndarray) -> np.ndarray:
    keep = (p_alt > 0) & (p_null > 0)
    return (counts[..., keep] * np.log(p_alt[keep] / p_null[keep])).sum(axis=-1)


# --------------------------------------------------------------------- drift


def drift_methods(s: Scenario, c: Counts) -> dict[str, np.ndarray]:
    pc, pb = smoothed(c.score_c), smoothed(c.score_b)
    psi = ((pc - pb) * np.log(pc / pb)).sum(-1)
    m = (pc + pb) / 2
    js = 0.5 * (pc * np.log(pc / m)).sum(-1) + 0.5 * (pb * np.log(pb / m)).sum(-1)
    mids = SCORE_EDGES - 0.05
    mean_c, mean_b = rate((c.score_c * mids).sum(-1), c.score_c.sum(-1)), rate((c.score_b * mids).sum(-1), c.score_b.sum(-1))
    C, B = np.cumsum(c.score_c, axis=1), np.cumsum(c.score_b, axis=1)
    out = {
        "threshold (PSI or JS > 0.1 last minute, 5 checks)": after_failed_checks((psi > 0.1) | (js > 0.1)),
        "Mann-Whitney per minute": at_once(mann_whitney(mean_c, mean_b, "two-sided")),
        "chi-square test, cumulative": at_once(_chi_square_p(C, B) < ALPHA),
    }
    if not s.healthy:
        out["oracle SPRT"] = oracle_sprt(_multinomial_llr(c.score_c, s.canary.score, s.baseline.score))
    return out


def _chi_square_p(C: np.ndarray, B: np.ndarray) -> np.ndarray:
    n_c, n_b = C.sum(-1, keepdims=True), B.sum(-1, keepdims=True)
    pooled = C + B
    e_c, e_b = pooled * rate(n_c, n_c + n_b), pooled * rate(n_b, n_c + n_b)
    used = pooled > 0
    stat = np.where(used, rate((C - e_c) ** 2, e_c) + rate((B - e_b) ** 2, e_b), 0).sum(-1)
    dof = np.maximum(used.sum(-1) - 1, 1)
    return stats.chi2.sf(stat, dof)


# --------------------------------------------------------------- calibration


def calibration_methods(s: Scenario, c: Counts) -> dict[str, np.ndarray]:
    L_c, X_c, L_b, X_b = (np.cumsum(a, axis=1) for a in (c.labelled_c, c.correct_c, c.labelled_b, c.correct_b))

    def ece(L, X):
        return (rate(L, L.sum(-1, keepdims=True)) * np.abs(rate(X, L) - CONFIDENCE_MID)).sum(-1)

    acc_c = rate(c.correct_c.sum(-1), c.labelled_c.sum(-1))
    acc_b = rate(c.correct_b.sum(-1), c.labelled_b.sum(-1))
    shift, info = calibration_shift(L_c, X_c, L_b, X_b)
    z = shift * np.sqrt(info)
    out = {
        "threshold (ECE gap > 0.02, 5 checks)": after_failed_checks((ece(L_c, X_c) - ece(L_b, X_b) > 0.02) & (L_c.sum(-1) > 0)),
        "Mann-Whitney per minute": at_once(mann_whitney(acc_c, acc_b, "two-sided", start=8)),
        "z-test, cumulative": at_once((info > 0) & (np.abs(z) > stats.norm.isf(ALPHA / 2))),
    }
    if not s.healthy:
        a_c, a_b = s.canary.accuracy, s.baseline.accuracy
        llr = (c.correct_c * np.log(a_c / a_b) + (c.labelled_c - c.correct_c) * np.log((1 - a_c) / (1 - a_b))).sum(-1)
        out["oracle SPRT"] = oracle_sprt(llr)
    return out


# ------------------------------------------------------------------ fairness


def fairness_methods(s: Scenario, c: Counts) -> dict[str, np.ndarray]:
    tol = DEFAULT_TOLERANCE[MetricKind.FAIRNESS_GAP]
    N_c, P_c, N_b, P_b = (np.cumsum(a, axis=1) for a in (c.groups_c, c.positive_c, c.groups_b, c.positive_b))
    gap = np.abs(rate(P_c, N_c) - rate(P_b, N_b))
    per_minute = [rate(c.positive_c[..., g], c.groups_c[..., g]) for g in range(c.groups_c.shape[-1])]
    per_minute_b = [rate(c.positive_b[..., g], c.groups_b[..., g]) for g in range(c.groups_b.shape[-1])]
    mw = np.zeros(c.groups_c.shape[:2], dtype=bool)
    for a, b in zip(per_minute, per_minute_b):
        mw |= mann_whitney(a, b, "two-sided")
    z = z_two_proportions(P_c, N_c, P_b, N_b)
    out = {
        f"threshold (group gap > {tol:g}, 5 checks)": after_failed_checks(((gap > tol) & (N_c > 0)).any(-1)),
        "Mann-Whitney per minute": at_once(mw),
        "z-test per group, cumulative": at_once((np.abs(z) > stats.norm.isf(ALPHA / 2)).any(-1)),
    }
    if not s.healthy:
        p_c, p_b = s.canary.positive, s.baseline.positive
        neg = c.groups_c - c.positive_c
        llr = (c.positive_c * np.log(p_c / p_b) + neg * np.log((1 - p_c) / (1 - p_b))).sum(-1)
        out["oracle SPRT"] = oracle_sprt(llr)
    return out


# -------------------------------------------------------------------- shadow


def shadow_methods(s: Scenario, c: Counts) -> dict[str, np.ndarray]:
    tol = DEFAULT_TOLERANCE[MetricKind.SHADOW_DISAGREEMENT]
    X, M = np.cumsum(c.disagreed, axis=1), np.cumsum(c.compared, axis=1)
    z = rate(rate(X, M) - tol, np.sqrt(tol * (1 - tol) * rate(1, M)))
    out = {
        f"threshold (disagreement > {tol:.0%} last minute, 5 checks)": after_failed_checks(rate(c.disagreed, c.compared) > tol),
        "z-test vs tolerance, cumulative": at_once(z > stats.norm.isf(ALPHA)),
    }
    if not s.healthy:
        d = s.canary.disagreement
        llr = c.disagreed * np.log(d / tol) + (c.compared - c.disagreed) * np.log((1 - d) / (1 - tol))
        out["oracle SPRT"] = oracle_sprt(llr)
    return out


COMPARATORS = {
    "errorRate": error_methods,
    "latencyP99": latency_methods,
    "predictionDrift": drift_methods,
    "calibration": calibration_methods,
    "fairnessGap": fairness_methods,
    "shadowDisagreement": shadow_methods,
}


def harm(s: Scenario, c: Counts) -> np.ndarray:
    """Per-minute canary requests hurt by the regression (reps, minutes): failed requests,
    requests slower than 0.5 s, or every prediction served for model-quality regressions;
    0 for shadow, whose answers never reach users."""
    if s.family in ("errorRate", "all"):
        return c.errors_c
    if s.family == "latencyP99":
        return c.latency_c[..., 10:].sum(-1)
    if s.family == "shadowDisagreement":
        return np.zeros_like(c.requests_c)
    return c.requests_c
