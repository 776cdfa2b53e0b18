"""The statistical comparators, each on the same one-sided effects and at the same per-gate
alpha as Vigil (the deployed budget of the example policy, split over its gates).

* repeated z-test: the naive peeking method, a fixed-sample one-sided z-test re-run at
  every analysis and acted on at the first rejection;
* mSPRT: the always-valid mixture SPRT of Johari, Koomen, Pekelis and Walsh ("Peeking at
  A/B tests", KDD 2017; Operations Research 2022) with a normal mixture N(0, tau^2) over the
  effect, tau = the effect at the regression margin;
* group-sequential: a Lan-DeMets (1983) alpha-spending design with the O'Brien-Fleming-type
  spending function alpha(t) = 2 - 2 Phi(z_{alpha/2} / sqrt(t)), one look per analysis
  interval, information fractions planned from the traffic schedule, boundaries by
  numerical integration (Armitage, McPherson and Rowe 1969);
* oracle SPRT: Wald's SPRT of the true canary distribution against the tolerance
  boundary, knowing the truth (and the onset); the lower bound on time to detect.

Each returns codes per minute (reps, T): FAIL at a rejection, PASS at the horizon for the
fail-only tests that never rejected (they have nothing else to promote on), else
INCONCLUSIVE.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import signal
from scipy.stats import norm

from bench.comparators.signals import Effect

INCONCLUSIVE, PASS, FAIL = 0, 1, 2


def _codes(reject: np.ndarray, promote_at_end: bool = True) -> np.ndarray:
    out = np.where(reject, FAIL, INCONCLUSIVE)
    if promote_at_end:
        out[:, -1] = np.where(reject.any(axis=1), out[:, -1], PASS)
    return out


def any_reject(effects: list[Effect], test, alpha: float) -> np.ndarray:
    """A gate rejects when any of its one-sided effects does, each at alpha / count."""
    share = alpha / len(effects)
    return np.logical_or.reduce([test(e, share) for e in effects])


def ztest_reject(e: Effect, alpha: float) -> np.ndarray:
    """One-sided z >= z_{1-alpha}, re-run at every look."""
    return e.z >= norm.isf(alpha)


def msprt_log_lambda(e: Effect) -> np.ndarray:
    """log of the normal-mixture mSPRT statistic for H0: effect = 0 (Johari et al., eq. for
    the Gaussian case): sqrt(V/(V+tau^2)) exp(tau^2 D^2 / (2 V (V + tau^2)))."""
    v, t2 = e.var, e.scale**2
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 0.5 * np.log(v / (v + t2)) + t2 * e.excess**2 / (2 * v * (v + t2))
    return np.where(np.isfinite(out) & (v > 0), out, 0.0)


def msprt_reject(e: Effect, alpha: float) -> np.ndarray:
    """Reject once Lambda >= 1/alpha with the estimate on the harmful side."""
    return (msprt_log_lambda(e) >= np.log(1 / alpha)) & (e.excess > 0)


def obf_spending(t: np.ndarray, alpha: float) -> np.ndarray:
    """Lan-DeMets O'Brien-Fleming-type spending: cumulative alpha spent by information t."""
    t = np.clip(np.asarray(t, dtype=float), 1e-12, 1.0)
    return 2.0 - 2.0 * norm.cdf(norm.isf(alpha / 2) / np.sqrt(t))


@lru_cache(maxsize=64)
def gst_bounds(fractions: tuple[float, ...], alpha: float, points: int = 4001, cap: float = 40.0) -> np.ndarray:
    """One-sided efficacy boundaries c_k (z scale) for looks at information `fractions` so
    that the chance of ever crossing under H0 is `alpha`, spent by `obf_spending`.

    The continuation density of the score B(t) = Z sqrt(t) is carried on a grid and moved
    from look to look by convolution with the Brownian increment; each boundary is placed
    where the mass beyond it equals that look's share of alpha.
    """
    t = np.asarray(fractions, dtype=float)
    spend = np.diff(np.concatenate([[0.0], obf_spending(t, alpha)]))
    x = np.linspace(-9.0, 9.0, points)
    dx = x[1] - x[0]
    bounds = np.full(t.size, cap)
    density = None
    prev = 0.0
    for k, (tk, sk) in enumerate(zip(t, spend)):
        sd = np.sqrt(max(tk - prev, 0.0))
        prev = tk
        if density is None:
            if sd <= 0:
                continue
            density = norm.pdf(x, scale=sd)
        elif sd >= dx:
            half = min(points // 2, int(np.ceil(10 * sd / dx)))
            kernel = norm.pdf(np.arange(-half, half + 1) * dx, scale=sd) * dx
            density = np.clip(signal.fftconvolve(density, kernel, mode="same"), 0.0, None)
        if sk > 1e-15:
            tail = np.cumsum((density * dx)[::-1])[::-1]  # mass at or above each grid point
            b = float(np.interp(sk, tail[::-1], x[::-1]))
            bounds[k] = min(cap, b / np.sqrt(tk))
        density = np.where(x < bounds[k] * np.sqrt(tk), density, 0.0)
    return bounds


def planned_fractions(weights: np.ndarray) -> tuple[float, ...]:
    """Information at each look planned from the expected canary traffic (weights per minute)."""
    info = np.cumsum(np.maximum(np.asarray(weights, dtype=float), 1e-9))
    return tuple(np.round(info / info[-1], 12))


def gst_reject_fn(weights: np.ndarray):
    fractions = planned_fractions(weights)

    def test(e: Effect, alpha: float) -> np.ndarray:
        return e.z >= gst_bounds(fractions, alpha)[None, :]
    return test


def ztest(effects_by_gate: dict[str, list[Effect]], alpha_gate: float) -> np.ndarray:
    return _codes(np.logical_or.reduce([any_reject(e, ztest_reject, alpha_gate) for e in effects_by_gate.values()]))


def msprt(effects_by_gate: dict[str, list[Effect]], alpha_gate: float) -> np.ndarray:
    return _codes(np.logical_or.reduce([any_reject(e, msprt_reject, alpha_gate) for e in effects_by_gate.values()]))


def group_sequential(effects_by_gate: dict[str, list[Effect]], alpha_gate: float, weights: np.ndarray) -> np.ndarray:
    test = gst_reject_fn(weights)
    return _codes(np.logical_or.reduce([any_reject(e, test, alpha_gate) for e in effects_by_gate.values()]))


def oracle(llr_per_minute: np.ndarray, alpha_gate: float) -> np.ndarray:
    """Wald's SPRT with the true alternative: FAIL once the summed log likelihood ratio
    reaches log(1/alpha); no promotion (it exists only for regressions)."""
    return _codes(np.cumsum(llr_per_minute, axis=-1) >= np.log(1 / alpha_gate), promote_at_end=False)
