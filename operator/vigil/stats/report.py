"""Turn a gate's evidence into a `Verdict` with a one-line explanation."""

from __future__ import annotations

import math
from collections.abc import Mapping

from vigil.api.gates import MetricKind
from vigil.stats.evidence import FAIL, PASS, GateEvidence, Thresholds, decide_last
from vigil.stats.result import Outcome, Verdict, e_value

_OUTCOMES = {FAIL: Outcome.FAIL, PASS: Outcome.PASS}


def gate_verdict(
    metric: MetricKind,
    ev: GateEvidence,
    th: Thresholds,
    *,
    describe: str,
    statistic: str,
    tolerance: float,
    regression: float | None = None,
    effect: float | None = None,
    interval: tuple[float, float] | None = None,
    figures: Mapping[str, float | None] | None = None,
) -> Verdict:
    """The verdict at the end of the window; `describe` says what was measured."""
    code, clause = decide_last(ev, th)
    last = ev.last()
    return Verdict(
        metric=metric,
        outcome=_OUTCOMES.get(code, Outcome.INCONCLUSIVE),
        explanation=f"{describe}; {clause}",
        statistic=statistic,
        effect=effect,
        interval=interval,
        tolerance=tolerance,
        regression=regression,
        e_fail=e_value(float(last.log_e_fail)),
        e_pass=e_value(float(last.log_e_pass)),
        threshold_fail=1 / th.alpha_fail,
        threshold_pass=1 / th.alpha_pass,
        samples=(int(last.n_baseline), int(last.n_canary)),
        figures=dict(figures or {}),
    )


def percent(value: float, digits: int = 2) -> str:
    """`12.34%`, or n/a for a missing rate."""
    return "n/a" if not math.isfinite(value) else f"{100 * value:.{digits}f}%"


def no_data(metric: MetricKind, reason: str) -> Verdict:
    return Verdict(metric=metric, outcome=Outcome.NO_DATA, explanation=reason)
