"""`analyze`: every gate of a RiskPolicy on one window of counters, combined into one answer.

Pure and deterministic. Called at each reconcile with counters accumulated since the start
of the current canary step; every test is an e-process, so the answer stays valid however
often it is asked. Family-wise control: the false-Fail budget alpha = 1 - confidence is
split evenly across the gates (any Fail fails the analysis); each Pass uses the full alpha,
since the analysis passes only if every gate passes, so a wrong overall Pass needs the
gate that is truly out of tolerance to pass wrongly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from vigil.api.gates import Gate, MetricKind
from vigil.stats.calibration import calibration_verdict
from vigil.stats.data import (
    GroupPredictions,
    LabelFeedback,
    LatencyHistogram,
    MetricData,
    NoData,
    RequestCounts,
    ScoreHistogram,
    ShadowComparisons,
)
from vigil.stats.drift import drift_verdict
from vigil.stats.evidence import Thresholds
from vigil.stats.fairness import fairness_verdict
from vigil.stats.latency import latency_verdict
from vigil.stats.rates import error_rate_verdict, shadow_verdict
from vigil.stats.report import no_data
from vigil.stats.result import Analysis, Outcome, Verdict, combine
from vigil.stats.srm import sample_ratio_check

Evaluator = Callable[[object, Gate, Thresholds], Verdict]

EVALUATORS: dict[MetricKind, tuple[type, Evaluator]] = {
    MetricKind.ERROR_RATE: (RequestCounts, error_rate_verdict),
    MetricKind.LATENCY_P50: (LatencyHistogram, latency_verdict),
    MetricKind.LATENCY_P99: (LatencyHistogram, latency_verdict),
    MetricKind.PREDICTION_DRIFT: (ScoreHistogram, drift_verdict),
    MetricKind.CALIBRATION: (LabelFeedback, calibration_verdict),
    MetricKind.FAIRNESS_GAP: (GroupPredictions, fairness_verdict),
    MetricKind.SHADOW_DISAGREEMENT: (ShadowComparisons, shadow_verdict),
}  # type: ignore[dict-item]


def analyze(
    gates: Sequence[Gate],
    data: Mapping[MetricKind, MetricData | NoData],
    *,
    confidence: float,
    min_samples: int,
    expected_canary_share: float | None = None,
) -> Analysis:
    """Judge the canary on every gate; see the module docstring for the error control."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    alpha = 1.0 - confidence
    th = Thresholds(alpha_fail=alpha / max(len(gates), 1), alpha_pass=alpha, min_samples=max(int(min_samples), 0))
    verdicts = [_judge(gate, _lookup(data, gate.metric), th) for gate in gates]
    outcome = combine([v.outcome for v in verdicts]) if verdicts else Outcome.INCONCLUSIVE
    srm = sample_ratio_check(data, expected_canary_share, alpha)
    note = ""
    if srm is not None and srm.mismatch:
        note = srm.summary()
        if outcome is Outcome.PASS:
            outcome = Outcome.INCONCLUSIVE  # the comparison itself is suspect; a rollback still stands
    return Analysis(outcome=outcome, verdicts=verdicts, sample_ratio=srm, confidence=confidence, note=note)


def _lookup(data: Mapping[MetricKind, MetricData | NoData], kind: MetricKind) -> MetricData | NoData:
    item = data.get(kind, data.get(kind.value))  # type: ignore[call-overload]
    return NoData(f"{kind.value} was not collected") if item is None else item


def _judge(gate: Gate, item: MetricData | NoData, th: Thresholds) -> Verdict:
    if isinstance(item, NoData):
        return no_data(gate.metric, item.reason)
    expected, evaluate = EVALUATORS[gate.metric]
    if not isinstance(item, expected):
        return no_data(gate.metric, f"expected {expected.__name__} for {gate.metric.value}, got {type(item).__name__}")
    if item.timestamps.size < 2:
        return no_data(gate.metric, "fewer than two samples in the window")
    try:
        return evaluate(item, gate, th)
    except (ValueError, ArithmeticError, IndexError) as exc:  # malformed counters must not pass or crash the loop
        return no_data(gate.metric, f"could not analyse {gate.metric.value}: {exc}")
