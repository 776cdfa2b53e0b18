"""Benchmark: whole rollouts, judged on the three numbers that matter together.

    python bench/rollout_bench.py               # 40 rollouts per cell (about 20 minutes on 2 cores)
    python bench/rollout_bench.py --reps 200    # the full run
    python bench/rollout_bench.py --quick       # a smoke run (a few rollouts per cell)

Every rollout goes through the real plan_analysis(), decide() and analyze() at the deployed
alpha (the whole policy: every gate, every step), with simulated model servers and Prometheus
(bench/rollout_sim.py), at 100, 1000 and 10000 requests per minute, for the shipped example
policy unmodified and for the defaults a user gets with an empty RiskPolicy. It prints, per
policy, scenario and traffic: how often the version was promoted, rolled back (and in which
stage) or stopped by the budget, the median and p90 time to full promotion, the median time to
rollback, when the plan first showed in status, and each target of issue 10 as met / not met.
Asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))

import yaml  # noqa: E402

from bench.rollout_sim import Outcome, Version, latency_bins, run_rollout  # noqa: E402
from bench.scenarios import BASE_ERROR  # noqa: E402
from vigil.api.common import parse_duration  # noqa: E402
from vigil.api.gates import MetricKind  # noqa: E402
from vigil.api.policy import RiskPolicySpec  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "manifests" / "examples" / "riskpolicy.yaml"
RATES = (100, 1000, 10000)


def policies() -> dict[str, RiskPolicySpec]:
    example = RiskPolicySpec.model_validate(yaml.safe_load(EXAMPLE.read_text())["spec"])
    return {"example": example, "defaults": RiskPolicySpec()}


SCENARIOS: dict[str, Version] = {
    "healthy": Version(),
    "benign (errors x1.05, p99 x1.05)": Version(error=BASE_ERROR * 1.05, latency=latency_bins(1.05)),
    "errors x1.5 (regression margin)": Version(error=BASE_ERROR * 1.5),
    "p99 +30% (regression margin)": Version(latency=latency_bins(1.3)),
    "errors x2": Version(error=BASE_ERROR * 2),
}


def bake_sum(policy: RiskPolicySpec) -> float:
    """Minutes the policy's shadow and bake times add up to: the least a rollout can take."""
    minutes = len(policy.steps) * parse_duration(policy.bake_time).total_seconds() / 60
    if policy.shadow.enabled:
        minutes += parse_duration(policy.shadow.duration).total_seconds() / 60
    if policy.holdback:
        minutes += parse_duration(policy.holdback.bake_time).total_seconds() / 60
    return minutes


@dataclass(frozen=True)
class Cell:
    policy: str
    scenario: str
    rpm: int
    outcomes: tuple[Outcome, ...]

    def share(self, end: str, stage: str | None = None) -> float:
        hits = [o for o in self.outcomes if o.end == end and (stage is None or o.rolled_back_in == stage)]
        return len(hits) / len(self.outcomes)

    def times(self, end: str) -> np.ndarray:
        return np.array([o.minutes for o in self.outcomes if o.end == end and o.minutes is not None], dtype=float)

    def quantile(self, end: str, q: float) -> float:
        t = self.times(end)
        return float(np.quantile(t, q)) if t.size else float("nan")


def _one(args: tuple[str, str, int, int]) -> tuple[str, str, int, Outcome]:
    name, scenario, rpm, seed = args
    policy = policies()[name]
    return name, scenario, rpm, run_rollout(policy, SCENARIOS[scenario], rpm, seed)


def oracle_sprt_minutes(policy: RiskPolicySpec, rpm: int, ratio: float, reps: int, seed: int) -> np.ndarray:
    """Wald's SPRT that knows the truth (canary errors `ratio` x baseline) against the gate's
    tolerance boundary at the deployed per-gate alpha, on the canary weights the policy's
    steps would give (one step per bake time), from the first minute of canary traffic.
    The baseline's rate cancels: each error lands in the canary with probability a rho/(a rho + 1)."""
    rng = np.random.default_rng(seed)
    bake = int(parse_duration(policy.bake_time).total_seconds() // 60)
    minutes = 240
    weights = np.array([policy.steps[min(t // bake, len(policy.steps) - 1)] / 100 for t in range(minutes)])
    n_c = rng.poisson(rpm * weights, size=(reps, minutes))
    n_b = rng.poisson(rpm * (1 - weights), size=(reps, minutes))
    x_c, x_b = rng.binomial(n_c, BASE_ERROR * ratio), rng.binomial(n_b, BASE_ERROR)
    gate = next(g for g in policy.gates if g.metric is MetricKind.ERROR_RATE)
    from vigil.core.plan import gate_alpha

    alpha = gate_alpha(policy)
    a = np.where(n_b > 0, n_c / np.maximum(n_b, 1), 0.0)

    def theta(rho: float) -> np.ndarray:
        return a * rho / (a * rho + 1)

    t1, t0 = theta(ratio), theta(1 + gate.tolerance)
    with np.errstate(divide="ignore", invalid="ignore"):
        llr = np.where(a > 0, x_c * np.log(t1 / t0) + x_b * np.log((1 - t1) / (1 - t0)), 0.0)
    crossed = np.cumsum(llr, axis=1) >= np.log(1 / alpha)
    return np.where(crossed.any(axis=1), crossed.argmax(axis=1) + 1.0, np.inf)


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def _min(x: float) -> str:
    return "-" if not np.isfinite(x) else f"{x:.0f}"


def gated(policy: RiskPolicySpec, scenario: str) -> bool:
    """Whether the policy has the gate a regression scenario regresses."""
    metric = "latencyP99" if scenario.startswith("p99") else "errorRate"
    return any(g.metric.value == metric for g in policy.gates)


def verdicts(cell: Cell, policy: RiskPolicySpec) -> list[str]:
    """Issue 10's targets for the example policy, each met / not met with its figure (the
    defaults get the figures, and the one target about a canary step without shadow)."""
    base = bake_sum(policy)
    out: list[str] = []
    if cell.policy != "example":
        return out
    if cell.scenario == "healthy" and cell.rpm == 1000:
        med, p90 = cell.quantile("promoted", 0.5), cell.quantile("promoted", 0.9)
        promoted = cell.share("promoted")
        ok = promoted >= 0.5 and med <= 1.25 * base and (promoted >= 0.9 and p90 <= 1.5 * base)
        out.append(f"healthy 1000/min: median {_min(med)} <= {1.25 * base:.0f} and p90 {_min(p90)} <= {1.5 * base:.0f} min: "
                   f"{'met' if ok else 'not met'}")
    if cell.scenario == "healthy" and cell.rpm == 100:
        within = np.mean([o.end == "promoted" and (o.minutes or 1e9) <= 240 or o.end == "budget" for o in cell.outcomes])
        shown = np.mean([o.plan_at is not None for o in cell.outcomes])
        out.append(f"healthy 100/min: promoted within 4 h or stopped by the budget in {_pct(within)}, plan shown in "
                   f"{_pct(shown)}: {'met' if within == 1 and shown == 1 else 'not met'}")
    if cell.scenario.startswith("benign") and cell.rpm == 1000:
        fast = np.mean([o.end == "promoted" and (o.minutes or 1e9) <= 2 * base for o in cell.outcomes])
        out.append(f"benign: promoted within {2 * base:.0f} min in {_pct(fast)} (>= 90%): {'met' if fast >= 0.9 else 'not met'}")
    if "regression margin" in cell.scenario and gated(policy, cell.scenario):
        p = cell.share("promoted")
        out.append(f"{cell.scenario} at {cell.rpm}/min promoted in {_pct(p)} (<= 5%): {'met' if p <= 0.05 else 'not met'}")
    if cell.scenario == "errors x2" and cell.rpm == 1000 and policy.shadow.enabled:
        s = cell.share("rolled-back", "shadow")
        out.append(f"errors x2 rolled back during shadow in {_pct(s)} (>= 95%): {'met' if s >= 0.95 else 'not met'}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=40)
    parser.add_argument("--quick", action="store_true", help="a few rollouts per cell")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--policy", action="append", choices=list(policies()), help="only these policies")
    parser.add_argument("--scenario", action="append", choices=list(SCENARIOS), help="only these scenarios")
    parser.add_argument("--rate", action="append", type=int, choices=RATES, help="only these traffic levels")
    args = parser.parse_args()
    reps = 3 if args.quick else args.reps
    pols = {k: v for k, v in policies().items() if not args.policy or k in args.policy}
    scenarios = [s for s in SCENARIOS if not args.scenario or s in args.scenario]
    rates = [r for r in RATES if not args.rate or r in args.rate]
    jobs = [(p, s, rpm, 1000 * i + rpm) for p in pols for s in scenarios for rpm in rates for i in range(reps)]
    started = time.perf_counter()
    results: dict[tuple[str, str, int], list[Outcome]] = {}
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        for name, scenario, rpm, outcome in pool.map(_one, jobs, chunksize=2):
            results.setdefault((name, scenario, rpm), []).append(outcome)
    print(f"# Rollout benchmark: {reps} rollouts per cell, {time.perf_counter() - started:.0f} s\n")
    for name, policy in pols.items():
        print(f"## Policy: {name} (shadow and bake times add up to {bake_sum(policy):.0f} min; budget "
              f"{policy.budget.max_duration}, on expiry {policy.budget.on_expiry.value})\n")
        print("| scenario | req/min | promoted | rolled back (in shadow) | stopped by budget | promotion median / p90 min "
              "| rollback median min | plan shown at min |")
        print("|---|---|---|---|---|---|---|---|")
        notes = []
        for scenario in scenarios:
            for rpm in rates:
                cell = Cell(name, scenario, rpm, tuple(results[(name, scenario, rpm)]))
                plan_at = [o.plan_at for o in cell.outcomes if o.plan_at is not None]
                print(f"| {scenario} | {rpm} | {_pct(cell.share('promoted'))} | {_pct(cell.share('rolled-back'))} "
                      f"({_pct(cell.share('rolled-back', 'shadow'))}) | {_pct(cell.share('budget'))} | "
                      f"{_min(cell.quantile('promoted', 0.5))} / {_min(cell.quantile('promoted', 0.9))} | "
                      f"{_min(cell.quantile('rolled-back', 0.5))} | {_min(float(np.median(plan_at)) if plan_at else np.inf)} |")
                notes += verdicts(cell, policy)
                if scenario == "errors x2" and rpm == 1000 and not policy.shadow.enabled:
                    oracle = oracle_sprt_minutes(policy, rpm, 2.0, 4000, seed=7)
                    ours = cell.quantile("rolled-back", 0.5)
                    ratio = ours / float(np.median(oracle))
                    notes.append(f"errors x2 at a {policy.steps[0]}% step, 1000/min: median time to rollback {_min(ours)} min, "
                                 f"oracle SPRT {np.median(oracle):.0f} min, ratio {ratio:.2f} (<= 1.3): "
                                 f"{'met' if ratio <= 1.3 else 'not met'}")
        print()
        for note in notes:
            print(f"- {note}")
        print()


if __name__ == "__main__":
    main()
