"""The benchmark's world does what each scenario family says, seeded and vectorised."""

from __future__ import annotations

import numpy as np

from bench.scenarios import (
    BASE_ERROR,
    RATES,
    Pods,
    Scenario,
    World,
    example_policy,
    scenarios,
)
from bench.simulate import simulate


def test_the_policy_is_the_shipped_example_as_deployed() -> None:
    p = example_policy()
    assert p.steps == (5, 20, 50) and p.bake == 10 and p.interval == 1
    assert p.alpha == 1 - 0.95 and p.alpha_gate == (1 - 0.95) / 6
    assert p.schedule() == ((0, 0.05), (10, 0.20), (20, 0.50))
    assert p.tolerance["errorRate"] == 0.10 and p.regression["errorRate"] >= 0.5


def test_every_family_at_the_three_traffic_levels_has_a_horizon_and_a_seeded_draw() -> None:
    assert RATES == (100, 1000, 10000)
    keys = [s.key for s in scenarios()]
    assert len(keys) == len(set(keys))
    for s in scenarios():
        a, b = simulate(s, 100, reps=3, seed=7), simulate(s, 100, reps=3, seed=7)
        assert a.requests_c.shape == (3, s.minutes)
        assert np.array_equal(a.errors_c, b.errors_c)
    late = next(s for s in scenarios() if s.key == "late-onset")
    assert late.minutes == 420 and late.onset == 360


def test_bursts_keep_the_mean_and_inflate_the_variance() -> None:
    plain = simulate(Scenario("p", "errorRate"), 1000, reps=4000, seed=1)
    bursty = simulate(Scenario("b", "errorRate", burst=3.0), 1000, reps=4000, seed=1)
    m_p, m_b = plain.errors_b[:, 0].mean(), bursty.errors_b[:, 0].mean()
    assert abs(m_b - m_p) < 0.05 * m_p
    ratio = bursty.errors_b[:, 0].var() / plain.errors_b[:, 0].var()
    assert 4.0 < ratio < 6.0  # compound Poisson with geometric bursts of mean 3: 2*3 - 1 = 5


def test_late_onset_changes_the_canary_only_after_the_onset() -> None:
    s = Scenario("late", "errorRate", canary=World(error=2 * BASE_ERROR), minutes=40, onset=20)
    c = simulate(s, 10000, reps=400, seed=2)
    before = c.errors_c[:, :20].sum() / c.requests_c[:, :20].sum()
    after = c.errors_c[:, 20:].sum() / c.requests_c[:, 20:].sum()
    assert abs(before - BASE_ERROR) < 0.1 * BASE_ERROR and abs(after - 2 * BASE_ERROR) < 0.1 * BASE_ERROR


def test_policy_steps_set_the_weight_and_a_flaky_pod_keeps_the_arm_rate() -> None:
    s = Scenario("steps", "errorRate", weights=None, pods=Pods())
    c = simulate(s, 1000, reps=300, seed=3)
    assert c.weight[0] == 0.05 and c.weight[15] == 0.20 and c.weight[-1] == 0.50
    rate = c.errors_b.sum() / c.requests_b.sum()
    assert abs(rate - BASE_ERROR) < 0.1 * BASE_ERROR


def test_restarts_lose_increments_in_both_requests_and_errors() -> None:
    c = simulate(Scenario("r", "errorRate", restarts_per_hour=6.0), 1000, reps=300, seed=4)
    plain = simulate(Scenario("p", "errorRate"), 1000, reps=300, seed=4)
    assert c.requests_b.sum() < plain.requests_b.sum()
    assert abs(c.errors_b.sum() / c.requests_b.sum() - BASE_ERROR) < 0.1 * BASE_ERROR


def test_shadow_is_compared_on_all_mirrored_requests_with_a_live_control() -> None:
    s = next(s for s in scenarios() if s.key == "shadow-load")
    low, high = simulate(s, 100, reps=200, seed=5), simulate(s, 10000, reps=200, seed=5)
    assert abs(high.compared.mean() - 10000) < 100  # mirror 100%: every request compared
    d_low = low.disagreed.sum() / low.compared.sum()
    d_high = high.disagreed.sum() / high.compared.sum()
    assert d_high > 3 * d_low  # nondeterminism grows with load
    assert abs(high.control_disagreed.sum() / high.control_compared.sum() - d_high) < 0.1 * d_high
