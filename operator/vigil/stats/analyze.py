"""`analyze`: every gate of a RiskPolicy on one window of counters, combined into one answer.

Pure and deterministic. Every test is an e-process, so the answer stays valid however often
it is asked. Error control:

* false rollback: the stage's budget `alpha_fail` is split evenly across the gates (any Fail
  fails the analysis), each gate's Fail e-process testing against its tolerance;
* false promotion: each gate's Pass e-process tests against its regression margin at
  `alpha_pass` (beta). The analysis passes only if every gate passes, so a canary with one
  gate at or beyond its regression margin is promoted with probability at most beta.

Every verdict also carries a plan (`vigil.stats.plan`): the projected time to Pass at the
traffic seen so far, and the smallest effect the gate could detect within `horizon_s`. With
`deferred`, a gate that is already decided gets only what status shows of it (its time to Pass
if it failed or has no data, nothing if it passed), and the rest waits for `Analysis.complete()`:
the operator reads it only in a decision's AuditRecord, and it is most of the analysis' work
once the gates are decided.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from functools import partial
from typing import Any

from vigil.api.gates import Gate, MetricKind
from vigil.stats.batch import FAULTS, evidence_together
from vigil.stats.calibration import calibration_evidence_call, calibration_verdict
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
from vigil.stats.drift import drift_evidence_call, drift_verdict
from vigil.stats.evidence import EvidenceCall, GateEvidence, Thresholds
from vigil.stats.fairness import fairness_evidence_call, fairness_verdict
from vigil.stats.latency import latency_evidence_call, latency_verdict
from vigil.stats.plan import plan_gate, time_to_pass
from vigil.stats.quiet import quietly
from vigil.stats.rates import error_rate_evidence_call, error_rate_verdict, shadow_evidence_call, shadow_verdict
from vigil.stats.report import no_data
from vigil.stats.result import Analysis, Outcome, Plan, Verdict, combine
from vigil.stats.srm import sample_ratio_check

Evaluator = Callable[[object, Gate, Thresholds, GateEvidence | None], Verdict]
EvidenceOf = Callable[[object, Gate], EvidenceCall]

EVALUATORS: dict[MetricKind, tuple[type, Evaluator, EvidenceOf]] = {
    MetricKind.ERROR_RATE: (RequestCounts, error_rate_verdict, error_rate_evidence_call),
    MetricKind.LATENCY_P50: (LatencyHistogram, latency_verdict, latency_evidence_call),
    MetricKind.LATENCY_P99: (LatencyHistogram, latency_verdict, latency_evidence_call),
    MetricKind.PREDICTION_DRIFT: (ScoreHistogram, drift_verdict, drift_evidence_call),
    MetricKind.CALIBRATION: (LabelFeedback, calibration_verdict, calibration_evidence_call),
    MetricKind.FAIRNESS_GAP: (GroupPredictions, fairness_verdict, fairness_evidence_call),
    MetricKind.SHADOW_DISAGREEMENT: (ShadowComparisons, shadow_verdict, shadow_evidence_call),
}  # type: ignore[dict-item]
"""Per metric: the data it reads, its verdict (given its evidence when computed with other
windows'), and its evidence as a call that windows of one shape can share (`vigil.stats.batch`)."""

DEFAULT_HORIZON_S = 4 * 3600.0
DETECTORS = frozenset({MetricKind.ERROR_RATE, MetricKind.LATENCY_P50, MetricKind.LATENCY_P99})
"""Gates with a change detector for `detect_change`."""


@quietly
def analyze(
    gates: Sequence[Gate],
    data: Mapping[MetricKind, MetricData | NoData],
    *,
    alpha_fail: float,
    alpha_pass: float,
    min_samples: int,
    expected_canary_share: float | None = None,
    share_since: float | None = None,
    horizon_s: float = DEFAULT_HORIZON_S,
    detect_change: bool = False,
    deferred: bool = False,
    pass_needed: bool = True,
    evidence: Mapping[int, GateEvidence] | None = None,
) -> Analysis:
    """Judge the canary on every gate; see the module docstring for the error control.

    alpha_fail: the whole false-rollback budget of this analysis (split across gates);
    alpha_pass: beta, per gate, the chance of passing a gate at/beyond its regression margin;
    expected_canary_share, share_since: the canary's share of the two arms as the router serves
    it since unix time `share_since` (the last split change), for the sample-ratio check
    (reported, never deciding on its own);
    horizon_s: how far the plan projects (and the change detector's horizon);
    detect_change: for long holds and holdback, also run a change detector on the gates that
    have one (errorRate, latencyP50, latencyP99), so a regression that starts late is caught about as fast as a
    fresh one; each gate's false-Fail share is then split in half between its cumulative
    test and its detector (false alarm within horizon_s at most that half);
    deferred: what status shows and nothing more: a gate judged Fail or NoData gets a plan with
    its time to Pass only, a gate judged Pass no projection at all (`Analysis.to_pass`: it has
    passed); `Analysis.complete()` adds the rest, and then equals the analysis without
    `deferred` exactly. Outcomes, e-values, bounds, explanations and the analysis' own plan line
    are the same either way (an Inconclusive gate, whose explanation quotes its plan, is always
    complete);
    pass_needed: False in a stage that ends on its bake time alone (holdback): a projection to
    Pass means nothing there, so no explanation quotes a plan, the analysis' plan line says no
    Pass is needed, and with `deferred` no gate is projected until `complete()` (the record
    still carries every gate's whole plan: what the stage could detect);
    evidence: the verdicts' evidence by gate index where `analyze_many` computed it with other
    windows' (the same values; a gate without an entry computes its own).
    """
    for name, value in (("alpha_fail", alpha_fail), ("alpha_pass", alpha_pass)):
        if not 0 < value < 1:
            raise ValueError(f"{name} must be in (0, 1), got {value}")
    if not horizon_s > 0:
        raise ValueError(f"horizon_s must be positive, got {horizon_s}")
    share = alpha_fail / max(len(gates), 1)
    th = Thresholds(alpha_fail=share, alpha_pass=alpha_pass, min_samples=max(int(min_samples), 0),
                    horizon_s=horizon_s)
    split = replace(th, alpha_fail=share / 2, change_alpha=share / 2)
    shared = evidence or {}
    judged = [_judge(gate, _lookup(data, gate.metric), split if detect_change and gate.metric in DETECTORS else th,
                     horizon_s, deferred, pass_needed, shared.get(i)) for i, gate in enumerate(gates)]
    verdicts = [verdict for verdict, _ in judged]
    outcome = combine([v.outcome for v in verdicts]) if verdicts else Outcome.INCONCLUSIVE
    srm = sample_ratio_check(data, expected_canary_share, alpha_fail, since=share_since)
    note = srm.summary() if srm is not None and srm.mismatch else ""
    return Analysis(outcome=outcome, verdicts=verdicts, sample_ratio=srm, alpha_fail=alpha_fail,
                    alpha_pass=alpha_pass, note=note, horizon_s=horizon_s, pass_needed=pass_needed,
                    pending=tuple(rest for _, rest in judged) if deferred else ())


Request = tuple[Sequence[Gate], Mapping[MetricKind, MetricData | NoData], Mapping[str, Any]]
"""One `analyze` call: its gates, its data and its keyword arguments."""


@quietly
def analyze_many(requests: Sequence[Request]) -> list[Analysis]:
    """`analyze` of every request, each the same Analysis its own call gives, with the verdicts'
    evidence of windows that share a gate and a shape computed as the rows of one call
    (`vigil.stats.batch`): what the analyses of many ModelDeployments due at once cost less as
    (0.82-0.85 of the CPU at a fleet's density; the operator analyses each model in its own pass,
    not in batches: docs/benchmarks/operator_scale.md, "no common tick")."""
    calls: dict[tuple[int, int], EvidenceCall] = {}
    for r, (gates, data, _) in enumerate(requests):
        for i, gate in enumerate(gates):
            item = _lookup(data, gate.metric)
            if _unjudgeable(gate, item) is None:
                try:
                    calls[(r, i)] = EVALUATORS[gate.metric][2](item, gate)
                except FAULTS:
                    pass  # its verdict meets the same error and reports it
    shared: dict[int, dict[int, GateEvidence]] = {r: {} for r in range(len(requests))}
    for (r, i), ev in evidence_together(calls).items():
        shared[r][i] = ev
    return [analyze(gates, data, **{**kwargs, "evidence": shared[r]})
            for r, (gates, data, kwargs) in enumerate(requests)]


def _lookup(data: Mapping[MetricKind, MetricData | NoData], kind: MetricKind) -> MetricData | NoData:
    item = data.get(kind, data.get(kind.value))  # type: ignore[call-overload]
    return NoData(f"{kind.value} was not collected") if item is None else item


Pending = Callable[[], Verdict] | None
"""What completes a deferred verdict (its whole plan, computed when a record needs it), or None."""


def _judge(gate: Gate, item: MetricData | NoData, th: Thresholds, horizon_s: float,
           deferred: bool = False, pass_needed: bool = True, ev: GateEvidence | None = None) -> tuple[Verdict, Pending]:
    """The gate's verdict with its plan, and what completes it when the plan was deferred (`ev`:
    the verdict's evidence, when computed with other windows')."""
    problem = _unjudgeable(gate, item)
    if problem is not None:
        return no_data(gate.metric, problem), None
    pending: Pending = None
    try:
        verdict = EVALUATORS[gate.metric][1](item, gate, th, ev)
        if deferred and not status_quotes_plan(verdict, pass_needed):
            # a passed gate needs no projection at all (status counts it as passed), nor any gate
            # where no Pass is needed; a failed or data-less one keeps its time to Pass
            lean = verdict.outcome is Outcome.PASS or not pass_needed
            plan = Plan(horizon_s) if lean else time_to_pass(gate, item, th, horizon_s)
            pending = partial(_complete, gate, item, th, horizon_s, verdict, plan, pass_needed)
        else:
            plan = plan_gate(gate, item, th, horizon_s)
    except FAULTS as exc:  # malformed counters must not pass or crash the loop
        return no_data(gate.metric, f"could not analyse {gate.metric.value}: {exc}"), None
    return _with_plan(verdict, plan, whole=pending is None, quoted=pass_needed), pending


def _unjudgeable(gate: Gate, item: MetricData | NoData) -> str | None:
    """Why the gate's data cannot be judged at all (its NoData reason), or None."""
    if isinstance(item, NoData):
        return item.reason
    expected = EVALUATORS[gate.metric][0]
    if not isinstance(item, expected):
        return f"expected {expected.__name__} for {gate.metric.value}, got {type(item).__name__}"
    if item.timestamps.size < 2:
        return "fewer than two samples in the window"
    return None


def status_quotes_plan(verdict: Verdict, pass_needed: bool) -> bool:
    """Whether status reads this gate's whole plan now (so `deferred` computes it anyway): an
    Inconclusive gate's explanation quotes it where a Pass is needed."""
    return verdict.outcome is Outcome.INCONCLUSIVE and pass_needed


@quietly
def _complete(gate: Gate, item: MetricData, th: Thresholds, horizon_s: float, verdict: Verdict,
              lean: Plan, pass_needed: bool = True) -> Verdict:
    """A deferred verdict with its whole plan: what `_judge` returns without deferring. Should
    the effects fail to project where the time to Pass did not (no window has been seen to), the
    verdict the decision was taken on stays, with the time to Pass alone: a projection never
    decides, so it does not turn a judged gate into NoData after the fact."""
    try:
        return _with_plan(verdict, plan_gate(gate, item, th, horizon_s), quoted=pass_needed)
    except FAULTS as exc:
        return _with_plan(verdict, replace(lean, note=f"the detectable effect could not be projected: {exc}"),
                          whole=False, quoted=pass_needed)


def _with_plan(verdict: Verdict, plan: Plan, whole: bool = True, quoted: bool = True) -> Verdict:
    """The verdict with its plan in its figures (the detectable effect only from a whole plan)
    and, for an Inconclusive gate, the plan's note in its explanation (if `quoted`)."""
    figures = {**verdict.figures, "timeToPassSeconds": plan.time_to_pass_s}
    if whole:
        figures |= {"detectableEffect": plan.detectable_effect, "detectableSeconds": plan.detectable_time_s}
    explanation = verdict.explanation
    if quoted and verdict.outcome is Outcome.INCONCLUSIVE and plan.note:
        explanation = f"{explanation}; {plan.note}"
    return replace(verdict, plan=plan, figures=figures, explanation=explanation)
