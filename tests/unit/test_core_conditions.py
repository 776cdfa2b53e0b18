"""kstatus conditions: the table per phase, and lastTransitionTime kept unless the status flips."""

from __future__ import annotations

import pytest

from vigil.api.modeldeployment import Phase
from vigil.core import conditions
from vigil.core.conditions import ConditionSet, build, expected


@pytest.mark.parametrize("phase, serving, want", [
    (Phase.PENDING, False, ConditionSet(ready=False, reconciling=True, stalled=False)),
    (Phase.SHADOW, False, ConditionSet(ready=False, reconciling=True, stalled=False)),
    (Phase.CANARY, False, ConditionSet(ready=False, reconciling=True, stalled=False)),
    (Phase.PROMOTING, False, ConditionSet(ready=False, reconciling=True, stalled=False)),
    (Phase.HOLDBACK, False, ConditionSet(ready=False, reconciling=True, stalled=False)),
    (Phase.PAUSED, False, ConditionSet(ready=False, reconciling=True, stalled=False)),
    (Phase.SUCCEEDED, True, ConditionSet(ready=True, reconciling=False, stalled=False)),
    (Phase.SUCCEEDED, False, ConditionSet(ready=False, reconciling=False, stalled=False)),
    (Phase.ROLLING_BACK, False, ConditionSet(ready=False, reconciling=False, stalled=True)),
    (Phase.ROLLED_BACK, True, ConditionSet(ready=False, reconciling=False, stalled=True)),
    (Phase.FAILED, False, ConditionSet(ready=False, reconciling=False, stalled=True)),
])
def test_the_kstatus_table(phase: Phase, serving: bool, want: ConditionSet) -> None:
    assert expected(phase, serving) == want


def test_every_phase_is_in_the_table() -> None:
    for phase in Phase:
        flags = expected(phase, serving_desired=True)
        assert not (flags.reconciling and flags.stalled), phase  # never both: kstatus reads that as stuck
        assert not (flags.ready and (flags.reconciling or flags.stalled)), phase


def test_a_rollout_that_needs_a_person_is_stalled_not_reconciling() -> None:
    assert expected(Phase.CANARY, False, stalled=True) == ConditionSet(ready=False, reconciling=False, stalled=True)


def by_type(conds: list) -> dict:
    return {c.type: c for c in conds}


def test_build_sets_all_five_conditions_with_reasons() -> None:
    conds = by_type(build([], Phase.CANARY, serving_desired=False, reason="StepStarted", message="25%",
                          generation=3, now="2026-01-01T00:00:00Z"))
    assert list(conds) == ["Ready", "Reconciling", "Stalled", "Progressing", "Degraded"]
    assert {t: c.status for t, c in conds.items()} == {
        "Ready": "False", "Reconciling": "True", "Stalled": "False", "Progressing": "True", "Degraded": "False"}
    assert conds["Reconciling"].reason == "StepStarted" and conds["Stalled"].reason == "Healthy"
    assert conds["Ready"].reason == "StepStarted" and conds["Ready"].message == "25%"
    assert all(c.observed_generation == 3 for c in conds.values())
    succeeded = by_type(build([], Phase.SUCCEEDED, serving_desired=True, reason="Promoted", message="",
                              generation=3, now="t"))
    assert succeeded["Ready"].reason == "Serving" and succeeded["Reconciling"].reason == "Idle"


def test_last_transition_time_is_kept_unless_the_status_flips() -> None:
    first = build([], Phase.CANARY, serving_desired=False, reason="StepStarted", message="",
                  generation=1, now="T1")
    again = by_type(build(first, Phase.CANARY, serving_desired=False, reason="StepPassed", message="",
                          generation=2, now="T2"))
    assert all(c.last_transition_time == "T1" for c in again.values())
    assert again["Reconciling"].reason == "StepPassed"  # reason and message still follow the latest pass
    rolled_back = by_type(build(list(again.values()), Phase.ROLLED_BACK, serving_desired=True,
                                reason="RolledBack", message="errorRate failed", generation=2, now="T3"))
    assert rolled_back["Stalled"].status == "True" and rolled_back["Stalled"].last_transition_time == "T3"
    assert rolled_back["Reconciling"].status == "False" and rolled_back["Reconciling"].last_transition_time == "T3"
    assert rolled_back["Ready"].status == "False" and rolled_back["Ready"].last_transition_time == "T1"


def test_phase_sets_do_not_overlap() -> None:
    assert not conditions.RECONCILING_PHASES & conditions.STALLED_PHASES
