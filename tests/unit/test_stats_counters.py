"""Raw counters in, per-interval increases out: resets, gaps and new series handled per series."""

from __future__ import annotations

import numpy as np
import pytest
from vigil.stats.data import (
    CounterPanel,
    CounterSeries,
    HistogramData,
    RequestCounts,
    series_increments,
)

NAN = np.nan


def test_a_restart_counts_what_the_new_process_counted() -> None:
    # 100 -> 130 (+30), restart, 20 (+20 since zero), 45 (+25)
    assert series_increments([100, 130, 20, 45]).tolist() == [30, 20, 25]


def test_a_gap_is_bridged_into_the_next_interval() -> None:
    assert series_increments([10, NAN, NAN, 16]).tolist() == [0, 0, 6]


def test_a_series_born_inside_the_window_counts_from_zero() -> None:
    # e.g. the first error of a version creates the outcome="error" series
    assert series_increments([NAN, NAN, 3, 5]).tolist() == [0, 3, 2]


def test_a_series_present_at_the_start_only_sets_the_reference() -> None:
    assert series_increments([1_000_000, 1_000_004]).tolist() == [4]


def test_pods_are_differenced_separately_then_added() -> None:
    # summing first would see 150 -> 60 and read it as a reset worth 60 instead of 10 + 0
    ts = [0.0, 60.0]
    panel = CounterPanel(ts, (CounterSeries({"pod": "a", "outcome": "error"}, [100, 10]),
                              CounterSeries({"pod": "b", "outcome": "error"}, [50, 50])))
    assert panel.increments(lambda labels: labels["outcome"])["error"].tolist() == [10]


def test_request_counts_split_by_outcome() -> None:
    ts = [0.0, 60.0, 120.0]
    panel = CounterPanel.from_counts(ts, [({"outcome": "success"}, [99, 98]), ({"outcome": "error"}, [1, 2])])
    data = RequestCounts(panel, panel)
    requests, errors = data.outcomes(panel)
    assert requests.tolist() == [100, 100] and errors.tolist() == [1, 2]


def test_histogram_buckets_become_bins() -> None:
    ts = [0.0, 60.0]
    panel = CounterPanel.from_counts(ts, [({"le": "0.1"}, [5]), ({"le": "0.5"}, [8]), ({"le": "+Inf"}, [10])])
    edges, counts = HistogramData(panel, panel).buckets(panel)
    assert edges.tolist() == [0.1, 0.5, np.inf]
    assert counts.tolist() == [[5, 3, 2]]


def test_mismatched_lengths_are_rejected() -> None:
    with pytest.raises(ValueError, match="samples for"):
        CounterPanel([0.0, 60.0], (CounterSeries({}, [1.0, 2.0, 3.0]),))


def test_baseline_and_canary_must_share_the_grid() -> None:
    a = CounterPanel([0.0, 60.0])
    b = CounterPanel([0.0, 30.0])
    with pytest.raises(ValueError, match="same time grid"):
        RequestCounts(a, b)



def test_an_increase_finer_than_any_counter_counts_is_read_as_none() -> None:
    # a broken exporter's subnormal value or rounding residue, with or without a gap
    assert series_increments([0.0, 5e-324, 5e-324, 7.0]).tolist() == [0, 0, 7]
    assert series_increments([0.0, NAN, 1e-12, 1.0]).tolist() == [0, 0, 1.0 - 1e-12]
    assert series_increments([3.0, 3.0 + 2e-9]).tolist() == pytest.approx([2e-9])


def test_a_subnormal_count_is_analysed_without_overflow() -> None:
    """A case the fuzzer found: the canary's score histogram counts 2e-313 predictions in its
    lowest bucket, and the drift distance divided by it (RuntimeWarning: overflow)."""
    import warnings

    from vigil.api.gates import Gate
    from vigil.stats import analyze
    from vigil.stats.data import ScoreHistogram

    ts = np.arange(8) * 60.0

    def bucket(le: str, values: list[float]) -> CounterSeries:
        return CounterSeries({"le": le}, np.array(values))

    steady = [216, 316, 635, 2598, 2956, 3761, 3934, 4675]
    baseline = CounterPanel(ts, (bucket("0.5", steady), bucket("+Inf", steady)))
    canary = CounterPanel(ts, (bucket("0.1", [NAN, 2.22507386e-313, 0, NAN, NAN, 0, NAN, 0]),
                               bucket("0.5", [0, NAN, NAN, NAN, 1.42954968e8, NAN, 0, NAN]),
                               bucket("+Inf", [0, 0, 0, 0, 0, NAN, 0, 0])))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        analyze([Gate(metric="predictionDrift")], {"predictionDrift": ScoreHistogram(baseline, canary)},
                alpha_fail=0.01, alpha_pass=0.05, min_samples=50)
