"""The PromQL Vigil sends, per metric kind: raw counters, never rates or sums.

Counters are fetched per series (per pod and label set) and differenced by the engine, so a
pod restart inside the window cannot masquerade as a huge drop or a negative rate, which
`sum(...)` before `increase(...)` would cause.
"""

from __future__ import annotations

from vigil.api.gates import MetricKind
from vigil.metrics.promql import selector
from vigil.metrics.target import AnalysisTarget

REQUESTS_TOTAL = "vigil_model_requests_total"
REQUEST_DURATION_BUCKET = "vigil_model_request_duration_seconds_bucket"
PREDICTION_SCORE_BUCKET = "vigil_model_prediction_score_bucket"
PREDICTIONS_TOTAL = "vigil_model_predictions_total"
LABEL_FEEDBACK_TOTAL = "vigil_model_label_feedback_total"
SHADOW_COMPARISONS_TOTAL = "vigil_model_shadow_comparisons_total"
SHADOW_CONTROL_TOTAL = "vigil_model_shadow_control_comparisons_total"
"""The live control of shadowDisagreement: stable compared with itself on the same mirrored
requests (`outcome="agree"|"disagree"`), exported under the *stable* version's labels."""

SERIES: dict[MetricKind, str] = {
    MetricKind.ERROR_RATE: REQUESTS_TOTAL,
    MetricKind.LATENCY_P50: REQUEST_DURATION_BUCKET,
    MetricKind.LATENCY_P99: REQUEST_DURATION_BUCKET,
    MetricKind.PREDICTION_DRIFT: PREDICTION_SCORE_BUCKET,
    MetricKind.CALIBRATION: LABEL_FEEDBACK_TOTAL,
    MetricKind.FAIRNESS_GAP: PREDICTIONS_TOTAL,
    MetricKind.SHADOW_DISAGREEMENT: SHADOW_COMPARISONS_TOTAL,
}

CANARY_ONLY = frozenset({MetricKind.SHADOW_DISAGREEMENT})
"""Shadow comparisons are emitted by the shadow (canary) version only."""


def versions(kind: MetricKind, target: AnalysisTarget) -> tuple[str, ...]:
    if kind in CANARY_ONLY:
        return (target.canary_version,)
    return (target.baseline_version, target.canary_version)


def counters_query(kind: MetricKind, target: AnalysisTarget, namespace_label: str = "namespace") -> str:
    """All raw series of the kind's counter for both versions, e.g.
    `vigil_model_requests_total{namespace="ns",model="m",version="v1"} or ...{version="v2"}`."""
    metric = SERIES[kind]
    return " or ".join(selector(metric, target.matchers(v, namespace_label)) for v in versions(kind, target))


def freshness_query(kind: MetricKind, target: AnalysisTarget, namespace_label: str = "namespace") -> str:
    """Newest sample time per version. `timestamp()` must wrap the selectors themselves:
    applied to the result of `or` it would return the evaluation time, not the scrape time."""
    metric = SERIES[kind]
    return " or ".join(f"max by (version) (timestamp({selector(metric, target.matchers(v, namespace_label))}))"
                       for v in versions(kind, target))


def control_query(target: AnalysisTarget, namespace_label: str = "namespace") -> str:
    """The shadow gate's live control: every raw series of stable-vs-stable comparisons on the
    mirrored requests, e.g. `vigil_model_shadow_control_comparisons_total{namespace="ns",
    model="m",version="v1"}` (the baseline version). Optional: without it the gate compares
    the shadow with a fixed tolerated rate."""
    return selector(SHADOW_CONTROL_TOTAL, target.matchers(target.baseline_version, namespace_label))
