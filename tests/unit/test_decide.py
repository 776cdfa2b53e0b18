"""The rollout state machine, driven through `decide` as the reconciler drives it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from vigil.api.modeldeployment import Phase
from vigil.core import conditions
from vigil.core.decide import decide
from vigil.core.model import Arm, Observation, PolicyProblem
from vigil.core.phases import TRANSITIONS, IllegalTransition, Trigger, transition
from vigil.core.timefmt import parse_iso

from .fakes import D2, D3, T0, ScriptedAnalyzer, World, policy, spec

SEEN_TRANSITIONS: set[tuple[str, str]] = set()


def settled(world: World) -> World:
    """First deployment of v1 until it serves."""
    world.run(2)
    assert world.status.phase is Phase.SUCCEEDED
    return world


def canary_weight(world: World) -> int:
    return world.weight(world.status.canary_version)


def weights(world: World) -> dict[str, int]:
    """The route's weights by version (main tracks only), as a person reads them."""
    split = world.route.split
    return {str(arm): w for arm, w in split.weights.items()} if split else {}


def record(world: World) -> None:
    prev = Phase.PENDING
    for d in world.decisions:
        trig = d.evidence.get("trigger")
        if trig:
            SEEN_TRANSITIONS.add((prev.value, trig))
        prev = d.status.phase


@pytest.fixture
def good() -> World:
    return settled(World(policy(), ScriptedAnalyzer(["Pass"])))


def test_first_deployment_goes_straight_to_stable() -> None:
    w = World(policy(), ScriptedAnalyzer(["Pass"]))
    first = w.tick()
    assert first.status.phase is Phase.PENDING
    assert first.traffic is not None and dict(first.traffic.weights) == {Arm("v1"): 100}
    w.tick()
    assert w.status.phase is Phase.SUCCEEDED and w.status.stable_version == "v1"
    cond = {c.type: c.status for c in w.status.conditions}
    assert cond["Ready"] == "True" and cond["Reconciling"] == "False" and cond["Stalled"] == "False"
    assert w.status.observed_generation == 1
    record(w)


def test_good_version_is_promoted_step_by_step(good: World) -> None:
    good.set_spec(spec("v2", D2))
    seen_weights = []
    for _ in range(15):
        good.tick()
        seen_weights.append(canary_weight(good) if good.status.phase is Phase.CANARY else None)
        if good.status.phase is Phase.SUCCEEDED:
            break
    assert good.status.phase is Phase.SUCCEEDED
    assert good.status.stable_version == "v2" and good.status.previous_version == "v1"
    assert weights(good) == {"v2": 100}
    seen = [x for x in seen_weights if x is not None]
    assert seen[0] == 10 and 50 in seen and seen == sorted(seen)
    # bake time: at least 2 minutes at each step
    steps = [d for d in good.decisions if d.action == "step"]
    assert len(steps) == 1
    reasons = [e.reason for d in good.decisions for e in d.events]
    assert reasons.count("RolloutStarted") == 1 and "StepPassed" in reasons and "Promoted" in reasons
    # the previous stable is kept, scaled to zero, for a quick rollback
    assert good.workloads[Arm("v1")].replicas == 0
    record(good)


def test_failing_canary_is_rolled_back_and_not_retried() -> None:
    w = settled(World(policy(), ScriptedAnalyzer(["Inconclusive", "Fail"])))
    w.set_spec(spec("v2", D2))
    w.run(5)
    assert w.status.phase is Phase.ROLLED_BACK
    assert canary_weight(w) == 0 and weights(w) == {"v1": 100}
    assert w.workloads[Arm("v2")].replicas == 0
    cond = {c.type: (c.status, c.reason) for c in w.status.conditions}
    assert cond["Stalled"][0] == "True" and cond["Reconciling"][0] == "False" and cond["Ready"][0] == "False"
    assert any(e.type == "Warning" and e.reason == "RolledBack" for d in w.decisions for e in d.events)
    before = len([d for d in w.decisions if d.action == "start"])
    w.run(5)
    assert len([d for d in w.decisions if d.action == "start"]) == before  # same digest: no retry
    w.set_spec(spec("v3", D3))  # a new spec: a new rollout
    w.tick()
    assert w.status.phase is Phase.CANARY and w.status.canary_version == "v3"
    record(w)


def test_no_data_never_advances() -> None:
    w = settled(World(policy(), ScriptedAnalyzer(["NoData"])))
    w.set_spec(spec("v2", D2))
    w.run(30)
    assert w.status.phase is Phase.CANARY and canary_weight(w) == 10
    # one recorded hold, not one per analysis interval; status still has the latest figures
    assert [d.action for d in w.decisions].count("hold") == 1
    assert w.status.last_analysis_at == (w.now - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_inconclusive_advances_intermediate_steps_after_bake_but_never_promotes() -> None:
    """Step semantics: an intermediate step needs its bake time and no failing gate; full
    promotion needs every gate's Pass."""
    w = settled(World(policy(), ScriptedAnalyzer(["Inconclusive"])))
    w.set_spec(spec("v2", D2))
    w.run(60)
    assert w.status.phase is Phase.CANARY and canary_weight(w) == 50 and w.status.stable_version == "v1"
    assert [d.action for d in w.decisions].count("step") == 1
    assert "waiting for errorRate to pass" in w.status.message


def test_require_pass_each_step_holds_the_first_step_until_pass() -> None:
    w = settled(World(policy(requirePassEachStep=True), ScriptedAnalyzer(["Inconclusive"])))
    w.set_spec(spec("v2", D2))
    w.run(30)
    assert w.status.phase is Phase.CANARY and canary_weight(w) == 10


def test_no_data_rolls_back_after_the_configured_intervals() -> None:
    pol = policy(noData={"action": "rollback", "rollbackAfter": 3})
    w = settled(World(pol, ScriptedAnalyzer(["NoData"])))
    w.set_spec(spec("v2", D2))
    w.run(3)
    assert w.status.phase is Phase.CANARY  # started, pods ready, two NoData so far
    w.run(3)
    assert w.status.phase in (Phase.ROLLING_BACK, Phase.ROLLED_BACK)
    assert "no metrics" in w.status.message or w.status.phase is Phase.ROLLED_BACK
    record(w)


def test_shadow_mirrors_before_any_canary_weight() -> None:
    pol = policy(shadow={"enabled": True, "duration": "3m", "mirrorPercent": 50})
    w = settled(World(pol, ScriptedAnalyzer(["Pass"])))
    w.set_spec(spec("v2", D2))
    d = w.tick()
    assert d.status.phase is Phase.SHADOW
    assert d.traffic is not None and d.traffic.mirror == Arm("v2") and d.traffic.mirror_percent == 50
    assert dict(d.traffic.weights) == {Arm("v1"): 100}
    w.run(6)
    assert w.status.phase is Phase.CANARY and w.route.split is not None and w.route.split.mirror is None
    record(w)


def test_holdback_keeps_previous_version_and_rolls_back_late_regression() -> None:
    pol = policy(holdback={"weight": 5, "bakeTime": "5m"})
    analyzer = ScriptedAnalyzer(["Pass"])
    w = settled(World(pol, analyzer))
    w.set_spec(spec("v2", D2))
    for _ in range(20):
        w.tick()
        if w.status.phase is Phase.HOLDBACK:
            break
    assert w.status.phase is Phase.HOLDBACK
    w.tick()
    assert weights(w) == {"v2": 95, "v1": 5}
    analyzer.script = ["Fail"]
    analyzer.calls = [None] * 1000  # type: ignore[list-item]  # the last entry repeats: Fail
    w.run(3)
    assert w.status.phase is Phase.ROLLED_BACK
    assert w.status.stable_version == "v1" and weights(w) == {"v1": 100}
    record(w)


def test_holdback_passes_after_bake() -> None:
    w = settled(World(policy(holdback={"weight": 5, "bakeTime": "3m"}), ScriptedAnalyzer(["Pass"])))
    w.set_spec(spec("v2", D2))
    w.run(20)
    assert w.status.phase is Phase.SUCCEEDED and weights(w) == {"v2": 100}
    record(w)


def test_pause_resume_promote_and_abort(good: World) -> None:
    good.analyzer.script = ["Inconclusive"]
    good.set_spec(spec("v2", D2))
    good.run(3)
    good.annotations = {"vigil.dev/paused": "true", "vigil.dev/requested-by": "alice"}
    good.run(3)
    assert good.status.phase is Phase.PAUSED and canary_weight(good) == 10
    good.annotations = {}
    good.tick()
    assert good.status.phase is Phase.CANARY
    good.annotations = {"vigil.dev/promote": D2, "vigil.dev/requested-by": "bob"}
    good.run(3)
    assert good.status.stable_version == "v2"
    manual = [d for d in good.decisions if d.evidence.get("manual")]
    assert {"action": "promote", "user": "bob", "digest": D2, "emergency": False} in [d.evidence["manual"] for d in manual]
    good.annotations = {"vigil.dev/abort": D3, "vigil.dev/requested-by": "carol"}
    good.set_spec(spec("v3", D3))
    good.run(3)
    assert good.status.phase is Phase.ROLLED_BACK and good.status.stable_version == "v2"
    record(good)


def test_new_version_mid_rollout_restarts_analysis(good: World) -> None:
    good.analyzer.script = ["Inconclusive"]
    good.set_spec(spec("v2", D2))
    good.run(3)
    good.set_spec(spec("v3", D3))
    d = good.tick()
    assert good.status.canary_version == "v3" and good.status.step is not None and good.status.step.weight == 10
    assert any(e.reason == "NewVersionMidRollout" for e in d.events)
    assert good.weight("v2") == 0
    record(good)


def test_spec_reverted_to_stable_cancels_rollout(good: World) -> None:
    good.analyzer.script = ["Inconclusive"]
    good.set_spec(spec("v2", D2))
    good.run(3)
    good.set_spec(spec())
    good.tick()
    assert good.status.phase is Phase.SUCCEEDED and weights(good) == {"v1": 100}
    record(good)


def test_missing_policy_stalls_without_touching_traffic(good: World) -> None:
    obs = Observation(generation=2, workloads=good.workloads, route=good.route)
    d = decide("fraud", spec("v2", D2), PolicyProblem("PolicyNotFound", "RiskPolicy p not found in ns"),
               good.status, obs, T0)
    assert d.status.phase is Phase.FAILED and d.workloads is None and d.traffic is None
    stalled = next(c for c in d.status.conditions if c.type == "Stalled")
    assert stalled.status == "True" and stalled.reason == "PolicyNotFound" and "not found" in stalled.message
    assert next(c for c in d.status.conditions if c.type == "Reconciling").status == "False"
    # policy fixed: back where it was
    d2 = decide("fraud", spec("v1"), policy(), d.status, obs, T0)
    assert d2.status.phase is Phase.SUCCEEDED
    SEEN_TRANSITIONS.update({("Succeeded", "Blocked"), ("Failed", "Unblocked")})


def test_approvals_gate_promotion_one_vote_per_user_for_this_digest() -> None:
    from vigil.api.names import approval_key, approval_value

    w = settled(World(policy(requiredApprovals=2), ScriptedAnalyzer(["Pass"])))
    w.set_spec(spec("v2", D2))
    w.run(12)
    assert w.status.phase is Phase.CANARY and "approval" in w.status.message
    # alice twice (two keys) and bob for another digest: one approval of D2
    w.annotations = {approval_key("alice"): approval_value("alice", D2), "approved.vigil.dev/x": approval_value("alice", D2),
                     approval_key("bob"): approval_value("bob", D3)}
    w.run(4)
    assert w.status.stable_version == "v1" and "1 so far" in w.status.message
    w.annotations[approval_key("bob")] = approval_value("bob", D2)
    w.run(4)
    assert w.status.stable_version == "v2"
    promote = next(d for d in w.decisions if d.action == "promote")
    assert promote.evidence["approvals"] == ["alice", "bob"]


def test_stale_promote_for_another_digest_is_ignored(good: World) -> None:
    good.analyzer.script = ["Inconclusive"]
    good.annotations = {"vigil.dev/promote": D2, "vigil.dev/requested-by": "bob"}  # left from an earlier build
    good.set_spec(spec("v2", D3))  # v2 rebuilt: a new digest
    good.run(6)
    assert good.status.stable_version == "v1" and good.status.phase is Phase.CANARY


def test_manual_promote_in_a_freeze_window_is_refused_unless_emergencies_are_allowed() -> None:
    window = [{"start": (T0 + timedelta(minutes=10)).isoformat(), "end": (T0 + timedelta(hours=2)).isoformat(),
               "reason": "peak"}]
    for allowed in (False, True):
        w = settled(World(policy(freezeWindows=window, allowEmergencyPromotion=allowed), ScriptedAnalyzer(["Inconclusive"])))
        w.set_spec(spec("v2", D2))
        w.run(12)
        w.annotations = {"vigil.dev/promote": D2, "vigil.dev/requested-by": "bob"}
        w.run(5)
        reasons = [e.reason for d in w.decisions for e in d.events]
        if allowed:
            assert w.status.stable_version == "v2" and "EmergencyPromote" in reasons
        else:
            assert w.status.stable_version == "v1" and reasons.count("PromoteRefused") == 1


def test_freeze_window_holds_start_and_advance() -> None:
    pol = policy(freezeWindows=[{"start": T0.isoformat(), "end": (T0 + timedelta(hours=1)).isoformat(), "reason": "peak"}])
    w = settled(World(pol, ScriptedAnalyzer(["Pass"])))
    w.set_spec(spec("v2", D2))
    w.run(10)
    assert w.status.phase is Phase.SUCCEEDED and w.status.stable_version == "v1" and "freeze" in w.status.message
    w.now = T0 + timedelta(hours=1)
    w.run(10)
    assert w.status.stable_version == "v2"


def test_same_inputs_same_decision(good: World) -> None:
    good.set_spec(spec("v2", D2))
    good.run(3)
    obs = Observation(generation=good.generation, workloads=good.workloads, route=good.route, metrics={"errorRate": 1})
    a = decide("fraud", good.spec, good.policy, good.status, obs, good.now, analyzer=ScriptedAnalyzer(["Pass"]))
    b = decide("fraud", good.spec, good.policy, good.status, obs, good.now, analyzer=ScriptedAnalyzer(["Pass"]))
    assert a == b


def test_second_pass_with_same_world_changes_nothing(good: World) -> None:
    """Level-triggered: a reconcile right after another (no time passed, no new data) is a no-op."""
    before = good.status
    obs = Observation(generation=good.generation, workloads=good.workloads, route=good.route)
    d = decide("fraud", good.spec, good.policy, before, obs, good.now)
    assert d.action == "none" and d.status == before.model_copy(update={"observed_generation": good.generation})


def test_alpha_is_spent_once_per_stage_not_per_step(good: World) -> None:
    good.set_spec(spec("v2", D2))
    good.run(8)
    # two steps, no shadow, no holdback: one stage, the whole alpha 0.05 for it
    calls = good.analyzer.calls
    assert calls and all(c["alpha_fail"] == pytest.approx(0.05) for c in calls)
    assert all(c["alpha_pass"] == pytest.approx(0.05) for c in calls)
    assert calls[0]["expected_canary_share"] == pytest.approx(0.10)
    assert calls[0]["min_samples"] == 200


def test_budget_hold_is_stalled_recorded_once_and_still_promotes_on_evidence() -> None:
    pol = policy(budget={"maxDuration": "20m"})
    w = settled(World(pol, ScriptedAnalyzer(["Inconclusive"])))
    w.set_spec(spec("v2", D2))
    w.run(40)
    assert w.status.phase is Phase.CANARY and w.status.stable_version == "v1"
    cond = {c.type: (c.status, c.reason) for c in w.status.conditions}
    assert cond["Stalled"] == ("True", "BudgetExceeded") and cond["Reconciling"][0] == "False"
    assert [d.action for d in w.decisions].count("budget-exceeded") == 1
    assert "budget 20m reached" in w.status.message
    w.analyzer.script = ["Pass"]
    w.analyzer.calls = [None] * 1000  # type: ignore[list-item]
    w.run(5)
    assert w.status.stable_version == "v2"
    record(w)


@pytest.mark.parametrize("on_expiry, phases", [("rollback", {Phase.ROLLING_BACK, Phase.ROLLED_BACK}),
                                               ("promote", {Phase.PROMOTING, Phase.SUCCEEDED})])
def test_budget_expiry_does_what_the_policy_says(on_expiry: str, phases: set[Phase]) -> None:
    pol = policy(budget={"maxDuration": "20m", "onExpiry": on_expiry})
    w = settled(World(pol, ScriptedAnalyzer(["Inconclusive"])))
    w.set_spec(spec("v2", D2))
    w.run(40)
    assert w.status.phase in phases
    budget = [d for d in w.decisions if any(e.reason == "BudgetExceeded" for e in d.events)]
    assert len(budget) == 1 and budget[0].evidence["trigger"] in ("BudgetRollback", "BudgetPromote")
    record(w)


def test_shadow_gate_is_judged_in_shadow_and_carried_into_the_canary() -> None:
    gates = [{"metric": "errorRate"}, {"metric": "shadowDisagreement"}]
    pol = policy(shadow={"enabled": True, "duration": "3m"}, gates=gates)
    analyzer = ScriptedAnalyzer(["Pass"])
    w = settled(World(pol, analyzer))
    w.set_spec(spec("v2", D2))
    from vigil.core.plan import plan_analysis

    starts = set()
    for _ in range(30):
        plan = plan_analysis(w.status, w.policy, w.now)
        if plan is not None:
            starts.add((plan.stage, plan.start))
        w.tick()
        if (w.status.last_analysis or {}).get("stage") == "canary":
            break
    # shadow and canary are one budget stage: the canary keeps the evidence the shadow gathered
    assert {stage for stage, _ in starts} == {"shadow", "canary"} and len({t for _, t in starts}) == 1
    assert w.status.carried_verdicts == {"shadowDisagreement": "Pass"}
    record_ = w.status.last_analysis or {}
    assert record_["stage"] == "canary"
    assert [v["metric"] for v in record_["verdicts"]] == ["errorRate"]
    assert record_["notApplicable"] == [{"metric": "shadowDisagreement", "outcome": "NotApplicable",
                                         "explanation": "judged in shadow: Pass"}]
    # one budget stage: each gate keeps its share (0.05 / 2 gates) in shadow and in canary
    shares = {round(c["alpha_fail"], 6) for c in analyzer.calls}
    assert shares == {0.05, 0.025}  # two gates judged in shadow, one in canary



def test_canary_evidence_is_kept_across_steps() -> None:
    from vigil.core.plan import plan_analysis

    w = settled(World(policy(), ScriptedAnalyzer(["Inconclusive"])))
    w.set_spec(spec("v2", D2))
    starts, weights_seen = set(), set()
    for _ in range(12):
        plan = plan_analysis(w.status, w.policy, w.now)
        if plan is not None:
            starts.add(plan.start)
            weights_seen.add(canary_weight(w))
        w.tick()
    assert weights_seen == {10, 50} and len(starts) == 1  # one window, from the first step's start


def test_sample_ratio_is_checked_against_what_the_router_really_serves(good: World) -> None:
    """A replicas router serves its replica ratio (one pod of three at a '10%' step)."""
    from vigil.core.model import RouteObservation, TrafficSplit

    good.analyzer.script = ["Inconclusive"]
    good.set_spec(spec("v2", D2))
    good.run(2)
    served = RouteObservation(TrafficSplit({Arm("v1"): 67, Arm("v2"): 33}), approximate=True)
    obs = Observation(generation=good.generation, workloads=good.workloads, route=served, metrics={"errorRate": 1})
    analyzer = ScriptedAnalyzer(["Inconclusive"])
    d = decide("fraud", good.spec, good.policy, good.status, obs, good.now + timedelta(minutes=5), analyzer=analyzer)
    assert analyzer.calls[0]["expected_canary_share"] == pytest.approx(0.33)
    assert d.status.router_approximate


def test_sample_ratio_mismatch_is_reported_once_and_never_blocks() -> None:
    w = settled(World(policy(), ScriptedAnalyzer(["Pass"], mismatch=True)))
    w.set_spec(spec("v2", D2))
    w.run(15)
    assert w.status.stable_version == "v2"
    warnings = [e for d in w.decisions for e in d.events if e.reason == "SampleRatioMismatch"]
    assert len(warnings) == 1 and warnings[0].type == "Warning"
    assert w.analyzer.calls[0]["share_since"] is not None


def test_a_suspected_version_takes_no_more_traffic_until_twice_the_bake() -> None:
    """Fail evidence halfway (sqrt of the threshold) holds the step; the bake time is a minimum."""
    def minutes_to_step(e_fail: float) -> int:
        w = settled(World(policy(), ScriptedAnalyzer(["Inconclusive"], e_fail=e_fail, threshold_fail=100.0)))
        w.set_spec(spec("v2", D2))
        for minute in range(30):
            w.tick()
            if canary_weight(w) == 50:
                return minute
        return -1

    clear, suspected = minutes_to_step(2.0), minutes_to_step(15.0)
    assert clear > 0 and suspected > clear
    assert suspected - clear == 2  # held one more bake time (2m), then it goes on


def test_plan_says_how_long_to_promote() -> None:
    w = settled(World(policy(), ScriptedAnalyzer(["Inconclusive"])))
    w.set_spec(spec("v2", D2))
    w.run(4)
    assert w.status.plan is not None and w.status.plan.summary.endswith("to promote")
    assert w.status.plan.gates == {"errorRate": 600} and w.status.plan.eta_seconds is not None


def test_a_passed_gate_shows_when_it_passed_and_no_longer_holds_the_estimate() -> None:
    """A gate that has passed is done: status keeps the time an analysis first saw it pass (not its
    projection, here 600 s), and the estimate to promote is the bake time left."""
    w = settled(World(policy(bakeTime="10m", steps=[10, 50]), ScriptedAnalyzer(["Inconclusive", "Inconclusive", "Pass"])))
    w.set_spec(spec("v2", D2))
    w.run(3)  # the step starts; the second analysis is still inconclusive
    assert w.status.plan is not None and w.status.plan.gates == {"errorRate": 600}
    first_pass = None
    for _ in range(4):
        w.tick()
        gates = w.status.plan.gates if w.status.plan else {}
        if w.status.verdict == "Pass":
            first_pass = first_pass if first_pass is not None else gates["errorRate"]
            assert gates["errorRate"] == first_pass < 600  # observed, and kept while it keeps passing
    assert first_pass is not None
    started, last_analysis = parse_iso(w.status.stage_started_at), parse_iso(w.status.last_analysis_at)
    bake_end = parse_iso(w.status.step.started_at) + timedelta(minutes=10)
    assert first_pass <= (last_analysis - started).total_seconds()
    # promotion waits for the bake only (and the later step and its bake), not for the 600 s projection
    assert w.status.plan.eta_seconds == int((bake_end - last_analysis).total_seconds()) + 10 * 60


def test_a_gate_passed_in_shadow_keeps_its_pass_time_into_the_canary_steps() -> None:
    """Shadow and canary are one budget stage (one evidence window): a pass seen in shadow stays."""
    w = settled(World(policy(shadow={"enabled": True, "duration": "3m", "mirrorPercent": 100}, bakeTime="10m"),
                      ScriptedAnalyzer(["Pass"])))
    w.set_spec(spec("v2", D2))
    seen: list[tuple[str, int | None]] = []
    for _ in range(8):
        w.tick()
        if w.status.plan is not None:
            seen.append((w.status.phase.value, w.status.plan.gates.get("errorRate")))
    phases = {phase for phase, _ in seen}
    assert {"Shadow", "Canary"} <= phases, seen
    assert len({at for _, at in seen}) == 1, seen  # first seen passing in shadow, kept in the canary step


@pytest.mark.parametrize("phase", list(Phase))
def test_conditions_follow_kstatus_rules(phase: Phase) -> None:
    flags = conditions.expected(phase, serving_desired=True)
    assert not (flags.stalled and flags.reconciling), "Stalled never beside Reconciling"
    assert flags.ready == (phase is Phase.SUCCEEDED)
    assert flags.reconciling == (phase in {Phase.PENDING, Phase.SHADOW, Phase.CANARY, Phase.PROMOTING,
                                            Phase.HOLDBACK, Phase.PAUSED})
    assert flags.stalled == (phase in {Phase.ROLLING_BACK, Phase.ROLLED_BACK, Phase.FAILED})
    assert not conditions.expected(Phase.SUCCEEDED, serving_desired=False).ready


def test_last_transition_time_kept_when_status_unchanged(good: World) -> None:
    first = {c.type: c.last_transition_time for c in good.status.conditions}
    good.now += timedelta(hours=1)
    good.tick()
    assert {c.type: c.last_transition_time for c in good.status.conditions} == first


def test_illegal_transition_is_refused() -> None:
    with pytest.raises(IllegalTransition):
        transition(Phase.SUCCEEDED, Trigger.PROMOTED)
    with pytest.raises(IllegalTransition):
        transition(Phase.PAUSED, Trigger.RESUME, resume_to=Phase.SUCCEEDED)


def test_every_transition_in_the_table_is_exercised() -> None:
    """Runs last in this module: the scenarios above must have taken every trigger."""
    triggers_used = {t for _, t in SEEN_TRANSITIONS}
    table_triggers = {t.value for (_, t) in TRANSITIONS} | {"Resume", "Unblocked"}
    missing = table_triggers - triggers_used
    assert not missing, f"triggers never exercised: {sorted(missing)}"


def test_status_keeps_what_explain_reads_and_the_decision_record_keeps_every_figure() -> None:
    """status.lastAnalysis is rewritten every pass and held by every copy of the object, so it
    keeps the decision's numbers only; a decision's evidence keeps the full analysis."""
    from vigil.api.gates import MetricKind
    from vigil.stats.result import Analysis, Outcome, Plan, Verdict

    verdict = Verdict(metric=MetricKind.ERROR_RATE, outcome=Outcome.PASS, explanation="error rate as baseline",
                      statistic="rate ratio", effect=0.01, interval=(-0.1, 0.12), tolerance=0.1, regression=0.3,
                      e_fail=0.5, e_pass=30.0, threshold_fail=40.0, threshold_pass=20.0, samples=(9000, 1000),
                      figures={"canaryRate": 0.011}, plan=Plan(horizon_s=3600.0, time_to_pass_s=600.0))
    real = Analysis(outcome=Outcome.PASS, verdicts=[verdict])
    w = settled(World(policy(), lambda *_, **__: real))
    w.set_spec(spec("v2", D2))
    for _ in range(15):
        w.tick()
        if any(d.action == "step" for d in w.decisions):
            break
    kept = w.status.last_analysis["verdicts"][0]
    assert {k: kept[k] for k in ("metric", "outcome", "effect", "interval", "eFail", "ePass", "thresholdFail",
                                  "thresholdPass", "samples", "explanation", "statistic")} == {
        "metric": "errorRate", "outcome": "Pass", "effect": 0.01, "interval": [-0.1, 0.12], "eFail": 0.5,
        "ePass": 30.0, "thresholdFail": 40.0, "thresholdPass": 20.0, "samples": {"baseline": 9000, "canary": 1000},
        "explanation": "error rate as baseline", "statistic": "rate ratio"}
    assert not {"figures", "plan", "pValue"} & set(kept)
    recorded = next(d for d in w.decisions if d.action == "step").evidence["analysis"]["verdicts"][0]
    assert recorded["figures"] == {"canaryRate": 0.011} and recorded["plan"]["timeToPassSeconds"] == 600.0
    assert recorded["pValue"] == 1.0
