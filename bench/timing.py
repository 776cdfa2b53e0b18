"""How long one `analyze` call takes on a realistic window, and what that means per round.

    python bench/timing.py            # 200 calls on a 30-minute window: all 7 gates, and the
                                      # shipped example policy's canary stage

The window is what the operator really reads: the simulated model servers of
bench/rollout_sim.py answer 1000 req/min for 30 minutes at a 10% split, and the reconciler's
own `measure()` turns the plan into the counters `analyze` gets. Prints CPU seconds per call, per
call with the change detector, and the CPU one analysis round of 1000 ModelDeployments takes on
one core, for two sets of gates:

* all seven gates at alpha 0.05 and a 4-hour horizon: the most a round can cost (a policy with
  every gate, in its shadow stage, where every gate is judged);
* the shipped example policy (manifests/examples/riskpolicy.yaml) in its canary stage, as the
  operator calls `analyze` there (`as_deployed`): the gates `vigil.core.plan` judges in that stage
  (shadowDisagreement is judged in shadow only and carried), the policy's tolerances, its alphas and
  minSamples, its budget as the plan's horizon, and the decided gates' detectable effects deferred
  to the decisions that are recorded (`vigil.core.decide.default_analyzer`). That is what a round of
  "canaries in progress" costs once their gates are judged; a round in which a model's decision is
  recorded costs that model the rest of its decided gates' plans (`time_complete`);
* whole rollouts of a healthy version under the example policy (`time_rollouts`, at 100, 1000
  and 10000 req/min): the analysis CPU per analysis over every stage, step and bake, with the
  completions of the recorded decisions. 1000 canaries spread over their rollouts cost a round
  1000 times this.

Asserts nothing.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import sys
import time
from collections.abc import Callable, Mapping
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
EXAMPLE_POLICY = Path(__file__).resolve().parents[1] / "manifests" / "examples" / "riskpolicy.yaml"
WORST = {"gates": GATES, "alpha_fail": 0.05, "alpha_pass": 0.05, "min_samples": 500}
"""All seven gates at round alphas and the default horizon (what this file measured first)."""


def shipped_policy(path: Path = EXAMPLE_POLICY) -> Any:
    """The example RiskPolicy's spec as the operator reads it (a RiskPolicySpec)."""
    import yaml
    from vigil.api.policy import RiskPolicySpec

    return RiskPolicySpec.model_validate(yaml.safe_load(path.read_text())["spec"])


def as_deployed(stage: str = "canary", path: Path = EXAMPLE_POLICY) -> dict[str, Any]:
    """`analyze`'s gates and arguments for the example policy in `stage`, as `vigil.core.decide`
    passes them (the stage's gates and alphas from `vigil.core.plan`, the budget as horizon)."""
    from vigil.api.common import parse_duration
    from vigil.core.plan import Stage, gate_alpha, gates_for

    policy = shipped_policy(path)
    gates, _ = gates_for(Stage(stage), policy)
    return {"gates": list(gates), "alpha_fail": gate_alpha(policy) * max(len(gates), 1),
            "alpha_pass": 1 - policy.promotion_confidence, "min_samples": policy.min_samples,
            "horizon_s": parse_duration(policy.budget.max_duration).total_seconds(), "deferred": True}


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


def time_analyze(calls: int = 200, minutes: int = 30, detect_change: bool = False,
                 setting: Mapping[str, Any] | None = None) -> float:
    """CPU seconds per `analyze` call (a `minutes` window, with the plan on every verdict), each
    call on fresh panel objects; `setting`: gates and arguments (WORST, the default, or
    `as_deployed()`). This thread's CPU time, not wall time: the figure is what one round costs a
    core, whatever else the machine or the process runs."""
    kwargs = dict(WORST if setting is None else setting)
    gates = kwargs.pop("gates")
    data = window(minutes)
    analyze(gates, fresh(data), **kwargs)  # warm module caches
    copies = [fresh(data) for _ in range(calls)]
    started = time.thread_time()
    for copy in copies:
        analyze(gates, copy, expected_canary_share=0.1, detect_change=detect_change, **kwargs)
    return (time.thread_time() - started) / calls


def time_reference(steps: int = 20_000) -> float:
    """CPU seconds per step of a fixed workload of the analysis's kind and nothing of Vigil's:
    a few numpy calls on a 30-entry array and some scalar math per step. The host's speed, timed
    in the same process as a CPU figure and printed beside it: this host's speed swings within
    minutes (the same analysis code has measured 3.8 and 6.4 s a round), and a figure that moved
    with its reference moved with the host, not with the code."""
    x = np.linspace(0.5, 3.0, 30)
    total = 0.0
    started = time.thread_time()
    for step in range(steps):
        y = np.cumsum(np.log1p(x * (1.0 + step % 7)))
        top = float(np.maximum.reduce(y))
        total += math.log(top + 1.0) * 0.5 + abs(math.sin(top))
    if total < 0:  # never: keeps the arithmetic from being skipped
        print(total)
    return (time.thread_time() - started) / steps


def time_complete(calls: int = 200, minutes: int = 30, setting: Mapping[str, Any] | None = None) -> float:
    """CPU seconds to complete one deferred analysis (what a recorded decision adds)."""
    kwargs = dict(as_deployed() if setting is None else setting)
    gates = kwargs.pop("gates")
    data = window(minutes)
    lean = [analyze(gates, fresh(data), expected_canary_share=0.1, **kwargs) for _ in range(calls)]
    started = time.thread_time()
    for analysis in lean:
        analysis.complete()
    return (time.thread_time() - started) / calls


def healthy_rollouts(analyze_as: Callable[..., Any], complete_as: Callable[..., Any],
                     rpm: float = 1000.0, seeds: int = 3) -> None:
    """Run `seeds` whole rollouts of a healthy v2 under the shipped example policy through the real
    `decide` (bench/rollout_sim.py), with `vigil.stats.analyze` and `Analysis.complete` replaced by
    `analyze_as(plain_analyze, *args, **kwargs)` and `complete_as(plain_complete, analysis)` (the
    originals are restored afterwards)."""
    import vigil.stats as stats
    from vigil.stats.result import Analysis

    from bench.rollout_sim import Version, run_rollout

    policy = shipped_policy()
    plain, complete = stats.analyze, Analysis.complete
    stats.analyze = functools.partial(analyze_as, plain)
    Analysis.complete = lambda self: complete_as(complete, self)  # type: ignore[method-assign]
    try:
        for seed in range(seeds):
            run_rollout(policy, Version(), rpm, seed)
    finally:
        stats.analyze, Analysis.complete = plain, complete  # type: ignore[method-assign]


def time_rollouts(rpm: float = 1000.0, seeds: int = 3) -> tuple[float, int]:
    """(CPU seconds of analysis per analysis, analyses) over whole rollouts of a healthy v2 under
    the shipped example policy, through the real `decide` and its analyzer (bench/rollout_sim.py):
    every stage and step a canary passes through, in the proportions a rollout spends in them, with
    the completions of the recorded decisions. A round of 1000 canaries at all points of their
    rollouts costs 1000 times this."""
    spent, calls = [0.0], [0]

    def timed(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        started = time.thread_time()
        try:
            return call(*args, **kwargs)
        finally:
            spent[0] += time.thread_time() - started

    def timed_analyze(plain: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return timed(plain, *args, **kwargs)

    healthy_rollouts(timed_analyze, timed, rpm, seeds)
    return spent[0] / max(calls[0], 1), calls[0]


def time_fleet(rpm: float = 1000.0, models: int = 48, fleet: int = 1000, seed: int = 0) -> tuple[float, float, int]:
    """(CPU seconds of analysis per analysis with each analysed alone, the same with each minute's
    analyses computed together, analyses) for `models` whole healthy rollouts under the example
    policy at the density of a fleet of `fleet`: a fleet's rollouts start spread evenly over a
    rollout's length, so about fleet / length of them start in any one minute; here `models`
    rollouts start over models / fleet of that length (bench/rollout_sim.run_together). Every
    minute's requests are analysed both ways, on fresh copies of their counters, in alternating
    order (the host's speed drifts within minutes: paired minute by minute, the ratio holds);
    the rollouts decide on the analyses computed together, which are the same. The completions
    of recorded decisions (about 5% of a round, per model either way) are not counted."""
    import importlib

    from bench.rollout_sim import Rollout, Version, run_together

    analysis = importlib.import_module("vigil.stats.analyze")  # the module (vigil.stats.analyze is also the function)
    policy = shipped_policy()
    length = 80  # minutes: a healthy rollout under the example policy takes 76-85
    rng = np.random.default_rng(seed)
    starts = sorted(int(m) for m in rng.integers(0, max(round(length * models / fleet), 1), models))
    spent = {False: 0.0, True: 0.0}
    calls = [0]
    plain_many = analysis.analyze_many

    def both(requests: list[Any]) -> list[Any]:
        copies = [(g, fresh(d), k) for g, d, k in requests]
        calls[0] += len(requests)
        out: list[Any] = []
        for together in ((True, False) if calls[0] % 2 else (False, True)):
            started = time.thread_time()
            if together:
                out = plain_many(requests)
            else:
                for g, d, k in copies:
                    analysis.analyze(g, d, **k)
            spent[together] += time.thread_time() - started
        return out

    analysis.analyze_many = both
    try:
        run_together([Rollout(policy, Version(), rpm, seed * 10_000 + i) for i in range(models)], starts)
    finally:
        analysis.analyze_many = plain_many
    return spent[False] / max(calls[0], 1), spent[True] / max(calls[0], 1), calls[0]


def main() -> None:
    plain, detecting = time_analyze(), time_analyze(detect_change=True)
    print(f"one analyze call, 7 gates, 30-minute window: {1000 * plain:.1f} ms "
          f"({1000 * detecting:.1f} ms with the change detector)")
    print(f"one analysis round of 1000 ModelDeployments on one core: {plain * 1000:.0f} s")
    deployed = as_deployed()
    canary = time_analyze(setting=deployed)
    names = ", ".join(g.metric.value for g in deployed["gates"])
    print(f"the example policy's canary stage ({names}): {1000 * canary:.1f} ms a call, "
          f"{canary * 1000:.1f} s a round of 1000 ModelDeployments")
    eager = time_analyze(setting={**deployed, "deferred": False})
    print(f"  the same without deferring the decided gates' plans: {1000 * eager:.1f} ms a call; "
          f"completing a deferred analysis for a recorded decision: {1000 * time_complete():.1f} ms")
    for rpm in (100.0, 1000.0, 10000.0):
        per, count = time_rollouts(rpm)
        print(f"whole rollouts of a healthy v2 under the example policy at {rpm:.0f} req/min: {1000 * per:.1f} ms "
              f"of analysis per analysis ({count} analyses), {per * 1000:.1f} s a round of 1000 ModelDeployments")


if __name__ == "__main__":
    main()
