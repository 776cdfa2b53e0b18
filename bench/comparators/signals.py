"""What each comparator reads from the simulated counters, gate by gate.

Two views of the same counts:

* `effects`: for the statistical comparators (z-test, mSPRT, group-sequential, oracle),
  the cumulative estimate of each gate's effect *beyond its tolerance* (so the null is
  "effect <= 0", the same null Vigil tests) with its variance, one array per one-sided
  hypothesis (fairness has two per group);
* `window_value` / `minute_values`: for the threshold tools (Flagger, Argo, Kayenta), the
  metric a PromQL query returns over the last few minutes, or the per-minute time series
  Kayenta fetches, on each gate's natural scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from bench.scenarios import (
    BASE_ERROR,
    CONFIDENCE_MID,
    LATENCY_EDGES,
    SCORE_EDGES,
    Policy,
    World,
    _bins,
    latency_mixture,
    tail_scale_for_p99,
)
from bench.simulate import Counts

SLOW_EDGE = 8  # index of the 0.3 s bucket edge, the edge nearest the baseline's p99
SCORE_MID = SCORE_EDGES - 0.05


def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num/den with NaN where den is 0 (a query over no requests returns NaN)."""
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


@dataclass(frozen=True)
class Effect:
    """Cumulative estimate of a one-sided effect beyond the tolerance (> 0: harm) and its
    variance, shaped (reps, T); `scale` is the effect at the regression margin (the prior
    scale of the mixture tests)."""

    excess: np.ndarray
    var: np.ndarray
    scale: float

    @property
    def z(self) -> np.ndarray:
        return np.nan_to_num(ratio(self.excess, np.sqrt(self.var)), nan=0.0, posinf=0.0, neginf=0.0)


def slow_share(world: World) -> float:
    return float(world.latency[SLOW_EDGE + 1:].sum())


def _ratio_effect(x_c, n_c, x_b, n_b, rho0: float, scale: float) -> Effect:
    """Effect p_c - rho0 p_b for rates, with the variance under the null boundary (the
    baseline rate estimated with p_c = rho0 p_b imposed), stable at small counts."""
    X_c, N_c, X_b, N_b = (np.cumsum(a, axis=1) for a in (x_c, n_c, x_b, n_b))
    p_c, p_b = ratio(X_c, N_c), ratio(X_b, N_b)
    pb0 = ratio(X_c + X_b, rho0 * N_c + N_b)
    var = rho0 * pb0 * (1 - rho0 * pb0) * ratio(1.0, N_c) + rho0**2 * pb0 * (1 - pb0) * ratio(1.0, N_b)
    excess = np.nan_to_num(p_c - rho0 * p_b)
    return Effect(excess, np.nan_to_num(var, nan=np.inf), scale)


@lru_cache(maxsize=8)
def latency_null_ratio(tolerance: float) -> float:
    """rho0 for the slow share: what a stretch of every request by (1 + tolerance) does to the
    share above the edge (exact, from the simulated baseline; the comparators are given it)."""
    base = World()
    return slow_share(World(latency=_bins(latency_mixture(stretch=1 + tolerance)))) / slow_share(base)


@lru_cache(maxsize=8)
def latency_regression_ratio(increase: float) -> float:
    """The slow-share ratio of a tail slowed so that the p99 rises by `increase`."""
    slow = World(latency=_bins(latency_mixture(tail_scale_for_p99(increase))))
    return slow_share(slow) / slow_share(World())


def _mean_effect(bins_c, bins_b, values, sign: float, shift: float, scale: float) -> Effect:
    """sign x (mean_c - mean_b) - shift for per-request values taking `values` in each cell."""
    C, B = np.cumsum(bins_c, axis=1), np.cumsum(bins_b, axis=1)
    n_c, n_b = C.sum(-1), B.sum(-1)
    m_c, m_b = ratio((C * values).sum(-1), n_c), ratio((B * values).sum(-1), n_b)
    v_c = ratio((C * values**2).sum(-1), n_c) - m_c**2
    v_b = ratio((B * values**2).sum(-1), n_b) - m_b**2
    var = ratio(v_c, n_c) + ratio(v_b, n_b)
    return Effect(np.nan_to_num(sign * (m_c - m_b) - shift), np.nan_to_num(var, nan=np.inf), scale)


def effects(gate: str, c: Counts, policy: Policy, canary: World | None = None) -> list[Effect]:
    """One-sided effects beyond the gate's tolerance; a gate fails if any of them does."""
    tol, reg = policy.tolerance[gate], policy.regression[gate]
    if gate == "errorRate":
        return [_ratio_effect(c.errors_c, c.requests_c, c.errors_b, c.requests_b, 1 + tol, (reg - tol) * BASE_ERROR)]
    if gate == "latencyP99":
        rho0 = latency_null_ratio(tol)
        slow_c, slow_b = c.latency_c[..., SLOW_EDGE + 1:].sum(-1), c.latency_b[..., SLOW_EDGE + 1:].sum(-1)
        scale = (latency_regression_ratio(reg) - rho0) * slow_share(World())
        return [_ratio_effect(slow_c, c.latency_c.sum(-1), slow_b, c.latency_b.sum(-1), rho0, scale)]
    if gate == "predictionDrift":
        scale = 0.05  # a mean-score shift of 0.05 is about PSI 0.1 on this world
        return [_mean_effect(c.score_c, c.score_b, SCORE_MID, s, 0.0, scale) for s in (1.0, -1.0)]
    if gate == "calibration":
        # residual = correct - stated confidence, per label; worse calibration = lower residual
        def cells(L, X):
            return np.concatenate([X, L - X], axis=-1)
        values = np.concatenate([1 - CONFIDENCE_MID, -CONFIDENCE_MID])
        return [_mean_effect(cells(c.labelled_c, c.correct_c), cells(c.labelled_b, c.correct_b), values,
                             -1.0, tol, reg - tol)]
    if gate == "fairnessGap":
        out = []
        for g in range(c.groups_c.shape[-1]):
            P_c, N_c = np.cumsum(c.positive_c[..., g], 1), np.cumsum(c.groups_c[..., g], 1)
            P_b, N_b = np.cumsum(c.positive_b[..., g], 1), np.cumsum(c.groups_b[..., g], 1)
            p = ratio(P_c + P_b, N_c + N_b)
            var = np.nan_to_num(p * (1 - p) * (ratio(1.0, N_c) + ratio(1.0, N_b)), nan=np.inf)
            d = np.nan_to_num(ratio(P_c, N_c) - ratio(P_b, N_b))
            out += [Effect(d - tol, var, reg - tol), Effect(-d - tol, var, reg - tol)]
        return out
    if gate == "shadowDisagreement":
        X, M = np.cumsum(c.disagreed, 1), np.cumsum(c.compared, 1)
        return [Effect(np.nan_to_num(ratio(X, M) - tol), np.nan_to_num(tol * (1 - tol) * ratio(1.0, M), nan=np.inf),
                       reg - tol)]
    raise ValueError(gate)


# ------------------------------------------------------------ threshold tools


def _window(a: np.ndarray, minutes: int) -> np.ndarray:
    """Sum over the last `minutes` minutes ending at each minute (what a PromQL range
    query `increase(...[Nm])` returns at that minute), along axis 1."""
    cum = np.cumsum(a, axis=1)
    lag = np.zeros_like(cum)
    if minutes < cum.shape[1]:
        lag[:, minutes:] = cum[:, :-minutes]
    return cum - lag


def histogram_quantile(counts: np.ndarray, q: float, edges: np.ndarray = LATENCY_EDGES) -> np.ndarray:
    """Prometheus' histogram_quantile over the last axis (linear within the bucket; the last
    finite edge for the +Inf bucket; NaN without observations)."""
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
    frac = np.nan_to_num(ratio(rank[..., 0] - below, inside))
    return np.where(total[..., 0] > 0, lower + (upper - lower) * np.clip(frac, 0, 1), np.nan)


def _psi(c: np.ndarray, b: np.ndarray) -> np.ndarray:
    pc = (c + 0.5) / (c + 0.5).sum(-1, keepdims=True)
    pb = (b + 0.5) / (b + 0.5).sum(-1, keepdims=True)
    return ((pc - pb) * np.log(pc / pb)).sum(-1)


def window_value(gate: str, c: Counts, minutes: int) -> np.ndarray:
    """The gate's metric over the last `minutes` minutes at every minute, (reps, T), on its own
    scale and oriented so that larger is worse: canary error rate, canary p99 (seconds), PSI,
    accuracy shortfall at equal confidence, largest group gap, shadow disagreement. NaN when
    the window holds no data (the query returns no value)."""
    w = lambda a: _window(a, minutes)
    if gate == "errorRate":
        return ratio(w(c.errors_c), w(c.requests_c))
    if gate == "latencyP99":
        return histogram_quantile(w(c.latency_c), 0.99)
    if gate == "predictionDrift":
        C, B = w(c.score_c), w(c.score_b)
        return np.where((C.sum(-1) > 0) & (B.sum(-1) > 0), _psi(C, B), np.nan)
    if gate == "calibration":
        L_c, X_c, L_b, X_b = w(c.labelled_c), w(c.correct_c), w(c.labelled_b), w(c.correct_b)
        acc_c, acc_b = ratio(X_c.sum(-1), L_c.sum(-1)), ratio(X_b.sum(-1), L_b.sum(-1))
        conf_c, conf_b = ratio((L_c * CONFIDENCE_MID).sum(-1), L_c.sum(-1)), ratio((L_b * CONFIDENCE_MID).sum(-1), L_b.sum(-1))
        return (conf_c - acc_c) - (conf_b - acc_b)
    if gate == "fairnessGap":
        return np.max(np.abs(ratio(w(c.positive_c), w(c.groups_c)) - ratio(w(c.positive_b), w(c.groups_b))), axis=-1)
    if gate == "shadowDisagreement":
        return ratio(w(c.disagreed), w(c.compared))
    raise ValueError(gate)


def healthy_level(gate: str) -> float:
    """The metric's value for a healthy canary on the scale of `window_value`."""
    world = World()
    if gate == "errorRate":
        return world.error
    if gate == "latencyP99":
        from bench.scenarios import mixture_quantile

        return mixture_quantile(latency_mixture(), 0.99)
    return 0.0


def limit(gate: str, policy: Policy, margin: str = "regression") -> float:
    """The absolute limit a threshold tool is configured with: the healthy level moved by the
    policy's regression margin (or tolerance), on the scale of `window_value`."""
    m = (policy.regression if margin == "regression" else policy.tolerance)[gate]
    if gate in ("errorRate", "latencyP99"):
        return healthy_level(gate) * (1 + m)
    return m


def minute_values(gate: str, c: Counts) -> list[tuple[str, np.ndarray, np.ndarray, str]]:
    """The per-minute time series Kayenta would fetch for this gate: (metric name, canary
    series, baseline series, direction), each (reps, T); NaN where a minute had no data."""
    if gate == "errorRate":
        return [("error rate", ratio(c.errors_c, c.requests_c), ratio(c.errors_b, c.requests_b), "increase")]
    if gate == "latencyP99":
        return [("p99 latency", histogram_quantile(c.latency_c, 0.99), histogram_quantile(c.latency_b, 0.99), "increase")]
    if gate == "predictionDrift":
        return [("mean score", ratio((c.score_c * SCORE_MID).sum(-1), c.score_c.sum(-1)),
                 ratio((c.score_b * SCORE_MID).sum(-1), c.score_b.sum(-1)), "either")]
    if gate == "calibration":
        def shortfall(L, X):
            return ratio((L * CONFIDENCE_MID).sum(-1) - X.sum(-1), L.sum(-1))
        return [("confidence - accuracy", shortfall(c.labelled_c, c.correct_c), shortfall(c.labelled_b, c.correct_b),
                 "increase")]
    if gate == "fairnessGap":
        return [(f"positive rate, group {g}", ratio(c.positive_c[..., g], c.groups_c[..., g]),
                 ratio(c.positive_b[..., g], c.groups_b[..., g]), "either") for g in range(c.groups_c.shape[-1])]
    if gate == "shadowDisagreement":
        return [("disagreement", ratio(c.disagreed, c.compared), ratio(c.control_disagreed, c.control_compared),
                 "increase")]
    raise ValueError(gate)
