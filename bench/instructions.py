"""Instructions per `analyze` call, counted by valgrind: a figure of the analysis's own work that
does not move with the host.

    python bench/instructions.py                  # the canary stage and whole rollouts
    python bench/instructions.py --calls 20       # fewer calls: quicker, as exact per call
    python bench/instructions.py --tree ../other  # the same workloads on another checkout (A/B)

Why: this host's speed swings by up to 2.5x between sessions and 1.7x within minutes (the fixed
reference workload of `bench/timing.time_reference` has measured 3.5 us a step one day and 6.5 to
9.7 us the next, on an idle machine), so CPU seconds cannot tell a 3% saving from the host
drifting, and a paired timing needs tens of processes to bound it. The instructions a workload
executes are the same on every run: an A/B of two trees takes two counts, and a change of a few
tenths of a percent shows. They are a proxy for time, not time: a libm log1p counts about 60
instructions and a cache miss none, so the CPU figures of bench/timing.py and the scale bench stay
the ones held to the target; this one says whether a change of code made the analysis do less.

Each workload runs in a child under `valgrind --tool=callgrind --instr-atstart=no`: the imports,
the simulated windows and the warm-up run uninstrumented, the child switches counting on
(`callgrind_control -i on`) just before its measured calls and off after them, and callgrind's
total is divided by the calls:

* canary: `bench.timing.as_deployed("canary")` on the 30-minute window of `bench.timing.window`,
  each call on fresh panel objects (what `time_analyze` times);
* rollouts: every `calls`-th analysis (evenly spread) of three whole healthy rollouts under the
  example policy at 1000 req/min, replayed on fresh copies of their windows (what
  `time_rollouts` times, without the completions of the recorded decisions).

Needs valgrind (Debian's `valgrind` package; the machine image has it). Asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WORKLOADS = ("canary", "rollouts")


def count(workload: str, calls: int, tree: Path = ROOT) -> float:
    """Instructions per analysis of `workload` on the checkout at `tree` (valgrind's count)."""
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise SystemExit("bench/instructions.py needs valgrind (apt-get install valgrind)")
    python = os.path.realpath(sys.executable)  # valgrind follows no exec: a pyenv shim is a shell script
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--callgrind-out-file=/dev/null",
         python, str(Path(__file__).resolve()), "--child", workload, "--calls", str(calls), "--tree", str(tree)],
        capture_output=True, text=True, cwd=tree,
        env={**os.environ, "PYTHONPATH": "", "PYTHONHASHSEED": "0"})  # one hash order, one count
    if out.returncode != 0:
        raise SystemExit(f"the {workload} count failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
    total = re.search(r"Collected\s*:\s*(\d+)", out.stderr)
    measured = re.search(r"measured (\d+) calls", out.stdout)
    if total is None or measured is None:
        raise SystemExit(f"no count in valgrind's output:\n{out.stderr[-2000:]}")
    return int(total.group(1)) / int(measured.group(1))


def _requests(workload: str, calls: int) -> list[tuple[Any, Any, dict[str, Any]]]:
    """The analyses to replay: (gates, window, keyword arguments) each (in the child)."""
    from bench.timing import as_deployed, fresh, healthy_rollouts, window

    if workload == "canary":
        kwargs = as_deployed("canary")
        gates = kwargs.pop("gates")
        data = window(30)
        return [(gates, data, {**kwargs, "expected_canary_share": 0.1})] * calls
    captured: list[tuple[Any, Any, dict[str, Any]]] = []

    def grab(plain: Any, gates: Any, data: Any, **kwargs: Any) -> Any:
        captured.append((gates, fresh(data), kwargs))
        return plain(gates, data, **kwargs)

    healthy_rollouts(grab, lambda complete, analysis: complete(analysis))
    step = max(len(captured) // calls, 1)
    return captured[::step][:calls]


def _child(workload: str, calls: int, tree: Path) -> None:
    """Runs under valgrind: builds the workload uncounted, counts only the analyses."""
    sys.path[:0] = [str(tree), str(tree / "operator")]
    from bench.timing import fresh
    from vigil.stats import analyze

    requests = _requests(workload, calls)
    for gates, data, kwargs in requests[:2]:
        analyze(gates, fresh(data), **kwargs)  # module caches warm, as in a running operator
    copies = [(gates, fresh(data), kwargs) for gates, data, kwargs in requests]
    switch = ["callgrind_control", "-i"]
    subprocess.run([*switch, "on", str(os.getpid())], check=True, capture_output=True)
    for gates, data, kwargs in copies:
        analyze(gates, data, **kwargs)
    subprocess.run([*switch, "off", str(os.getpid())], check=True, capture_output=True)
    print(f"measured {len(copies)} calls")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=40, help="analyses counted per workload")
    parser.add_argument("--tree", type=Path, default=ROOT, help="the checkout whose analysis is counted")
    parser.add_argument("--workload", choices=WORKLOADS, action="append", help="default: both")
    parser.add_argument("--child", choices=WORKLOADS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.calls, args.tree.resolve())
        return
    for workload in args.workload or WORKLOADS:
        per = count(workload, args.calls, args.tree.resolve())
        print(f"{workload}: {per / 1e6:.3f} M instructions per analysis ({args.calls} analyses, {args.tree})")


if __name__ == "__main__":
    main()
