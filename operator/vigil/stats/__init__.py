"""Vigil's analysis engine: anytime-valid canary tests on raw counters (pure: numpy/scipy only)."""

from vigil.stats.analyze import analyze
from vigil.stats.data import (
    CounterPanel,
    CounterSeries,
    GroupPredictions,
    LabelFeedback,
    LatencyHistogram,
    MetricData,
    NoData,
    RequestCounts,
    ScoreHistogram,
    ShadowComparisons,
)
from vigil.stats.result import Analysis, Outcome, SampleRatioCheck, Verdict

__all__ = [
    "Analysis",
    "CounterPanel",
    "CounterSeries",
    "GroupPredictions",
    "LabelFeedback",
    "LatencyHistogram",
    "MetricData",
    "NoData",
    "Outcome",
    "RequestCounts",
    "SampleRatioCheck",
    "ScoreHistogram",
    "ShadowComparisons",
    "Verdict",
    "analyze",
]
