"""Kayenta's NetflixACAJudge inside Spinnaker's canary analysis stage.

Every canary analysis `interval` the stage asks Kayenta for one judgement over the metric
time series (one point per minute, `step: 60`) since the start (growing lookback) or over
the last `lookback` minutes (sliding). The judge, per metric:

* Mann-Whitney U with a 98% confidence interval for the Hodges-Lehmann shift (canary -
  baseline); the metric is High when the whole interval lies above +0.25 x |estimate|
  (Low below -0.25 x |estimate|) *and* the effect size (mean ratio canary / baseline)
  reaches `allowedIncrease` (at most `allowedDecrease`); a NaN ratio skips that check;
  identical or single-valued data pass; NaN points are replaced by 0 (nanStrategy replace);
* a `critical` metric that is High beyond `criticalIncrease` sets the score to 0.

The score is 100 x Pass / (Pass + High + Low) over the metrics (one group); half or more
of the metrics without data fail the canary. The stage fails as soon as one judgement
scores at or below `marginal`; after the last judgement of the lifetime it passes if that
score reaches `pass`, else it fails.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.stats import norm

from bench.comparators.signals import minute_values
from bench.scenarios import Policy
from bench.simulate import Counts

INCONCLUSIVE, PASS, FAIL = 0, 1, 2
PASS_M, HIGH, LOW, NODATA = 0, 1, 2, 3
CONFIDENCE = 0.98  # hard-coded in NetflixACAJudge
TOLERANCE = 0.25  # hard-coded: the band is +-0.25 x |Hodges-Lehmann estimate|


@dataclass(frozen=True)
class KayentaCanary:
    """A Spinnaker canary stage and its canary config."""

    interval: int = 10  # minutes between judgements (canary analysis interval)
    lifetime: int = 60  # minutes
    lookback: int | None = None  # None: growing; else sliding window of this many minutes
    pass_threshold: float = 95.0
    marginal_threshold: float = 75.0
    allowed_increase: dict[str, float] = field(default_factory=dict)  # metric gate -> ratio
    critical_increase: dict[str, float] = field(default_factory=dict)  # critical metrics -> ratio

    @classmethod
    def from_policy(cls, policy: Policy, lifetime: int, lookback: int | None = None) -> KayentaCanary:
        """One judgement per bake time; error rate and p99 may rise by their tolerance
        (`allowedIncrease`), the error rate is critical beyond its regression margin."""
        return cls(
            interval=policy.bake, lifetime=lifetime, lookback=lookback,
            allowed_increase={g: 1 + policy.tolerance[g] for g in ("errorRate", "latencyP99") if g in policy.tolerance},
            critical_increase={"errorRate": 1 + policy.regression["errorRate"]} if "errorRate" in policy.regression else {},
        )


def hodges_lehmann(canary: np.ndarray, baseline: np.ndarray, confidence: float = CONFIDENCE
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Estimate and confidence interval of the shift canary - baseline, row by row (reps, m)
    and (reps, n): order statistics of the m n pairwise differences at the ranks of the
    Mann-Whitney U's normal approximation."""
    m, n = canary.shape[-1], baseline.shape[-1]
    mn = m * n
    z = norm.isf((1 - confidence) / 2)
    k = int(np.floor(mn / 2 - z * np.sqrt(mn * (m + n + 1) / 12.0)))
    k = min(max(k, 0), (mn - 1) // 2)
    mid = sorted({k, (mn - 1) // 2, mn // 2, mn - 1 - k})
    diffs = (canary[..., :, None] - baseline[..., None, :]).reshape(canary.shape[:-1] + (mn,))
    diffs = np.partition(diffs, mid, axis=-1)  # only these order statistics are needed
    estimate = (diffs[..., (mn - 1) // 2] + diffs[..., mn // 2]) / 2
    return estimate, diffs[..., k], diffs[..., mn - 1 - k]


def classify(canary: np.ndarray, baseline: np.ndarray, direction: str, allowed_increase: float = 1.0,
             allowed_decrease: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(classification, mean ratio) per row of one metric's two series (NaN already replaced)."""
    if canary.shape[-1] == 0 or baseline.shape[-1] == 0:
        return np.full(canary.shape[:-1], NODATA), np.full(canary.shape[:-1], np.nan)
    est, lo, hi = hodges_lehmann(canary, baseline)
    band = TOLERANCE * np.abs(est)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = canary.mean(-1) / baseline.mean(-1)
    ratio = np.where(np.isfinite(ratio), ratio, np.nan)
    nan = np.isnan(ratio)
    high = (lo > band) & (nan | (ratio >= allowed_increase)) & (direction in ("increase", "either"))
    low = (hi < -band) & (nan | (ratio <= allowed_decrease)) & (direction in ("decrease", "either"))
    both = np.concatenate([canary, baseline], axis=-1)
    trivial = (np.sort(canary, -1) == np.sort(baseline, -1)).all(-1) if canary.shape == baseline.shape else False
    trivial = trivial | (both.max(-1) == both.min(-1))
    out = np.where(high, HIGH, np.where(low, LOW, PASS_M))
    return np.where(trivial, PASS_M, out), ratio


def score(labels: list[np.ndarray], critical: list[np.ndarray]) -> np.ndarray:
    """Summary score of one judgement (one group, equal weights)."""
    lab = np.stack(labels)
    counted = (lab != NODATA).sum(0)
    passed = (lab == PASS_M).sum(0)
    s = np.where(counted > 0, 100.0 * passed / np.maximum(counted, 1), 100.0)
    s = np.where((lab == NODATA).sum(0) * 2 >= len(labels), 0.0, s)
    return np.where(np.logical_or.reduce(critical), 0.0, s)


def stage(scores: np.ndarray, at: list[int], cfg: KayentaCanary, T: int) -> np.ndarray:
    """Codes per minute from the judgement scores (reps, J) taken at minutes `at`."""
    R = scores.shape[0]
    codes = np.zeros((R, T), dtype=np.int64)
    done = np.zeros(R, dtype=bool)
    for j, minute in enumerate(at):
        fail = ~done & (scores[:, j] <= cfg.marginal_threshold)
        codes[fail, minute - 1] = FAIL
        done |= fail
        if j == len(at) - 1:
            codes[~done & (scores[:, j] >= cfg.pass_threshold), minute - 1] = PASS
            codes[~done & (scores[:, j] < cfg.pass_threshold), minute - 1] = FAIL
    return codes


def kayenta(c: Counts, gates: tuple[str, ...], cfg: KayentaCanary) -> np.ndarray:
    T = c.requests_c.shape[1]
    at = list(range(cfg.interval, min(cfg.lifetime, T) + 1, cfg.interval))
    series = [(g, *s) for g in gates for s in minute_values(g, c)]
    scores = np.zeros((c.requests_c.shape[0], len(at)))
    for j, minute in enumerate(at):
        start = 0 if cfg.lookback is None else max(0, minute - cfg.lookback)
        labels, critical = [], []
        for gate, _name, can, base, direction in series:
            cw, bw = can[:, start:minute], base[:, start:minute]
            keep = ~(np.isnan(cw).all(0) & np.isnan(bw).all(0))  # minutes no rollout has data for
            cw, bw = np.nan_to_num(cw[:, keep]), np.nan_to_num(bw[:, keep])
            label, ratio = classify(cw, bw, direction, cfg.allowed_increase.get(gate, 1.0))
            labels.append(label)
            crit = cfg.critical_increase.get(gate)
            critical.append((label == HIGH) & (np.isnan(ratio) | (ratio >= crit)) if crit else np.zeros(label.shape, bool))
        scores[:, j] = score(labels, critical)
    return stage(scores, at, cfg, T)
