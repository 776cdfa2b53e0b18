"""One analysis gate of a RiskPolicy: which metric the canary must not regress, and by how much.

A gate carries two margins, the two boundaries of a sequential test's indifference zone:

* the *tolerance* (`maxRelativeIncrease` / `maxAbsoluteIncrease`): a change that must not
  cause a rollback. Vigil rolls back a canary whose true effect is at most the tolerance
  with probability at most alpha.
* the *regression margin* (`regressionRelativeIncrease` / `regressionAbsoluteIncrease`): a
  change that must not be promoted. A gate passes a canary whose true effect is at or
  beyond the regression margin with probability at most beta.

Between the two, either answer is acceptable; that zone is what makes the time to a
decision finite. Each metric kind has one natural kind of margin. Rates and latency degrade
*relative* to the baseline (10% more errors), while calibration, fairness, shadow
disagreement and drift are already differences or distances, so their margins are in
*absolute* points. errorRate takes both: a relative margin and an absolute floor (a
regression must exceed both), without which an error-free service could never pass.
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
    MetricKind.ERROR_RATE: 0.10,  # x1.1 errors: ordinary deploy-to-deploy variation, never a rollback
    MetricKind.LATENCY_P50: 0.10,  # +10% median: within what a user or a latency SLO notices
    MetricKind.LATENCY_P99: 0.10,  # +10% p99: same
    MetricKind.PREDICTION_DRIFT: 0.02,  # PSI 0.02: a fifth of the "no significant shift" limit (0.1)
    MetricKind.CALIBRATION: 0.02,  # 2 points of accuracy at equal stated confidence
    MetricKind.FAIRNESS_GAP: 0.03,  # any group's positive rate may move 3 points
    MetricKind.SHADOW_DISAGREEMENT: 0.02,  # 2% of mirrored predictions may differ (incl. nondeterminism)
}
"""Tolerances used when a gate gives none; chosen from what they mean (docs/analysis.md)."""

DEFAULT_REGRESSION: dict[MetricKind, float] = {
    MetricKind.ERROR_RATE: 0.50,  # x1.5 errors: a regression
    MetricKind.LATENCY_P50: 0.30,  # +30% median: a regression users feel
    MetricKind.LATENCY_P99: 0.30,  # +30% p99: a regression users feel
    MetricKind.PREDICTION_DRIFT: 0.10,  # PSI 0.1: the end of the rule of thumb's "no significant shift"
    MetricKind.CALIBRATION: 0.05,  # ECE +0.05: stated confidence off by 5 points
    MetricKind.FAIRNESS_GAP: 0.10,  # 10 points for one group: a material disparate impact
    MetricKind.SHADOW_DISAGREEMENT: 0.05,  # 1 prediction in 20 changes
}
"""Regression margins used when a gate gives none (widened with a large tolerance, see `regression`)."""

DEFAULT_REGRESSION_FLOOR = 0.001
"""errorRate: an increase below 0.1 points is never a regression (the whole error budget of a
99.9% availability objective), so an error-free service can pass."""

MIN_ZONE_RELATIVE = 1.15
"""A defaulted relative regression margin is at least 1.15x the tolerated ratio."""
MIN_ZONE_ABSOLUTE = 1.5
"""A defaulted absolute regression margin (or floor) is at least 1.5x the tolerance."""

_MAX_RELATIVE = 10.0
_MAX_ABSOLUTE = 1.0


def _names(kinds: frozenset[MetricKind]) -> str:
    return ", ".join(sorted(k.value for k in kinds))


def default_regression(kind: MetricKind, tolerance: float) -> float:
    """The regression margin in force when none is given: the default for the kind, widened
    when the tolerance leaves too narrow an indifference zone."""
    if kind in RELATIVE_KINDS:
        return max(DEFAULT_REGRESSION[kind], MIN_ZONE_RELATIVE * (1.0 + tolerance) - 1.0)
    return max(DEFAULT_REGRESSION[kind], MIN_ZONE_ABSOLUTE * tolerance)


class Gate(BaseModel):
    """A metric the canary must not regress: a tolerance (never roll back within it) and a
    regression margin (never promote beyond it), compared with the baseline."""

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
        description="Tolerance: a degradation (fraction of the baseline, 0.1 = 10% worse) that must "
        f"not cause a rollback. Only for {_names(RELATIVE_KINDS)}.",
    )
    max_absolute_increase: float | None = Field(
        None,
        ge=0.0,
        le=_MAX_ABSOLUTE,
        description="Tolerance in absolute points (0.02 = 2 points; PSI units for predictionDrift). "
        f"For {_names(ABSOLUTE_KINDS)}; for errorRate an absolute floor beside maxRelativeIncrease "
        "(a rollback needs both to be exceeded).",
    )
    regression_relative_increase: float | None = Field(
        None,
        gt=0.0,
        le=_MAX_RELATIVE,
        description="Regression margin: a degradation (fraction of the baseline, 0.5 = 50% worse) that "
        "must not be promoted; greater than maxRelativeIncrease. Default: 0.5 for errorRate, 0.3 for "
        f"latency. Only for {_names(RELATIVE_KINDS)}.",
    )
    regression_absolute_increase: float | None = Field(
        None,
        gt=0.0,
        le=_MAX_ABSOLUTE,
        description="Regression margin in absolute points; greater than maxAbsoluteIncrease. Defaults: "
        "predictionDrift 0.1, calibration 0.05, fairnessGap 0.1, shadowDisagreement 0.05. For errorRate "
        "an absolute floor (default 0.001): an increase below it is never a regression, so an "
        f"error-free service can pass. For {_names(ABSOLUTE_KINDS)} and errorRate.",
    )

    @model_validator(mode="after")
    def _margins_match_kind(self) -> Gate:
        relative = self.metric in RELATIVE_KINDS
        pairs = (("maxAbsoluteIncrease", "maxRelativeIncrease", self.max_absolute_increase, self.max_relative_increase),
                 ("regressionAbsoluteIncrease", "regressionRelativeIncrease",
                  self.regression_absolute_increase, self.regression_relative_increase))
        for absolute_name, relative_name, absolute_value, relative_value in pairs:
            wrong, right = (absolute_name, relative_name) if relative else (relative_name, absolute_name)
            given_wrong = absolute_value if relative else relative_value
            if self.metric is MetricKind.ERROR_RATE:
                given_wrong = None  # errorRate takes both: a relative margin and an absolute floor
            if given_wrong is not None:
                allowed = _names(RELATIVE_KINDS if relative else ABSOLUTE_KINDS)
                raise ValueError(
                    f"gates[].{wrong} does not apply to metric {self.metric.value}: use {right} "
                    f"(allowed for {allowed})"
                )
        tol_name, reg_name = (("maxRelativeIncrease", "regressionRelativeIncrease") if relative
                              else ("maxAbsoluteIncrease", "regressionAbsoluteIncrease"))
        given_reg = self.regression_relative_increase if relative else self.regression_absolute_increase
        if given_reg is not None and given_reg <= self.tolerance:
            how = "" if self._given_tolerance() is not None else " (its default)"
            raise ValueError(
                f"gates[].{reg_name} ({given_reg:g}) must be greater than {tol_name} ({self.tolerance:g}{how}) "
                f"for metric {self.metric.value}: the regression margin is an effect that must not be "
                "promoted, the tolerance one that must not be rolled back"
            )
        if (self.metric is MetricKind.ERROR_RATE and self.regression_absolute_increase is not None
                and self.max_absolute_increase is not None
                and self.regression_absolute_increase <= self.max_absolute_increase):
            raise ValueError(
                f"gates[].regressionAbsoluteIncrease ({self.regression_absolute_increase:g}) must be greater "
                f"than maxAbsoluteIncrease ({self.max_absolute_increase:g}) for metric errorRate: the "
                "regression floor must lie above the tolerated floor"
            )
        return self

    def _given_tolerance(self) -> float | None:
        return self.max_relative_increase if self.metric in RELATIVE_KINDS else self.max_absolute_increase

    @property
    def tolerance(self) -> float:
        """The tolerance in force: the one given, else the default for the metric kind."""
        given = self._given_tolerance()
        return DEFAULT_TOLERANCE[self.metric] if given is None else float(given)

    @property
    def regression(self) -> float:
        """The regression margin in force: the one given, else `default_regression`."""
        given = (self.regression_relative_increase if self.metric in RELATIVE_KINDS
                 else self.regression_absolute_increase)
        return default_regression(self.metric, self.tolerance) if given is None else float(given)

    @property
    def tolerance_floor(self) -> float | None:
        """errorRate only: the absolute increase a rollback must also exceed (None: no floor)."""
        if self.metric is not MetricKind.ERROR_RATE or self.max_absolute_increase is None:
            return None
        return float(self.max_absolute_increase)

    @property
    def regression_floor(self) -> float | None:
        """errorRate only: the absolute increase below which nothing is a regression."""
        if self.metric is not MetricKind.ERROR_RATE:
            return None
        if self.regression_absolute_increase is not None:
            return float(self.regression_absolute_increase)
        floor = self.tolerance_floor
        return DEFAULT_REGRESSION_FLOOR if floor is None else max(DEFAULT_REGRESSION_FLOOR, MIN_ZONE_ABSOLUTE * floor)

    @property
    def is_relative(self) -> bool:
        return self.metric in RELATIVE_KINDS
