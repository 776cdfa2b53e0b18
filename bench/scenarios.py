"""The simulated world: what baseline and canary look like in each benchmark scenario.

Every signal is a probability vector over the cells of one metric of the contract
(error/success, latency bucket, score bucket, group x class, confidence bucket x correct,
agree/disagree). Traffic is Poisson, so each cell's count in a minute is an independent
Poisson draw (thinning) and the simulation is exact, not an approximation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import optimize, stats

LATENCY_EDGES = np.array([0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.5, 5.0, np.inf])
SCORE_EDGES = np.round(np.arange(1, 11) / 10, 1)
GROUP_SHARES = np.array([0.5, 0.3, 0.2])
GROUP_POSITIVE = np.array([0.5, 0.45, 0.4])
CONFIDENCE_SHARES = np.array([0.15, 0.2, 0.25, 0.25, 0.15])
CONFIDENCE_MID = np.array([0.55, 0.65, 0.75, 0.85, 0.95])
BASE_ERROR = 0.01
NATURAL_DISAGREEMENT = 0.01
LABEL_DELAY = (5, 15)  # minutes, uniform


def _bins(cdf) -> np.ndarray:
    values = np.array([cdf(e) if np.isfinite(e) else 1.0 for e in LATENCY_EDGES])
    return np.diff(values, prepend=0.0)


def latency_mixture(tail_scale: float = 1.0):
    """97% fast requests (median 80 ms) and 3% slow ones (median 300 ms) whose latency is
    stretched by `tail_scale`: the p99 moves, the median does not."""
    def cdf(x: float) -> float:
        body = stats.lognorm.cdf(x, s=0.45, scale=0.08)
        tail = stats.lognorm.cdf(x, s=0.3, scale=0.3 * tail_scale)
        return 0.97 * body + 0.03 * tail
    return cdf


def mixture_quantile(cdf, q: float) -> float:
    return optimize.brentq(lambda x: cdf(x) - q, 1e-4, 100.0)


def tail_scale_for_p99(increase: float) -> float:
    """The tail stretch that raises the true p99 by `increase` (0.3 = +30%)."""
    target = (1 + increase) * mixture_quantile(latency_mixture(), 0.99)
    return optimize.brentq(lambda s: mixture_quantile(latency_mixture(s), 0.99) - target, 1.0, 5.0)


def score_bins(a: float, b: float = 2.5) -> np.ndarray:
    return np.diff(stats.beta.cdf(np.concatenate([[0.0], SCORE_EDGES]), a, b))


def psi(p: np.ndarray, q: np.ndarray) -> float:
    return float(np.sum((p - q) * np.log(p / q)))


def score_shift_for_psi(target: float) -> float:
    base = score_bins(2.0)
    return optimize.brentq(lambda a: psi(score_bins(a), base) - target, 2.0, 6.0)


@dataclass(frozen=True)
class World:
    """Cell probabilities of one version."""

    error: float = BASE_ERROR
    latency: np.ndarray = field(default_factory=lambda: _bins(latency_mixture()))
    score: np.ndarray = field(default_factory=lambda: score_bins(2.0))
    positive: np.ndarray = field(default_factory=lambda: GROUP_POSITIVE.copy())
    accuracy: np.ndarray = field(default_factory=lambda: CONFIDENCE_MID.copy())
    disagreement: float = NATURAL_DISAGREEMENT


@dataclass(frozen=True)
class Scenario:
    """One row group of the table: the canary's world, the family of gates it stresses and
    the harm one affected request does (for "bad requests served")."""

    name: str
    family: str  # errorRate | latencyP99 | predictionDrift | calibration | fairnessGap | shadowDisagreement | all
    canary: World = field(default_factory=World)
    baseline: World = field(default_factory=World)
    weights: tuple[tuple[int, float], ...] = ((0, 0.10),)  # (from minute, canary weight)
    error_trend: float = 0.0  # shared absolute rise of the error rate over the hour (both versions)
    healthy: bool = True
    target: int | None = None  # minutes within which issue #5 asks for >= 95% (99% for errors x2) rollbacks

    def weight_at(self, minutes: np.ndarray) -> np.ndarray:
        w = np.zeros(minutes.shape)
        for start, weight in self.weights:
            w = np.where(minutes >= start, weight, w)
        return w


def scenarios() -> list[Scenario]:
    lat = _bins(latency_mixture(tail_scale_for_p99(0.30)))
    drift = score_bins(score_shift_for_psi(0.10))
    unfair = GROUP_POSITIVE.copy()
    unfair[2] -= 0.10
    return [
        Scenario("A/A, all gates", "all"),
        Scenario("A/A", "errorRate"),
        Scenario("errors x1.25", "errorRate", canary=World(error=BASE_ERROR * 1.25), healthy=False),
        Scenario("errors x1.5", "errorRate", canary=World(error=BASE_ERROR * 1.5), healthy=False),
        Scenario("errors x2", "errorRate", canary=World(error=BASE_ERROR * 2), healthy=False, target=60),
        Scenario("A/A, weight 10->25->50%, errors 1->2% in both", "errorRate",
                 weights=((0, 0.10), (15, 0.25), (30, 0.50)), error_trend=0.01),
        Scenario("A/A", "latencyP99"),
        Scenario("p99 +30%, median same", "latencyP99", canary=World(latency=lat), healthy=False, target=30),
        Scenario("A/A", "predictionDrift"),
        Scenario("drift PSI 0.1", "predictionDrift", canary=World(score=drift), healthy=False, target=30),
        Scenario("A/A", "calibration"),
        Scenario("ECE +0.05, labels 5-15 min late", "calibration",
                 canary=World(accuracy=CONFIDENCE_MID - 0.05), healthy=False, target=45),
        Scenario("A/A", "fairnessGap"),
        Scenario("group (20% of traffic) -10 pts", "fairnessGap", canary=World(positive=unfair), healthy=False, target=45),
        Scenario("A/A", "shadowDisagreement"),
        Scenario("shadow disagrees 3% (1% natural)", "shadowDisagreement",
                 canary=World(disagreement=0.03), healthy=False, target=30),
    ]
