"""The oracle SPRT's per-minute log likelihood ratios: the true canary distribution (and
the true onset) against the gate's tolerance boundary, with the baseline known.

Wald's SPRT with the true alternative is the fastest test of its error rate on average
(Wald and Wolfowitz 1948), so its mean time to rollback is the reference for "fast".
"""

from __future__ import annotations

import numpy as np
from vigil.stats.sequential import exposure_ratio, rate_ratio_llr

from bench.scenarios import (
    Policy,
    Scenario,
    _bins,
    latency_mixture,
    score_bins,
    score_shift_for_psi,
    tail_scale_for_p99,
)
from bench.simulate import Counts


def regressed_gates(s: Scenario) -> tuple[str, ...]:
    """Gates whose canary world differs from the baseline's."""
    c, b = s.canary, s.baseline
    out = []
    if c.error != b.error:
        out.append("errorRate")
    if not np.allclose(c.latency, b.latency):
        out.append("latencyP99")
    if not np.allclose(c.score, b.score):
        out.append("predictionDrift")
    if not np.allclose(c.accuracy, b.accuracy):
        out.append("calibration")
    if not np.allclose(c.positive, b.positive):
        out.append("fairnessGap")
    if c.disagreement is not None:
        out.append("shadowDisagreement")
    return tuple(g for g in out if g in s.gates)


def _multinomial(counts: np.ndarray, p_true: np.ndarray, p_null: np.ndarray) -> np.ndarray:
    keep = (p_true > 0) & (p_null > 0)
    return (counts[..., keep] * np.log(p_true[keep] / p_null[keep])).sum(-1)


def _bernoulli(x: np.ndarray, n: np.ndarray, p_true, p_null) -> np.ndarray:
    return x * np.log(p_true / p_null) + (n - x) * np.log((1 - p_true) / (1 - p_null))


def oracle_llr(s: Scenario, c: Counts, policy: Policy) -> np.ndarray | None:
    """Summed per-minute log LR over the regressed gates (reps, T); None if nothing regressed."""
    gates = regressed_gates(s)
    if not gates:
        return None
    t = np.arange(c.requests_c.shape[1])
    after = (t >= s.onset)[None, :]
    total = np.zeros(c.requests_c.shape)
    true, base = s.canary, s.baseline
    for gate in gates:
        tol = policy.tolerance[gate]
        if gate == "errorRate":
            rho0 = 1 + tol
            a = exposure_ratio(c.requests_c, c.requests_b, rho0)
            llr = rate_ratio_llr(c.errors_c, c.errors_b, a, np.array([true.error / base.error / rho0]))[..., 0]
        elif gate == "latencyP99":
            # the least favourable null on the truth's own path: the same tail slowed only
            # until the p99 is up by the tolerance (the body unchanged, as in the truth)
            null = _bins(latency_mixture(tail_scale_for_p99(tol)))
            llr = _multinomial(c.latency_c, true.latency, null)
        elif gate == "predictionDrift":
            on_path = np.allclose(true.score, score_bins(score_shift_for_psi(policy.regression[gate])))
            null = score_bins(score_shift_for_psi(tol)) if on_path else base.score  # rare bucket: against no change
            llr = _multinomial(c.score_c, true.score, null)
        elif gate == "calibration":
            null = base.accuracy - tol
            llr = _bernoulli(c.correct_c, c.labelled_c, true.accuracy, null).sum(-1)
        elif gate == "fairnessGap":
            moved = ~np.isclose(true.positive, base.positive)
            null = base.positive + np.sign(true.positive - base.positive) * tol
            llr = _bernoulli(c.positive_c[..., moved], c.groups_c[..., moved], true.positive[moved], null[moved]).sum(-1)
        else:
            null = tol
            llr = _bernoulli(c.disagreed, c.compared, true.disagreement, null)
        total += np.where(after, llr, 0.0)
    return total

