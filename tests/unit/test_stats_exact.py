"""The cheap searches give exactly the numbers of the reference searches they replace (all but one:
the rate ratio's guided interval search, which stops within the same tolerance of the same crossing).

* `roots.brent_steps` is scipy's brentq step by step, and `lockstep` runs several at once;
* `scalar` does the Bernoulli-mixture bisections in plain floats (verdicts) and must agree
  bit for bit with the numpy versions (plans, the benchmark);
* the interval searches of `sequential` with and without lockstep agree (the rate ratio's guided
  search within the searches' tolerance of the same crossing).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import optimize, special
from vigil.stats import scalar
from vigil.stats.roots import brent_steps, lockstep
from vigil.stats.sequential import (
    SCALAR_FLOORS,
    bernoulli_bounds,
    BOUND_XTOL,
    bernoulli_bounds_reference,
    confidence_bounds,
    difference_floor_log_e,
    mantel_haenszel_ratio,
    proportion_interval,
    rate_ratio_interval,
)

SLOW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def same(a: float, b: float) -> bool:
    return (a == b and math.copysign(1, a) == math.copysign(1, b)) or (math.isnan(a) and math.isnan(b))


def test_scalar_logs_are_scipys() -> None:
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.uniform(0, 1e5, 20000), [0.0, 0.0, 5.0, 5.0, 0.0]])
    y = np.concatenate([10 ** rng.uniform(-14, 0, 10000), rng.uniform(-0.6, 0.6, 10000), [0.0, 1.0, 1.0, 0.0, np.nan]])
    for xi, yi in zip(x, y):
        assert same(scalar.xlogy(float(xi), float(yi)), float(special.xlogy(xi, yi)))
        assert same(scalar.xlog1py(float(xi), float(-yi)), float(special.xlog1py(xi, -yi)))


def test_a_log1p_that_is_not_cephes_would_be_caught() -> None:
    rng = np.random.default_rng(4)
    y = rng.uniform(-0.25, 0.25, 2000)
    assert any(math.log1p(v) != float(special.xlog1py(1.0, v)) for v in y)  # the port is needed at all
    assert all(scalar.log1p(v) == float(special.xlog1py(1.0, v)) for v in y)


def test_the_written_out_bernoulli_log_e_is_its_helpers() -> None:
    """`scalar.bernoulli_log_e` inlines unit, xlogy and xlog1py (the bisections' hot loop): the
    same value, bit for bit, on random inputs and on every edge the helpers branch on."""
    def helpers(x: float, miss: float, theta: float, marginal: float) -> float:
        t = scalar.unit(theta)
        return marginal - (scalar.xlogy(x, t) + scalar.xlog1py(miss, -t))

    rng = np.random.default_rng(11)
    xs = np.concatenate([rng.uniform(0, 5e4, 6000), np.zeros(1000), rng.integers(0, 30, 1000)])
    misses = np.concatenate([rng.uniform(0, 5e6, 6000), rng.uniform(0, 100, 1000), np.zeros(1000)])
    thetas = np.concatenate([10 ** rng.uniform(-12, 0, 3000), rng.uniform(0.2, 0.45, 3000),
                             rng.uniform(-0.5, 1.5, 2000)])
    margins = rng.normal(0, 50, 8000)
    edges = [0.0, -0.0, 1.0, 1.0 - 1e-16, 1e-300, 0.5, 1 - math.sqrt(0.5), 1 - math.sqrt(2), 2.0, -1.0,
             math.inf, -math.inf, math.nan]
    cases = list(zip(xs, misses, thetas, margins)) + [
        (x, miss, t, 1.5) for x in (0.0, 3.0, math.nan) for miss in (0.0, 7.0, math.nan) for t in edges]
    for x, miss, theta, marginal in cases:
        args = (float(x), float(miss), float(theta), float(marginal))
        assert same(scalar.bernoulli_log_e(*args), helpers(*args)), args


totals = st.tuples(st.integers(0, 3000), st.integers(0, 200_000), st.integers(0, 3000), st.integers(0, 2_000_000),
                   st.sampled_from([0.0005, 0.001, 0.002, 0.01, 0.05]), st.booleans())


@SLOW
@given(totals)
def test_the_scalar_floor_search_is_the_numpy_one(case: tuple) -> None:
    x_c, n_c, x_b, n_b, floor, below = case
    x_c, x_b = min(x_c, n_c), min(x_b, n_b)
    one = difference_floor_log_e(np.array([x_c]), np.array([n_c]), np.array([x_b]), np.array([n_b]), floor, below)
    # more copies than SCALAR_FLOORS take the numpy path; each element is what the scalar path must give
    k = SCALAR_FLOORS + 1
    many = difference_floor_log_e(np.full(k, x_c), np.full(k, n_c), np.full(k, x_b), np.full(k, n_b), floor, below)
    assert one.shape == (1,)
    assert all(same(float(one[0]), float(v)) for v in many)


@SLOW
@given(st.integers(0, 5000), st.integers(1, 500_000), st.sampled_from([0.001, 0.0036, 0.025, 0.3]))
def test_the_scalar_rate_bounds_are_the_numpy_ones(x: int, n: int, alpha: float) -> None:
    x = min(x, n)
    assert bernoulli_bounds(x, n, alpha) == bernoulli_bounds_reference(x, n, alpha)


def _cubic(a: float, b: float) -> callable:
    return lambda v: (v - a) ** 3 + b * (v - a)


@SLOW
@given(st.floats(-5, 5), st.floats(0.001, 3), st.floats(-9, -5.5), st.floats(5.5, 9),
       st.sampled_from([1e-3, 1e-6, 2e-12]))
def test_brent_steps_is_scipys_brentq(root: float, slope: float, lo: float, hi: float, xtol: float) -> None:
    f = _cubic(root, slope)
    many = lambda xs: [f(float(v)) for v in xs]
    got = lockstep(many, [brent_steps(lo, hi, xtol), brent_steps(hi, lo, xtol), brent_steps(lo, root + 1.0, xtol)])
    want = [optimize.brentq(f, lo, hi, xtol=xtol), optimize.brentq(f, hi, lo, xtol=xtol),
            optimize.brentq(f, lo, root + 1.0, xtol=xtol)]
    assert got == want


def _window(rng: np.random.Generator, t: int, share: float, p_b: float, ratio: float, gaps: bool
            ) -> tuple[np.ndarray, ...]:
    n_c, n_b = rng.poisson(1000 * share, t).astype(float), rng.poisson(1000 * (1 - share), t).astype(float)
    if gaps:
        n_c[rng.random(t) < 0.2] = 0.0
        n_b[rng.random(t) < 0.1] = 0.0
    return rng.binomial(n_c.astype(int), min(p_b * ratio, 1.0)).astype(float), rng.binomial(
        n_b.astype(int), p_b).astype(float), n_c, n_b


@SLOW
@given(st.integers(0, 2**32 - 1), st.integers(1, 60), st.floats(0.01, 0.6), st.floats(0.0, 0.2),
       st.floats(0.2, 8.0), st.booleans(), st.sampled_from([0.001, 0.007, 0.05, 0.3]))
def test_guided_interval_ends_are_the_reference_crossings(seed: int, t: int, share: float, p_b: float, ratio: float,
                                                          gaps: bool, alpha: float) -> None:
    """The guided search (a bracket near a guessed end, then Brent) finds the crossings the
    reference search (Brent from the estimate to the search limit) finds: both are within
    BOUND_XTOL of the same crossing, so within twice that of each other (log ratio); an end at a
    search limit, or no interval at all, is the reference's exactly."""
    x_c, x_b, n_c, n_b = _window(np.random.default_rng(seed), t, share, p_b, ratio, gaps)
    guided = rate_ratio_interval(x_c, x_b, n_c, n_b, alpha)
    reference = rate_ratio_interval(x_c, x_b, n_c, n_b, alpha, lockstep=False)
    limits = (float(np.exp(np.log(1e-3))), float(np.exp(np.log(1e3))))  # the ends where no crossing is
    for got, want in zip(guided, reference):
        if math.isnan(want) or want in limits or got in limits:
            assert same(got, want)
        else:
            assert abs(math.log(got) - math.log(want)) <= 2 * BOUND_XTOL


@pytest.mark.parametrize("spread", [1e-3, 0.05, 0.4, 3.0, 50.0])
@pytest.mark.parametrize("curve", [2.0, 40.0, 4000.0])
def test_guided_bounds_find_each_crossing_from_any_guess(spread: float, curve: float) -> None:
    """However wrong the guessed half-width, each end is within BOUND_XTOL of its crossing, the
    ends are the limits where the e-value stays below the level, and NaN where the estimate
    itself is rejected; a lopsided e-value (steeper on one side) too."""
    def log_e_many(xs: np.ndarray) -> list[float]:
        return [float(curve * (v - 0.3) ** 2 * (3.0 if v > 0.3 else 1.0)) for v in xs]

    level = 5.0
    lo, hi = confidence_bounds(lambda v: log_e_many(np.array([v]))[0], 0.3, -7.0, 7.0, level, log_e_many, spread)
    want_lo, want_hi = 0.3 - math.sqrt(level / curve), 0.3 + math.sqrt(level / (3 * curve))
    assert abs(lo - max(want_lo, -7.0)) <= BOUND_XTOL and abs(hi - min(want_hi, 7.0)) <= BOUND_XTOL
    flat = confidence_bounds(lambda v: 0.0, 0.3, -7.0, 7.0, level, lambda xs: [0.0] * len(xs), spread)
    assert flat == (-7.0, 7.0)
    rejected = confidence_bounds(lambda v: 9.0, 0.3, -7.0, 7.0, level, lambda xs: [9.0] * len(xs), spread)
    assert all(math.isnan(v) for v in rejected)


def test_a_guided_search_that_meets_nan_searches_as_before() -> None:
    """A NaN in the guided rounds hands the search to the lockstep and scalar paths, which end
    in scipy's error as before; the guided rounds asked first."""
    calls = []

    def log_e_many(xs: np.ndarray) -> list[float]:
        calls.append(len(xs))
        return [float("nan") if v > 2.0 else float((v - 0.3) ** 2) for v in xs]

    with pytest.raises(ValueError):
        confidence_bounds(lambda v: log_e_many(np.array([v]))[0], 0.3, -7.0, 7.0, 5.0, log_e_many, 3.0)
    assert calls[0] == 3  # the center and both guesses
    with pytest.raises(ValueError):
        confidence_bounds(lambda v: log_e_many(np.array([v]))[0], 0.3, -7.0, 7.0, 5.0, log_e_many)


@SLOW
@given(st.integers(0, 100_000), st.integers(0, 100_000), st.sampled_from([0.001, 0.007, 0.05, 0.3]))
def test_proportion_interval_in_lockstep_is_the_reference(x: int, m: int, alpha: float) -> None:
    x = min(x, m)
    fast = proportion_interval(float(x), float(m), alpha)
    reference = proportion_interval(float(x), float(m), alpha, lockstep=False)
    assert all(same(a, b) for a, b in zip(fast, reference))


def test_a_search_that_meets_nan_falls_back_to_scipy() -> None:
    x_c, x_b = np.array([5.0, np.nan]), np.array([50.0, 40.0])
    n_c, n_b = np.array([100.0, 100.0]), np.array([1000.0, 1000.0])
    with pytest.raises(ValueError):
        rate_ratio_interval(x_c, x_b, n_c, n_b, 0.05, lockstep=False)
    with pytest.raises(ValueError):
        rate_ratio_interval(x_c, x_b, n_c, n_b, 0.05)


# ----------------------------------------------------- what a verdict or a plan reads


def _counts(rng: np.random.Generator, t: int, share: float, p_b: float, ratio: float) -> tuple[np.ndarray, ...]:
    n_c, n_b = rng.poisson(1000 * share, t).astype(float), rng.poisson(1000 * (1 - share), t).astype(float)
    return n_c, rng.binomial(n_c.astype(int), min(p_b * ratio, 1.0)).astype(float), n_b, rng.binomial(
        n_b.astype(int), p_b).astype(float)


def _same_arrays(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.all((a == b) | (np.isnan(a) & np.isnan(b))))


@SLOW
@given(st.integers(0, 2**32 - 1), st.integers(1, 40), st.floats(0.02, 0.5), st.floats(0.0, 0.05), st.floats(0.0, 4.0),
       st.sampled_from([None, 0.0005, 0.004]), st.sampled_from([None, 0.002]))
def test_the_last_entry_alone_is_the_last_entry_of_the_whole_window(seed: int, t: int, share: float, p_b: float,
                                                                    ratio: float, reg_floor, tol_floor) -> None:
    from vigil.stats.rates import error_rate_evidence

    n_c, x_c, n_b, x_b = _counts(np.random.default_rng(seed), t, share, p_b, ratio)
    whole = error_rate_evidence(n_c, x_c, n_b, x_b, 0.1, 0.5, tol_floor, reg_floor)
    last = error_rate_evidence(n_c, x_c, n_b, x_b, 0.1, 0.5, tol_floor, reg_floor, last=True)
    for a, b in zip(vars(whole).values(), vars(last).values()):
        assert _same_arrays(a[..., -1:], b)


@SLOW
@given(st.integers(0, 2**32 - 1), st.integers(2, 30), st.floats(0.02, 0.5), st.floats(0.7, 2.0), st.booleans())
def test_latency_evidence_shortcuts_are_the_reference(seed: int, t: int, share: float, stretch: float, p99: bool
                                                      ) -> None:
    from vigil.stats.latency import latency_evidence

    rng = np.random.default_rng(seed)
    edges = np.array([0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, np.inf])
    cdf = lambda s: np.append(special.ndtr((np.log(edges[:-1]) - np.log(0.15 * s)) / 0.6), 1.0)
    probs_b, probs_c = np.diff(cdf(1.0), prepend=0.0), np.diff(cdf(stretch), prepend=0.0)
    b = rng.multinomial(rng.poisson(400 * (1 - share)), probs_b, size=t).astype(float)
    c = rng.multinomial(rng.poisson(400 * share), probs_c, size=(3, t)).astype(float)  # three canaries, one baseline
    q = 0.99 if p99 else 0.5
    reference = latency_evidence(edges, c, np.broadcast_to(b, c.shape), q, 0.1, 0.3)
    last = latency_evidence(edges, c, b, q, 0.1, 0.3, last=True)
    rows = latency_evidence(edges, c, b, q, 0.1, 0.3, pass_rows=1)
    assert _same_arrays(reference.log_e_fail[..., -1:], last.log_e_fail)
    assert _same_arrays(reference.log_e_pass[..., -1:], last.log_e_pass)
    assert _same_arrays(reference.log_e_fail, rows.log_e_fail)
    assert _same_arrays(reference.log_e_pass[:1], rows.log_e_pass)


@SLOW
@given(st.integers(0, 2**32 - 1), st.floats(20, 5000), st.floats(0.02, 0.5), st.floats(0.0, 0.03),
       st.sampled_from([0.0005, 0.001, 0.003]), st.sampled_from([0.002, 0.05, 0.3]), st.sampled_from([0, 100, 5000]))
def test_the_plan_skips_only_floor_searches_that_cannot_reach_the_level(seed: int, rpm: float, share: float, p_b: float,
                                                                        floor: float, alpha: float, min_samples: int
                                                                        ) -> None:
    """Expected paths as the plan builds them, with and without the skip: the same first crossing."""
    from vigil.stats.rates import error_rate_evidence

    rng = np.random.default_rng(seed)
    widths = np.diff(np.unique(np.round(np.geomspace(1.0, 240, 64))), prepend=0.0)
    effects = np.array([0.0, 0.1, 0.5, 2.0])
    N_c, N_b = rpm * share, rpm * (1 - share)
    p_b = p_b * rng.uniform(0.5, 1.5)
    n_c = np.broadcast_to(N_c * widths, (4, widths.size))
    x_c = (N_c * np.minimum(p_b * (1 + effects), 1.0))[:, None] * widths
    n_b, x_b = np.broadcast_to(N_b * widths, n_c.shape), np.broadcast_to(N_b * p_b * widths, n_c.shape)
    level = math.log(1 / alpha)
    full = error_rate_evidence(n_c, x_c, n_b, x_b, 0.1, 0.5, None, floor, dispersion=1.0)
    skip = error_rate_evidence(n_c, x_c, n_b, x_b, 0.1, 0.5, None, floor, dispersion=1.0, reach=(level, min_samples))
    reads = lambda ev: (ev.log_e_pass >= level) & (ev.n_canary >= min_samples)  # what `plan._first` reads
    assert np.array_equal(reads(full), reads(skip))
    assert _same_arrays(full.log_e_fail, skip.log_e_fail)


@SLOW
@given(st.integers(0, 2**32 - 1), st.integers(1, 30), st.floats(0.02, 0.5), st.floats(0.0, 0.8))
def test_drift_evidence_at_the_end_alone_is_the_reference(seed: int, t: int, share: float, tilt: float) -> None:
    from vigil.stats.drift import drift_evidence

    rng = np.random.default_rng(seed)
    p = np.diff(special.betainc(2.0, 2.5, np.linspace(0, 1, 11)))
    q = p * (1 + tilt * np.linspace(-1, 1, 10))
    b = rng.multinomial(rng.poisson(1000 * (1 - share)), p, size=t).astype(float)
    c = rng.multinomial(rng.poisson(1000 * share), q / q.sum(), size=t).astype(float)
    whole = drift_evidence(c, b, 0.02, regression=0.1)
    last = drift_evidence(c, b, 0.02, regression=0.1, last=True)
    for a, e in zip(vars(whole).values(), vars(last).values()):
        assert _same_arrays(a[..., -1:], e)


@SLOW
@given(st.integers(0, 2**32 - 1), st.integers(1, 30), st.integers(1, 7), st.floats(0.0, 0.15))
def test_band_evidence_shortcuts_are_the_reference(seed: int, t: int, groups: int, shift: float) -> None:
    """Fairness and calibration at the end of the window alone, and Pass for the first row alone."""
    from vigil.stats.calibration import calibration_evidence
    from vigil.stats.fairness import fairness_evidence

    rng = np.random.default_rng(seed)
    rates = rng.uniform(0.2, 0.8, groups)
    tot = rng.poisson(rng.uniform(5, 200, groups), size=(3, t, groups)).astype(float)
    pos = rng.binomial(tot.astype(int), np.clip(rates - shift * np.arange(3)[:, None, None], 0, 1)).astype(float)
    for evidence in (fairness_evidence, calibration_evidence):
        whole = evidence(tot[1:], pos[1:], tot[0], pos[0], 0.03, regression=0.1)
        rows = evidence(tot[1:], pos[1:], tot[0], pos[0], 0.03, regression=0.1, pass_rows=1)
        for k in (1, 2):  # one canary at a time, as a verdict has it (no leading axis)
            one = evidence(tot[k], pos[k], tot[0], pos[0], 0.03, regression=0.1)
            last = evidence(tot[k], pos[k], tot[0], pos[0], 0.03, regression=0.1, last=True)
            for a, b in zip(vars(one).values(), vars(last).values()):
                assert _same_arrays(a[..., -1:], b)
        assert _same_arrays(whole.log_e_fail, rows.log_e_fail)
        assert _same_arrays(whole.log_e_pass[:1], rows.log_e_pass)


@SLOW
@given(st.integers(0, 2**32 - 1), st.integers(1, 40), st.integers(1, 12), st.floats(0.0, 0.9))
def test_bucket_ratios_at_once_are_the_per_bucket_ratios(seed: int, t: int, k: int, gaps: float) -> None:
    from vigil.stats.drift import bucket_ratios
    from vigil.stats.sequential import mantel_haenszel_ratio

    rng = np.random.default_rng(seed)
    c = rng.poisson(rng.uniform(0, 30, k), size=(t, k)).astype(float)
    b = rng.poisson(rng.uniform(0, 300, k), size=(t, k)).astype(float)
    c[rng.random((t, k)) < gaps] = 0.0
    n_c, n_b = c.sum(axis=-1), b.sum(axis=-1)
    counted = c.sum(axis=0) + b.sum(axis=0) >= 10
    want = [mantel_haenszel_ratio(c[:, j], b[:, j], n_c, n_b) if counted[j] else np.nan for j in range(k)]
    assert _same_arrays(bucket_ratios(c, b, n_c, n_b, counted), np.array(want))


@SLOW
@given(st.integers(0, 2**32 - 1), st.floats(5, 5000), st.floats(0.02, 0.5), st.floats(0.0, 0.3),
       st.sampled_from([0.002, 0.05, 0.3]), st.sampled_from([0, 100, 5000]), st.sampled_from([0.05, 0.1, 0.3]))
def test_the_drift_plan_skips_only_bucket_tests_that_cannot_change_the_time_to_pass(
        seed: int, rpm: float, share: float, tilt: float, alpha: float, min_samples: int, regression: float) -> None:
    from vigil.stats.drift import buckets_shown
    from vigil.stats.evidence import Thresholds
    from vigil.stats.plan import _first, _with_buckets

    rng = np.random.default_rng(seed)
    widths = np.diff(np.unique(np.round(np.geomspace(1.0, 240, 64))), prepend=0.0)
    p = np.diff(special.betainc(2.0, 2.5, np.linspace(0, 1, 11))) * rng.uniform(0.5, 1.5, 10)
    p /= p.sum()
    q = p * (1 + tilt * np.linspace(-1, 1, 10))
    c, b = rpm * share * (q / q.sum()) * widths[:, None], rpm * (1 - share) * p * widths[:, None]
    n_canary = np.cumsum(c.sum(axis=-1))
    ball = np.log(rng.uniform(0.5, 200, 1)) * np.linspace(0.2, 1.5, widths.size)  # a rising Pass evidence
    th = Thresholds(alpha_fail=0.01, alpha_pass=alpha, min_samples=min_samples)
    level, at = math.log(1 / alpha), np.arange(widths.size, dtype=float)
    reference = np.minimum(ball, buckets_shown(c[None], b[None], regression)[0])
    skipped = _with_buckets(ball, n_canary, c, b, regression, th)
    assert _first(skipped, n_canary, level, min_samples, at) == _first(reference, n_canary, level, min_samples, at)


def _reference_shiryaev_roberts(llr: np.ndarray) -> np.ndarray:
    """The detector as first written: the mean over alternatives at every step of the recursion."""
    from vigil.stats.sequential import logsumexp

    log_r = np.full(llr.shape[:-2] + (llr.shape[-1],), -np.inf)
    out = np.empty(llr.shape[:-1])
    for t in range(llr.shape[-2]):
        log_r = np.logaddexp(0.0, log_r) + llr[..., t, :]
        out[..., t] = logsumexp(log_r, axis=-1) - np.log(llr.shape[-1])
    return out


@SLOW
@given(st.integers(0, 2**32 - 1), st.integers(1, 60), st.integers(1, 4), st.integers(0, 3), st.floats(0.01, 30.0))
def test_the_change_detector_is_the_reference(seed: int, t: int, alternatives: int, batch: int, spread: float) -> None:
    from vigil.stats.sequential import shiryaev_roberts_log_e

    rng = np.random.default_rng(seed)
    llr = rng.normal(-0.2, spread, size=(batch,) * (batch > 0) + (t, alternatives))
    llr[rng.random(llr.shape) < 0.05] = -np.inf
    assert _same_arrays(shiryaev_roberts_log_e(llr), _reference_shiryaev_roberts(llr))


@SLOW
@given(st.integers(0, 2**32 - 1), st.integers(2, 40), st.floats(0.02, 0.5), st.floats(0.7, 2.5), st.booleans())
def test_the_latency_change_detector_runs_both_edges_as_the_reference(seed: int, t: int, share: float, stretch: float,
                                                                      p99: bool) -> None:
    from vigil.stats.evidence import any_of
    from vigil.stats.latency import SLOT_WEIGHTS, exceeding, latency_change_log_e
    from vigil.stats.sequential import exposure_ratio, rate_ratio_llr
    from vigil.stats.tails import tail_edges

    rng = np.random.default_rng(seed)
    edges = np.array([0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, np.inf])
    cdf = lambda s: np.append(special.ndtr((np.log(edges[:-1]) - np.log(0.15 * s)) / 0.6), 1.0)
    b = rng.multinomial(rng.poisson(400 * (1 - share)), np.diff(cdf(1.0), prepend=0.0), size=t).astype(float)
    c = rng.multinomial(rng.poisson(400 * share), np.diff(cdf(stretch), prepend=0.0), size=t).astype(float)
    q = 0.99 if p99 else 0.5
    slots = []
    for j, rho0, usable in tail_edges(edges, np.cumsum(b, axis=0) - b, q, 0.1, "fail"):
        a = exposure_ratio(np.where(usable, c.sum(axis=-1), 0.0), np.where(usable, b.sum(axis=-1), 0.0), rho0)
        slots.append(_reference_shiryaev_roberts(rate_ratio_llr(exceeding(c, j), exceeding(b, j), a,
                                                                np.array([1.5, 2.0, 3.0]))))
    assert _same_arrays(latency_change_log_e(edges, c, b, q, 0.1), any_of(slots, SLOT_WEIGHTS))


_COUNT = st.one_of(st.floats(0, 1e6), st.sampled_from([0.0, math.nan, math.inf, 1e-300]))


@SLOW
@given(st.integers(1, 70).flatmap(lambda t: st.tuples(*[st.lists(_COUNT, min_size=t, max_size=t)] * 4)))
def test_mantel_haenszel_ratio_is_its_nansums(counts: tuple[list[float], ...]) -> None:
    """The pooled ratio sums the served intervals' terms as np.nansum does (NaN terms as 0)."""
    x_c, x_b, n_c, n_b = (np.array(c) for c in counts)
    n = n_c + n_b
    with np.errstate(all="ignore"):
        num = np.nansum(np.where(n > 0, x_c * n_b / n, 0.0))
        den = np.nansum(np.where(n > 0, x_b * n_c / n, 0.0))
        want = (math.inf if num > 0 else math.nan) if den == 0 else float(num / den)
        got = mantel_haenszel_ratio(x_c, x_b, n_c, n_b)
    assert same(got, want)
