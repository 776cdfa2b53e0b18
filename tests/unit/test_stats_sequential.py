"""The anytime-valid building blocks, checked against scipy and savvi."""

from __future__ import annotations

import numpy as np
import pytest
from savvi.multinomial import Multinomial
from scipy import integrate, stats

from vigil.stats.sequential import (
    OneSidedPrior,
    ball_log_e,
    confidence_bounds,
    dirichlet_multinomial_log_e,
    exposure_ratio,
    logsumexp,
    normal_halfwidth,
    normal_log_e,
    proportion_evidence,
    rate_ratio_evidence,
    rate_ratio_interval,
    rate_ratio_llr,
)


def test_rate_ratio_llr_is_the_binomial_likelihood_ratio_of_the_canary_share() -> None:
    x_c, x_b, n_c, n_b, rho0, rho = 7, 30, 1000, 9000, 1.1, 2.0
    a = rho0 * n_c / n_b
    theta = lambda r: a * r / (a * r + 1)  # noqa: E731
    want = stats.binom.logpmf(x_c, x_c + x_b, theta(rho)) - stats.binom.logpmf(x_c, x_c + x_b, theta(1.0))
    got = rate_ratio_llr(np.array([x_c]), np.array([x_b]), np.array([a]), np.array([rho]))
    assert got[0, 0] == pytest.approx(want, rel=1e-12)


def test_one_exposure_row_for_many_event_rows_gives_the_same_evidence_bit_for_bit() -> None:
    """A histogram's buckets share one exposure (all requests): passed as one row, the terms that
    depend on it alone are computed once, and every bucket's evidence is what the full-width
    exposure gives, to the last bit (gaps and an unserved interval included)."""
    rng = np.random.default_rng(5)
    x_c, x_b = rng.poisson(4.0, (6, 30)).astype(float), rng.poisson(30.0, (6, 30)).astype(float)
    n_c, n_b = rng.poisson(200.0, (1, 30)).astype(float), rng.poisson(1800.0, (1, 30)).astype(float)
    n_b[0, 4] = 0.0
    for last in (False, True):
        row = rate_ratio_evidence(x_c, x_b, n_c, n_b, 1.3, rho0_pass=1 / 1.3, last=last)
        wide = rate_ratio_evidence(x_c, x_b, np.broadcast_to(n_c, x_c.shape).copy(),
                                   np.broadcast_to(n_b, x_b.shape).copy(), 1.3, rho0_pass=1 / 1.3, last=last)
        for got, want in zip(row, wide):
            assert got.shape == want.shape == ((6, 1) if last else (6, 30))
            assert np.array_equal(got, want)


@pytest.mark.parametrize("counts, p0", [([90, 14], [0.9, 0.1]), ([500, 30], [0.9, 0.1]), ([3, 4, 10], [0.2, 0.3, 0.5])])
def test_srm_e_value_equals_savvi_multinomial(counts: list[int], p0: list[float]) -> None:
    reference = Multinomial(0.05, np.array(p0))
    reference.update(np.array(counts))
    ours = dirichlet_multinomial_log_e(np.array(counts, dtype=float), np.array(p0))
    assert ours == pytest.approx(np.log(reference.odds), rel=1e-9)


def test_grid_mixture_reproduces_savvis_beta_binomial_bayes_factor() -> None:
    """With a fixed exposure ratio, the canary's share of events is Binomial(theta); a fine
    grid over log rho carrying Beta(k p0, k (1-p0)) mass on theta must give savvi's odds."""
    n_c, n_b, k = 100.0, 900.0, 100.0
    p0 = n_c / (n_c + n_b)
    a = n_c / n_b
    u = np.linspace(-6, 6, 24001)
    theta = a * np.exp(u) / (a * np.exp(u) + 1)
    weight = stats.beta.pdf(theta, k * p0, k * (1 - p0)) * theta * (1 - theta) * (u[1] - u[0])
    x_c, x_b = 25.0, 110.0
    ours = logsumexp(rate_ratio_llr(np.array([x_c]), np.array([x_b]), np.array([a]), np.exp(u))[0] + np.log(weight))
    reference = Multinomial(0.05, np.array([1 - p0, p0]), k=k)
    reference.update(np.array([int(x_b), int(x_c)]))
    assert ours == pytest.approx(np.log(reference.odds), abs=1e-3)


def test_normal_mixture_closed_form_matches_numerical_integration() -> None:
    excess, info, scale = 0.03, 800.0, 0.05
    s = excess * info

    def integrand(theta: float) -> float:
        return 2 * stats.norm.pdf(theta, scale=scale) * np.exp(theta * s - theta**2 * info / 2)

    want = np.log(integrate.quad(integrand, 0, 1)[0])
    assert normal_log_e(excess, info, scale) == pytest.approx(want, rel=1e-6)


def test_normal_halfwidth_is_where_the_two_sided_mixture_reaches_one_over_alpha() -> None:
    info, scale, alpha = 1000.0, 0.05, 0.01
    h = normal_halfwidth(info, alpha, scale)
    v = 1 + scale**2 * info
    two_sided = -0.5 * np.log(v) + scale**2 * (h * info) ** 2 / (2 * v)
    assert two_sided == pytest.approx(np.log(1 / alpha), rel=1e-9)


def test_ball_test_in_one_dimension_at_radius_zero_is_the_two_sided_normal_mixture() -> None:
    s, info, scale = 12.0, 400.0, 0.1
    fail, _ = ball_log_e(np.array(s), np.array(info), np.array(1), 0.0, scale)
    v = 1 + scale**2 * info
    assert float(fail) == pytest.approx(-0.5 * np.log(v) + scale**2 * s**2 / (2 * v))


def test_proportion_e_process_is_a_likelihood_ratio_mixture() -> None:
    fail, passed = proportion_evidence(np.array([0.0]), np.array([0.0]), 0.02)
    assert fail == pytest.approx(0.0) and passed == pytest.approx(0.0)  # no data, e = 1


def test_half_normal_prior_sums_to_one() -> None:
    prior = OneSidedPrior.half_normal(0.6)
    assert np.exp(prior.log_weights).sum() == pytest.approx(1.0)
    assert (prior.offsets > 0).all()


def test_rate_ratio_interval_covers_the_truth_and_shrinks_with_data() -> None:
    rng = np.random.default_rng(11)
    T = 60
    n_c, n_b = np.full(T, 100.0), np.full(T, 900.0)
    x_c, x_b = rng.poisson(2.0, T).astype(float), rng.poisson(9.0, T).astype(float)
    lo, hi = rate_ratio_interval(x_c, x_b, n_c, n_b, 0.05)
    lo10, hi10 = rate_ratio_interval(x_c[:10], x_b[:10], n_c[:10], n_b[:10], 0.05)
    assert lo < 2.0 < hi
    assert hi - lo < hi10 - lo10


def test_confidence_bounds_finds_both_crossings() -> None:
    lo, hi = confidence_bounds(lambda v: v**2, 0.0, -10.0, 10.0, 4.0)
    assert lo == pytest.approx(-2.0, abs=1e-3) and hi == pytest.approx(2.0, abs=1e-3)


def test_exposure_ratio_marks_intervals_without_baseline() -> None:
    a = exposure_ratio(np.array([10.0, 10.0]), np.array([90.0, 0.0]), 1.0)
    assert a[0] == pytest.approx(1 / 9) and np.isinf(a[1])
    fail, passed = rate_ratio_evidence(np.array([5.0, 5.0]), np.array([0.0, 0.0]), np.array([10.0, 10.0]),
                                       np.array([0.0, 0.0]), 1.0)
    assert fail.tolist() == [0.0, 0.0] and passed.tolist() == [0.0, 0.0]  # nothing to compare: e = 1
