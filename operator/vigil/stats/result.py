"""Named results of an analysis: one `Verdict` per gate and the combined `Analysis`.

`to_dict()` output goes into the ModelDeployment status and the audit trail, so it is
plain JSON (no numpy types, no NaN or infinity), camelCase, and rounded to what a reader
can use.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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
    e_fail: float | None = None
    e_pass: float | None = None
    threshold_fail: float | None = None
    threshold_pass: float | None = None
    samples: tuple[int, int] = (0, 0)  # (baseline, canary)
    figures: Mapping[str, float | None] = field(default_factory=dict)

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
        for key, value in (("tolerance", self.tolerance), ("eFail", self.e_fail), ("ePass", self.e_pass),
                           ("thresholdFail", self.threshold_fail), ("thresholdPass", self.threshold_pass),
                           ("pValue", self.p_value)):
            if value is not None:
                out[key] = rounded(value, 3)
        if self.figures:
            out["figures"] = {k: rounded(v) for k, v in self.figures.items()}
        return out

    def summary(self) -> str:
        return f"{self.metric.value} {self.outcome.value}: {self.explanation}"


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
    confidence: float = 0.95
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "outcome": self.outcome.value,
            "confidence": rounded(self.confidence, 6),
            "summary": self.summary(),
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

