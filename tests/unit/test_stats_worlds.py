"""Seeded simulated worlds for the stats tests, independent of the benchmark's scenarios.

Traffic is Poisson, so every cell of a metric in an interval is an independent Poisson draw
(thinning): exact, not an approximation. Arrays are (reps, intervals, cells...). The helpers
also turn one rep into the raw counters `analyze` reads. The tests at the bottom check the
worlds themselves (a stretched histogram has the stretched quantile, and so on).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize, stats
from vigil.api.gates import MetricKind
from vigil.stats import (
    CounterPanel,
    GroupPredictions,
    LabelFeedback,
    LatencyHistogram,
    RequestCounts,
    ScoreHistogram,
    ShadowComparisons,
)
from vigil.stats.evidence import INCONCLUSIVE, GateEvidence, classify

LATENCY_EDGES = np.array([0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.5, 5.0, np.inf])
SCORE_EDGES = np.append(np.round(np.arange(1, 10) / 10, 1), np.inf)
GROUP_SHARES = np.array([0.5, 0.3, 0.2])
GROUP_POSITIVE = np.array([0.5, 0.45, 0.4])
CONFIDENCE_SHARES = np.array([0.15, 0.2, 0.25, 0.25, 0.15])
CONFIDENCE_MID = np.array([0.55, 0.65, 0.75, 0.85, 0.95])
ALPHA = 0.05


def limit(reps: int, alpha: float = ALPHA) -> float:
    """alpha + 3 standard errors of a simulated rate over `reps` runs."""
    return alpha + 3 * math.sqrt(alpha * (1 - alpha) / reps)


def poisson(rng: np.random.Generator, mean: np.ndarray, reps: int) -> np.ndarray:
    mean = np.asarray(mean, dtype=float)
    return rng.poisson(np.broadcast_to(mean, (reps,) + mean.shape)).astype(float)


def arms(rpm: float, share: float, minutes: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean requests per minute (canary, baseline), each (minutes,)."""
    return np.full(minutes, rpm * share), np.full(minutes, rpm * (1 - share))


def errors(rng: np.random.Generator, rpm: float, share: float, p_c: float, p_b: float, reps: int,
           minutes: int = 60) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(n_c, x_c, n_b, x_b), each (reps, minutes)."""
    lam_c, lam_b = arms(rpm, share, minutes)
    x_c, x_b = poisson(rng, lam_c * p_c, reps), poisson(rng, lam_b * p_b, reps)
    return x_c + poisson(rng, lam_c * (1 - p_c), reps), x_c, x_b + poisson(rng, lam_b * (1 - p_b), reps), x_b


def bursty(rng: np.random.Generator, lam: np.ndarray, size: float, reps: int) -> np.ndarray:
    """Error counts (reps, minutes) arriving in independent bursts of geometric size with mean
    `size` and `lam` errors a minute on average (a compound Poisson process)."""
    bursts = poisson(rng, lam / size, reps).astype(np.int64)
    if size <= 1:
        return bursts.astype(float)
    extra = rng.negative_binomial(np.maximum(bursts, 1), 1 / size)  # sizes - 1, summed over the bursts
    return np.where(bursts > 0, bursts + extra, 0).astype(float)


def bursty_errors(rng: np.random.Generator, rpm: float, share: float, p_c: float, p_b: float, reps: int,
                  minutes: int = 60, size: float = 3.0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(n_c, x_c, n_b, x_b) with errors in independent bursts in each arm."""
    lam_c, lam_b = arms(rpm, share, minutes)
    x_c, x_b = bursty(rng, lam_c * p_c, size, reps), bursty(rng, lam_b * p_b, size, reps)
    return x_c + poisson(rng, lam_c * (1 - p_c), reps), x_c, x_b + poisson(rng, lam_b * (1 - p_b), reps), x_b


def flaky_pod_errors(rng: np.random.Generator, rpm: float, share: float, p_c: float, p_b: float, reps: int,
                     minutes: int = 60, pods: int = 5, flaky: float = 3.0, size: float = 5.0
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each version on `pods` pods sharing its traffic evenly; one pod per version has `flaky`
    times the error rate and its errors come in bursts (correlated within the pod)."""
    lam_c, lam_b = arms(rpm, share, minutes)
    out = []
    for lam, p in ((lam_c, p_c), (lam_b, p_b)):
        each = lam / pods
        scale = pods / (pods - 1 + flaky)  # keep the version's mean rate at p
        x = sum(poisson(rng, each * p * scale, reps) for _ in range(pods - 1)) + bursty(rng, each * p * scale * flaky, size, reps)
        out += [x + poisson(rng, lam * (1 - p), reps), x]
    return out[0], out[1], out[2], out[3]


def latency_cdf(stretch: float = 1.0, tail_scale: float = 1.0):
    """97% fast requests (median 80 ms), 3% slow ones (median 300 ms x tail_scale); every
    latency multiplied by `stretch`."""
    def cdf(x: float) -> float:
        x = x / stretch
        return 0.97 * stats.lognorm.cdf(x, s=0.45, scale=0.08) + 0.03 * stats.lognorm.cdf(x, s=0.3, scale=0.3 * tail_scale)
    return cdf


def tail_scale_for_p99(increase: float) -> float:
    """The slow requests' stretch that raises the true p99 by `increase` (0.3 = +30%)."""
    target = (1 + increase) * quantile(latency_cdf(), 0.99)
    return optimize.brentq(lambda s: quantile(latency_cdf(tail_scale=s), 0.99) - target, 1.0, 5.0)


def lognormal_cdf(stretch: float = 1.0, median: float = 0.1, sigma: float = 0.6):
    """A single lognormal (a tail that log-log interpolation underestimates)."""
    return lambda x: stats.lognorm.cdf(x / stretch, s=sigma, scale=median)


def bins(cdf, edges: np.ndarray = LATENCY_EDGES) -> np.ndarray:
    values = np.array([cdf(e) if np.isfinite(e) else 1.0 for e in edges])
    return np.diff(values, prepend=0.0)


def quantile(cdf, q: float) -> float:
    return optimize.brentq(lambda x: cdf(x) - q, 1e-5, 100.0)


def score_bins(a: float = 2.0, b: float = 2.5) -> np.ndarray:
    return np.diff(stats.beta.cdf(np.concatenate([[0.0], SCORE_EDGES[:-1], [1.0]]), a, b))


def chi_square_distance(p: np.ndarray, q: np.ndarray) -> float:
    return float(np.sum((p - q) ** 2 / q))


def drifted(distance: float, share: float = 0.1, a: float = 2.0) -> np.ndarray:
    """Score bins of a beta(a', 2.5) at chi-square distance `distance` from beta(a, 2.5), as
    the drift gate defines it (denominator: the two versions pooled at the canary's share)."""
    base = score_bins(a)

    def gap(s: float) -> float:
        p = score_bins(a + s)
        return float(np.sum((p - base) ** 2 / (share * p + (1 - share) * base))) - distance

    return score_bins(a + optimize.brentq(gap, 0.0, 5.0))


def histogram_counts(rng: np.random.Generator, rpm: float, share: float, p_c: np.ndarray, p_b: np.ndarray,
                     reps: int, minutes: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """(canary, baseline) bin counts (reps, minutes, bins)."""
    lam_c, lam_b = arms(rpm, share, minutes)
    return poisson(rng, lam_c[:, None] * p_c, reps), poisson(rng, lam_b[:, None] * p_b, reps)


def first(ev: GateEvidence, alpha_fail: float = ALPHA, alpha_pass: float = ALPHA, min_samples: int = 0
          ) -> tuple[np.ndarray, np.ndarray]:
    """(outcome code, interval counted from 1) of each rep's first decision; INCONCLUSIVE
    and inf when it never decides."""
    codes = classify(ev, alpha_fail, alpha_pass, min_samples)
    decided = codes != INCONCLUSIVE
    has = decided.any(axis=-1)
    at = np.argmax(decided, axis=-1)
    kind = np.where(has, np.take_along_axis(codes, at[..., None], -1)[..., 0], INCONCLUSIVE)
    return kind, np.where(has, at + 1.0, np.inf)


# ---------------------------------------------------------------- raw counters


def times(intervals: int, step: float = 60.0) -> np.ndarray:
    return 1_700_000_000.0 + step * np.arange(intervals + 1)


def request_counts(n_c: np.ndarray, x_c: np.ndarray, n_b: np.ndarray, x_b: np.ndarray, step: float = 60.0
                   ) -> RequestCounts:
    """One rep's per-interval counts (intervals,) as two pods' raw counters per arm."""
    ts = times(n_c.size, step)

    def panel(n: np.ndarray, x: np.ndarray) -> CounterPanel:
        half_x, half_ok = np.floor(x / 2), np.floor((n - x) / 2)
        return CounterPanel.from_counts(ts, [
            ({"outcome": "error", "pod": "a"}, half_x), ({"outcome": "error", "pod": "b"}, x - half_x),
            ({"outcome": "success", "pod": "a"}, half_ok), ({"outcome": "success", "pod": "b"}, n - x - half_ok),
        ], start=500.0)

    return RequestCounts(panel(n_b, x_b), panel(n_c, x_c))


def histogram_panel(counts: np.ndarray, edges: np.ndarray, step: float = 60.0) -> CounterPanel:
    """(intervals, bins) bin counts as cumulative `le` bucket series."""
    cumulative = np.cumsum(counts, axis=-1)
    labels = ["+Inf" if not np.isfinite(e) else f"{e:g}" for e in edges]
    return CounterPanel.from_counts(times(counts.shape[0], step), [({"le": le}, cumulative[:, i])
                                                                  for i, le in enumerate(labels)])


def latency_histogram(c: np.ndarray, b: np.ndarray, edges: np.ndarray = LATENCY_EDGES) -> LatencyHistogram:
    return LatencyHistogram(histogram_panel(b, edges), histogram_panel(c, edges))


def score_histogram(c: np.ndarray, b: np.ndarray) -> ScoreHistogram:
    return ScoreHistogram(histogram_panel(b, SCORE_EDGES), histogram_panel(c, SCORE_EDGES))


def group_predictions(tot_c: np.ndarray, pos_c: np.ndarray, tot_b: np.ndarray, pos_b: np.ndarray) -> GroupPredictions:
    ts = times(tot_c.shape[0])

    def panel(tot: np.ndarray, pos: np.ndarray) -> CounterPanel:
        names = [chr(ord("a") + g) for g in range(tot.shape[1])]
        return CounterPanel.from_counts(ts, [({"group": g, "predicted_class": "1"}, pos[:, i]) for i, g in enumerate(names)]
                                        + [({"group": g, "predicted_class": "0"}, tot[:, i] - pos[:, i])
                                           for i, g in enumerate(names)])

    return GroupPredictions(panel(tot_b, pos_b), panel(tot_c, pos_c))


def label_feedback(lab_c: np.ndarray, cor_c: np.ndarray, lab_b: np.ndarray, cor_b: np.ndarray) -> LabelFeedback:
    ts = times(lab_c.shape[0])
    buckets = [f"{m - 0.05:.1f}" for m in CONFIDENCE_MID]

    def panel(lab: np.ndarray, cor: np.ndarray) -> CounterPanel:
        return CounterPanel.from_counts(ts, [({"confidence_bucket": k, "correct": "true"}, cor[:, i]) for i, k in enumerate(buckets)]
                                        + [({"confidence_bucket": k, "correct": "false"}, lab[:, i] - cor[:, i])
                                           for i, k in enumerate(buckets)])

    return LabelFeedback(panel(lab_b, cor_b), panel(lab_c, cor_c))


def shadow_comparisons(m: np.ndarray, x: np.ndarray, control: tuple[np.ndarray, np.ndarray] | None = None
                       ) -> ShadowComparisons:
    ts = times(m.size)
    canary = CounterPanel.from_counts(ts, [({"outcome": "disagree"}, x), ({"outcome": "agree"}, m - x)])
    return ShadowComparisons(canary)


def groups(rng: np.random.Generator, rpm: float, share: float, pos_c: np.ndarray, pos_b: np.ndarray, reps: int,
           minutes: int = 60) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(tot_c, pos_c, tot_b, pos_b) per group, (reps, minutes, groups)."""
    lam_c, lam_b = arms(rpm, share, minutes)
    out = []
    for lam, p in ((lam_c, pos_c), (lam_b, pos_b)):
        pos = poisson(rng, lam[:, None] * GROUP_SHARES * p, reps)
        out += [pos + poisson(rng, lam[:, None] * GROUP_SHARES * (1 - p), reps), pos]
    return out[0], out[1], out[2], out[3]


def labels(rng: np.random.Generator, rpm: float, share: float, acc_c: np.ndarray, acc_b: np.ndarray, reps: int,
           minutes: int = 60) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(lab_c, cor_c, lab_b, cor_b) per confidence bucket, labels 5-15 minutes late."""
    lam_c, lam_b = arms(rpm, share, minutes)
    out = []
    for lam, acc in ((lam_c, acc_c), (lam_b, acc_b)):
        arriving = np.zeros_like(lam)
        for delay in range(5, min(16, lam.size)):
            arriving[delay:] += lam[: lam.size - delay] / 11
        cor = poisson(rng, arriving[:, None] * CONFIDENCE_SHARES * acc, reps)
        out += [cor + poisson(rng, arriving[:, None] * CONFIDENCE_SHARES * (1 - acc), reps), cor]
    return out[0], out[1], out[2], out[3]


def healthy_window(rpm: float = 1000, share: float = 0.1, minutes: int = 30, seed: int = 1) -> dict:
    """All seven gates' counters for one healthy canary."""
    rng = np.random.default_rng(seed)
    n_c, x_c, n_b, x_b = (a[0] for a in errors(rng, rpm, share, 0.01, 0.01, 1, minutes))
    lat = bins(latency_cdf())
    l_c, l_b = (a[0] for a in histogram_counts(rng, rpm, share, lat, lat, 1, minutes))
    sc = score_bins()
    s_c, s_b = (a[0] for a in histogram_counts(rng, rpm, share, sc, sc, 1, minutes))
    g = [a[0] for a in groups(rng, rpm, share, GROUP_POSITIVE, GROUP_POSITIVE, 1, minutes)]
    lb = [a[0] for a in labels(rng, rpm, share, CONFIDENCE_MID, CONFIDENCE_MID, 1, minutes)]
    m = n_c.copy()
    d = rng.binomial(m.astype(int), 0.01).astype(float)
    histogram = latency_histogram(l_c, l_b)
    return {
        MetricKind.ERROR_RATE: request_counts(n_c, x_c, n_b, x_b),
        MetricKind.LATENCY_P50: histogram,
        MetricKind.LATENCY_P99: histogram,
        MetricKind.PREDICTION_DRIFT: score_histogram(s_c, s_b),
        MetricKind.FAIRNESS_GAP: group_predictions(*g),
        MetricKind.CALIBRATION: label_feedback(*lb),
        MetricKind.SHADOW_DISAGREEMENT: shadow_comparisons(m, d),
    }


# ------------------------------------------------------------ the worlds' own checks


def test_a_stretched_latency_world_has_the_stretched_quantile() -> None:
    assert quantile(latency_cdf(1.3), 0.99) / quantile(latency_cdf(), 0.99) == pytest.approx(1.3, rel=1e-6)
    assert bins(latency_cdf()).sum() == pytest.approx(1.0, abs=1e-12)


def test_drifted_scores_are_at_the_asked_distance() -> None:
    p, q = drifted(0.1, share=0.0), score_bins()
    assert chi_square_distance(p, q) == pytest.approx(0.1, rel=1e-6)


def test_request_counters_round_trip_through_the_raw_panels() -> None:
    rng = np.random.default_rng(0)
    n_c, x_c, n_b, x_b = (a[0] for a in errors(rng, 1000, 0.1, 0.02, 0.01, 1, 10))
    data = request_counts(n_c, x_c, n_b, x_b)
    got_n, got_x = data.outcomes(data.canary)
    assert np.array_equal(got_n, n_c) and np.array_equal(got_x, x_c)
