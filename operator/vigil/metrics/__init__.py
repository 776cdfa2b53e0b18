"""Where the analysis gets its numbers: the MetricsProvider protocol and its Prometheus backend.

The data types are defined in `vigil.stats.data` (pure, so the engine imports no I/O) and
re-exported here for the code that collects them.
"""

from vigil.metrics.prometheus import MetricsProvider, PrometheusConfig, PrometheusProvider
from vigil.metrics.promql import InvalidLabel
from vigil.metrics.target import AnalysisTarget
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

__all__ = [
    "AnalysisTarget",
    "CounterPanel",
    "CounterSeries",
    "GroupPredictions",
    "InvalidLabel",
    "LabelFeedback",
    "LatencyHistogram",
    "MetricData",
    "MetricsProvider",
    "NoData",
    "PrometheusConfig",
    "PrometheusProvider",
    "RequestCounts",
    "ScoreHistogram",
    "ShadowComparisons",
]
