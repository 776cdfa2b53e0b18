"""Benchmark: Vigil's sequential analysis against the canary judges in common use.

    python bench/analysis_bench.py            # full run: 2000 reps per cell (several minutes)
    python bench/analysis_bench.py --quick    # smoke run (< 60 s)

Simulates rollouts minute by minute (seeded), checks every minute for 60 minutes at a 10%
canary weight, and prints one markdown table per scenario family, then the time one
`analyze` call takes. Asserts nothing: it reports.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: make `bench` and `vigil` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))

from bench.methods import COMPARATORS, FAMILIES, first_decision, harm, vigil  # noqa: E402
from bench.scenarios import Scenario, scenarios  # noqa: E402
from bench.simulate import MINUTES, simulate  # noqa: E402
from bench.timing import time_analyze  # noqa: E402
from vigil.stats.evidence import FAIL, PASS  # noqa: E402

RATES = (200, 1000, 5000)


@dataclass(frozen=True)
class Row:
    scenario: str
    rpm: int
    method: str
    rollback: float
    within_target: float | None
    median_ttd: float
    p90_ttd: float
    mean_ttd: float
    bad: float
    inconclusive: float | None
    passed: float | None
    median_pass: float | None


def summarise(scenario: Scenario, rpm: int, method: str, codes: np.ndarray, hurt: np.ndarray,
              can_pass: bool) -> Row:
    kind, minute = first_decision(codes)
    has = np.isfinite(minute)
    fail_at = np.where(kind == FAIL, minute, np.inf)
    pass_at = np.where(kind == PASS, minute, np.inf)
    stop = np.where(has, minute - 1, codes.shape[1] - 1).astype(int)
    bad = np.cumsum(hurt, axis=1)[np.arange(codes.shape[0]), stop]
    return Row(
        scenario.name, rpm, method,
        rollback=float(np.isfinite(fail_at).mean()),
        within_target=float((fail_at <= scenario.target).mean()) if scenario.target else None,
        median_ttd=float(np.quantile(fail_at, 0.5, method="inverted_cdf")),
        p90_ttd=float(np.quantile(fail_at, 0.9, method="inverted_cdf")),
        mean_ttd=float(np.minimum(fail_at, MINUTES).mean()),
        bad=float(np.median(bad)),
        inconclusive=float((~has).mean()) if can_pass else None,
        passed=float(np.isfinite(pass_at).mean()) if can_pass else None,
        median_pass=float(np.quantile(pass_at, 0.5, method="inverted_cdf")) if can_pass else None,
    )


def run_cell(scenario: Scenario, rpm: int, reps: int, seed: int) -> list[Row]:
    counts = simulate(scenario, rpm, reps, seed)
    hurt = harm(scenario, counts)
    rows = [summarise(scenario, rpm, "**Vigil**", vigil(scenario.family, counts), hurt, True)]
    if scenario.family != "all":
        for name, codes in COMPARATORS[scenario.family](scenario, counts).items():
            rows.append(summarise(scenario, rpm, name, codes, hurt, False))
    return rows


def minutes(value: float | None) -> str:
    if value is None:
        return "-"
    return ">60" if not np.isfinite(value) else f"{value:.0f}"


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


HEADER = ("| scenario | req/min | method | rollback % | within target % | median TTD | p90 TTD | mean TTD | "
          "bad req. | inconclusive % | passed % | median time to Pass |")


def table(rows: list[Row]) -> str:
    lines = [HEADER, "|" + "---|" * 12]
    for r in rows:
        lines.append(
            f"| {r.scenario} | {r.rpm} | {r.method} | {pct(r.rollback)} | {pct(r.within_target)} | {minutes(r.median_ttd)} | "
            f"{minutes(r.p90_ttd)} | {r.mean_ttd:.1f} | {r.bad:.0f} | {pct(r.inconclusive)} | "
            f"{pct(r.passed)} | {minutes(r.median_pass)} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: few reps, 1000 req/min only")
    parser.add_argument("--reps", type=int, default=None, help="repetitions per cell (default 2000)")
    parser.add_argument("--seed", type=int, default=20240501)
    parser.add_argument("--only", help="run only scenarios of this family (errorRate, latencyP99, ...)")
    parser.add_argument("--rates", help="comma-separated request rates per minute (default 200,1000,5000)")
    parser.add_argument("--output", type=Path, help="also write the markdown to this file")
    args = parser.parse_args(argv)
    reps = args.reps or (100 if args.quick else 2000)
    rates = (1000,) if args.quick else RATES
    if args.rates:
        rates = tuple(int(r) for r in args.rates.split(","))
    started = time.perf_counter()
    sections = [f"Reps per cell: {reps}; canary weight 10% unless stated; a check every minute for "
                f"{MINUTES} minutes; alpha 0.05 per rollout; TTD = minutes to rollback."]
    by_family: dict[str, list[Row]] = {}
    for i, scenario in enumerate(scenarios()):
        if args.only and scenario.family != args.only:
            continue
        for rpm in rates:
            rows = run_cell(scenario, rpm, reps, seed=args.seed + 1000 * i + rpm)
            by_family.setdefault(scenario.family, []).extend(rows)
        print(f"... {scenario.family}: {scenario.name} done at {time.perf_counter() - started:.0f}s",
              file=sys.stderr, flush=True)
    for family in ("all", *FAMILIES):
        if family in by_family:
            sections.append(f"### {family}\n\n{table(by_family[family])}")
    per_call, per_1000 = time_analyze(calls=50 if args.quick else 1000)
    sections.append(f"### cost\n\nOne `analyze` call (7 gates, 2 pods, 30-minute window, 1-minute steps): "
                    f"{1000 * per_call:.1f} ms; 1000 ModelDeployments: {per_1000:.1f} s per analysis round "
                    f"(single core).\n\nBenchmark wall time: {time.perf_counter() - started:.0f} s.")
    text = "\n\n".join(sections) + "\n"
    print(text)
    if args.output:
        args.output.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
