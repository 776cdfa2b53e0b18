"""Benchmark: Vigil's sequential analysis against the canary judges in use, family by family.

    python bench/analysis_bench.py            # full run: 2000 rollouts per cell
    python bench/analysis_bench.py --quick    # smoke run: 100 per cell (well under 2 minutes)

Every method judges the same simulated rollouts (seeded, vectorised) of the shipped example
RiskPolicy as it deploys: its canary steps and bake time, its gates, margins and
false-rollback budget. For each scenario family and traffic level it prints one markdown
table with a row per method, marks each of issue 11's targets "met" or "not met" with the
figure, and ends with the targets at a glance. It asserts nothing: it reports.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: make `bench` and `vigil` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))

from vigil.stats.evidence import FAIL, PASS

from bench.methods import ORACLE, first_decision, methods
from bench.scenarios import RATES, Policy, Scenario, example_policy, scenarios
from bench.simulate import simulate

FALSE_ROLLBACK_MAX = 0.05
CAUGHT_MIN = 0.95
CAUGHT_RPM = 1000
LATE_MEDIAN_MAX = 25.0
ORACLE_RATIO_MAX = 1.3


@dataclass
class Row:
    """One method on one family at one traffic level (times in minutes, from the onset)."""

    key: str
    scenario: str
    rpm: int
    method: str
    healthy: bool
    rolled_back: float
    false_rollback: float | None  # healthy families; late onset: rolled back before the onset
    caught: float | None  # regressions: rolled back within the target after the onset
    median: float
    p90: float
    mean: float
    promoted: float
    mean_rollback: float  # mean time to rollback after the onset, a miss counted as the rest of the horizon
    targets: list[tuple[str, bool, str, float]] = field(default_factory=list)  # name, met, figure, miss size


def quantile(x: np.ndarray, q: float) -> float:
    return float(np.quantile(x, q, method="inverted_cdf"))


def summarise(s: Scenario, rpm: int, method: str, codes: np.ndarray) -> Row:
    kind, minute = first_decision(codes)
    T = codes.shape[1]
    rest = T - s.onset
    before = np.isfinite(minute) & (minute <= s.onset) & (kind == FAIL)
    fail_after = np.where((kind == FAIL) & ~before, minute - s.onset, np.inf)
    decided = np.where(before, np.inf, minute - s.onset)  # a false rollback is not a decision about the change
    caught = None if s.healthy else float((fail_after <= (s.target or rest)).mean())
    false_rb = float(before.mean()) if s.onset else (float((kind == FAIL).mean()) if s.healthy else None)
    return Row(
        s.key, s.name, rpm, method, s.healthy,
        rolled_back=float((kind == FAIL).mean()), false_rollback=false_rb, caught=caught,
        median=quantile(decided, 0.5), p90=quantile(decided, 0.9), mean=float(np.minimum(decided, rest).mean()),
        promoted=float((kind == PASS).mean()), mean_rollback=float(np.minimum(fail_after, rest).mean()),
    )


def judge(rows: list[Row], s: Scenario, rpm: int, policy: Policy) -> None:
    """Attach issue 11's targets that apply to this cell to each row."""
    oracle = next((r for r in rows if r.method == ORACLE), None)
    for r in rows:
        if r.method == ORACLE:
            continue
        if r.false_rollback is not None:
            r.targets.append((f"false rollback <= {FALSE_ROLLBACK_MAX:.0%}", r.false_rollback <= FALSE_ROLLBACK_MAX,
                              f"{100 * r.false_rollback:.1f}%", r.false_rollback))
        if s.boundary:
            r.targets.append((f"at tolerance: rolled back <= alpha ({policy.alpha:.0%})", r.rolled_back <= policy.alpha,
                              f"{100 * r.rolled_back:.1f}%", r.rolled_back))
        if not s.healthy and s.target and not s.onset and rpm == CAUGHT_RPM:
            what = "regression at the margin" if s.at_margin else "rare-bucket change"
            r.targets.append((f"{what} caught >= {CAUGHT_MIN:.0%} within {s.target} min at {CAUGHT_RPM}/min",
                              r.caught >= CAUGHT_MIN, f"{100 * r.caught:.1f}%", -r.caught))
        if s.onset:
            r.targets.append((f"late onset: median detection <= {LATE_MEDIAN_MAX:.0f} min", r.median <= LATE_MEDIAN_MAX,
                              minutes(r.median), r.median))
        if oracle is not None and oracle.mean_rollback > 0:
            ratio = r.mean_rollback / oracle.mean_rollback
            r.targets.append((f"mean time to rollback <= {ORACLE_RATIO_MAX:g}x oracle", ratio <= ORACLE_RATIO_MAX,
                              f"{ratio:.2f}x", ratio))


def qualify_speed(rows: list[Row]) -> None:
    """A fast rollback is only worth something from a method that leaves healthy canaries
    alone: the time-ratio target counts as met only where the same method keeps false
    rollback within target on A/A at the same traffic."""
    aa = {(r.method, r.rpm): r.false_rollback for r in rows if r.key == "aa" and r.false_rollback is not None}
    for r in rows:
        for i, (name, ok, fig, size) in enumerate(r.targets):
            fr = aa.get((r.method, r.rpm))
            if name.startswith("mean time to rollback") and fr is not None and fr > FALSE_ROLLBACK_MAX:
                r.targets[i] = (name, False, f"{fig}, but {100 * fr:.0f}% A/A FR", np.inf)


def run_cell(s: Scenario, rpm: int, reps: int, seed: int, policy: Policy) -> list[Row]:
    counts = simulate(s, rpm, reps, seed)
    rows = [summarise(s, rpm, name, codes) for name, codes in methods(s, counts, policy).items()]
    judge(rows, s, rpm, policy)
    return rows


def minutes(value: float) -> str:
    return "never" if not np.isfinite(value) else f"{value:.0f}"


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


CODES = (("false rollback", "FR"), ("at tolerance", "TOL"), ("regression at the margin", "REG"),
         ("rare-bucket", "RARE"), ("late onset", "LATE"), ("mean time to rollback", "SPEED"))


def code(name: str) -> str:
    return next((c for prefix, c in CODES if name.startswith(prefix)), name)


def verdicts(r: Row) -> str:
    """Compact marks per row (the legend is printed above the tables)."""
    if r.method == ORACLE:
        return "reference"
    return "; ".join(f"{code(name)} {'met' if ok else 'not met'} ({fig})" for name, ok, fig, _ in r.targets) or "-"


def legend(policy: Policy) -> str:
    return ("Targets (issue 11): FR = false rollback <= 5% per rollout (healthy families; before the onset for a "
            f"late onset); TOL = a change exactly at the tolerance rolled back <= alpha ({policy.alpha:.0%}); "
            f"REG = a regression at the regression margin caught >= 95% within 45 min at {CAUGHT_RPM} req/min; "
            f"RARE = the same for the rare-bucket change; LATE = late onset detected in a median <= "
            f"{LATE_MEDIAN_MAX:.0f} min; SPEED = mean time to rollback <= {ORACLE_RATIO_MAX:g}x the oracle SPRT's "
            "(met only where the method's A/A false rollback at that traffic is within target).")


HEADER = ("| req/min | method | false rollback % | caught in target % | rolled back % | median | p90 | mean "
          "| promoted % | targets |")


def table(rows: list[Row]) -> str:
    lines = [HEADER, "|" + "---|" * 10]
    for r in rows:
        lines.append(f"| {r.rpm} | {r.method} | {pct(r.false_rollback)} | {pct(r.caught)} | {pct(r.rolled_back)} | "
                     f"{minutes(r.median)} | {minutes(r.p90)} | {r.mean:.1f} | {pct(r.promoted)} | {verdicts(r)} |")
    return "\n".join(lines)


def glance(rows: list[Row]) -> str:
    """One line per target, one column per method: met everywhere, or the worst miss."""
    names = list(dict.fromkeys(r.method for r in rows if r.method != ORACLE))
    groups: dict[str, dict[str, list[tuple[bool, str, str, float]]]] = {}
    for r in rows:
        for name, ok, fig, size in r.targets:
            general = name
            if name.startswith("false rollback"):
                general = name + (" (before a late onset)" if r.key == "late-onset" else " in every healthy family")
            groups.setdefault(general, {}).setdefault(r.method, []).append((ok, fig, f"{r.key}@{r.rpm}", size))
    lines = ["| target | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for target, by_method in groups.items():
        cells = []
        for m in names:
            results = by_method.get(m, [])
            if not results:
                cells.append("-")
                continue
            misses = [x for x in results if not x[0]]
            if misses:
                worst = max(misses, key=lambda x: x[3])
                cells.append(f"not met in {len(misses)}/{len(results)} cells (worst {worst[1]}, {worst[2]})")
            else:
                cells.append(f"met ({len(results)} cells)")
        lines.append(f"| {target} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 100 rollouts per cell")
    parser.add_argument("--reps", type=int, default=None, help="rollouts per cell (default 2000)")
    parser.add_argument("--seed", type=int, default=20261201)
    parser.add_argument("--only", help="comma-separated family keys (aa, bursts3, errors-reg, late-onset, ...)")
    parser.add_argument("--rates", help="comma-separated request rates per minute (default 100,1000,10000)")
    parser.add_argument("--output", type=Path, help="also write the markdown to this file")
    args = parser.parse_args(argv)
    reps = args.reps or (100 if args.quick else 2000)
    rates = tuple(int(r) for r in args.rates.split(",")) if args.rates else RATES
    only = set(args.only.split(",")) if args.only else None
    policy = example_policy()
    started = time.perf_counter()
    sections = [(
        f"Rollouts per cell: {reps}. Policy: `manifests/examples/riskpolicy.yaml` as deployed: steps "
        f"{'/'.join(map(str, policy.steps))}% with {policy.bake} min bake, an analysis every {policy.interval} min, "
        f"alpha {policy.alpha:.2f} per rollout split over its {len(policy.gates)} gates "
        f"({policy.alpha_gate:.4f} each, for every statistical method). Times in minutes from the start "
        f"(from the onset for a late onset); mean counts an undecided run as the rest of the horizon; "
        f"'caught in target' = rolled back within the family's target time."), legend(policy)]
    all_rows: list[Row] = []
    for i, s in enumerate(scenarios(policy)):
        if only and s.key not in only:
            continue
        rows: list[Row] = []
        for rpm in rates:
            rows += run_cell(s, rpm, reps, args.seed + 1000 * i + rpm, policy)
        all_rows += rows
        print(f"... {s.key} done at {time.perf_counter() - started:.0f}s", file=sys.stderr, flush=True)
    qualify_speed(all_rows)
    for i, s in enumerate(scenarios(policy)):
        rows = [r for r in all_rows if r.key == s.key]
        if rows:
            kind = "healthy" if s.healthy else f"regression, target {s.target} min"
            sections.append(f"### {s.name} (`{s.key}`, {kind}, horizon {s.minutes} min, gates: {', '.join(s.gates)})"
                            f"\n\n{table(rows)}")
    sections.append(f"### Targets at a glance\n\n{glance(all_rows)}")
    sections.append(f"Benchmark wall time: {time.perf_counter() - started:.0f} s.")
    text = "\n\n".join(sections) + "\n"
    print(text)
    if args.output:
        args.output.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
