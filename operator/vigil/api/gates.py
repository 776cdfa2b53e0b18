"""One analysis gate of a RiskPolicy: which metric the canary must not regress, and by how much.

Each metric kind has one natural kind of tolerance. Rates and latency degrade *relative* to
the baseline (10% more errors), while calibration, fairness, shadow disagreement and drift
are already differences or distances, so their tolerance is in *absolute* points. A gate
states exactly one of the two; the other is rejected with a message naming both fields.
"""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel


class MetricKind(str, Enum):
    """The signals Vigil can gate on (see docs/metrics-contract.md for the series behind them)."""

    ERROR_RATE = "errorRate"
    LATENCY_P50 = "latencyP50"
    LATENCY_P99 = "latencyP99"
    PREDICTION_DRIFT = "predictionDrift"
    CALIBRATION = "calibration"
    FAIRNESS_GAP = "fairnessGap"
    SHADOW_DISAGREEMENT = "shadowDisagreement"


RELATIVE_KINDS = frozenset({MetricKind.ERROR_RATE, MetricKind.LATENCY_P50, MetricKind.LATENCY_P99})
ABSOLUTE_KINDS = frozenset(set(MetricKind) - RELATIVE_KINDS)

DEFAULT_TOLERANCE: dict[MetricKind, float] = {
    MetricKind.ERROR_RATE: 0.10,  # canary error rate at most 1.1x the baseline's
    MetricKind.LATENCY_P50: 0.10,  # canary median at most 1.1x the baseline's
    MetricKind.LATENCY_P99: 0.02,  # canary p99 at most 1.05x the baseline's
    MetricKind.PREDICTION_DRIFT: 0.02,  # PSI-scale distance between score histograms
    MetricKind.CALIBRATION: 0.01,  # 1 point of calibration shift (accuracy at equal confidence)
    MetricKind.FAIRNESS_GAP: 0.02,  # any group's positive rate may move 2 points
    MetricKind.SHADOW_DISAGREEMENT: 0.015,  # at most 1.5% of mirrored predictions differ
}
"""Tolerances used when a gate names only its metric; the benchmark uses exactly these."""

_MAX_RELATIVE = 10.0
_MAX_ABSOLUTE = 1.0


def _names(kinds: frozenset[MetricKind]) -> str:
    return ", ".join(sorted(k.value for k in kinds))


class Gate(BaseModel):
    """A metric the canary must not regress beyond a tolerance, compared with the baseline."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )

    metric: MetricKind = Field(
        description="errorRate | latencyP50 | latencyP99 | predictionDrift | calibration | "
        "fairnessGap | shadowDisagreement."
    )
    max_relative_increase: float | None = Field(
        None,
        ge=0.0,
        le=_MAX_RELATIVE,
        description="Tolerated degradation as a fraction of the baseline (0.1 = 10% worse). "
        f"Only for {_names(RELATIVE_KINDS)}.",
    )
    max_absolute_increase: float | None = Field(
        None,
        ge=0.0,
        le=_MAX_ABSOLUTE,
        description="Tolerated degradation in absolute points (0.02 = 2 points; PSI units for "
        f"predictionDrift). For {_names(ABSOLUTE_KINDS)}; for errorRate an absolute floor beside "
        "maxRelativeIncrease (a regression must exceed both), without which an error-free service "
        "can never pass.",
    )

    @model_validator(mode="after")
    def _tolerance_matches_kind(self) -> Gate:
        relative = self.metric in RELATIVE_KINDS
        wrong, right = (
            ("maxAbsoluteIncrease", "maxRelativeIncrease")
            if relative
            else ("maxRelativeIncrease", "maxAbsoluteIncrease")
        )
        given_wrong = self.max_absolute_increase if relative else self.max_relative_increase
        if self.metric is MetricKind.ERROR_RATE:
            given_wrong = None  # errorRate takes both: a relative tolerance and an absolute floor
        if given_wrong is not None:
            allowed = _names(RELATIVE_KINDS if relative else ABSOLUTE_KINDS)
            raise ValueError(
                f"gates[].{wrong} does not apply to metric {self.metric.value}: use {right} "
                f"(allowed for {allowed})"
            )
        return self

    @property
    def tolerance(self) -> float:
        """The tolerance in force: the one given, else the default for the metric kind."""
        given = self.max_relative_increase if self.metric in RELATIVE_KINDS else self.max_absolute_increase
        return DEFAULT_TOLERANCE[self.metric] if given is None else float(given)

    @property
    def is_relative(self) -> bool:
        return self.metric in RELATIVE_KINDS
