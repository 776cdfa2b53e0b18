"""The rollout state machine: every phase transition Vigil can take, in one table.

`decide()` never assigns a phase directly: it names a `Trigger` and `transition()` looks the
move up here, so a transition missing from this table is an error, not a surprise.
"""

from __future__ import annotations

from enum import Enum

from vigil.api.modeldeployment import Phase

P = Phase


class Trigger(str, Enum):
    FIRST_DEPLOY_READY = "FirstDeployReady"
    START_SHADOW = "StartShadow"
    START_CANARY = "StartCanary"
    SHADOW_PASSED = "ShadowPassed"
    STEP_PASSED = "StepPassed"
    LAST_STEP_PASSED = "LastStepPassed"
    MANUAL_PROMOTE = "ManualPromote"
    PROMOTED = "Promoted"
    PROMOTED_WITH_HOLDBACK = "PromotedWithHoldback"
    HOLDBACK_PASSED = "HoldbackPassed"
    ANALYSIS_FAILED = "AnalysisFailed"
    NO_DATA_LIMIT = "NoDataLimit"
    ABORT = "Abort"
    TRAFFIC_RESTORED = "TrafficRestored"
    PAUSE = "Pause"
    RESUME = "Resume"
    SPEC_REVERTED = "SpecReverted"
    BUDGET_ROLLBACK = "BudgetRollback"  # the rollout budget ran out; the policy says roll back
    BUDGET_PROMOTE = "BudgetPromote"  # the rollout budget ran out; the policy says promote
    BLOCKED = "Blocked"  # policy missing or invalid, invalid spec, route conflict
    UNBLOCKED = "Unblocked"


IN_ROLLOUT = frozenset({P.SHADOW, P.CANARY, P.PROMOTING, P.HOLDBACK, P.PAUSED, P.ROLLING_BACK})
ANALYSING = frozenset({P.SHADOW, P.CANARY, P.HOLDBACK})
AT_REST = frozenset({P.SUCCEEDED, P.ROLLED_BACK})

# (from phases, trigger) -> to phase. Read top to bottom as the life of a rollout.
TRANSITIONS: dict[tuple[Phase, Trigger], Phase] = {}


def _add(sources: frozenset[Phase] | set[Phase], trigger: Trigger, target: Phase) -> None:
    for source in sources:
        TRANSITIONS[(source, trigger)] = target


_add({P.PENDING}, Trigger.FIRST_DEPLOY_READY, P.SUCCEEDED)
# a new version starts a rollout from rest, or restarts one mid-flight
_add(AT_REST | IN_ROLLOUT | {P.PENDING}, Trigger.START_SHADOW, P.SHADOW)
_add(AT_REST | IN_ROLLOUT | {P.PENDING}, Trigger.START_CANARY, P.CANARY)
_add({P.SHADOW}, Trigger.SHADOW_PASSED, P.CANARY)
_add({P.CANARY}, Trigger.STEP_PASSED, P.CANARY)
_add({P.CANARY}, Trigger.LAST_STEP_PASSED, P.PROMOTING)
_add({P.SHADOW, P.CANARY, P.PAUSED}, Trigger.MANUAL_PROMOTE, P.PROMOTING)
_add({P.PROMOTING}, Trigger.PROMOTED, P.SUCCEEDED)
_add({P.PROMOTING}, Trigger.PROMOTED_WITH_HOLDBACK, P.HOLDBACK)
_add({P.HOLDBACK}, Trigger.HOLDBACK_PASSED, P.SUCCEEDED)
_add(ANALYSING, Trigger.ANALYSIS_FAILED, P.ROLLING_BACK)
_add(ANALYSING, Trigger.NO_DATA_LIMIT, P.ROLLING_BACK)
_add(ANALYSING | {P.PAUSED, P.PROMOTING}, Trigger.ABORT, P.ROLLING_BACK)
_add({P.SHADOW, P.CANARY}, Trigger.BUDGET_ROLLBACK, P.ROLLING_BACK)
_add({P.SHADOW, P.CANARY}, Trigger.BUDGET_PROMOTE, P.PROMOTING)
_add({P.ROLLING_BACK}, Trigger.TRAFFIC_RESTORED, P.ROLLED_BACK)
_add(ANALYSING, Trigger.PAUSE, P.PAUSED)
# Paused --Resume--> the analysing phase it was paused in: see transition(resume_to=...).
_add(IN_ROLLOUT | {P.ROLLED_BACK}, Trigger.SPEC_REVERTED, P.SUCCEEDED)
_add(set(P) - {P.FAILED}, Trigger.BLOCKED, P.FAILED)
# Failed --Unblocked--> the phase it was blocked in: see transition(resume_to=...).


class IllegalTransition(RuntimeError):
    pass


def transition(current: Phase, trigger: Trigger, *, resume_to: Phase | None = None) -> Phase:
    """The phase after `trigger` in `current`; raises IllegalTransition if the table lacks it.

    RESUME goes back to the analysing phase the rollout was paused in, UNBLOCKED to the phase
    it was blocked in (`resume_to`, kept in status.pausedFrom).
    """
    if trigger is Trigger.RESUME:
        if current is P.PAUSED and resume_to in ANALYSING:
            return resume_to
        raise IllegalTransition(f"cannot resume from {current.value} to {resume_to}")
    if trigger is Trigger.UNBLOCKED:
        if current is P.FAILED and resume_to is not None and resume_to is not P.FAILED:
            return resume_to
        raise IllegalTransition(f"cannot unblock from {current.value} to {resume_to}")
    try:
        return TRANSITIONS[(current, trigger)]
    except KeyError:
        raise IllegalTransition(f"no transition from {current.value} on {trigger.value}") from None
