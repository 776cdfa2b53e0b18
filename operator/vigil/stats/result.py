"""Named results of an analysis: one `Verdict` per gate and the combined `Analysis`.

`to_dict()` output goes into the ModelDeployment status and the audit trail, so it is
plain JSON (no numpy types, no NaN or infinity), camelCase, and rounded to what a reader
can use.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from vigil.api.gates import MetricKind

E_CAP = 1e12


class Outcome(str, Enum):
    PASS = "Pass"
    FAIL = "Fail"
    INCONCLUSIVE = "Inconclusive"
    NO_DATA = "NoData"


def rounded(value: float | None, digits: int = 4) -> float | None:
    """`digits` significant digits; None for missing, NaN or infinite values."""
    if value is None:
        return None
    value = float(value)
    if not math.isfinite(value):
        return None
    if value == 0:
        return 0.0
    return round(value, max(digits - 1 - int(math.floor(math.log10(abs(value)))), 0))


def e_value(log_e: float) -> float:
    """An e-value for the record: capped so it stays a finite JSON number."""
    return float(min(math.exp(min(log_e, 700.0)), E_CAP))


STATUS_LEAVES_OUT = ("figures", "plan", "pValue")
"""Per-gate keys of a full analysis record that `status.lastAnalysis` does not keep."""


def status_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """The analysis as `status.lastAnalysis` keeps it: what the decision, `kubectl vigil explain`
    and the gate gauges read (outcome, effect, bound, e-values, thresholds, samples, the
    explanation in words). Each gate's extra figures, its projections (the rollout's are in
    `status.plan`) and its p-value (1/eFail) stay in the full record that every decision's
    AuditRecord carries. Status is rewritten on every pass and held by every copy of the
    object (kopf's, each pass's, a GitOps tool's): the full record made it about twice as large."""
    out = dict(record)
    out["verdicts"] = [{k: v for k, v in verdict.items() if k not in STATUS_LEAVES_OUT}
                       if isinstance(verdict, Mapping) else verdict for verdict in record.get("verdicts") or []]
    return out


def combine(outcomes: Sequence[Outcome]) -> Outcome:
    """Any Fail -> Fail; else any NoData -> NoData; else any Inconclusive -> Inconclusive; else Pass."""
    for candidate in (Outcome.FAIL, Outcome.NO_DATA, Outcome.INCONCLUSIVE):
        if candidate in outcomes:
            return candidate
    return Outcome.PASS


@dataclass(frozen=True)
class Verdict:
    """The answer for one gate, with the evidence behind it."""

    metric: MetricKind
    outcome: Outcome
    explanation: str
    statistic: str = ""
    effect: float | None = None
    interval: tuple[float, float] | None = None
    tolerance: float | None = None
    regression: float | None = None
    e_fail: float | None = None
    e_pass: float | None = None
    threshold_fail: float | None = None
    threshold_pass: float | None = None
    samples: tuple[int, int] = (0, 0)  # (baseline, canary)
    figures: Mapping[str, float | None] = field(default_factory=dict)
    plan: Plan | None = None

    @property
    def p_value(self) -> float | None:
        """Anytime-valid p-value against "within tolerance": 1 / e (capped at 1)."""
        return None if self.e_fail is None else min(1.0, 1.0 / max(self.e_fail, 1e-300))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "metric": self.metric.value,
            "outcome": self.outcome.value,
            "explanation": self.explanation,
            "samples": {"baseline": int(self.samples[0]), "canary": int(self.samples[1])},
        }
        if self.statistic:
            out["statistic"] = self.statistic
        if self.effect is not None and math.isfinite(self.effect):
            out["effect"] = rounded(self.effect)
        if self.interval is not None:
            out["interval"] = [rounded(self.interval[0]), rounded(self.interval[1])]
        for key, value in (("tolerance", self.tolerance), ("regression", self.regression),
                           ("eFail", self.e_fail), ("ePass", self.e_pass),
                           ("thresholdFail", self.threshold_fail), ("thresholdPass", self.threshold_pass),
                           ("pValue", self.p_value)):
            if value is not None:
                out[key] = rounded(value, 3)
        if self.figures:
            out["figures"] = {k: rounded(v) for k, v in self.figures.items()}
        if self.plan is not None:
            out["plan"] = self.plan.to_dict()
        return out

    @property
    def time_to_pass_s(self) -> float | None:
        """Projected seconds from the window's start to a Pass for a canary like the baseline."""
        return None if self.plan is None else self.plan.time_to_pass_s

    @property
    def detectable_effect(self) -> float | None:
        return None if self.plan is None else self.plan.detectable_effect

    def summary(self) -> str:
        return f"{self.metric.value} {self.outcome.value}: {self.explanation}"


@dataclass(frozen=True)
class Plan:
    """What the evidence should do next at the traffic seen so far (projections, not data).

    time_to_pass_s: seconds from the start of the window until the Pass e-process would reach
    its threshold (with min_samples) if the canary behaved exactly like the baseline; None
    when there is no traffic yet or it lies beyond the horizon (then `beyond_horizon`).
    detectable_effect: the smallest effect (relative for errorRate/latency, absolute points
    otherwise) the Fail e-process would catch within the horizon, and detectable_time_s the
    time it would need. `note` says in words what is missing.
    """

    horizon_s: float
    time_to_pass_s: float | None = None
    beyond_horizon: bool = False
    detectable_effect: float | None = None
    detectable_time_s: float | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "horizonSeconds": rounded(self.horizon_s),
            "timeToPassSeconds": rounded(self.time_to_pass_s),
            "beyondHorizon": bool(self.beyond_horizon),
            "detectableEffect": rounded(self.detectable_effect),
            "detectableSeconds": rounded(self.detectable_time_s),
        }
        if self.note:
            out["note"] = self.note
        return out


@dataclass(frozen=True)
class SampleRatioCheck:
    """Whether the canary got the share of traffic it was configured for."""

    expected_share: float
    observed_share: float | None
    e_value: float
    threshold: float
    samples: tuple[int, int]  # (baseline, canary) requests

    @property
    def mismatch(self) -> bool:
        return self.e_value >= self.threshold

    def to_dict(self) -> dict[str, Any]:
        return {
            "expectedShare": rounded(self.expected_share),
            "observedShare": rounded(self.observed_share),
            "eValue": rounded(self.e_value, 3),
            "threshold": rounded(self.threshold, 3),
            "mismatch": self.mismatch,
            "samples": {"baseline": int(self.samples[0]), "canary": int(self.samples[1])},
        }

    def summary(self) -> str:
        observed = "n/a" if self.observed_share is None else f"{self.observed_share:.1%}"
        return (f"sample ratio mismatch: canary got {observed} of requests, expected "
                f"{self.expected_share:.1%} (e={self.e_value:.3g})")


@dataclass(frozen=True)
class Analysis:
    """All gates of one analysis, combined with family-wise error control."""

    outcome: Outcome
    verdicts: list[Verdict]
    sample_ratio: SampleRatioCheck | None = None
    alpha_fail: float = 0.05
    alpha_pass: float = 0.05
    note: str = ""
    horizon_s: float = 4 * 3600.0
    pass_needed: bool = True
    """False in a stage that ends on its bake time alone (holdback): nothing waits for a Pass."""
    pending: tuple[Callable[[], Verdict] | None, ...] = field(default=(), compare=False, repr=False)
    """Per verdict, what completes a deferred plan (`analyze(deferred=True)`), else None."""

    def complete(self) -> Analysis:
        """This analysis with every deferred plan computed: equal to the analysis without
        deferring (what a decision's AuditRecord carries)."""
        if not any(self.pending):
            return self
        verdicts = [done() if done is not None else v for v, done in zip(self.verdicts, self.pending)]
        return replace(self, verdicts=verdicts, pending=())

    @property
    def time_to_pass_s(self) -> float | None:
        """The slowest projected time to Pass of the gates still to pass (None when one of them has
        no projection, or when every gate has passed or no Pass is needed: nothing is left to wait for)."""
        times = [v.time_to_pass_s for v in self.to_pass()]
        if not times or any(t is None for t in times):
            return None
        return max(t for t in times if t is not None)

    @property
    def beyond_horizon(self) -> bool:
        return any(v.plan is not None and v.plan.beyond_horizon for v in self.to_pass())

    def gated(self) -> list[Verdict]:
        """Verdicts that take part in the decision (NoData gates have no plan)."""
        return [v for v in self.verdicts if v.outcome is not Outcome.NO_DATA]

    def to_pass(self) -> list[Verdict]:
        """Gated verdicts that have not passed yet: what a projection to Pass is about (a gate that
        has passed needs none; its plan is still in the record). None where no Pass is needed."""
        if not self.pass_needed:
            return []
        return [v for v in self.gated() if v.outcome is not Outcome.PASS]

    def plan_summary(self) -> str:
        """One line: the projected time to Pass, or why there is none."""
        if not self.pass_needed:
            return "no Pass is needed: the stage ends on its bake time unless a gate fails"
        if self.gated() and not self.to_pass():
            return "every gate has passed"
        t = self.time_to_pass_s
        if t is not None:
            return f"about {t / 60:.0f} min from the window's start to Pass if the canary is like the baseline"
        slow = [v.metric.value for v in self.to_pass() if v.plan is not None and v.plan.beyond_horizon]
        if slow:
            return f"Pass beyond the {self.horizon_s / 3600:g} h horizon at this traffic ({', '.join(slow)})"
        waiting = [v.metric.value for v in self.to_pass() if v.time_to_pass_s is None]
        return f"no projection yet ({', '.join(waiting)})" if waiting else "no projection"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "outcome": self.outcome.value,
            "alphaFail": rounded(self.alpha_fail, 6),
            "alphaPass": rounded(self.alpha_pass, 6),
            "summary": self.summary(),
            "plan": {"timeToPassSeconds": rounded(self.time_to_pass_s), "beyondHorizon": self.beyond_horizon,
                     "horizonSeconds": rounded(self.horizon_s), "summary": self.plan_summary()},
            "verdicts": [v.to_dict() for v in self.verdicts],
        }
        if self.sample_ratio is not None:
            out["sampleRatio"] = self.sample_ratio.to_dict()
        return out

    def summary(self) -> str:
        """One line: the outcome and the gates that decided it."""
        if not self.verdicts:
            return f"{self.outcome.value}: no gates"
        deciding = [v for v in self.verdicts if v.outcome == self.outcome] or self.verdicts
        text = "; ".join(v.summary() for v in deciding[:2])
        more = len(deciding) - 2
        line = f"{self.outcome.value}: {text}" + (f" (+{more} more)" if more > 0 else "")
        if self.note:
            line += f" [{self.note}]"
        return line

