"""`analyze`: combining gates, NoData paths, sample-ratio mismatch, and the recorded form."""

from __future__ import annotations

import json

import numpy as np
import pytest
from vigil.api.gates import Gate, MetricKind
from vigil.stats import (
    Analysis,
    CounterPanel,
    CounterSeries,
    NoData,
    Outcome,
    RequestCounts,
    ShadowComparisons,
    analyze,
)
from vigil.stats.result import Verdict, combine

from tests.unit.test_stats_worlds import healthy_window

ALL = [Gate(metric=k) for k in MetricKind]


def requests(errors: list[float], total: list[float]) -> CounterPanel:
    ts = 60.0 * np.arange(len(total) + 1)
    ok = [t - e for t, e in zip(total, errors)]
    return CounterPanel.from_counts(ts, [({"outcome": "error"}, errors), ({"outcome": "success"}, ok)])


def test_outcome_values_are_exactly_the_four_names() -> None:
    assert [o.value for o in Outcome] == ["Pass", "Fail", "Inconclusive", "NoData"]


@pytest.mark.parametrize("outcomes, want", [
    (["Pass", "Fail", "NoData"], "Fail"),
    (["Pass", "NoData", "Inconclusive"], "NoData"),
    (["Pass", "Inconclusive"], "Inconclusive"),
    (["Pass", "Pass"], "Pass"),
])
def test_overall_outcome_rule(outcomes: list[str], want: str) -> None:
    assert combine([Outcome(o) for o in outcomes]) is Outcome(want)


def test_all_gates_on_a_healthy_window_do_not_fail_and_record_as_json() -> None:
    result = analyze(ALL, healthy_window(), alpha_fail=0.05, alpha_pass=0.05, min_samples=200, expected_canary_share=0.1)
    assert isinstance(result, Analysis)
    assert result.outcome is not Outcome.FAIL
    assert [v.metric for v in result.verdicts] == list(MetricKind)
    record = result.to_dict()
    text = json.dumps(record, allow_nan=False)  # NaN/inf would break the Kubernetes status
    assert len(text) < 12_000
    assert record["verdicts"][0]["thresholdFail"] == pytest.approx(7 / 0.05)  # alpha split over 7 gates
    assert record["sampleRatio"]["mismatch"] is False
    assert "\n" not in result.summary()


def test_family_wise_budget_is_split_for_fail_but_not_for_pass() -> None:
    result = analyze(ALL[:4], healthy_window(), alpha_fail=0.01, alpha_pass=0.1, min_samples=200)
    for v in result.verdicts:
        assert v.threshold_fail == pytest.approx(4 / 0.01)
        assert v.threshold_pass == pytest.approx(1 / 0.1)
    record = result.to_dict()
    assert record["alphaFail"] == 0.01 and record["alphaPass"] == 0.1 and "confidence" not in record


def test_every_verdict_carries_margins_and_a_plan_in_plain_json() -> None:
    result = analyze(ALL, healthy_window(), alpha_fail=0.05, alpha_pass=0.05, min_samples=200, horizon_s=3600.0)
    record = result.to_dict()
    json.dumps(record, allow_nan=False)
    assert record["plan"]["horizonSeconds"] == 3600.0 and isinstance(record["plan"]["beyondHorizon"], bool)
    for v, d in zip(result.verdicts, record["verdicts"]):
        assert d["tolerance"] == pytest.approx(v.tolerance) and d["regression"] == pytest.approx(v.regression)
        assert set(d["plan"]) >= {"timeToPassSeconds", "beyondHorizon", "detectableEffect", "detectableSeconds"}
        assert "detectableEffect" in d["figures"]
    # the analysis' own time to Pass is about the gates still to pass (a passed gate needs none)
    times = [v.time_to_pass_s for v in result.verdicts if v.outcome in (Outcome.INCONCLUSIVE, Outcome.FAIL)]
    if times and all(t is not None for t in times):
        assert result.time_to_pass_s == max(times)
    else:
        assert result.time_to_pass_s is None
    if all(v.outcome is Outcome.PASS for v in result.verdicts):
        assert record["plan"]["summary"] == "every gate has passed"


def test_the_same_input_gives_the_same_answer() -> None:
    data = healthy_window()
    a = analyze(ALL, data, alpha_fail=0.05, alpha_pass=0.05, min_samples=200, expected_canary_share=0.1).to_dict()
    b = analyze(ALL, data, alpha_fail=0.05, alpha_pass=0.05, min_samples=200, expected_canary_share=0.1).to_dict()
    assert a == b


def test_missing_and_broken_metrics_are_no_data_never_pass() -> None:
    gates = [Gate(metric="errorRate"), Gate(metric="latencyP99"), Gate(metric="calibration"), Gate(metric="fairnessGap")]
    one = CounterPanel([0.0])
    data = {
        MetricKind.ERROR_RATE: NoData("Prometheus unreachable: connection refused"),
        MetricKind.CALIBRATION: RequestCounts(requests([1], [100]), requests([1], [100])),  # wrong type
        MetricKind.FAIRNESS_GAP: RequestCounts(one, one),
    }
    result = analyze(gates, data, alpha_fail=0.05, alpha_pass=0.05, min_samples=1)
    by = {v.metric: v for v in result.verdicts}
    assert result.outcome is Outcome.NO_DATA
    assert by[MetricKind.ERROR_RATE].explanation == "Prometheus unreachable: connection refused"
    assert "not collected" in by[MetricKind.LATENCY_P99].explanation
    assert "expected LabelFeedback" in by[MetricKind.CALIBRATION].explanation
    assert all(v.outcome is Outcome.NO_DATA for v in result.verdicts)


def test_a_window_with_a_single_sample_is_no_data() -> None:
    one = CounterPanel([0.0])
    result = analyze([Gate(metric="errorRate")], {MetricKind.ERROR_RATE: RequestCounts(one, one)},
                     alpha_fail=0.05, alpha_pass=0.05, min_samples=1)
    assert result.outcome is Outcome.NO_DATA and "fewer than two samples" in result.verdicts[0].explanation


def test_a_counter_reset_inside_the_window_does_not_fake_a_regression() -> None:
    ts = 60.0 * np.arange(4)
    # canary pod restarts at minute 2: its counters drop from ~2000 to ~100
    canary = CounterPanel(ts, (
        CounterSeries({"outcome": "success"}, [1980, 2079, 99, 198]),
        CounterSeries({"outcome": "error"}, [20, 21, 1, 2]),
    ))
    baseline = CounterPanel.from_counts(ts, [({"outcome": "success"}, [891, 891, 891]), ({"outcome": "error"}, [9, 9, 9])])
    verdict = analyze([Gate(metric="errorRate")], {MetricKind.ERROR_RATE: RequestCounts(baseline, canary)},
                      alpha_fail=0.05, alpha_pass=0.05, min_samples=1).verdicts[0]
    assert verdict.samples == (2700, 300)
    assert verdict.figures["canaryRate"] == pytest.approx(3 / 300)
    assert verdict.outcome is not Outcome.FAIL


def test_sample_ratio_mismatch_is_reported_and_does_not_decide_on_its_own() -> None:
    ts = 60.0 * np.arange(31)
    rng = np.random.default_rng(3)
    shadow = ShadowComparisons(CounterPanel.from_counts(ts, [({"outcome": "agree"}, rng.poisson(5000, 30)),
                                                            ({"outcome": "disagree"}, rng.poisson(10, 30))]))
    # the canary got 20% of requests although it was configured for 10%
    reqs = RequestCounts(requests(list(rng.poisson(18, 30)), [1800] * 30), requests(list(rng.poisson(4, 30)), [450] * 30))
    gates = [Gate(metric="shadowDisagreement")]
    data = {MetricKind.SHADOW_DISAGREEMENT: shadow, MetricKind.ERROR_RATE: reqs}
    fine = analyze(gates, data, alpha_fail=0.05, alpha_pass=0.05, min_samples=100, expected_canary_share=0.2)
    assert fine.outcome is Outcome.PASS and not fine.sample_ratio.mismatch
    off = analyze(gates, data, alpha_fail=0.05, alpha_pass=0.05, min_samples=100, expected_canary_share=0.1)
    assert off.sample_ratio.mismatch and off.outcome is Outcome.PASS
    assert "sample ratio mismatch" in off.summary()
    # only the intervals since the split last changed are checked: the last 10 at 20%
    recent = analyze(gates, data, alpha_fail=0.05, alpha_pass=0.05, min_samples=100, expected_canary_share=0.2,
                     share_since=float(ts[20]))
    assert recent.sample_ratio.samples[0] + recent.sample_ratio.samples[1] < sum(fine.sample_ratio.samples) / 2
    # a failing gate stays Fail under a mismatch (rolling back is the safe side)
    failing = ShadowComparisons(CounterPanel.from_counts(ts, [({"outcome": "agree"}, [4000] * 30),
                                                             ({"outcome": "disagree"}, [1000] * 30)]))
    result = analyze(gates, {**data, MetricKind.SHADOW_DISAGREEMENT: failing}, alpha_fail=0.05, alpha_pass=0.05, min_samples=100,
                     expected_canary_share=0.1)
    assert result.outcome is Outcome.FAIL


def test_pass_needs_min_samples() -> None:
    ts = 60.0 * np.arange(11)
    shadow = ShadowComparisons(CounterPanel.from_counts(ts, [({"outcome": "agree"}, [1000] * 10)]))
    gates = [Gate(metric="shadowDisagreement")]
    few = analyze(gates, {MetricKind.SHADOW_DISAGREEMENT: shadow}, alpha_fail=0.05, alpha_pass=0.05, min_samples=50_000)
    assert few.outcome is Outcome.INCONCLUSIVE and "more canary samples" in few.verdicts[0].explanation
    enough = analyze(gates, {MetricKind.SHADOW_DISAGREEMENT: shadow}, alpha_fail=0.05, alpha_pass=0.05, min_samples=5_000)
    assert enough.outcome is Outcome.PASS


def test_verdict_to_dict_has_no_numpy_types_and_drops_non_finite_numbers() -> None:
    v = Verdict(metric=MetricKind.ERROR_RATE, outcome=Outcome.INCONCLUSIVE, explanation="x",
                effect=float("nan"), interval=(np.float64(0.1234567), float("inf")), e_fail=np.float64(3.3),
                figures={"a": np.float32(1.5), "b": float("nan")})
    d = v.to_dict()
    json.dumps(d, allow_nan=False)
    assert "effect" not in d and d["interval"] == [0.1235, None] and d["figures"] == {"a": 1.5, "b": None}
    assert type(d["eFail"]) is float


def test_shadow_phase_has_no_sample_ratio_check() -> None:
    result = analyze([Gate(metric="errorRate")], healthy_window(minutes=10), alpha_fail=0.05, alpha_pass=0.05, min_samples=1,
                     expected_canary_share=None)
    assert result.sample_ratio is None and "sampleRatio" not in result.to_dict()


def test_both_budgets_must_be_probabilities() -> None:
    with pytest.raises(ValueError, match="alpha_fail"):
        analyze([], {}, alpha_fail=1.0, alpha_pass=0.05, min_samples=1)
    with pytest.raises(ValueError, match="alpha_pass"):
        analyze([], {}, alpha_fail=0.05, alpha_pass=0.0, min_samples=1)
