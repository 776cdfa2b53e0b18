"""Standard status conditions, as GitOps tools read them.

Flux's kstatus reads `observedGeneration`, `Reconciling`, `Stalled` and `Ready` (exact "True"):
Reconciling=True while a rollout runs, Stalled=True after a rollback or failure (never beside a
stale Reconciling=True), Ready=True only when the desired version serves all traffic.
`Progressing` and `Degraded` are added for people. `lastTransitionTime` is kept unless the
condition's status flips.
"""

from __future__ import annotations

from dataclasses import dataclass

from vigil.api.modeldeployment import Condition, Phase

RECONCILING_PHASES = {Phase.PENDING, Phase.SHADOW, Phase.CANARY, Phase.PROMOTING, Phase.HOLDBACK, Phase.PAUSED}
STALLED_PHASES = {Phase.ROLLING_BACK, Phase.ROLLED_BACK, Phase.FAILED}


@dataclass(frozen=True)
class ConditionSet:
    ready: bool
    reconciling: bool
    stalled: bool


def expected(phase: Phase, serving_desired: bool, stalled: bool = False) -> ConditionSet:
    """The kstatus rules as a function of the phase (the table a test checks). `stalled` marks a
    rollout that holds and needs a person (its budget ran out): Stalled, not Reconciling."""
    stalled = stalled or phase in STALLED_PHASES
    reconciling = phase in RECONCILING_PHASES and not stalled
    ready = phase is Phase.SUCCEEDED and serving_desired
    return ConditionSet(ready=ready, reconciling=reconciling, stalled=stalled)


def _merge(old: list[Condition], new: Condition) -> Condition:
    prev = next((c for c in old if c.type == new.type), None)
    if prev is not None and prev.status == new.status:
        return new.model_copy(update={"last_transition_time": prev.last_transition_time})
    return new


def build(
    previous: list[Condition],
    phase: Phase,
    *,
    serving_desired: bool,
    reason: str,
    message: str,
    generation: int,
    now: str,
    stalled: bool = False,
) -> list[Condition]:
    """Conditions for `phase`, keeping lastTransitionTime of those whose status did not flip."""
    flags = expected(phase, serving_desired, stalled)

    def cond(type_: str, value: bool, why: str) -> Condition:
        return _merge(previous, Condition(
            type=type_, status="True" if value else "False", reason=why, message=message,
            last_transition_time=now, observed_generation=generation,
        ))

    return [
        cond("Ready", flags.ready, reason if not flags.ready else "Serving"),
        cond("Reconciling", flags.reconciling, reason if flags.reconciling else "Idle"),
        cond("Stalled", flags.stalled, reason if flags.stalled else "Healthy"),
        cond("Progressing", flags.reconciling, reason),
        cond("Degraded", flags.stalled, reason if flags.stalled else "Healthy"),
    ]
