"""How long one `analyze` call takes on a realistic window, and what that means per round.

    python bench/timing.py            # 200 calls on a 30-minute window of all 7 gates

The window is what the operator really reads: the simulated model servers of
bench/rollout_sim.py answer 1000 req/min for 30 minutes at a 10% split, and the reconciler's
own `measure()` turns the plan into the counters `analyze` gets. Prints CPU seconds per call, per
call with the change detector, and the CPU one analysis round of 1000 ModelDeployments takes on
one core. Asserts nothing.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))

import numpy as np
from vigil.api.gates import Gate, MetricKind
from vigil.core.model import Arm, TrafficSplit
from vigil.metrics import AnalysisTarget
from vigil.stats import CounterPanel, CounterSeries, ShadowComparisons, analyze

from bench.rollout_sim import T0, Servers, SimulatedPrometheus, Version, spec

GATES = [Gate(metric=k) for k in MetricKind]


def window(minutes: int = 30, rpm: float = 1000.0, seed: int = 7) -> dict[Any, Any]:
    """Counters of every gate for a `minutes` window at a 10% canary (shadow comparisons too)."""
    prometheus = SimulatedPrometheus()
    servers = Servers(np.random.default_rng(seed), rpm, {"v1": Version(), "v2": Version()})
    split = TrafficSplit({Arm("v1"): 90, Arm("v2"): 10}, mirror=None)
    mirror = TrafficSplit({Arm("v1"): 100}, mirror=Arm("v2"), mirror_percent=100)
    for minute in range(minutes):
        servers.minute(mirror if minute < minutes // 3 else split, prometheus)
    target = AnalysisTarget("ns", spec("v2", "sha256:" + "2" * 64).model, "v1", "v2")
    return prometheus.collect(target, GATES, T0, T0 + timedelta(minutes=minutes))


def fresh(data: Mapping[Any, Any]) -> dict[Any, Any]:
    """A copy of a window with new panel objects, as the provider hands over at every analysis:
    nothing memoised on the panels of one call serves the next."""
    def panel(p: CounterPanel | None) -> CounterPanel | None:
        if p is None:
            return None
        return CounterPanel(p.timestamps.copy(), tuple(CounterSeries(dict(s.labels), s.values.copy()) for s in p.series))

    out: dict[Any, Any] = {}
    for kind, item in data.items():
        if isinstance(item, ShadowComparisons):
            out[kind] = ShadowComparisons(panel(item.canary), panel(item.control))  # type: ignore[arg-type]
        elif hasattr(item, "baseline"):
            out[kind] = dataclasses.replace(item, baseline=panel(item.baseline), canary=panel(item.canary))
        else:
            out[kind] = item
    return out


def time_analyze(calls: int = 200, minutes: int = 30, detect_change: bool = False) -> float:
    """CPU seconds per `analyze` call (7 gates, a `minutes` window, with the plan on every
    verdict), each call on fresh panel objects. This thread's CPU time, not wall time: the
    figure is what one round costs a core, whatever else the machine or the process runs."""
    data = window(minutes)
    analyze(GATES, fresh(data), alpha_fail=0.05, alpha_pass=0.05, min_samples=500)  # warm module caches
    copies = [fresh(data) for _ in range(calls)]
    started = time.thread_time()
    for copy in copies:
        analyze(GATES, copy, alpha_fail=0.05, alpha_pass=0.05, min_samples=500, expected_canary_share=0.1,
                detect_change=detect_change)
    return (time.thread_time() - started) / calls


def main() -> None:
    plain, detecting = time_analyze(), time_analyze(detect_change=True)
    print(f"one analyze call, 7 gates, 30-minute window: {1000 * plain:.1f} ms "
          f"({1000 * detecting:.1f} ms with the change detector)")
    print(f"one analysis round of 1000 ModelDeployments on one core: {plain * 1000:.0f} s")


if __name__ == "__main__":
    main()
