"""Analysis doubles shared by unit tests, integration tests and the scale benchmark.

They have the shape the decision core reads from `vigil.stats.Analysis` (outcome, per-gate
verdicts with samples and the plan's time to pass, to_dict, summary), so decide() runs the
same code paths as with the real engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vigil.stats.result import Outcome


@dataclass(frozen=True)
class GateDouble:
    metric: str
    outcome: Outcome
    samples: tuple[int, int] = (10_000, 1_000)
    time_to_pass_s: float | None = 600.0
    e_fail: float | None = None
    threshold_fail: float | None = None


@dataclass
class AnalysisDouble:
    """Every gate of the analysis has the same outcome."""

    outcome: Outcome
    metrics: tuple[str, ...] = ("errorRate",)
    samples: tuple[int, int] = (10_000, 1_000)
    mismatch: bool = False  # a sample-ratio mismatch, as analyze reports it
    e_fail: float | None = None  # every gate's fail e-value, against threshold_fail
    threshold_fail: float | None = None

    @property
    def verdicts(self) -> list[GateDouble]:
        return [GateDouble(m, self.outcome, self.samples, e_fail=self.e_fail, threshold_fail=self.threshold_fail)
                for m in self.metrics]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"outcome": self.outcome.value, "summary": self.summary(),
                               "verdicts": [{"metric": v.metric, "outcome": v.outcome.value,
                                             "samples": {"baseline": v.samples[0], "canary": v.samples[1]}}
                                            for v in self.verdicts]}
        if self.mismatch:
            out["sampleRatio"] = {"mismatch": True}
        return out

    def summary(self) -> str:
        return f"{self.outcome.value}: {', '.join(self.metrics)} (test double)"


@dataclass
class ScriptedAnalyzer:
    """Returns the next outcome of `script` (the last one repeats) and records its calls."""

    script: list[str]
    calls: list[dict[str, Any]] = field(default_factory=list)
    mismatch: bool = False
    e_fail: float | None = None
    threshold_fail: float | None = None

    def __call__(self, gates: Any, metrics: Any, **kwargs: Any) -> AnalysisDouble:
        self.calls.append(kwargs)
        outcome = self.script[min(len(self.calls) - 1, len(self.script) - 1)]
        return AnalysisDouble(Outcome(outcome), tuple(str(getattr(g.metric, "value", g.metric)) for g in gates)
                              or ("errorRate",), mismatch=self.mismatch, e_fail=self.e_fail,
                              threshold_fail=self.threshold_fail)


def passing_analyzer(gates: Any, metrics: Any, **_: Any) -> AnalysisDouble:
    return AnalysisDouble(Outcome.PASS)
