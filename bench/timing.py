"""How long one `analyze` call takes on a realistic window (all gates, two pods)."""

from __future__ import annotations

import time

from bench.scenarios import scenarios
from bench.simulate import simulate
from bench.windows import window
from vigil.api.gates import Gate, MetricKind
from vigil.stats import analyze


def time_analyze(calls: int = 1000, minutes: int = 30) -> tuple[float, float]:
    """(seconds per call, seconds for 1000 calls): 7 gates, 1000 req/min, a 30-minute window."""
    everything = next(s for s in scenarios() if s.family == "all")
    counts = simulate(everything, 1000, reps=20, seed=7, minutes=minutes)
    windows = [window(counts, rep) for rep in range(20)]
    gates = [Gate(metric=k) for k in MetricKind]
    started = time.perf_counter()
    for i in range(calls):
        analyze(gates, windows[i % len(windows)], confidence=0.99, min_samples=200, expected_canary_share=0.1)
    per_call = (time.perf_counter() - started) / calls
    return per_call, per_call * 1000
