"""Anytime-valid evidence: e-processes whose error guarantee holds however often they are read.

Every function returns the log of an e-process (a non-negative quantity with expectation
at most 1 under its null at any stopping time). By Ville's inequality the chance that it
*ever* reaches 1/alpha under the null is at most alpha, so the reconciler may look every
minute, forever, and the false-alarm rate stays alpha. Functions work on arrays with any
leading batch shape, so the benchmark runs thousands of simulated rollouts through the
very same code as `analyze`.

Three families:

* rate ratios of event counts (errors, slow requests, score buckets), conditioning each
  interval's events on their total so the unknown baseline rate drops out (the Poisson
  "which arm did the event land in" construction of Lindon et al., KDD 2022), mixed over a
  grid of alternatives;
* one-sample Bernoulli proportions against a fixed rate (shadow disagreement);
* normal mixtures for differences of proportions with plenty of counts (fairness,
  calibration) and a chi-square-ball version for whole histograms (drift), asymptotically
  valid, with the null's likelihood maximised as in universal inference (Wasserman,
  Ramdas and Balakrishnan, 2020) so a tolerance can be built in;
* the Dirichlet-multinomial test of Lindon and Malek (2022) for sample-ratio mismatch.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.special import betaln, expit, gammaln, log_ndtr, logit, xlog1py, xlogy

from vigil.stats import scalar
from vigil.stats.quiet import quiet
from vigil.stats.roots import NotExact, brent_steps, brentq, lockstep


@dataclass(frozen=True)
class OneSidedPrior:
    """Mixing weights over how far beyond the null boundary the truth may lie.

    `offsets` are positive distances in log (rate ratio) or logit (proportion) units; the
    weights follow a half-normal of the given scale, discretised on a geometric grid so
    that both small and large effects get mass. A discrete mixture of likelihood ratios is
    exactly a test martingale, no approximation involved.
    """

    offsets: np.ndarray
    log_weights: np.ndarray

    @functools.cached_property
    def spread(self) -> float:
        """Root mean square of the offsets under the weights: the scale of the effects the prior
        expects (computed once per prior)."""
        return float(np.sqrt(np.sum(np.exp(self.log_weights) * self.offsets**2)))

    @classmethod
    def half_normal(cls, scale: float, points: int = 40, smallest: float = 0.005) -> OneSidedPrior:
        u = np.geomspace(smallest, 5.0 * scale, points)
        cells = np.concatenate([[0.0], (u[1:] + u[:-1]) / 2, [u[-1] + (u[-1] - u[-2]) / 2]])
        w = _normal_pdf(u / scale) * np.diff(cells)
        return cls(u, np.log(w / w.sum()))


def _normal_pdf(x: np.ndarray) -> np.ndarray:
    """The standard normal density as scipy.stats.norm.pdf computes it (the same expression),
    without importing scipy.stats for one prior's weights."""
    return np.exp(-x**2 / 2.0) / np.sqrt(2 * np.pi)


RATE_PRIOR = OneSidedPrior.half_normal(scale=0.6)
"""Default for rate ratios: most mass on 5%..2x beyond the tolerance, some up to 20x."""

TAIL_PRIOR = OneSidedPrior.half_normal(scale=1.2)
"""For latency tails, where a slower version multiplies the share of slow requests several-fold."""

PROPORTION_PRIOR = OneSidedPrior.half_normal(scale=0.8)
"""Default for one-sample proportions, in logit units."""


def logsumexp(x: np.ndarray, axis: int = -1, scratch: bool = False) -> np.ndarray:
    """log(sum(exp(x))) along `axis`, stable; scipy's version costs more than the sum here.
    `scratch`: x is the caller's to overwrite (the same operations, in place: as large as a plan's
    whole path, a fresh temporary costs as much as the arithmetic)."""
    x = np.asarray(x, dtype=float)
    top = np.maximum.reduce(x, axis=axis, keepdims=True)  # x.max and x.sum without their wrappers
    top = np.where(np.isfinite(top), top, 0.0)
    shifted = np.exp(np.subtract(x, top, out=x), out=x) if scratch else np.exp(x - top)
    with quiet(divide="ignore"):
        return top.squeeze(axis=axis) + np.log(np.add.reduce(shifted, axis=axis))


def _mixture(cum_llr: np.ndarray, prior: OneSidedPrior, owned: bool = False) -> np.ndarray:
    """logsumexp(cum_llr + log_weights) over the prior, in place on the sum; `owned`: cum_llr is
    the caller's scratch, and the sum goes there too."""
    x = np.add(cum_llr, prior.log_weights, out=cum_llr) if owned else cum_llr + prior.log_weights
    return logsumexp(x, axis=-1, scratch=True)


# ----------------------------------------------------------------- rate ratios


def rate_ratio_llr(x_c: np.ndarray, x_b: np.ndarray, a: np.ndarray, rho: np.ndarray,
                   log_rho: np.ndarray | None = None) -> np.ndarray:
    """Per-interval log likelihood ratio of "canary/baseline rate ratio is rho x the null".

    Given m = x_c + x_b events in an interval, the canary's share is binomial with
    theta(rho) = a rho / (a rho + 1), a = null ratio x canary exposure / baseline exposure.
    Shapes: x_c, x_b, a (..., T); rho (G,) -> (..., T, G). Intervals without exposure on
    either side carry no information (ratio 0). `log_rho`: np.log(rho), when the caller has it.
    """
    x_c, x_b, a = (np.asarray(v, dtype=float)[..., None] for v in (x_c, x_b, a))
    informative = np.isfinite(a) & (a > 0)
    events = x_c * (np.log(rho) if log_rho is None else log_rho)
    if informative.all():  # every interval informative (the usual case): no mask to apply
        return _llr_terms(events, x_c + x_b, a, rho)
    return np.where(informative, _llr_terms(events, x_c + x_b, np.where(np.isfinite(a), a, 0.0), rho), 0.0)


def _llr_terms(events: np.ndarray, m: np.ndarray, a: np.ndarray, rho: np.ndarray) -> np.ndarray:
    """events - m * (log1p(a rho) - log1p(a)), the rate-ratio likelihood ratio of every interval
    and alternative, its operations in order in one (..., T, G) buffer instead of four fresh ones:
    at a plan's or an interval search's sizes the temporaries cost as much as the arithmetic."""
    llr = np.multiply(a, rho)
    np.log1p(llr, out=llr)
    np.subtract(llr, np.log1p(a), out=llr)
    if llr.shape != np.broadcast(llr, m, events).shape:
        llr = np.multiply(m, llr)  # one exposure for several event counts (a histogram's buckets): its logs once
    else:
        np.multiply(m, llr, out=llr)
    return np.subtract(events, llr, out=llr)


def exposure_ratio(n_c: np.ndarray, n_b: np.ndarray, rho0: np.ndarray | float) -> np.ndarray:
    """a = rho0 * n_c / n_b per interval (inf where the baseline saw nothing, or where counts
    beyond any real traffic overflow it: such an interval is left out as uninformative)."""
    n_c, n_b = np.asarray(n_c, dtype=float), np.asarray(n_b, dtype=float)
    with quiet(over="ignore", invalid="ignore"):
        return divided(np.multiply(rho0, n_c), n_b, np.inf)


def divided(num: np.ndarray, den: np.ndarray, fill: float) -> np.ndarray:
    """num / den where den > 0, `fill` elsewhere, broadcast: divided only where the denominator
    counts, so no division by zero to silence, and one comparison where two `np.where`s (a
    divisor made safe, then the fill) cost twice the calls on the window's small arrays."""
    counted = den > 0
    out = np.empty(den.shape if np.shape(num) == den.shape else np.broadcast(num, den).shape)
    out.fill(fill)  # np.full without its wrapper
    return np.divide(num, den, out=out, where=counted)


def rate_ratio_evidence(
    x_c: np.ndarray,
    x_b: np.ndarray,
    n_c: np.ndarray,
    n_b: np.ndarray,
    rho0: np.ndarray | float,
    prior: OneSidedPrior = RATE_PRIOR,
    rho0_pass: np.ndarray | float | None = None,
    last: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Log e-processes at every prefix of the window, shaped like the inputs (..., T).

    * fail: against "canary rate <= rho0 x baseline rate" (evidence of a regression beyond
      the tolerance),
    * pass: against "canary rate >= rho0_pass x baseline rate" (evidence it is below the
      regression margin; rho0_pass defaults to rho0, a test without indifference zone).

    x = events and n = exposure (requests) per interval; rho0 may vary per interval.
    `last`: only the value at the end of the window, shaped (..., 1) (`rate_ratio_side`).
    """
    return (rate_ratio_side(x_c, x_b, n_c, n_b, rho0, prior, True, last),
            rate_ratio_side(x_c, x_b, n_c, n_b, rho0 if rho0_pass is None else rho0_pass, prior, False, last))


def rate_ratio_side(x_c: np.ndarray, x_b: np.ndarray, n_c: np.ndarray, n_b: np.ndarray, rho0: np.ndarray | float,
                    prior: OneSidedPrior, fail: bool, last: bool = False) -> np.ndarray:
    """One side of `rate_ratio_evidence`: fail (against "ratio <= rho0") or pass (against
    "ratio >= rho0"), for callers that need one side on more rows than the other.
    `last`: only the end of the window, (..., 1); the sum over intervals is the last entry of
    their cumulative sum (the same additions in the same order)."""
    rho_up, rho_down, log_up, log_down = _one_sided(prior)
    rho, log_rho = (rho_up, log_up) if fail else (rho_down, log_down)
    llr = rate_ratio_llr(x_c, x_b, exposure_ratio(n_c, n_b, rho0), rho, log_rho)
    return _mixture(llr.sum(axis=-2, keepdims=True) if last else np.add.accumulate(llr, axis=-2), prior, owned=True)


_ONE_SIDED: dict[int, tuple[OneSidedPrior, tuple[np.ndarray, ...]]] = {}


def _one_sided(prior: OneSidedPrior) -> tuple[np.ndarray, ...]:
    """(rho up, rho down, their logs) of a prior's alternatives: fixed by the prior, computed once
    (kept with the prior, so its id cannot be reused)."""
    held = _ONE_SIDED.get(id(prior))
    if held is None or held[0] is not prior:
        up, down = np.exp(prior.offsets), np.exp(-prior.offsets)
        terms = (up, down, np.log(up), np.log(down))
        for t in terms:
            t.setflags(write=False)
        if len(_ONE_SIDED) > 64:
            _ONE_SIDED.clear()
        held = _ONE_SIDED[id(prior)] = (prior, terms)
    return held[1]


def _pearson(n: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pearson's statistic of per-interval counts x (exposure n) around their pooled rate, over
    the intervals *before* each one, and its degrees of freedom, (..., T) each."""
    x, n = np.asarray(x, dtype=float), np.asarray(n, dtype=float)
    X, N = np.add.accumulate(x, axis=-1) - x, np.add.accumulate(n, axis=-1) - n
    q = ratio_or(x**2, n, 0.0)
    Q = np.add.accumulate(q, axis=-1) - q
    p = ratio_or(X, N, 0.0)
    pearson = np.where(p > 0, ratio_or(Q - 2 * p * X + p**2 * N, p, 0.0), 0.0)
    return pearson, _degrees(n)


def _degrees(n: np.ndarray) -> np.ndarray:
    """`_pearson`'s degrees of freedom: the intervals with exposure before each one, less one."""
    served = np.asarray(n, dtype=float) > 0
    return np.maximum(np.cumsum(served, axis=-1) - served - 1, 0)


def baseline_dispersion(n_b: np.ndarray, x_b: np.ndarray, prior: float = 2.0, known: float | None = None,
                        n_c: np.ndarray | None = None, x_c: np.ndarray | None = None) -> np.ndarray:
    """How much per-interval event counts scatter beyond Poisson, from the intervals *before*
    each one (predictable), shaped (..., T).

    Pearson's statistic sum (x - n p)^2 / (n p) over the earlier intervals, each arm around
    its own pooled rate (so a canary whose rate differs does not look dispersed), per degree
    of freedom, with `prior` pseudo-intervals at 1, floored at 1 and raised to its one-sided
    84% bound (x (1 + sqrt(2 / dof))): bursts of mean size k give about E[k^2] / E[k]. The
    baseline has most of the traffic, so it sees bursts first; the canary's counts (n_c,
    x_c), when given, add their degrees of freedom and their own bursts.
    `known` replaces the Pearson estimate (projections on expected counts, which have none).
    """
    if known is not None:  # the estimate is replaced: only its degrees of freedom are read
        dof = _degrees(n_b) if n_c is None or x_c is None else _degrees(n_b) + _degrees(n_c)
        return max(known, 1.0) * (1.0 + np.sqrt(2.0 / (dof + 2.0)))
    pearson, dof = _pearson(n_b, x_b)
    if n_c is not None and x_c is not None:
        more, extra = _pearson(n_c, x_c)
        pearson, dof = pearson + more, dof + extra
    phi = np.maximum((pearson + prior) / (dof + prior), 1.0)
    return phi * (1.0 + np.sqrt(2.0 / (dof + 2.0)))


def robust_rate_ratio_evidence(
    x_c: np.ndarray,
    x_b: np.ndarray,
    n_c: np.ndarray,
    n_b: np.ndarray,
    rho0: np.ndarray | float,
    rho0_pass: np.ndarray | float | None = None,
    scale: float = 0.6,
    dispersion: float | None = None,
    fail_side: bool = True,
) -> tuple[np.ndarray | None, np.ndarray]:
    """Rate-ratio e-processes that survive clustered events (bursts, a flaky pod), (..., T).

    Per interval, D = x_c - theta0 m (m = x_c + x_b, theta0 = a / (1 + a) the canary's share
    of events under the null ratio) has conditional mean <= 0 under the null however the
    events cluster *within* the interval, as long as a cluster lands in an arm in proportion
    to that arm's traffic x rate (the conditioning of `rate_ratio_llr`). The sum S of the D's
    is tested with a one-sided normal mixture (`normal_log_e`) whose variance V is estimated
    so that bursts widen it:

    * scatter = sum (D_t - mean of the earlier D's)^2, self-normalising (de la Peña): a burst
      that moves S widens V by its square;
    * model = phi x the binomial variance at the null share, phi = `baseline_dispersion`.

    Fail (bursts push D up, the scatter sees them): V = max(model, scatter x min(1, binomial
    variance at the null share / at the observed share)); the rescaling stops an alternative's
    larger variance from costing power, the model term keeps a floor under it.
    Pass (bursts push D *down* rarely and hard: most intervals see no canary burst, so the
    scatter underestimates): V = max(scatter, model).
    Asymptotically valid, like the other normal-mixture gates.

    fail: against "ratio <= rho0"; pass: against "ratio >= rho0_pass" (default rho0).
    `scale`: half-normal prior scale of the drift per unit variance (about the log rate
    ratio). `dispersion`, for projections on expected counts only (which have no scatter):
    the scatter is taken as this factor times the binomial variance at the path's share,
    and the baseline's dispersion as this factor. `fail_side=False`: Pass only (Fail is None).
    """
    x_c, x_b = np.asarray(x_c, dtype=float), np.asarray(x_b, dtype=float)
    m = x_c + x_b
    phi = baseline_dispersion(n_b, x_b, known=dispersion, n_c=n_c, x_c=x_c)
    mh = _running_ratio(x_c, x_b, n_c, n_b)
    out: list[np.ndarray] = []
    sides = ((rho0, 1.0), (rho0 if rho0_pass is None else rho0_pass, -1.0))
    for rho, sign in sides if fail_side else sides[1:]:
        a = exposure_ratio(n_c, n_b, rho)
        ok = np.isfinite(a) & (a > 0)
        theta0 = np.where(ok, a, 0.0) / (1.0 + np.where(ok, a, 0.0))
        d = np.where(ok, sign * (x_c - theta0 * m), 0.0)
        total = np.add.accumulate(d, axis=-1)
        at_null = np.add.accumulate(np.where(ok, theta0 * (1 - theta0) * m, 0.0), axis=-1)
        a_hat = exposure_ratio(n_c, n_b, np.where(np.isfinite(mh) & (mh > 0), mh, rho))
        theta_hat = np.where(ok, a_hat, 0.0) / (1.0 + np.where(ok, a_hat, 0.0))
        at_hat = np.add.accumulate(np.where(ok, theta_hat * (1 - theta_hat) * m, 0.0), axis=-1)
        if dispersion is None:
            seen = np.cumsum(ok, axis=-1)
            before = np.where(seen > 1, (total - d) / np.maximum(seen - 1, 1), 0.0)
            scatter = np.add.accumulate(np.where(ok, (d - before) ** 2, 0.0), axis=-1)
        else:  # what the scatter would be on average around the expected path
            scatter = max(dispersion, 1.0) * at_hat
        model = phi * at_null
        if sign > 0:
            var = np.maximum(model, scatter * np.minimum(1.0, ratio_or(at_null, at_hat, 1.0)))
        else:
            var = np.maximum(scatter, model)
        safe = np.where(var > 0, var, 1.0)
        out.append(np.where(var > 0, normal_log_e(total / safe, var, scale), 0.0))
    return (out[0] if fail_side else None), out[-1]


def _running_ratio(x_c: np.ndarray, x_b: np.ndarray, n_c: np.ndarray, n_b: np.ndarray) -> np.ndarray:
    """Mantel-Haenszel rate ratio over every prefix (..., T), NaN while undefined."""
    n = np.asarray(n_c, dtype=float) + np.asarray(n_b, dtype=float)
    with quiet(invalid="ignore"):  # no division by zero left to silence: `divided` skips it
        num = np.add.accumulate(divided(x_c * n_b, n, 0.0), axis=-1)
        den = np.add.accumulate(divided(x_b * n_c, n, 0.0), axis=-1)
        return divided(num, den, np.nan)


def shiryaev_roberts_log_e(llr: np.ndarray) -> np.ndarray:
    """Log of the Shiryaev-Roberts e-detector R_t = (1 + R_{t-1}) L_t, averaged over the last
    axis of per-interval log likelihood ratios llr (..., T, G), returned (..., T).

    R_t sums the likelihood ratios of every possible start of a change (Shin, Ramdas and
    Rinaldo, "E-detectors", 2023): with no change, R_t - t is a supermartingale, so R reaches
    A within T intervals with probability at most T / A."""
    log_r = np.full(llr.shape[:-2] + (llr.shape[-1],), -np.inf)
    path = np.empty(llr.shape)
    for t in range(llr.shape[-2]):  # the recursion itself; the mean over alternatives once, after it
        log_r = np.logaddexp(0.0, log_r) + llr[..., t, :]
        path[..., t, :] = log_r
    return logsumexp(path, axis=-1) - np.log(llr.shape[-1])


def mantel_haenszel_ratio(x_c: np.ndarray, x_b: np.ndarray, n_c: np.ndarray, n_b: np.ndarray) -> float:
    """Rate ratio pooled over intervals without letting changing weights bias it."""
    n = n_c + n_b
    served = n > 0
    with quiet(divide="ignore", invalid="ignore"):
        # np.nansum of the served terms without its wrapper: NaN terms count as 0, the same sum
        num, den = (np.add.reduce(np.where(served & ~np.isnan(t), t, 0.0), axis=None)
                    for t in (x_c * n_b / n, x_b * n_c / n))
    if den == 0:
        return float("inf") if num > 0 else float("nan")
    return float(num / den)


def rate_ratio_interval(
    x_c: np.ndarray, x_b: np.ndarray, n_c: np.ndarray, n_b: np.ndarray, alpha: float,
    prior: OneSidedPrior = RATE_PRIOR, lockstep: bool = True,
) -> tuple[float, float]:
    """Confidence-sequence interval for the rate ratio (canary/baseline) over one window:
    the ratios r that a two-sided mixture test at level alpha has not rejected.
    `lockstep=False`: the reference search, one scalar call of the test per step."""
    rho, log_w = _two_sided(prior)
    # what does not depend on the ratio tried is computed once for the root finder's ~30 calls
    # (the same operations, in the same order, as rate_ratio_llr)
    xc, xb = (np.asarray(v, dtype=float)[..., None] for v in (x_c, x_b))
    events_term, m = xc * np.log(rho), xc + xb
    n_c_, n_b_ = np.asarray(n_c, dtype=float), np.asarray(n_b, dtype=float)
    served = n_b_ > 0
    n_b_safe = np.where(served, n_b_, 1.0)

    def log_e(log_r: float) -> float:
        with quiet(divide="ignore", invalid="ignore", over="ignore"):
            a = np.where(served, np.exp(log_r) * n_c_ / n_b_safe, np.inf)[..., None]
            finite = np.isfinite(a)
            a = np.where(finite, a, 0.0)
            llr = events_term - m * (np.log1p(a * rho) - np.log1p(a))
            x = np.where(finite & (a > 0), llr, 0.0).sum(axis=-2) + log_w
            if x.ndim != 1:
                return float(logsumexp(x))
            top = float(x.max())  # logsumexp of one vector, as `logsumexp` computes it
            top = top if np.isfinite(top) else 0.0
            return float(top + np.log(np.exp(x - top).sum()))

    all_served = bool(served.all())
    # exposures within 1e-30..1e30 on both arms: at any ratio within e^+-300 every interval's a is
    # finite and positive, so no mask is needed (checked once, not at every step)
    regular = all_served and bool(((n_c_ > 1e-30) & (n_c_ < 1e30) & (n_b_ > 1e-30) & (n_b_ < 1e30)).all())

    def log_e_many(log_r: np.ndarray) -> list[float]:
        """log_e at several ratios in one pass: each row is what log_e computes for its ratio
        (elementwise operations, the same reductions per row; masks that select everything
        are left out)."""
        with quiet(divide="ignore", invalid="ignore", over="ignore"):
            a = np.exp(log_r)[:, None] * n_c_ / n_b_safe
            if not all_served:
                a = np.where(served, a, np.inf)
            a = a[..., None]
            if regular and all(abs(v) < 300 for v in log_r.tolist()):
                informative = None
            else:
                informative = np.isfinite(a) & (a > 0)
            if informative is None or informative.all():
                llr = _llr_terms(events_term, m, a, rho)
            else:
                llr = np.where(informative, _llr_terms(events_term, m, np.where(np.isfinite(a), a, 0.0), rho), 0.0)
            x = np.add.reduce(llr, axis=-2) + log_w
            tops = np.maximum.reduce(x, axis=-1)
            logs = np.log(np.add.reduce(np.exp(x - np.where(np.isfinite(tops), tops, 0.0)[:, None]), axis=-1))
        return [float((float(t) if math.isfinite(t) else 0.0) + v) for t, v in zip(tops, logs)]

    center = mantel_haenszel_ratio(x_c, x_b, n_c, n_b)
    center = 1.0 if not np.isfinite(center) or center <= 0 else center
    many = log_e_many if lockstep and events_term.ndim == 2 else None
    spread = _ratio_halfwidth(float(np.sum(x_c)), float(np.sum(x_b)), alpha, prior) if many is not None else None
    lo, hi = confidence_bounds(log_e, np.log(center), np.log(1e-3), np.log(1e3), np.log(1 / alpha), many, spread)
    return float(np.exp(lo)), float(np.exp(hi))


def _ratio_halfwidth(events_c: float, events_b: float, alpha: float, prior: OneSidedPrior) -> float:
    """A first guess of the interval's half-width in log ratio, where the search starts: the
    normal-mixture confidence sequence's (`normal_halfwidth`) with the Poisson variance of a log
    rate ratio (1/X_c + 1/X_b, half an event where none was seen) and the prior's spread. It
    decides where the search looks first; what it finds depends on it only within BOUND_XTOL."""
    variance = 1.0 / max(events_c, 0.5) + 1.0 / max(events_b, 0.5)
    half = float(normal_halfwidth(1.0 / variance, alpha, prior.spread))
    return min(max(half, 0.01), 5.0) if math.isfinite(half) else 5.0


_TWO_SIDED: dict[int, tuple[OneSidedPrior, np.ndarray, np.ndarray]] = {}


def _two_sided(prior: OneSidedPrior) -> tuple[np.ndarray, np.ndarray]:
    """Ratios and log weights of the two-sided mixture of a prior: fixed by the prior, so
    computed once per prior (kept with the prior, so its id cannot be reused)."""
    held = _TWO_SIDED.get(id(prior))
    if held is None or held[0] is not prior:
        rho = np.exp(np.concatenate([prior.offsets, -prior.offsets]))
        log_w = np.concatenate([prior.log_weights, prior.log_weights]) - np.log(2.0)
        rho.setflags(write=False)
        log_w.setflags(write=False)
        if len(_TWO_SIDED) > 64:
            _TWO_SIDED.clear()
        held = _TWO_SIDED[id(prior)] = (prior, rho, log_w)
    return held[1], held[2]


def confidence_bounds(log_e: Callable[[float], float], center: float, lowest: float, highest: float,
                      level: float, log_e_many: Callable[[np.ndarray], list[float]] | None = None,
                      spread: float | None = None) -> tuple[float, float]:
    """Where a test family's log e-value crosses `level` left and right of `center`, to within
    BOUND_XTOL.

    The e-value of "the parameter is v" grows as v moves away from the data, so the set
    it has not rejected is an interval around the estimate; its ends are found by root
    finding. Returns the search limits where no crossing exists, and (nan, nan) when
    even the estimate is rejected.

    `log_e_many` (log_e at several points at once, the same values): both ends are searched
    side by side (`roots.lockstep`), the same root as scipy's brentq finds for each; any
    search that leaves the path the port reproduces is redone by scipy. With `spread` too (a
    guess of the half-width), each end is first bracketed near its guess and then searched in
    that bracket (`_bounds_guided`): half the evaluations, an end within the same tolerance of
    the crossing.
    """
    if log_e_many is not None:
        try:
            if spread is not None:
                return _bounds_guided(log_e_many, center, lowest, highest, level, spread)
            return _bounds_lockstep(log_e_many, center, lowest, highest, level)
        except NotExact:
            pass
    if log_e(center) >= level:
        return float("nan"), float("nan")
    ends = []
    for limit in (lowest, highest):
        if log_e(limit) < level:
            ends.append(limit)
        else:
            ends.append(brentq(lambda v: log_e(v) - level, center, limit, xtol=BOUND_XTOL) if limit > center
                        else brentq(lambda v: log_e(v) - level, limit, center, xtol=BOUND_XTOL))
    return ends[0], ends[1]


BOUND_XTOL = 1e-3
"""How close to its crossing an interval end is found (in the searched parameter: log ratio or logit)."""
GUESS_PROBE = 0.02
"""A guessed end is probed this share of its distance from the center on both sides (plus BOUND_XTOL):
near a smooth crossing the two probes usually bracket it, so Brent starts in a bracket a few
tolerances wide."""


def _bounds_guided(log_e_many: Callable[[np.ndarray], list[float]], center: float, lowest: float,
                   highest: float, level: float, spread: float) -> tuple[float, float]:
    """`confidence_bounds` from a guessed half-width: each side is bracketed near its guess, then
    searched by Brent in that bracket, both sides in lockstep.

    Round 1 asks for the log e-value at the center and at center -+ spread; round 2 at the
    crossing a parabola through the center's and the guess's values predicts (the log e-value
    grows about quadratically away from the estimate), GUESS_PROBE either side of it. On each side
    the bracket is the nearest point at or above the level and the farthest point below it that is
    nearer to the center; a side with no point at the level yet doubles its distance until one is
    found or the search limit is reached (below the level at the limit: the end is the limit, as in
    `_bounds_lockstep`). A NaN anywhere raises NotExact (the caller searches as before)."""
    c, lowest, highest = float(center), float(lowest), float(highest)
    if not lowest < c < highest or not spread > 0:
        raise NotExact  # an estimate at or beyond a search limit: the plain searches handle it
    known: dict[float, float] = {}

    def ask(points: list[float], must_learn: bool = False) -> None:
        todo = sorted({p for p in points if p not in known})
        if must_learn and points and not todo:
            raise NotExact  # a widening that learns nothing (not expected inside the limits): never loop
        if todo:
            values = [float(v) for v in log_e_many(np.array(todo))]
            if any(math.isnan(v) for v in values):
                raise NotExact
            known.update(zip(todo, values))

    guesses = (max(c - spread, lowest), min(c + spread, highest))
    ask([c, *guesses])
    if known[c] >= level:
        return float("nan"), float("nan")
    probes = []
    for guess in guesses:
        rise = known[guess] - known[c]
        predicted = c + (guess - c) * math.sqrt((level - known[c]) / rise) if rise > 0 else 2 * guess - c
        predicted = min(max(predicted, lowest), highest)
        width = GUESS_PROBE * abs(predicted - c) + BOUND_XTOL
        probes += [min(max(predicted - width, lowest), highest), min(max(predicted + width, lowest), highest)]
    ask(probes)
    sides = [(-1.0, lowest), (1.0, highest)]
    ends: list[float | None] = [None, None]
    brackets: dict[int, tuple[float, float]] = {}
    while len(brackets) + sum(e is not None for e in ends) < 2:
        more = []
        for i, (sign, limit) in enumerate(sides):
            if ends[i] is not None or i in brackets:
                continue
            side = sorted((p for p in known if (p - c) * sign >= 0), key=lambda p: abs(p - c))
            above = [p for p in side if known[p] >= level]
            if above:
                inside = [p for p in side if known[p] < level and abs(p - c) < abs(above[0] - c)]
                brackets[i] = tuple(sorted((inside[-1] if inside else c, above[0])))  # type: ignore[assignment]
            elif side[-1] == limit:
                ends[i] = limit
            else:
                far = side[-1]
                more.append(min(max(far + sign * max(abs(far - c), BOUND_XTOL), lowest), highest))
        ask(more, must_learn=True)
    order = sorted(brackets)
    searches = [brent_steps(*brackets[i], BOUND_XTOL) for i in order]
    roots = lockstep(lambda xs: [v - level for v in log_e_many(xs)], searches, {x: v - level for x, v in known.items()})
    for i, root in zip(order, roots):
        ends[i] = root
    return float(ends[0]), float(ends[1])  # type: ignore[arg-type]


def _bounds_lockstep(log_e_many: Callable[[np.ndarray], list[float]], center: float, lowest: float,
                     highest: float, level: float) -> tuple[float, float]:
    """`confidence_bounds` with both brentq searches run side by side (see there)."""
    center, lowest, highest = float(center), float(lowest), float(highest)
    first = dict(zip((center, lowest, highest), log_e_many(np.array([center, lowest, highest]))))
    if math.isnan(first[center]) or first[center] >= level:
        if math.isnan(first[center]):
            raise NotExact
        return float("nan"), float("nan")
    ends: list[float | None] = []
    searches = []
    for limit in (lowest, highest):
        if first[limit] < level:
            ends.append(limit)
        else:
            ends.append(None)
            searches.append(brent_steps(center, limit, BOUND_XTOL) if limit > center
                            else brent_steps(limit, center, BOUND_XTOL))
    roots = iter(lockstep(lambda xs: [v - level for v in log_e_many(xs)], searches,
                          {x: v - level for x, v in first.items()}))
    lo, hi = (e if e is not None else next(roots) for e in ends)
    return lo, hi


# ------------------------------------------------------ one-sample proportions


def proportion_evidence(
    x: np.ndarray, m: np.ndarray, theta0: float, prior: OneSidedPrior = PROPORTION_PRIOR,
    theta0_pass: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Log e-processes for a Bernoulli rate, from cumulative counts (..., T).

    fail: against "rate <= theta0"; pass: against "rate >= theta0_pass" (default theta0).
    """
    x, m = np.asarray(x, dtype=float)[..., None], np.asarray(m, dtype=float)[..., None]

    def llr(theta: np.ndarray, null: float) -> np.ndarray:
        return x * np.log(theta / null) + (m - x) * np.log((1 - theta) / (1 - null))

    up = theta0 if theta0_pass is None else theta0_pass
    return (_mixture(llr(expit(logit(theta0) + prior.offsets), theta0), prior),
            _mixture(llr(expit(logit(up) - prior.offsets), up), prior))


def proportion_interval(x: float, m: float, alpha: float, prior: OneSidedPrior = PROPORTION_PRIOR,
                        lockstep: bool = True) -> tuple[float, float]:
    """Confidence-sequence interval for a Bernoulli rate from cumulative counts (x of m).
    `lockstep=False`: the reference search, one scalar call of the test per step."""
    u = np.concatenate([prior.offsets, -prior.offsets])
    log_w = np.concatenate([prior.log_weights, prior.log_weights]) - np.log(2.0)

    def log_e(z: float) -> float:
        theta0, theta = expit(z), expit(z + u)
        return float(logsumexp(x * np.log(theta / theta0) + (m - x) * np.log((1 - theta) / (1 - theta0)) + log_w))

    def log_e_many(z: np.ndarray) -> list[float]:
        """log_e at several points, one row each (the same elementwise operations and reductions)."""
        theta0, theta = expit(z)[:, None], expit(z[:, None] + u)
        rows = logsumexp(x * np.log(theta / theta0) + (m - x) * np.log((1 - theta) / (1 - theta0)) + log_w)
        return [float(v) for v in rows]

    center = logit(np.clip((x + 0.5) / (m + 1.0), 1e-6, 1 - 1e-6))
    lo, hi = confidence_bounds(log_e, float(center), -12.0, 12.0, np.log(1 / alpha), log_e_many if lockstep else None)
    return float(expit(lo)), float(expit(hi))


# -------------------------------------------------------------- normal mixtures


def normal_log_e(excess: np.ndarray, info: np.ndarray, scale: float) -> np.ndarray:
    """One-sided normal-mixture e-process for an estimate with Fisher information `info`.

    `excess` = estimate minus the null boundary, signed so that positive values speak
    against the null. The mixing prior on the effect beyond the boundary is half-normal
    with the given scale (in the estimate's units). Closed form:
    2 / sqrt(v) * exp(s^2 c^2 / 2v) * Phi(c s / sqrt(v)), s = excess * info, v = 1 + c^2 info.
    """
    excess, info = np.asarray(excess, dtype=float), np.asarray(info, dtype=float)
    s = excess * info
    v = 1.0 + scale**2 * info
    # log_ndtr is what norm.logcdf computes (the same values, infinities and NaN included),
    # without the distribution object's argument handling around it
    return np.log(2.0) - 0.5 * np.log(v) + scale**2 * s**2 / (2 * v) + log_ndtr(scale * s / np.sqrt(v))


def normal_halfwidth(info: np.ndarray, alpha: float, scale: float) -> np.ndarray:
    """Half-width of the two-sided normal-mixture confidence sequence at level alpha."""
    info = np.asarray(info, dtype=float)
    v = 1.0 + scale**2 * info
    with quiet(divide="ignore"):
        return np.sqrt(v * (2 * np.log(1 / alpha) + np.log(v)) / (scale**2 * info**2))


def ball_log_e(norm_s: np.ndarray, info: np.ndarray, dim: np.ndarray, radius: float, scale: float
               ) -> tuple[np.ndarray, np.ndarray]:
    """E-processes for a d-dimensional normal mean mu (sum S ~ N(mu I, I)) against a ball.

    fail: against ||mu|| <= radius. Numerator: N(0, scale^2) mixture over mu; denominator:
    the likelihood maximised over the ball (universal inference), which keeps it valid
    for every mu inside, not just mu = 0.
    pass: against ||mu|| >= radius. Numerator: mu = 0 (no drift); denominator maximised
    over the outside of the ball.
    """
    norm_s, info, dim = (np.asarray(v, dtype=float) for v in (norm_s, info, dim))
    safe = np.where(info > 0, info, 1.0)
    v = 1.0 + scale**2 * info
    log_num = -dim / 2 * np.log(v) + scale**2 * norm_s**2 / (2 * v)
    unconstrained = norm_s**2 / (2 * safe)
    on_sphere = radius * norm_s - radius**2 * info / 2
    inside = norm_s <= radius * info
    fail = log_num - np.where(inside, unconstrained, on_sphere)
    passed = -np.where(inside, on_sphere, unconstrained)
    ok = info > 0
    return np.where(ok, fail, 0.0), np.where(ok, passed, 0.0)


# ------------------------------------------------------- sample-ratio mismatch


def dirichlet_multinomial_log_e(counts: np.ndarray, p0: np.ndarray, concentration: float = 100.0) -> np.ndarray:
    """Log e-value against "counts ~ Multinomial(p0)" (Lindon and Malek 2022; savvi's SRM test).

    Bayes factor of a Dirichlet(concentration * p0) mixture to the null, from cumulative
    counts (..., K). A martingale under the null, so it may be read at any time.
    """
    counts = np.asarray(counts, dtype=float)
    a0 = concentration * np.asarray(p0, dtype=float)

    def log_beta(a: np.ndarray) -> np.ndarray:
        return gammaln(a).sum(axis=-1) - gammaln(a.sum(axis=-1))

    with quiet(divide="ignore", invalid="ignore"):
        null = np.where(counts > 0, counts * np.log(p0), 0.0).sum(axis=-1)
    return log_beta(a0 + counts) - log_beta(a0) - null


def tolerance_band_log_e(delta: np.ndarray, info: np.ndarray, tolerance: float, scale: float,
                         regression: float | None = None, sides: str = "both"
                         ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Normal-mixture e-processes for a difference that should stay inside [-tol, +tol] and
    must not reach +-reg (regression margin; defaults to the tolerance).

    Returns ([against delta >= -tol, against delta <= tol]  -> evidence of Fail,
             [against delta >= reg,  against delta <= -reg] -> evidence of Pass);
    `sides` "fail" or "pass": only that list (the other empty).
    """
    reg = tolerance if regression is None else regression
    fail = [] if sides == "pass" else [normal_log_e(-tolerance - delta, info, scale),
                                       normal_log_e(delta - tolerance, info, scale)]
    passed = [] if sides == "fail" else [normal_log_e(reg - delta, info, scale), normal_log_e(delta + reg, info, scale)]
    return fail, passed


def smoothed_variance(x: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Binomial variance of x/n with a half-count added, so 0 or n successes do not claim certainty."""
    p = (x + 0.5) / (n + 1.0)
    with quiet(divide="ignore", invalid="ignore"):
        return np.where(n > 0, p * (1 - p) / np.where(n > 0, n, 1.0), np.inf)


# ------------------------------------------- differences of two proportions (floors)


BETA_PRIOR_MEANS = np.array([1e-3, 1e-2, 1e-1])
"""Means of the Beta(1/2, .) components mixed for one error rate: rare, typical and high
rates all get prior mass, so a bound tightens quickly whatever the service's level."""
_BETA_A = 0.5
_BETA_B = _BETA_A * (1 - BETA_PRIOR_MEANS) / BETA_PRIOR_MEANS


def bernoulli_log_marginal(x: np.ndarray, n: np.ndarray) -> np.ndarray:
    """log of the Beta-mixture marginal likelihood of x successes in n Bernoulli trials."""
    x, n = np.asarray(x, dtype=float)[..., None], np.asarray(n, dtype=float)[..., None]
    parts = betaln(_BETA_A + x, _BETA_B + n - x) - betaln(_BETA_A, _BETA_B)
    return logsumexp(parts, axis=-1) - np.log(BETA_PRIOR_MEANS.size)


def bernoulli_log_e(x: np.ndarray, n: np.ndarray, theta: np.ndarray, log_marginal: np.ndarray) -> np.ndarray:
    """Log e-value against "the rate is theta": the Beta-mixture Bayes factor, a test
    martingale under theta whatever the stopping time (Robbins' method of mixtures)."""
    theta = _unit(theta)
    with quiet(divide="ignore", invalid="ignore"):
        loglik = xlogy(x, theta) + xlog1py(n - x, -theta)
    return log_marginal - loglik


def _unit(theta: np.ndarray) -> np.ndarray:
    """theta clipped to [0, 1] (np.clip's values, NaN kept, at a fraction of its call cost)."""
    return np.minimum(np.maximum(theta, 0.0), 1.0)


_LOG2 = float(np.log(2.0))
SCALAR_FLOORS = 4
"""Up to this many floor searches run one by one in plain floats (`scalar`): a numpy bisection
costs about as much for one element as for a hundred."""


def bisect_increasing(f: Callable[[np.ndarray], np.ndarray], lo: np.ndarray, hi: np.ndarray,
                      iterations: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Elementwise bisection for the sign change of an increasing function: (lo, hi) brackets."""
    lo, hi = np.broadcast_arrays(np.asarray(lo, dtype=float), np.asarray(hi, dtype=float))
    lo, hi = lo.copy(), hi.copy()
    for _ in range(iterations):
        mid = (lo + hi) / 2
        up = f(mid) > 0
        hi, lo = np.where(up, mid, hi), np.where(up, lo, mid)
    return lo, hi


def difference_floor_log_e(x_c: np.ndarray, n_c: np.ndarray, x_b: np.ndarray, n_b: np.ndarray,
                           floor: float, below: bool) -> np.ndarray:
    """Log evidence, from cumulative counts (...), about the increase p_c - p_b against `floor`.

    below=True: against "p_c - p_b >= floor" (evidence the increase is below the floor);
    below=False: against "p_c - p_b <= floor" (evidence it is above).
    It is the largest level L at which the two confidence sequences (one per arm, each at
    level 2L) separate by the floor: sup over t of min(E_c(rate >= t), E_b(rate <= t - floor))
    (mirrored for above), halved. Under the null the chance that it ever reaches 1/alpha is at
    most alpha: for any t, one of the two rejected statements holds for the true rates, and
    each arm's e-process reaches 2/alpha at its true rate with probability at most alpha/2.
    It is a threshold-calibrated evidence (an anytime-valid 1/p), not an e-value to average.
    """
    x_c, n_c, x_b, n_b = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (x_c, n_c, x_b, n_b)))
    m_c, m_b = bernoulli_log_marginal(x_c, n_c), bernoulli_log_marginal(x_b, n_b)
    if x_c.size <= SCALAR_FLOORS and np.ndim(floor) == 0:  # a verdict's totals: the same steps in plain floats
        return np.array([scalar.difference_floor_log_e(float(xc), float(nc), float(xb), float(nb), float(floor), below,
                                                       float(mc), float(mb), _LOG2)
                         for xc, nc, xb, nb, mc, mb in zip(x_c.flat, n_c.flat, x_b.flat, n_b.flat, m_c.flat, m_b.flat)]
                        ).reshape(x_c.shape)
    hat_c, hat_b = ratio_or(x_c, n_c, 0.0), ratio_or(x_b, n_b, 0.0)
    miss_c, miss_b = n_c - x_c, n_b - x_b  # bernoulli_log_e's n - x, once for the 40 bisection steps

    def log_e(x: np.ndarray, miss: np.ndarray, theta: np.ndarray, marginal: np.ndarray) -> np.ndarray:
        """bernoulli_log_e with n - x given: the same operations in the same order."""
        theta = _unit(theta)
        return marginal - (xlogy(x, theta) + xlog1py(miss, -theta))

    def arms(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s = t - floor
        with quiet(divide="ignore", invalid="ignore"):
            e_c = log_e(x_c, miss_c, t, m_c)
            e_b = np.where(s < 0, np.inf, log_e(x_b, miss_b, s, m_b))
        if below:  # canary rate shown below t, baseline rate shown above t - floor
            return np.where(t > hat_c, e_c, 0.0), np.where(s < hat_b, e_b, 0.0)
        return np.where(t < hat_c, e_c, 0.0), np.where(s > hat_b, np.where(s < 0, 0.0, e_b), 0.0)

    def gap(t: np.ndarray) -> np.ndarray:
        e_c, e_b = arms(t)
        return e_c - e_b if below else e_b - e_c

    floor = np.broadcast_to(np.asarray(floor, dtype=float), x_c.shape)
    start = floor - 1e-12 if below else np.zeros(x_c.shape)  # just below the floor the baseline null is empty
    lo, hi = bisect_increasing(gap, start, 1.0 + floor)
    best = np.maximum(np.minimum(*arms(lo)), np.minimum(*arms(hi)))
    usable = (n_c > 0) & (n_b > 0)
    return np.where(usable, np.maximum(best, 0.0) - np.log(2.0), 0.0)


def bernoulli_bounds(x: float, n: float, alpha: float) -> tuple[float, float]:
    """Confidence-sequence interval of a rate from the Beta-mixture e-values at level alpha
    (both ends by bisection, in plain floats: `scalar.bernoulli_bounds`)."""
    if n <= 0:
        return 0.0, 1.0
    m = bernoulli_log_marginal(np.array(float(x)), np.array(float(n)))
    return scalar.bernoulli_bounds(float(x), float(n), float(m), float(np.log(1 / alpha)))


def bernoulli_bounds_reference(x: float, n: float, alpha: float) -> tuple[float, float]:
    """`bernoulli_bounds` by numpy's bisection (the reference the tests compare it with)."""
    if n <= 0:
        return 0.0, 1.0
    x_, n_ = np.array(float(x)), np.array(float(n))
    m = bernoulli_log_marginal(x_, n_)
    level = np.log(1 / alpha)
    hat = x / n
    # both ends in one bisection: the lower end's function is level - e, the upper end's e - level
    # (-(e - level) is exactly level - e in floating point, so each end is what its own search gives)
    sign = np.array([-1.0, 1.0])
    lo, hi = bisect_increasing(lambda t: sign * (bernoulli_log_e(x_, n_, t, m) - level),
                               np.array([0.0, hat]), np.array([hat, 1.0]), scalar.RATE_BOUND_STEPS)
    return float(lo[0]), float(hi[1])


def ratio_or(num: np.ndarray, den: np.ndarray, fill: float) -> np.ndarray:
    """num/den with `fill` where den is 0."""
    with quiet(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), fill)
