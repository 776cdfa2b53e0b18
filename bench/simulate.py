"""Minute-by-minute counts for many simulated rollouts at once (seeded, vectorised).

Arrays are shaped (reps, minutes, cells...). Each version's traffic in a minute is
Poisson with mean rpm x weight, and every metric cell is an independent Poisson thinning
of it, which is exactly how a Poisson stream splits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.scenarios import CONFIDENCE_SHARES, GROUP_SHARES, LABEL_DELAY, Scenario, World

MINUTES = 60


@dataclass
class Counts:
    """Per-minute increments of every contract counter, canary (_c) and baseline (_b)."""

    weight: np.ndarray  # (T,)
    requests_c: np.ndarray
    errors_c: np.ndarray
    requests_b: np.ndarray
    errors_b: np.ndarray
    latency_c: np.ndarray | None = None  # (R, T, 15)
    latency_b: np.ndarray | None = None
    score_c: np.ndarray | None = None  # (R, T, 10)
    score_b: np.ndarray | None = None
    groups_c: np.ndarray | None = None  # (R, T, G) predictions
    positive_c: np.ndarray | None = None
    groups_b: np.ndarray | None = None
    positive_b: np.ndarray | None = None
    labelled_c: np.ndarray | None = None  # (R, T, K) labels arriving that minute
    correct_c: np.ndarray | None = None
    labelled_b: np.ndarray | None = None
    correct_b: np.ndarray | None = None
    compared: np.ndarray | None = None  # (R, T) mirrored comparisons of the shadow
    disagreed: np.ndarray | None = None


def label_arrivals(rate: np.ndarray) -> np.ndarray:
    """Expected labels arriving per minute when predictions made at `rate` (T,) are labelled
    after a delay uniform on LABEL_DELAY minutes."""
    lo, hi = LABEL_DELAY
    out = np.zeros_like(rate)
    for delay in range(lo, min(hi, rate.size - 1) + 1):
        out[delay:] += rate[: rate.size - delay] / (hi - lo + 1)
    return out


def simulate(scenario: Scenario, rpm: float, reps: int, seed: int, minutes: int = MINUTES) -> Counts:
    rng = np.random.default_rng(seed)
    t = np.arange(minutes)
    w = scenario.weight_at(t)
    lam_c, lam_b = rpm * w, rpm * (1 - w)
    trend = scenario.error_trend * t / minutes

    def poisson(mean: np.ndarray) -> np.ndarray:
        return rng.poisson(np.broadcast_to(mean, (reps,) + np.shape(mean))).astype(np.float64)

    def requests(lam: np.ndarray, world: World) -> tuple[np.ndarray, np.ndarray]:
        p = world.error + trend
        errors = poisson(lam * p)
        return errors + poisson(lam * (1 - p)), errors

    n_c, x_c = requests(lam_c, scenario.canary)
    n_b, x_b = requests(lam_b, scenario.baseline)
    out = Counts(w, n_c, x_c, n_b, x_b)
    fam = scenario.family
    everything = fam == "all"
    if everything or fam == "latencyP99":
        out.latency_c = poisson(lam_c[:, None] * scenario.canary.latency)
        out.latency_b = poisson(lam_b[:, None] * scenario.baseline.latency)
    if everything or fam == "predictionDrift":
        out.score_c = poisson(lam_c[:, None] * scenario.canary.score)
        out.score_b = poisson(lam_b[:, None] * scenario.baseline.score)
    if everything or fam == "fairnessGap":
        for arm, lam, world in (("c", lam_c, scenario.canary), ("b", lam_b, scenario.baseline)):
            positive = poisson(lam[:, None] * GROUP_SHARES * world.positive)
            negative = poisson(lam[:, None] * GROUP_SHARES * (1 - world.positive))
            setattr(out, f"groups_{arm}", positive + negative)
            setattr(out, f"positive_{arm}", positive)
    if everything or fam == "calibration":
        for arm, lam, world in (("c", lam_c, scenario.canary), ("b", lam_b, scenario.baseline)):
            arriving = label_arrivals(lam)[:, None] * CONFIDENCE_SHARES
            correct = poisson(arriving * world.accuracy)
            setattr(out, f"labelled_{arm}", correct + poisson(arriving * (1 - world.accuracy)))
            setattr(out, f"correct_{arm}", correct)
    if everything or fam == "shadowDisagreement":
        d = scenario.canary.disagreement
        out.disagreed = poisson(lam_c * d)
        out.compared = out.disagreed + poisson(lam_c * (1 - d))
    return out
