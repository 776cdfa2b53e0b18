"""Where an analysis round goes, and what each remaining lever would save (issue 13).

    python bench/analysis_levers.py            # 3 seeds, 12 alternations per lever
    python bench/analysis_levers.py --runs 20  # more alternations on a noisy host

The analyses are those of whole rollouts of a healthy v2 under the shipped example policy at
1000 req/min (bench/rollout_sim.py through the real `decide`, as bench/timing.time_rollouts runs
them), captured once and replayed on fresh panel objects, so every lever is measured on the same
calls. Prints:

* the share of the round by stage (holdback, canary steps, shadow) and for the completions of
  recorded decisions, with each stage's CPU per call;
* each stage's CPU by part: the gates' evidence, their intervals and rate bounds, the projections,
  and the rest (reading the counters, the verdicts' other figures and explanations);
* for each lever, the round's CPU against the code as it is: both replayed alternately in this
  process, the ratio of each pair, and the median ratio (the host's speed swings within minutes,
  so absolute figures from different moments do not compare; a pair's ratio does). A lever
  replaces a part by a constant, so it measures what that part costs, not a finished change:
  what each would cost users is in docs/benchmarks/operator_scale.md;
* whether each gate's evidence is batch-invariant (each row of a call on 16 stacked windows of
  one length equal to that window's own call, bit for bit) and what a model costs in such a batch
  against alone, and the same cost for the error-rate gate's projected path: what batching
  analyses on a common tick would build on;
* a fleet's round computed together: 48 whole rollouts started at the density of a 1000-model
  fleet, side by side through the real `decide`, each minute's analyses by one `analyze_many`
  against each alone (bench/timing.time_fleet; the operator does not batch yet);
* with numba importable (it is not a dependency), the memory it adds and a jitted rate-ratio
  mixture against numpy's.

Asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import statistics
import sys
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))

import numpy as np

from bench.timing import fresh, healthy_rollouts, time_fleet
from vigil.api.gates import MetricKind
from vigil.stats.result import Analysis, Plan

A = importlib.import_module("vigil.stats.analyze")
RATES = importlib.import_module("vigil.stats.rates")
LATENCY = importlib.import_module("vigil.stats.latency")
DRIFT = importlib.import_module("vigil.stats.drift")
PLAN = importlib.import_module("vigil.stats.plan")
CALIBRATION = importlib.import_module("vigil.stats.calibration")
FAIRNESS = importlib.import_module("vigil.stats.fairness")

Call = tuple[list[Any], dict[Any, Any], dict[str, Any], bool]
"""(gates, data, keyword arguments, completed: the decision was recorded)."""


def stage_of(kwargs: dict[str, Any], gates: list[Any]) -> str:
    """The rollout stage an analysis was made in: holdback needs no Pass, shadow judges shadowDisagreement."""
    if not kwargs.get("pass_needed", True):
        return "holdback"
    return "shadow" if any(g.metric is MetricKind.SHADOW_DISAGREEMENT for g in gates) else "canary steps"


def capture(seeds: int, rpm: float = 1000.0) -> list[Call]:
    """Every analysis of `seeds` whole rollouts, with whether its decision was recorded."""
    calls: list[Call] = []
    made: dict[int, int] = {}
    kept: list[Analysis] = []  # alive until the end, so no id is reused

    def recording(plain: Callable[..., Any], gates: Any, data: Any, **kwargs: Any) -> Any:
        result = plain(gates, data, **kwargs)
        kept.append(result)
        made[id(result)] = len(calls)
        calls.append((list(gates), fresh(data), kwargs, False))
        return result

    def completing(complete: Callable[[Analysis], Analysis], analysis: Analysis) -> Analysis:
        if id(analysis) in made:
            g, d, k, _ = calls[made[id(analysis)]]
            calls[made[id(analysis)]] = (g, d, k, True)
        return complete(analysis)

    healthy_rollouts(recording, completing, rpm, seeds)
    return calls


def replay(calls: list[Call], split: dict[str, list[float]] | None = None) -> float:
    """CPU seconds per analysis of the calls on fresh panels (completions where recorded)."""
    jobs = [(g, fresh(d), k, done) for g, d, k, done in calls]
    total = 0.0
    for gates, data, kwargs, done in jobs:
        started = time.thread_time()
        result = A.analyze(gates, data, **kwargs)
        middle = time.thread_time()
        if done:
            result.complete()
        ended = time.thread_time()
        total += ended - started
        if split is not None:
            split[stage_of(kwargs, gates)].append(middle - started)
            if done:
                split["completions of recorded decisions"].append(ended - middle)
    return total / max(len(jobs), 1)


@contextlib.contextmanager
def patched(replacements: dict[tuple[Any, str], Any]) -> Iterator[None]:
    saved = {key: getattr(*key) for key in replacements}
    for (module, name), value in replacements.items():
        setattr(module, name, value)
    try:
        yield
    finally:
        for (module, name), value in saved.items():
            setattr(module, name, value)


def _no_interval(*_: Any, **__: Any) -> tuple[float, float]:
    return 0.9, 1.1


def _no_plan(_gate: Any, _data: Any, _th: Any, horizon_s: float, *_: Any, **__: Any) -> Plan:
    return Plan(horizon_s)


def _coarse_grid(points: int) -> Callable[[], contextlib.AbstractContextManager[None]]:
    @contextlib.contextmanager
    def grid() -> Iterator[None]:
        saved = PLAN.PLAN_POINTS
        PLAN.PLAN_POINTS = points
        PLAN._ends.cache_clear(), PLAN._widths.cache_clear()
        try:
            yield
        finally:
            PLAN.PLAN_POINTS = saved
            PLAN._ends.cache_clear(), PLAN._widths.cache_clear()
    return grid


_NULL = contextlib.nullcontext()


@contextlib.contextmanager
def _without_errstate() -> Iterator[None]:
    """Every `np.errstate` a no-op (its warnings, which change no value, silenced here instead)."""
    with warnings.catch_warnings(), patched({(np, "errstate"): lambda **_: _NULL}):
        warnings.simplefilter("ignore", RuntimeWarning)
        yield

INTERVALS = {(RATES, "rate_ratio_interval"): _no_interval, (LATENCY, "rate_ratio_interval"): _no_interval,
             (RATES, "bernoulli_bounds"): lambda *_, **__: (0.0, 1.0), (DRIFT, "distance_interval"): _no_interval,
             (RATES, "proportion_interval"): _no_interval}
PLANS = {(A, "plan_gate"): _no_plan, (A, "time_to_pass"): _no_plan}


def levers() -> dict[str, Callable[[], contextlib.AbstractContextManager[None]]]:
    return {
        "no projection in any analysis": lambda: patched(PLANS),
        "no interval or rate bound in any analysis": lambda: patched(INTERVALS),
        "neither": lambda: patched({**PLANS, **INTERVALS}),
        "an open gate's detectable effect deferred to the record": lambda: patched(
            {(A, "status_quotes_plan"): lambda *_: False}),
        "32 projected points instead of 64": _coarse_grid(32),
        "no np.errstate context": _without_errstate,
    }


def measure_lever(calls: list[Call], lever: Callable[[], contextlib.AbstractContextManager[None]], runs: int
                  ) -> tuple[float, float, list[float]]:
    """(median CPU per analysis as is, with the lever, ratios of the pairs), alternating the order."""
    base, changed = [], []
    for run in range(runs):
        order = (False, True) if run % 2 == 0 else (True, False)
        for with_lever in order:
            if with_lever:
                with lever():
                    changed.append(replay(calls))
            else:
                base.append(replay(calls))
    ratios = [c / b for b, c in zip(base, changed)]
    return statistics.median(base), statistics.median(changed), ratios


def numba_probe() -> str:
    """Memory numba adds, and a jitted rate-ratio mixture against numpy's (if numba is importable)."""
    def rss() -> int:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) // 1024 for line in status if line.startswith("VmRSS"))

    before = rss()
    try:
        import numba  # type: ignore[import-not-found]
    except ImportError:
        return "numba is not installed (pip install numba to measure it): skipped"
    imported = rss()

    @numba.njit(cache=False)
    def jitted(xc: np.ndarray, xb: np.ndarray, a: np.ndarray, rho: np.ndarray, logw: np.ndarray) -> float:
        out = np.empty(rho.shape[0])
        for g in range(rho.shape[0]):
            s, lr = 0.0, np.log(rho[g])
            for t in range(xc.shape[0]):
                s += xc[t] * lr - (xc[t] + xb[t]) * (np.log1p(a[t] * rho[g]) - np.log1p(a[t]))
            out[g] = s + logw[g]
        top = out.max()
        return top + np.log(np.exp(out - top).sum())

    def vectorised(xc: np.ndarray, xb: np.ndarray, a: np.ndarray, rho: np.ndarray, logw: np.ndarray) -> float:
        llr = xc[:, None] * np.log(rho) - (xc + xb)[:, None] * (np.log1p(a[:, None] * rho) - np.log1p(a)[:, None])
        out = llr.sum(axis=0) + logw
        top = out.max()
        return float(top + np.log(np.exp(out - top).sum()))

    rng = np.random.default_rng(1)
    args = (rng.poisson(10, 40).astype(float), rng.poisson(100, 40).astype(float), np.full(40, 0.1),
            np.exp(np.linspace(0.0, 2.0, 33)), np.full(33, -np.log(33)))
    jitted(*args)
    compiled = rss()

    def per_call(f: Callable[..., float]) -> float:
        started = time.thread_time()
        for _ in range(5000):
            f(*args)
        return (time.thread_time() - started) / 5000 * 1e6

    return (f"numba: RSS {before} MiB -> {imported} MiB imported -> {compiled} MiB after one compiled function; "
            f"rate-ratio mixture over 40 x 33: jitted {per_call(jitted):.1f} us, numpy {per_call(vectorised):.1f} us")


PARTS: dict[str, list[tuple[Any, str]]] = {
    "gates' evidence (with change detectors)": [
        (RATES, "gate_error_evidence"), (LATENCY, "latency_evidence"), (DRIFT, "drift_evidence"),
        (CALIBRATION, "calibration_evidence"), (FAIRNESS, "fairness_evidence"), (RATES, "shadow_evidence"),
        (RATES, "error_change_log_e"), (LATENCY, "latency_change_log_e")],
    "intervals and rate bounds": [(RATES, "rate_ratio_interval"), (LATENCY, "rate_ratio_interval"),
                                  (RATES, "bernoulli_bounds"), (DRIFT, "distance_interval"),
                                  (RATES, "proportion_interval")],
    "projections (plans)": [(A, "plan_gate"), (A, "time_to_pass")],
}
"""What each part of an analysis is, as the modules that call it reference it (a projection's own
evidence calls count as projection)."""


def parts(calls: list[Call]) -> dict[str, dict[str, float]]:
    """Share of each stage's CPU (analyses only) in each of PARTS; the rest is reading the counters,
    the verdicts' other figures (totals, ratios, distances) and their explanations."""
    spent: dict[str, float] = defaultdict(float)
    inside: dict[str, int] = defaultdict(int)

    def timed(label: str, f: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            inside[label] += 1
            started = time.thread_time()
            try:
                return f(*args, **kwargs)
            finally:
                inside[label] -= 1
                if not inside[label]:
                    spent[label] += time.thread_time() - started
        return call

    out: dict[str, dict[str, float]] = {}
    by_stage: dict[str, list[Call]] = defaultdict(list)
    for call in calls:
        by_stage[stage_of(call[2], call[0])].append(call)
    replacements = {(module, name): timed(label, getattr(module, name))
                    for label, targets in PARTS.items() for module, name in targets}
    for stage, chosen in by_stage.items():
        spent.clear()
        with patched(replacements):
            per_call = replay([(g, d, k, False) for g, d, k, _ in chosen])
        total = per_call * len(chosen)
        out[stage] = {label: spent[label] / total for label in PARTS} | {"rest": 1 - sum(spent.values()) / total}
    return out


def plan_batch_probe(models: int = 16, minutes: int = 31, repeats: int = 10) -> str:
    """Per-model cost of the error-rate gate's projected path (its no-effect row and first four
    effects over the 4-hour horizon) alone and as the rows of one call for `models` windows: what
    batching projections would save. Cost only: the stacked call takes the first model's dispersion
    for all (a batch would pass one per row), so its values are not compared."""
    import math

    from bench.timing import window
    from vigil.api.gates import Gate, MetricKind
    from vigil.stats.evidence import Thresholds

    gate = Gate(metric=MetricKind.ERROR_RATE)
    th = Thresholds(alpha_fail=0.01, alpha_pass=0.05, min_samples=100)
    effects = np.concatenate([[0.0], PLAN._relative_effects(gate.tolerance)[:PLAN.FIRST_EFFECTS]])
    rows = []
    for seed in range(models):
        d = window(minutes, rpm=1000.0, seed=seed)[MetricKind.ERROR_RATE]
        _, _, widths = PLAN._grid(d.timestamps, th.horizon_s)
        (n_b, x_b), (n_c, x_c) = d.outcomes(d.baseline), d.outcomes(d.canary)
        mean_c, mean_b, p_b = float(PLAN._mean(n_c)), float(PLAN._mean(n_b)), float(x_b.sum() / n_b.sum())
        p_c = np.minimum(p_b * (1 + effects), 1.0)
        rows.append((PLAN._over(mean_c, widths, effects.size), PLAN._over(mean_c * p_c, widths, effects.size, batched=True),
                     PLAN._over(mean_b, widths, effects.size), PLAN._over(mean_b * p_b, widths, effects.size),
                     PLAN.error_dispersion(n_c, x_c, n_b, x_b)))
    reach = (math.log(1 / th.alpha_pass), th.min_samples)

    def path(*counts: np.ndarray, dispersion: float) -> Any:
        return RATES.gate_error_evidence(*counts, gate, dispersion=dispersion, reach=reach)

    stacked = [np.concatenate([row[i] for row in rows]) for i in range(4)]
    started = time.thread_time()
    for _ in range(repeats):
        for row in rows:
            path(*row[:4], dispersion=row[4])
    one = (time.thread_time() - started) / (repeats * models)
    started = time.thread_time()
    for _ in range(repeats):
        path(*stacked, dispersion=rows[0][4])
    many = (time.thread_time() - started) / (repeats * models)
    return (f"{'error-rate projection path:':28s} {1e6 * one:4.0f} us a model alone, {1e6 * many:4.0f} us as rows "
            f"of one call for {models} windows of {minutes} minutes")


def batch_probe(models: int = 16, minutes: int = 31, repeats: int = 10) -> list[str]:
    """Batch invariance and per-model cost of each gate's evidence (as its verdict computes it) on
    `models` simulated windows of one length (bench/timing.window, different seeds)."""
    from bench.timing import window
    from vigil.api.gates import Gate, MetricKind

    windows = [window(minutes, rpm=1000.0, seed=seed) for seed in range(models)]
    gate = {kind: Gate(metric=kind) for kind in MetricKind}

    def inputs(kind: MetricKind) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = []
        for w in windows:
            d = w[kind]
            if kind is MetricKind.ERROR_RATE:
                (n_b, x_b), (n_c, x_c) = d.outcomes(d.baseline), d.outcomes(d.canary)
                rows.append((n_c, x_c, n_b, x_b))
            elif kind is MetricKind.CALIBRATION:
                rows.append((*d.by_bucket(d.canary, d.buckets()), *d.by_bucket(d.baseline, d.buckets())))
            elif kind is MetricKind.FAIRNESS_GAP:
                rows.append((*d.by_group(d.canary, d.groups()), *d.by_group(d.baseline, d.groups())))
            else:
                rows.append((d.buckets(d.canary)[1], d.buckets(d.baseline)[1]))
        return rows

    first = windows[0][MetricKind.LATENCY_P99]
    edges = first.buckets(first.baseline)[0]  # the simulated servers share one bucket layout
    p99, drift = gate[MetricKind.LATENCY_P99], gate[MetricKind.PREDICTION_DRIFT]
    calibration, fairness = gate[MetricKind.CALIBRATION], gate[MetricKind.FAIRNESS_GAP]
    cases: dict[str, tuple[list[tuple[Any, ...]], Callable[..., Any]]] = {
        "error rate": (inputs(MetricKind.ERROR_RATE),
                       lambda *a: RATES.gate_error_evidence(*a, gate[MetricKind.ERROR_RATE], last=True)),
        "latency p99": (inputs(MetricKind.LATENCY_P99), lambda c, b: LATENCY.latency_evidence(
            edges, c, b, 0.99, p99.tolerance, p99.regression, last=True)),
        "prediction drift": (inputs(MetricKind.PREDICTION_DRIFT), lambda c, b: DRIFT.drift_evidence(
            c, b, drift.tolerance, regression=drift.regression, last=True)),
        "calibration": (inputs(MetricKind.CALIBRATION), lambda *a: CALIBRATION.calibration_evidence(
            *a, calibration.tolerance, regression=calibration.regression, last=True)),
        "fairness gap": (inputs(MetricKind.FAIRNESS_GAP), lambda *a: FAIRNESS.fairness_evidence(
            *a, fairness.tolerance, regression=fairness.regression, last=True)),
    }
    out = []
    for name, (rows, evidence) in cases.items():
        alone = [evidence(*row) for row in rows]
        batch = [np.array([row[i] for row in rows]) for i in range(len(rows[0]))]
        stacked = evidence(*batch)
        same = all(np.array_equal(getattr(stacked, f)[k], getattr(alone[k], f))
                   for f in ("log_e_fail", "log_e_pass", "n_canary", "n_baseline") for k in range(models))
        started = time.thread_time()
        for _ in range(repeats):
            for row in rows:
                evidence(*row)
        one = (time.thread_time() - started) / (repeats * models)
        started = time.thread_time()
        for _ in range(repeats):
            evidence(*batch)
        many = (time.thread_time() - started) / (repeats * models)
        out.append(f"{name + ' evidence:':28s} batch-invariant {same}; {1e6 * one:4.0f} us a model alone, "
                   f"{1e6 * many:4.0f} us in a batch of {models} windows of {minutes} minutes")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=12, help="alternations per lever")
    args = parser.parse_args()
    calls = capture(args.seeds)
    replay(calls)  # warm module caches
    split: dict[str, list[float]] = defaultdict(list)
    replay(calls, split)
    total = sum(sum(v) for v in split.values())
    print(f"{len(calls)} analyses of {args.seeds} whole rollouts (example policy, healthy v2, 1000 req/min), "
          f"{sum(c[3] for c in calls)} completed for a recorded decision")
    for stage, spent in sorted(split.items(), key=lambda kv: -sum(kv[1])):
        print(f"  {stage:36s} {100 * sum(spent) / total:4.0f}% of the round, {1000 * statistics.median(spent):.2f} ms "
              f"a call (median of {len(spent)})")
    print("each stage's analyses by part (share of the stage's CPU):")
    for stage, shares in parts(calls).items():
        print(f"  {stage:14s} " + ", ".join(f"{label} {100 * share:.0f}%" for label, share in shares.items()))
    print(f"levers, each against the code as it is, {args.runs} alternations:")
    for name, lever in levers().items():
        base, changed, ratios = measure_lever(calls, lever, args.runs)
        quartiles = statistics.quantiles(ratios, n=4)
        print(f"  {name:56s} {1000 * base:.2f} -> {1000 * changed:.2f} ms a call, ratio {statistics.median(ratios):.3f} "
              f"(quartiles {quartiles[0]:.3f}, {quartiles[2]:.3f})")
    for line in batch_probe():
        print(line)
    print(plan_batch_probe())
    alone, together, count = time_fleet()
    print(f"a fleet's round together: {count} analyses of 48 whole rollouts at a 1000-model fleet's density, "
          f"{1000 * alone:.2f} ms each alone, {1000 * together:.2f} ms computed together ({together / alone:.2f} "
          "of it; paired minute by minute)")
    print(numba_probe())


if __name__ == "__main__":
    main()
