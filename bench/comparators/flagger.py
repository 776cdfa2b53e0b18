"""Flagger's canary loop, as its scheduler runs it (docs/comparators.md has the links).

Every `interval` Flagger reconciles the Canary once:

1. if the failed-check counter has reached `threshold`, roll back;
2. on the first tick (no traffic yet) it only routes the first step weight, no check;
3. otherwise it runs every metric check on the last `metrics[].interval` of data (a query
   that returns no value fails the check); any failure adds one to the counter and holds
   the weight (the counter is not reset by later passing checks);
4. after a passing check it moves to the next weight; at `maxWeight` (the last of
   `stepWeights`) a passing check promotes.

With a closed confirm-promotion gate (`hold`), Flagger stays at the last weight and keeps
running the checks, so failed checks keep accumulating.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.comparators.signals import limit, window_value
from bench.scenarios import Policy
from bench.simulate import Counts

INCONCLUSIVE, PASS, FAIL = 0, 1, 2


@dataclass(frozen=True)
class FlaggerAnalysis:
    """`spec.analysis` of a Canary. Defaults are Flagger's own (interval 60s, threshold 1,
    metric interval 1m); `FlaggerAnalysis.from_policy` fills in the rest from a RiskPolicy."""

    step_weights: tuple[int, ...] = (10, 20, 30, 40, 50)
    interval: int = 1  # minutes between checks (analysis.interval, default 60s)
    threshold: int = 1  # failed checks before rollback (analysis.threshold, default 1)
    metric_interval: int = 1  # range of each metric query (metrics[].interval, default 1m)
    model_interval: int = 1  # range of the custom model-quality queries (MetricTemplates)
    hold: bool = False  # confirm-promotion gate closed: never promote, keep checking

    @classmethod
    def from_policy(cls, policy: Policy, threshold: int = 5, hold: bool = False) -> FlaggerAnalysis:
        """The example policy written as a Canary: its steps as `stepWeights`, its analysis
        interval, `threshold: 5` as in Flagger's documented examples, the built-in request
        metrics over Flagger's default 1m, and the model-quality MetricTemplates over the
        policy's bake time (over 1m they would be noise at these rates)."""
        return cls(step_weights=policy.steps, interval=policy.interval, threshold=threshold,
                   model_interval=policy.bake, hold=hold)


def run_loop(check_ok: np.ndarray, cfg: FlaggerAnalysis) -> np.ndarray:
    """Codes per minute (reps, T) of Flagger's loop, given the result every check would have
    at each minute (`check_ok[:, m - 1]`: the checks run at the end of minute m)."""
    R, T = check_ok.shape
    codes = np.zeros((R, T), dtype=np.int64)
    step = np.full(R, -1)
    failed = np.zeros(R, dtype=np.int64)
    done = np.zeros(R, dtype=bool)
    last = len(cfg.step_weights) - 1
    for m in range(cfg.interval, T + 1, cfg.interval):
        live = ~done
        rollback = live & (failed >= cfg.threshold)
        codes[rollback, m - 1] = FAIL
        done |= rollback
        live = ~done
        starting = live & (step < 0)
        step[starting] = 0
        checking = live & ~starting
        ok = check_ok[:, m - 1]
        failed += checking & ~ok
        advance = checking & ok
        promote = advance & (step >= last) & (not cfg.hold)
        step[advance & (step < last)] += 1
        codes[promote, m - 1] = PASS
        done |= promote
    return codes


REQUEST_METRICS = ("errorRate", "latencyP99")  # Flagger's built-in request-success-rate, request-duration


def checks(c: Counts, gates: tuple[str, ...], policy: Policy, cfg: FlaggerAnalysis) -> np.ndarray:
    """Every metric check passes at each minute: the metric over its query range is within
    its limit (`limit`: the healthy level moved by the regression margin, e.g.
    request-success-rate >= 98.5% for 1% errors and errors x1.5). A built-in metric without
    data fails the check ("no values found"); the model-quality MetricTemplates are written
    with `or on() vector(0)`, as users do to avoid that, so no labels yet reads as 0."""
    ok = np.ones(c.requests_c.shape, dtype=bool)
    for gate in gates:
        builtin = gate in REQUEST_METRICS
        value = window_value(gate, c, cfg.metric_interval if builtin else cfg.model_interval)
        ok &= np.nan_to_num(value, nan=np.inf if builtin else 0.0) <= limit(gate, policy)
    return ok


def flagger(c: Counts, gates: tuple[str, ...], policy: Policy, cfg: FlaggerAnalysis) -> np.ndarray:
    return run_loop(checks(c, gates, policy, cfg), cfg)
