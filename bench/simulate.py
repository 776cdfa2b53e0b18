"""Minute-by-minute counts for many simulated rollouts at once (seeded, vectorised).

Arrays are shaped (reps, minutes, cells...). Each version's traffic in a minute is
Poisson with mean rpm x weight, and every metric cell is an independent Poisson thinning
of it, which is exactly how a Poisson stream splits. The scenario then breaks that ideal
where real traffic does: errors in bursts (compound Poisson), a flaky pod whose share of
the load wanders, restarts that lose part of a minute's increments, a baseline whose error
rate drifts, a regression that starts late, nondeterminism that grows with load.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.scenarios import (
    CONFIDENCE_SHARES,
    GROUP_SHARES,
    LABEL_DELAY,
    Scenario,
    World,
)

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
    compared: np.ndarray | None = None  # (R, T) mirrored comparisons shadow vs stable
    disagreed: np.ndarray | None = None
    control_compared: np.ndarray | None = None  # (R, T) the same requests scored twice by stable
    control_disagreed: np.ndarray | None = None
    rpm: float = 0.0

    @property
    def minutes(self) -> int:
        return int(self.requests_c.shape[1])


def label_arrivals(rate: np.ndarray) -> np.ndarray:
    """Expected labels arriving per minute when predictions made at `rate` (T,) are labelled
    after a delay uniform on LABEL_DELAY minutes."""
    lo, hi = LABEL_DELAY
    out = np.zeros_like(rate)
    for delay in range(lo, min(hi, rate.size - 1) + 1):
        out[delay:] += rate[: rate.size - delay] / (hi - lo + 1)
    return out


class _Draw:
    """Seeded Poisson draws with the scenario's departures from independence."""

    def __init__(self, scenario: Scenario, reps: int, minutes: int, rng: np.random.Generator) -> None:
        self.s, self.reps, self.T, self.rng = scenario, reps, minutes, rng

    def poisson(self, mean: np.ndarray) -> np.ndarray:
        """Independent Poisson counts with the given means, broadcast to (reps, ...)."""
        mean = np.asarray(mean, dtype=float)
        if mean.shape[:2] != (self.reps, self.T):
            mean = np.broadcast_to(mean, (self.reps,) + mean.shape)
        return self.rng.poisson(mean).astype(np.float64)

    def bursty(self, mean: np.ndarray) -> np.ndarray:
        """Events in independent bursts of geometric size (mean `burst`), same mean count:
        a compound Poisson whose variance is (2 burst - 1) times the Poisson one."""
        size = self.s.burst
        if size <= 1.0:
            return self.poisson(mean)
        bursts = self.poisson(np.asarray(mean) / size)
        extra = self.rng.negative_binomial(np.maximum(bursts, 1.0), 1.0 / size)
        return np.where(bursts > 0, bursts + extra, 0.0)

    def keep(self) -> np.ndarray:
        """Share of each minute's increments that survive restarts (reps, T): a restarting pod
        (one of five) loses a uniform part of its minute, as Prometheus' increase() does."""
        out = np.ones((self.reps, self.T))
        if self.s.restarts_per_hour > 0:
            restarts = self.rng.binomial(5, min(1.0, self.s.restarts_per_hour / 60.0), (self.reps, self.T))
            out -= restarts * self.rng.uniform(0, 1, (self.reps, self.T)) / 5.0
        return np.clip(out, 0.0, 1.0)

    def error_prob(self, base: np.ndarray) -> np.ndarray:
        """Per-minute error probability of an arm (reps, T): with a flaky pod, the arm's rate
        is the load-weighted mean of its pods' rates, so it wanders with the load shares."""
        pods = self.s.pods
        if pods is None:
            return np.broadcast_to(base, (self.reps, self.T))
        mult = np.ones(pods.count)
        mult[0] = pods.flaky
        shares = self.rng.dirichlet(np.full(pods.count, pods.concentration), (self.reps, self.T))
        return base * (shares @ mult) / mult.mean()


def _by_onset(s: Scenario, t: np.ndarray, after, before) -> np.ndarray:
    after, before = np.asarray(after, dtype=float), np.asarray(before, dtype=float)
    on = (t >= s.onset).reshape((-1,) + (1,) * after.ndim)
    return np.where(on, after, before)


def simulate(scenario: Scenario, rpm: float, reps: int, seed: int, minutes: int | None = None) -> Counts:
    """All counters of `reps` rollouts of `scenario` at `rpm` requests per minute."""
    s = scenario
    T = minutes or s.minutes
    rng = np.random.default_rng(seed)
    d = _Draw(s, reps, T, rng)
    t = np.arange(T)
    w = s.weight_at(t)
    lam_c, lam_b = rpm * w, rpm * (1 - w)
    trend = s.error_trend * t / T
    keep_c, keep_b = d.keep(), d.keep()

    def requests(lam: np.ndarray, p: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = d.error_prob(p + trend)
        errors = d.bursty(lam * keep * p)
        return errors + d.poisson(lam * keep * (1 - p)), errors

    p_c = _by_onset(s, t, s.canary.error, s.baseline.error)
    n_c, x_c = requests(lam_c, p_c, keep_c)
    n_b, x_b = requests(lam_b, np.full(T, s.baseline.error), keep_b)
    out = Counts(w, n_c, x_c, n_b, x_b, rpm=float(rpm))
    gates = set(s.gates)

    def cells(lam: np.ndarray, keep: np.ndarray, probs: np.ndarray) -> np.ndarray:
        return d.poisson((lam * keep)[..., None] * probs)

    if "latencyP99" in gates or "latencyP50" in gates:
        out.latency_c = cells(lam_c, keep_c, _by_onset(s, t, s.canary.latency, s.baseline.latency))
        out.latency_b = cells(lam_b, keep_b, s.baseline.latency)
    if "predictionDrift" in gates:
        out.score_c = cells(lam_c, keep_c, _by_onset(s, t, s.canary.score, s.baseline.score))
        out.score_b = cells(lam_b, keep_b, s.baseline.score)
    if "fairnessGap" in gates:
        for arm, lam, keep, world in (("c", lam_c, keep_c, s.canary), ("b", lam_b, keep_b, s.baseline)):
            rate = _by_onset(s, t, world.positive, s.baseline.positive)
            positive = cells(lam, keep, rate * GROUP_SHARES)
            negative = cells(lam, keep, (1 - rate) * GROUP_SHARES)
            setattr(out, f"groups_{arm}", positive + negative)
            setattr(out, f"positive_{arm}", positive)
    if "calibration" in gates:
        for arm, lam, keep, world in (("c", lam_c, keep_c, s.canary), ("b", lam_b, keep_b, s.baseline)):
            arriving = (label_arrivals(lam)[None, :] * keep)[..., None] * CONFIDENCE_SHARES
            acc = world.accuracy
            correct = d.poisson(arriving * acc)
            setattr(out, f"labelled_{arm}", correct + d.poisson(arriving * (1 - acc)))
            setattr(out, f"correct_{arm}", correct)
    if "shadowDisagreement" in gates:
        natural = s.disagreement(rpm)
        shadow = natural if s.canary.disagreement is None else s.canary.disagreement
        mirrored = (rpm if s.phase == "shadow" else lam_c) * d.keep()
        out.disagreed = d.poisson(mirrored * shadow)
        out.compared = out.disagreed + d.poisson(mirrored * (1 - shadow))
        out.control_disagreed = d.poisson(mirrored * natural)
        out.control_compared = out.control_disagreed + d.poisson(mirrored * (1 - natural))
    return out


def world_at(s: Scenario, minute: int) -> World:
    """The canary's world in force at `minute` (the baseline's before the onset)."""
    return s.canary if minute >= s.onset else s.baseline
