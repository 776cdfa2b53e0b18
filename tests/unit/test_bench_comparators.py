"""Each comparator's rule on tiny hand-made inputs behaves as the tool documents it
(docs/comparators.md links the documentation of each rule)."""

from __future__ import annotations

import numpy as np
import pytest

from bench.comparators import sequential
from bench.comparators.argo import (
    ERROR,
    FAILED,
    INCONCLUSIVE_M,
    SUCCESSFUL,
    ArgoAnalysis,
    assess,
    measure,
)
from bench.comparators.flagger import FlaggerAnalysis, checks, run_loop
from bench.comparators.kayenta import (
    HIGH,
    LOW,
    NODATA,
    PASS_M,
    KayentaCanary,
    classify,
    hodges_lehmann,
    score,
    stage,
)
from bench.comparators.signals import Effect
from bench.methods import first_decision
from bench.scenarios import example_policy
from bench.simulate import Counts

INCONCLUSIVE, PASS, FAIL = 0, 1, 2


def decision(codes: np.ndarray) -> tuple[int, float]:
    kind, minute = first_decision(codes)
    return int(kind[0]), float(minute[0])


def row(*values) -> np.ndarray:
    return np.array([values])


# -------------------------------------------------------------------- Flagger


def test_flagger_promotes_one_tick_after_the_last_step_passes() -> None:
    # tick 1 routes the first weight without a check; ticks 2, 3 pass at 5% and 20%;
    # tick 4 passes at maxWeight 50% and promotes.
    cfg = FlaggerAnalysis(step_weights=(5, 20, 50), threshold=5)
    assert decision(run_loop(np.ones((1, 10), bool), cfg)) == (PASS, 4)


def test_flagger_rolls_back_after_exactly_threshold_failed_checks() -> None:
    # checks fail from tick 2; the 2nd failure is at tick 3, the rollback at the next tick
    cfg = FlaggerAnalysis(step_weights=(5, 20, 50), threshold=2)
    assert decision(run_loop(np.zeros((1, 10), bool), cfg)) == (FAIL, 4)
    one_short = FlaggerAnalysis(step_weights=(5, 20, 50), threshold=3)
    assert decision(run_loop(row(True, False, False, True, True, True, True, True), one_short)) == (PASS, 6)


def test_flagger_failed_checks_hold_the_weight_and_are_never_reset() -> None:
    # fail, pass, pass, fail: the counter reaches 2 at tick 5 although passes came between
    ok = row(True, False, True, True, False, True, True, True, True)
    assert decision(run_loop(ok, FlaggerAnalysis(step_weights=(5, 20, 50, 60), threshold=2))) == (FAIL, 6)
    # a failed check does not advance: 3 steps need 3 passing checks after the start
    assert decision(run_loop(row(True, False, True, True, True, True), FlaggerAnalysis((5, 20, 50), threshold=5))) \
        == (PASS, 5)


def test_flagger_default_threshold_is_one_and_interval_spaces_the_ticks() -> None:
    assert FlaggerAnalysis().threshold == 1 and FlaggerAnalysis().interval == 1
    cfg = FlaggerAnalysis(step_weights=(50,), interval=2)
    assert decision(run_loop(np.ones((1, 10), bool), cfg)) == (PASS, 4)  # ticks at 2 (start) and 4 (check)


def test_flagger_holds_at_max_weight_while_a_promotion_gate_is_closed() -> None:
    cfg = FlaggerAnalysis(step_weights=(50,), threshold=2, hold=True)
    ok = np.ones((1, 30), bool)
    assert decision(run_loop(ok, cfg)) == (INCONCLUSIVE, np.inf)
    ok[0, [9, 19]] = False
    assert decision(run_loop(ok, cfg)) == (FAIL, 21)


def test_flagger_check_fails_without_data_and_above_the_limit() -> None:
    policy = example_policy()
    n = np.array([[100.0, 0.0, 100.0]])
    x = np.array([[1.0, 0.0, 2.0]])  # 1%, no requests (NaN), 2%
    c = Counts(np.zeros(3), n, x, n * 9, x * 9)
    ok = checks(c, ("errorRate",), policy, FlaggerAnalysis())
    assert ok.tolist() == [[True, False, False]]


# ----------------------------------------------------------------------- Argo


def test_argo_measurement_phases_from_success_and_failure_conditions() -> None:
    phases = measure(np.array([0.01, 0.013, 0.02, np.nan]), success_max=0.011, failure_min=0.015)
    assert phases.tolist() == [SUCCESSFUL, INCONCLUSIVE_M, FAILED, INCONCLUSIVE_M]


def test_argo_failure_limit_counts_failed_measurements() -> None:
    ph = row(SUCCESSFUL, FAILED, SUCCESSFUL, FAILED, FAILED, SUCCESSFUL)
    assert decision(assess([ph], ArgoAnalysis(failure_limit=0, steps_done=99))) == (FAIL, 2)  # default: first failure
    assert decision(assess([ph], ArgoAnalysis(failure_limit=2, steps_done=99))) == (FAIL, 5)  # 3 failures > 2


def test_argo_inconclusive_limit_pauses_the_rollout() -> None:
    ph = row(SUCCESSFUL, INCONCLUSIVE_M, SUCCESSFUL, SUCCESSFUL, SUCCESSFUL, SUCCESSFUL)
    paused = assess([ph], ArgoAnalysis(inconclusive_limit=0, steps_done=4))
    assert decision(paused) == (INCONCLUSIVE, np.inf)  # paused for a human: no promotion, no rollback
    assert decision(assess([ph], ArgoAnalysis(inconclusive_limit=1, steps_done=4))) == (PASS, 4)


def test_argo_consecutive_error_limit_counts_only_consecutive_errors() -> None:
    broken = row(*([ERROR] * 5), SUCCESSFUL)
    assert decision(assess([broken], ArgoAnalysis(steps_done=99))) == (FAIL, 5)  # 5 consecutive > 4 (default)
    interrupted = row(*([ERROR] * 4), SUCCESSFUL, *([ERROR] * 4), SUCCESSFUL)
    assert decision(assess([interrupted], ArgoAnalysis(steps_done=10))) == (PASS, 10)


def test_argo_run_takes_the_worst_metric_and_stops_when_the_steps_finish() -> None:
    good, bad = row(SUCCESSFUL, SUCCESSFUL, SUCCESSFUL), row(SUCCESSFUL, SUCCESSFUL, FAILED)
    assert decision(assess([good, bad], ArgoAnalysis(steps_done=9))) == (FAIL, 3)
    assert decision(assess([good, bad], ArgoAnalysis(steps_done=2))) == (PASS, 2)  # promoted before the failure
    assert decision(assess([good, bad], ArgoAnalysis(steps_done=2, hold=True))) == (FAIL, 3)


def test_argo_defaults_are_the_documented_ones() -> None:
    cfg = ArgoAnalysis()
    assert (cfg.failure_limit, cfg.inconclusive_limit, cfg.consecutive_error_limit) == (0, 0, 4)


# -------------------------------------------------------------------- Kayenta


def test_hodges_lehmann_estimate_is_the_median_of_pairwise_differences() -> None:
    rng = np.random.default_rng(0)
    c, b = rng.normal(1.0, 1.0, (3, 12)), rng.normal(0.0, 1.0, (3, 9))
    est, lo, hi = hodges_lehmann(c, b)
    brute = np.median((c[:, :, None] - b[:, None, :]).reshape(3, -1), axis=1)
    assert np.allclose(est, brute)
    assert np.all(lo <= est) and np.all(est <= hi)


def test_kayenta_metric_high_only_beyond_the_band_and_the_effect_size() -> None:
    base = np.tile(np.arange(20.0), (1, 1))
    shifted = base + 10.0
    assert classify(shifted, base, "increase")[0].tolist() == [HIGH]
    assert classify(shifted, base, "decrease")[0].tolist() == [PASS_M]  # direction
    ratio = shifted.mean() / base.mean()
    assert classify(shifted, base, "increase", allowed_increase=ratio + 0.1)[0].tolist() == [PASS_M]
    assert classify(base - 10.0, base, "either")[0].tolist() == [LOW]
    assert classify(base, base, "either")[0].tolist() == [PASS_M]  # identical data pass
    assert classify(np.zeros((1, 5)), np.zeros((1, 5)), "either")[0].tolist() == [PASS_M]  # one value only
    assert classify(base + 0.5, base, "increase")[0].tolist() == [PASS_M]  # not significant


def test_kayenta_score_is_the_share_of_passing_metrics_and_critical_zeroes_it() -> None:
    labels = [np.array([PASS_M]), np.array([PASS_M]), np.array([PASS_M]), np.array([HIGH]), np.array([NODATA])]
    none = [np.zeros(1, bool)] * 5
    assert score(labels, none).tolist() == [75.0]  # 3 of 4 with data
    assert score(labels, [np.zeros(1, bool)] * 3 + [np.ones(1, bool)] + [np.zeros(1, bool)]).tolist() == [0.0]
    half_missing = [np.array([PASS_M]), np.array([NODATA])]
    assert score(half_missing, [np.zeros(1, bool)] * 2).tolist() == [0.0]  # the 50% NODATA rule


def test_kayenta_stage_fails_at_marginal_passes_only_at_the_end_at_pass() -> None:
    cfg = KayentaCanary(interval=10, lifetime=30)
    at = [10, 20, 30]
    assert decision(stage(np.array([[100.0, 75.0, 100.0]]), at, cfg, 30)) == (FAIL, 20)  # <= marginal: at once
    assert decision(stage(np.array([[80.0, 80.0, 95.0]]), at, cfg, 30)) == (PASS, 30)  # marginal, then pass
    assert decision(stage(np.array([[100.0, 100.0, 90.0]]), at, cfg, 30)) == (FAIL, 30)  # last below pass
    assert (cfg.pass_threshold, cfg.marginal_threshold) == (95.0, 75.0)


# ------------------------------------------------------- statistical comparators


@pytest.mark.parametrize("looks, alpha, want", [
    (5, 0.025, [4.877, 3.357, 2.680, 2.290, 2.031]),  # Lan-DeMets O'Brien-Fleming-type, as in gsDesign/rpact
    (3, 0.025, [3.710, 2.511, 1.993]),
])
def test_group_sequential_bounds_match_the_published_ones(looks: int, alpha: float, want: list[float]) -> None:
    got = sequential.gst_bounds(tuple(np.arange(1, looks + 1) / looks), alpha)
    assert np.allclose(got, want, atol=0.01)
    assert sequential.obf_spending(np.array([1.0]), alpha)[0] == pytest.approx(alpha)


def _null_effects(reps: int, looks: int, seed: int) -> Effect:
    """A cumulative mean of N(0, 1) observations: the effect at the null boundary."""
    rng = np.random.default_rng(seed)
    n = np.arange(1, looks + 1)
    return Effect(np.cumsum(rng.normal(size=(reps, looks)), 1) / n, np.broadcast_to(1.0 / n, (reps, looks)), 0.3)


def test_msprt_and_group_sequential_keep_alpha_while_the_repeated_z_test_does_not() -> None:
    e, alpha, reps = _null_effects(4000, 60, 1), 0.05, 4000
    se = np.sqrt(alpha * (1 - alpha) / reps)
    assert sequential.msprt_reject(e, alpha).any(1).mean() <= alpha + 3 * se
    gst = sequential.gst_reject_fn(np.ones(60))
    assert gst(e, alpha).any(1).mean() <= alpha + 3 * se
    assert sequential.ztest_reject(e, alpha).any(1).mean() > 2 * alpha  # peeking


def test_fail_only_tests_promote_at_the_horizon_and_the_oracle_never_does() -> None:
    e = _null_effects(3, 10, 2)
    codes = sequential.ztest({"g": [Effect(e.excess * 0 - 1, e.var, 1.0)]}, 0.05)
    assert [decision(codes[i:i + 1]) for i in range(3)] == [(PASS, 10)] * 3
    llr = np.full((1, 10), np.log(1 / 0.05) / 4)
    assert decision(sequential.oracle(llr, 0.05)) == (FAIL, 4)
    assert decision(sequential.oracle(llr * 0, 0.05)) == (INCONCLUSIVE, np.inf)


# ------------------------------------------------------------- from the policy


def test_the_tools_are_configured_from_the_example_policy() -> None:
    p = example_policy()
    flagger_cfg = FlaggerAnalysis.from_policy(p)
    assert flagger_cfg.step_weights == (5, 20, 50) and flagger_cfg.interval == 1 and flagger_cfg.threshold == 5
    argo_cfg = ArgoAnalysis.from_policy(p)
    assert argo_cfg.steps_done == 30 and argo_cfg.interval == 1
    kayenta_cfg = KayentaCanary.from_policy(p, lifetime=60)
    assert kayenta_cfg.interval == 10 and kayenta_cfg.allowed_increase["errorRate"] == pytest.approx(1.1)
    assert kayenta_cfg.critical_increase["errorRate"] == pytest.approx(1 + p.regression["errorRate"])


def test_kayenta_fails_a_critical_metric_at_the_first_judgement() -> None:
    from bench.comparators.kayenta import kayenta

    n = np.full((2, 20), 1000.0)
    x_b = np.full((2, 20), 10.0)
    x_c = np.array([np.full(20, 40.0), np.full(20, 10.0) + np.tile([1.0, -1.0], 10)])  # x4 errors; healthy
    c = Counts(np.full(20, 0.5), n, x_c, n, x_b)
    codes = kayenta(c, ("errorRate",), KayentaCanary(interval=10, lifetime=20, critical_increase={"errorRate": 1.5}))
    assert decision(codes[:1]) == (FAIL, 10)
    assert decision(codes[1:]) == (PASS, 20)


def test_histogram_quantile_is_prometheus_linear_interpolation() -> None:
    from bench.comparators.signals import histogram_quantile

    edges = np.array([0.1, 0.2, 0.4, np.inf])
    counts = np.array([[50.0, 40.0, 10.0, 0.0]])
    # rank 99 of 100 lies in (0.2, 0.4], 9 of its 10 observations in: 0.2 + 0.2 * 9/10
    assert histogram_quantile(counts, 0.99, edges)[0] == pytest.approx(0.38)
    assert np.isnan(histogram_quantile(np.zeros((1, 4)), 0.99, edges)[0])
