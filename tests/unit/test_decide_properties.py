"""Invariants of the state machine under random analysis outcomes, time steps and user actions."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.api.modeldeployment import Phase
from vigil.core.decide import decide
from vigil.core.model import Arm, Observation

from .fakes import D2, ScriptedAnalyzer, World, policy, spec

OUTCOMES = st.sampled_from(["Pass", "Fail", "Inconclusive", "NoData"])
ANNOTATIONS = st.sampled_from([
    {}, {}, {}, {"vigil.dev/paused": "true"}, {"vigil.dev/promote": D2}, {"vigil.dev/abort": D2},
])
POLICIES = st.sampled_from([
    {},
    {"shadow": {"enabled": True, "duration": "2m"}},
    {"holdback": {"weight": 5, "bakeTime": "3m"}},
    {"baseline": "fresh"},
    {"failureLimit": 2, "noData": {"action": "rollback", "rollbackAfter": 2}},
])


def canary_share(world: World, version: str = "v2") -> int:
    return world.weight(version)


@settings(max_examples=150, deadline=None)
@given(
    outcomes=st.lists(OUTCOMES, min_size=1, max_size=25),
    minutes=st.lists(st.sampled_from([0.5, 1, 2, 5]), min_size=25, max_size=25),
    annotations=st.lists(ANNOTATIONS, min_size=25, max_size=25),
    extra=POLICIES,
)
def test_rollout_invariants(outcomes, minutes, annotations, extra) -> None:
    analyzer = ScriptedAnalyzer(outcomes)
    world = World(policy(**extra), analyzer)
    world.run(2)
    world.set_spec(spec("v2", D2))
    for i in range(25):
        world.annotations = annotations[i]
        before_weight = canary_share(world)
        before_phase = world.status.phase
        calls_before = len(analyzer.calls)
        d = world.tick(minutes[i])
        verdict = analyzer.script[min(len(analyzer.calls) - 1, len(analyzer.script) - 1)] if len(analyzer.calls) > calls_before else None
        manual = d.evidence.get("manual", {}).get("action")
        after_weight = canary_share(world)

        # weight rises only after an analysis in which no gate failed and some data arrived,
        # or a manual promote; full promotion only after every gate passed
        if after_weight > before_weight and before_phase in (Phase.SHADOW, Phase.CANARY, Phase.HOLDBACK):
            assert verdict in ("Pass", "Inconclusive") or manual == "promote", (before_phase, verdict, d.action)
        if d.action == "promote" and manual != "promote":
            assert verdict == "Pass", (verdict, d.action)
        # no data never advances; inconclusive never promotes
        if verdict == "NoData":
            assert d.action in ("hold", "rollback", "none"), d.action
            assert after_weight <= before_weight
        if verdict == "Inconclusive":
            assert d.action != "promote" or manual == "promote"
        # a rollback always leaves the canary at weight 0, in the same decision
        if d.action == "rollback":
            assert d.traffic is not None
            failed = d.status.canary_version
            assert d.traffic.weights.get(Arm(failed or ""), 0) == 0 and d.traffic.mirror is None
        # promote and rollback are never both taken
        reasons = {e.reason for e in d.events}
        assert not ({"Promoting", "Promoted", "ManualPromote"} & reasons and {"RolledBack", "Aborted"} & reasons)
        # weights always sum to 100
        if d.traffic is not None:
            assert sum(d.traffic.weights.values()) == 100
        # Stalled is never beside Reconciling=True
        cond = {c.type: c.status for c in d.status.conditions}
        assert not (cond["Stalled"] == "True" and cond["Reconciling"] == "True")


@settings(max_examples=60, deadline=None)
@given(outcomes=st.lists(OUTCOMES, min_size=1, max_size=10), ticks=st.integers(0, 12))
def test_same_inputs_always_same_decision(outcomes, ticks) -> None:
    world = World(policy(), ScriptedAnalyzer(outcomes))
    world.run(2)
    world.set_spec(spec("v2", D2))
    world.run(ticks)
    obs = Observation(generation=world.generation, workloads=world.workloads, route=world.route,
                      metrics={"errorRate": 1})
    runs = [decide("fraud", world.spec, world.policy, world.status, obs, world.now,
                   analyzer=ScriptedAnalyzer(list(outcomes))) for _ in range(2)]
    assert runs[0] == runs[1]


@settings(max_examples=60, deadline=None)
@given(outcomes=st.lists(OUTCOMES, min_size=1, max_size=10), ticks=st.integers(0, 15))
def test_failing_analysis_ends_at_zero_canary_weight(outcomes, ticks) -> None:
    """Whatever happened before, once analysis fails (limit 1) the canary ends with no traffic."""
    world = World(policy(), ScriptedAnalyzer(outcomes))
    world.run(2)
    world.set_spec(spec("v2", D2))
    world.run(ticks)
    world.analyzer.script = ["Fail"]
    world.analyzer.calls = [None] * 100  # type: ignore[list-item]
    world.run(6)
    if world.status.stable_version != "v2":
        assert canary_share(world) == 0
        assert world.status.phase is Phase.ROLLED_BACK
