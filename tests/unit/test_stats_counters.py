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
