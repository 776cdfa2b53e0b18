"""The benchmark runs, and what it measures for Vigil is what `analyze` does."""

from __future__ import annotations


import numpy as np
import pytest
from vigil.api.gates import Gate, MetricKind
from vigil.stats import analyze

from bench.methods import vigil
from bench.simulate import Counts
from tests.unit.test_stats_worlds import (
    CONFIDENCE_MID,
    GROUP_POSITIVE,
    bins,
    drifted,
    errors,
    group_predictions,
    groups,
    histogram_counts,
    label_feedback,
    labels,
    latency_histogram,
    lognormal_cdf,
    poisson,
    request_counts,
    score_bins,
    score_histogram,
    shadow_comparisons,
)

CODE = {"Inconclusive": 0, "Pass": 1, "Fail": 2}
REPS, MINUTES = 4, 40


def counts(family: str, seed: int) -> tuple[Counts, list[dict]]:
    """Simulated regressions of one family as the bench's `Counts`, and each rep's raw counters."""
    rng = np.random.default_rng(seed)
    n_c, x_c, n_b, x_b = errors(rng, 1000, 0.1, 0.02 if family == "errorRate" else 0.01, 0.01, REPS, MINUTES)
    c = Counts(np.full(MINUTES, 0.1), n_c, x_c, n_b, x_b)
    windows: list[dict] = [{} for _ in range(REPS)]
    for r in range(REPS):
        windows[r][MetricKind.ERROR_RATE] = request_counts(n_c[r], x_c[r], n_b[r], x_b[r])
    if family == "latencyP99":
        c.latency_c, c.latency_b = histogram_counts(rng, 1000, 0.1, bins(lognormal_cdf(1.5)), bins(lognormal_cdf()),
                                                    REPS, MINUTES)
        for r in range(REPS):
            windows[r][MetricKind.LATENCY_P99] = latency_histogram(c.latency_c[r], c.latency_b[r])
    if family == "predictionDrift":
        c.score_c, c.score_b = histogram_counts(rng, 1000, 0.1, drifted(0.1), score_bins(), REPS, MINUTES)
        for r in range(REPS):
            windows[r][MetricKind.PREDICTION_DRIFT] = score_histogram(c.score_c[r], c.score_b[r])
    if family == "calibration":
        c.labelled_c, c.correct_c, c.labelled_b, c.correct_b = labels(rng, 1000, 0.1, CONFIDENCE_MID - 0.05,
                                                                      CONFIDENCE_MID, REPS, MINUTES)
        for r in range(REPS):
            windows[r][MetricKind.CALIBRATION] = label_feedback(c.labelled_c[r], c.correct_c[r], c.labelled_b[r],
                                                                c.correct_b[r])
    if family == "fairnessGap":
        unfair = GROUP_POSITIVE - np.array([0.0, 0.0, 0.1])
        c.groups_c, c.positive_c, c.groups_b, c.positive_b = groups(rng, 1000, 0.1, unfair, GROUP_POSITIVE, REPS, MINUTES)
        for r in range(REPS):
            windows[r][MetricKind.FAIRNESS_GAP] = group_predictions(c.groups_c[r], c.positive_c[r], c.groups_b[r],
                                                                    c.positive_b[r])
    if family == "shadowDisagreement":
        c.disagreed = poisson(rng, np.full(MINUTES, 100 * 0.03), REPS)
        c.compared = c.disagreed + poisson(rng, np.full(MINUTES, 100 * 0.97), REPS)
        for r in range(REPS):
            windows[r][MetricKind.SHADOW_DISAGREEMENT] = shadow_comparisons(c.compared[r], c.disagreed[r])
    return c, windows


@pytest.mark.parametrize("family", ["errorRate", "latencyP99", "predictionDrift", "calibration", "fairnessGap",
                                    "shadowDisagreement"])
def test_vectorised_benchmark_path_agrees_with_analyze(family: str) -> None:
    c, windows = counts(family, seed=1)
    codes = vigil(family, c, alpha_fail=0.05, alpha_pass=0.05)
    gate = Gate(metric=MetricKind(family))
    seen = set()
    for rep in range(REPS):
        for minutes in (5, 15, MINUTES):
            window = {k: _prefix(v, minutes) for k, v in windows[rep].items()}
            result = analyze([gate], window, alpha_fail=0.05, alpha_pass=0.05, min_samples=200)
            assert CODE[result.outcome.value] == codes[rep, minutes - 1], (rep, minutes)
            seen.add(result.outcome.value)
    assert "Fail" in seen  # the regressions are caught, so the comparison covers decisions


def _prefix(data, minutes: int):
    """The same counters over their first `minutes` intervals."""
    from dataclasses import fields, replace

    from vigil.stats import CounterPanel

    def cut(panel: CounterPanel) -> CounterPanel:
        return CounterPanel(panel.timestamps[: minutes + 1],
                            tuple(type(s)(s.labels, s.values[: minutes + 1]) for s in panel.series))

    return replace(data, **{f.name: cut(getattr(data, f.name)) for f in fields(data)
                            if isinstance(getattr(data, f.name), CounterPanel)})


def test_quick_benchmark_prints_every_family(capsys: pytest.CaptureFixture[str]) -> None:
    """Benchmarks print figures; how long they take is printed, never asserted (CI may be busy).
    Every family and method at every rate, 10 rollouts a cell: what this checks is that the bench
    runs and prints, not its figures (`--quick`'s 100 a cell took 314 s of a cold CI run's first
    phase on a slow host, beside the control plane's build)."""
    from bench.analysis_bench import main

    assert main(["--quick", "--reps", "10"]) == 0
    out = capsys.readouterr().out
    assert "**Vigil**" in out and "oracle SPRT" in out
