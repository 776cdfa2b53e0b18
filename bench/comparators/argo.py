"""Argo Rollouts' background AnalysisRun, as its analysis controller assesses it.

Every `interval` each metric takes a measurement (a PromQL query over `window`) and
classifies it: Successful if `successCondition` holds, Failed if `failureCondition`
holds, Inconclusive if neither does (a NaN result, from a window without requests,
satisfies neither), Error if the query fails. A metric is Failed once its failed
measurements exceed `failureLimit` (default 0), Inconclusive once its inconclusive ones
exceed `inconclusiveLimit` (default 0), Error once consecutive errors exceed
`consecutiveErrorLimit` (default 4). The run takes the worst metric phase. A Failed or
Errored run aborts the Rollout (rollback); an Inconclusive run pauses it for a human
(here: no decision until the horizon). If the Rollout finishes its steps first, it is
promoted and the background run is stopped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.comparators.signals import limit, window_value
from bench.scenarios import Policy
from bench.simulate import Counts

INCONCLUSIVE, PASS, FAIL = 0, 1, 2
SUCCESSFUL, FAILED, INCONCLUSIVE_M, ERROR = 0, 1, 2, 3  # measurement phases


@dataclass(frozen=True)
class ArgoAnalysis:
    """A metric of an AnalysisTemplate plus the Rollout steps around it. Limits default to
    Argo's own defaults; `ArgoAnalysis.from_policy` fills in the rest."""

    interval: int = 1  # minutes between measurements (metrics[].interval)
    window: int = 5  # PromQL range of the query, [5m] as in Argo's examples
    model_window: int = 5  # range of the model-quality queries
    failure_limit: int = 0
    inconclusive_limit: int = 0
    consecutive_error_limit: int = 4
    steps_done: int = 30  # minute at which the Rollout has run all its setWeight/pause steps
    hold: bool = False  # last step is an indefinite pause: the background run keeps going

    @classmethod
    def from_policy(cls, policy: Policy, hold: bool = False) -> ArgoAnalysis:
        """The policy's steps as setWeight + pause {bakeTime}, measured every analysis interval."""
        return cls(interval=policy.interval, model_window=policy.bake, steps_done=len(policy.steps) * policy.bake,
                   hold=hold)


def measure(value: np.ndarray, success_max: float, failure_min: float) -> np.ndarray:
    """Phase of each measurement with `successCondition: result <= success_max` and
    `failureCondition: result >= failure_min`; NaN meets neither (Inconclusive)."""
    out = np.full(np.shape(value), INCONCLUSIVE_M)
    out = np.where(value <= success_max, SUCCESSFUL, out)
    return np.where(value >= failure_min, FAILED, out)


def assess(phases: list[np.ndarray], cfg: ArgoAnalysis) -> np.ndarray:
    """Codes per minute (reps, T) from each metric's measurement phases (reps, T), read at
    the measurement minutes only."""
    R, T = phases[0].shape
    codes = np.zeros((R, T), dtype=np.int64)
    done = np.zeros(R, dtype=bool)
    failed = [np.zeros(R, dtype=np.int64) for _ in phases]
    inconclusive = [np.zeros(R, dtype=np.int64) for _ in phases]
    errors = [np.zeros(R, dtype=np.int64) for _ in phases]
    for m in range(cfg.interval, T + 1, cfg.interval):
        run_failed = np.zeros(R, dtype=bool)
        run_inconclusive = np.zeros(R, dtype=bool)
        for i, ph in enumerate(phases):
            p = ph[:, m - 1]
            failed[i] += p == FAILED
            inconclusive[i] += p == INCONCLUSIVE_M
            errors[i] = np.where(p == ERROR, errors[i] + 1, 0)
            run_failed |= (failed[i] > cfg.failure_limit) | (errors[i] > cfg.consecutive_error_limit)
            run_inconclusive |= inconclusive[i] > cfg.inconclusive_limit
        abort = ~done & run_failed
        codes[abort, m - 1] = FAIL
        done |= abort | run_inconclusive  # an Inconclusive run pauses the Rollout for good
        if not cfg.hold and m >= cfg.steps_done:
            promote = ~done
            codes[promote, m - 1] = PASS
            done |= promote
    return codes


def argo(c: Counts, gates: tuple[str, ...], policy: Policy, cfg: ArgoAnalysis) -> np.ndarray:
    """Each gate one metric: success within the tolerance level, failure at the regression
    level (the healthy level moved by the policy's two margins). Request metrics over
    [5m]; model-quality queries over the bake time, written with `or on() vector(0)`."""
    def value(g: str) -> np.ndarray:
        if g in ("errorRate", "latencyP99"):
            return window_value(g, c, cfg.window)
        return np.nan_to_num(window_value(g, c, cfg.model_window), nan=0.0)  # `or on() vector(0)`, as for Flagger
    phases = [measure(value(g), limit(g, policy, "tolerance"), limit(g, policy)) for g in gates]
    return assess(phases, cfg)
