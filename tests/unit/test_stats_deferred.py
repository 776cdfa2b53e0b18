"""A deferred analysis (what the operator runs) says what the eager one says, bit for bit.

`analyze(deferred=True)` leaves the detectable effect of every decided gate to
`Analysis.complete()`: status shows no detectable effect, and a decision's AuditRecord is
completed before it is written. These tests hold it to three promises:

* status is the same: outcomes, e-values, bounds, explanations, the analysis' plan line, the time
  to Pass of every gate still to pass (a gate that has passed needs no projection);
* a completed analysis equals the eager one in every field and every bit;
* every record `decide` writes carries the whole analysis, and so does the evidence the
  reconciler records when it must restore the world after a pass that decided nothing.
"""

from __future__ import annotations

from typing import Any

import pytest
from vigil.api.gates import Gate, MetricKind
from vigil.core.decide import default_analyzer
from vigil.core.model import Action
from vigil.stats import analyze
from vigil.stats.evidence import Thresholds
from vigil.stats.plan import plan_gate, time_to_pass
from vigil.stats.result import Outcome, status_record

from bench.timing import GATES, as_deployed, fresh, window

from .fakes import World, policy

WINDOWS = {(minutes, rpm): window(minutes, rpm, seed=minutes) for minutes in (3, 12, 40) for rpm in (100.0, 2000.0)}
SETTINGS = {"seven gates": {"gates": GATES, "alpha_fail": 0.05, "alpha_pass": 0.05, "min_samples": 500},
            "example policy, canary stage": as_deployed()}


def both(setting: dict[str, Any], data: dict[Any, Any], **extra: Any) -> tuple[Any, Any]:
    kwargs = {k: v for k, v in setting.items() if k not in ("gates", "deferred")} | {"expected_canary_share": 0.1, **extra}
    gates = setting["gates"]
    return analyze(gates, fresh(data), **kwargs), analyze(gates, fresh(data), deferred=True, **kwargs)


@pytest.mark.parametrize("name", SETTINGS)
@pytest.mark.parametrize("key", WINDOWS)
@pytest.mark.parametrize("detect_change", [False, True])
def test_a_deferred_analysis_shows_the_same_status_and_completes_to_the_eager_one(
        name: str, key: tuple[int, float], detect_change: bool) -> None:
    eager, lean = both(SETTINGS[name], WINDOWS[key], detect_change=detect_change)
    assert status_record(lean.to_dict()) == status_record(eager.to_dict())
    assert lean.outcome is eager.outcome
    for e, v in zip(eager.verdicts, lean.verdicts):
        if v.outcome is Outcome.PASS:  # passed: status counts it as passed, no projection is made
            assert v.plan.time_to_pass_s is None and not v.plan.beyond_horizon
        else:
            assert (v.plan.time_to_pass_s, v.plan.beyond_horizon) == (e.plan.time_to_pass_s, e.plan.beyond_horizon)
    whole = lean.complete()
    assert whole.to_dict() == eager.to_dict()
    assert repr(whole) == repr(eager)  # every float of every verdict and plan, unrounded (repr is exact, NaN-aware)


def test_only_decided_gates_are_deferred_and_their_records_lack_nothing_once_completed() -> None:
    eager, lean = both(SETTINGS["seven gates"], WINDOWS[(12, 2000.0)])
    outcomes = {v.metric: v.outcome for v in eager.verdicts}
    assert Outcome.INCONCLUSIVE in outcomes.values() and Outcome.PASS in outcomes.values()  # both kinds are tried
    for v, pending in zip(lean.verdicts, lean.pending):
        if v.outcome is Outcome.INCONCLUSIVE:  # its explanation quotes the plan's note: never deferred
            assert pending is None and "detectableEffect" in v.figures
        else:
            assert pending is not None and "detectableEffect" not in v.figures and v.plan.detectable_effect is None
    assert all("detectableEffect" in v["figures"] for v in lean.complete().to_dict()["verdicts"])


@pytest.mark.parametrize("key", WINDOWS)
@pytest.mark.parametrize("metric", list(MetricKind))
def test_the_time_to_pass_alone_is_the_plans_own(key: tuple[int, float], metric: MetricKind) -> None:
    data, gate = WINDOWS[key][metric], Gate(metric=metric)
    th = Thresholds(alpha_fail=0.01, alpha_pass=0.05, min_samples=300)
    whole, alone = plan_gate(gate, data, th, 6 * 3600.0), time_to_pass(gate, data, th, 6 * 3600.0)
    assert (alone.time_to_pass_s, alone.beyond_horizon) == (whole.time_to_pass_s, whole.beyond_horizon)
    assert alone.detectable_effect is None and alone.detectable_time_s is None


def test_every_record_decide_writes_carries_the_whole_analysis() -> None:
    """A rollout through the real `decide` with the operator's analyzer on a real window: each
    recorded decision's evidence is the eager analysis of the same call; a pass that records
    nothing keeps the lean one in its evidence and hands the whole one to the reconciler."""
    data = WINDOWS[(40, 2000.0)]
    calls: list[tuple[list[Gate], dict[str, Any]]] = []

    def analyzer(gates: list[Gate], _: Any, **kwargs: Any) -> Any:
        calls.append((list(gates), kwargs))
        return default_analyzer(gates, fresh(data), **kwargs)

    world = World(policy(bakeTime="3m"), analyzer)  # type: ignore[arg-type]
    world.run(3)
    world.set_spec(world.spec.model_copy(update={"version": "v2"}))
    world.run(30)
    judged = [d for d in world.decisions if "analysis" in d.evidence]
    assert len(judged) == len(calls)
    actions = {d.action for d in judged}
    assert Action.NONE in actions and Action.STEP in actions, actions  # silent passes and recorded promotions
    deferred = 0
    for d, (gates, kwargs) in zip(judged, calls):
        eager = analyze(gates, fresh(data), **kwargs).to_dict()
        lean, whole = d.evidence["analysis"], d.recorded_evidence()["analysis"]
        assert {k: v for k, v in whole.items() if k not in ("stage", "notApplicable")} == eager
        assert status_record(lean) == status_record(whole)
        if d.action is Action.NONE:
            passed = [v for v in lean["verdicts"] if v["outcome"] == "Pass"]
            deferred += len(passed)
            assert all("detectableEffect" not in v["figures"] for v in passed)
        else:
            assert lean == whole  # what the reconciler writes into the AuditRecord
    assert deferred  # silent passes with a decided gate: its plan was deferred there


def test_once_every_gate_has_passed_nothing_is_projected_and_the_plan_line_says_so() -> None:
    eager, lean = both(SETTINGS["example policy, canary stage"], WINDOWS[(40, 2000.0)])
    assert all(v.outcome is Outcome.PASS for v in eager.verdicts)
    for analysis in (eager, lean):
        assert analysis.time_to_pass_s is None and analysis.to_dict()["plan"]["summary"] == "every gate has passed"
    assert all(v.plan.time_to_pass_s is None and v.plan.detectable_effect is None for v in lean.verdicts)
    assert all(v.plan.time_to_pass_s is not None for v in eager.verdicts)  # the record still has each projection


@pytest.mark.parametrize("key", [(12, 100.0), (40, 2000.0)])
def test_where_no_pass_is_needed_status_projects_nothing_and_the_record_keeps_whole_plans(key: tuple[int, float]) -> None:
    """Holdback ends on its bake time: a time to Pass means nothing there. Status gets no
    projection of any gate and no plan note in an explanation, yet the completed record is the
    eager analysis of the same call (every gate's whole plan: what the holdback could detect)."""
    eager, lean = both(SETTINGS["seven gates"], WINDOWS[key], detect_change=True, pass_needed=False)
    assert Outcome.INCONCLUSIVE in {v.outcome for v in eager.verdicts}  # the gates the change is about
    assert status_record(lean.to_dict()) == status_record(eager.to_dict())
    for v, e in zip(lean.verdicts, eager.verdicts):
        assert v.plan.time_to_pass_s is None and v.plan.detectable_effect is None and not v.plan.note
        assert "Pass expected" not in v.explanation and "could detect" not in v.explanation
        if e.outcome is not Outcome.NO_DATA:
            assert e.plan.note  # the record's plan says what the gate could detect
    assert lean.to_dict()["plan"] == {"timeToPassSeconds": None, "beyondHorizon": False, "horizonSeconds": 14400.0,
                                      "summary": "no Pass is needed: the stage ends on its bake time unless a gate fails"}
    assert repr(lean.complete()) == repr(eager)
    needed = analyze(SETTINGS["seven gates"]["gates"], fresh(WINDOWS[key]), **{
        k: v for k, v in SETTINGS["seven gates"].items() if k != "gates"}, expected_canary_share=0.1, detect_change=True)
    assert [v.outcome for v in needed.verdicts] == [v.outcome for v in lean.verdicts]  # the judgement is the same


def test_decide_asks_for_no_pass_in_holdback_only() -> None:
    """The operator's call: every stage that ends on a Pass asks for one, holdback does not, and
    holdback's status says so."""
    needed: list[bool] = []

    def analyzer(gates: list[Gate], _: Any, **kwargs: Any) -> Any:
        needed.append(kwargs["pass_needed"])
        # a canary that passes, then a holdback arm too small to decide every gate
        data = WINDOWS[(40, 2000.0) if kwargs["pass_needed"] else (12, 100.0)]
        return default_analyzer(gates, fresh(data), **kwargs)

    world = World(policy(bakeTime="3m", holdback={"weight": 10, "bakeTime": "5m"}), analyzer)  # type: ignore[arg-type]
    world.run(3)
    world.set_spec(world.spec.model_copy(update={"version": "v2"}))
    seen: dict[str, set[bool]] = {}
    undecided = 0
    for _ in range(40):
        calls = len(needed)
        world.run(1)
        if len(needed) > calls:
            last = world.status.last_analysis or {}
            seen.setdefault(last["stage"], set()).add(needed[-1])
            assert last["plan"]["summary"].startswith("no Pass is needed") is (not needed[-1])
            if not needed[-1]:  # status lists only the gates that have passed, with when they did
                passed = {v["metric"] for v in last["verdicts"] if v["outcome"] == "Pass"}
                assert set(world.status.plan.gates) == passed and None not in world.status.plan.gates.values()
                undecided += any(v["outcome"] == "Inconclusive" for v in last["verdicts"])
    assert seen.get("holdback") == {False} and seen.get("canary") == {True}, seen
    assert undecided  # holdback analyses with a gate still undecided were seen
