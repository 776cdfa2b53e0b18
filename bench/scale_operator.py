"""The operator as bench/operator_scale_bench.py runs it: its own process, as in a cluster.

    python -m bench.scale_operator --namespace NS --stats FILE

Runs what `vigil operator -n NS` runs (kopf, the reconcile pools, the watch cache built by the
operator's own wiring), with two doubles: the analysis passes everything and the metrics
provider only counts its calls (one `collect` is one Prometheus query batch), so the figures
are the operator's, not the statistics' (bench/timing.py measures those) or Prometheus'.

`--analysis recorded` (the default) passes everything with a real analysis: `vigil.stats.analyze`
of all seven gates on bench/timing.py's 30-minute window, computed once at start, every outcome
set to Pass and no sample-ratio mismatch. Each pass then writes a real-sized `status.lastAnalysis`
(about 8 KB of JSON), and the ModelDeployments kopf and every pass hold are as large as in a cluster. `--analysis passing`
is the small test double (one gate, no figures).

The benchmark drives it with signals, so nothing of the benchmark's own lives in this process
and its RSS is the operator's: SIGUSR1 starts a measured window (counters cleared), SIGUSR2
writes the window's figures to FILE as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import threading
import time
import tracemalloc
from collections import defaultdict
from pathlib import Path
from typing import Any

import kopf
from vigil.handlers import config
from vigil.handlers import operator as handlers  # registers the handlers
from vigil.kube.client import RequestLog, count_requests
from vigil.reconciler import Reconciler

from tests.doubles import passing_analyzer


def recorded_analyzer() -> Any:
    """An analyzer that answers every call with one real, all-Pass analysis (see the module
    docstring): status as large as the real analyzer's, without its CPU in the loop."""
    from dataclasses import replace

    from vigil.stats import analyze
    from vigil.stats.result import Outcome

    from bench.timing import GATES, window

    real = analyze(GATES, window(30), alpha_fail=0.05, alpha_pass=0.05, min_samples=500, expected_canary_share=0.1)
    # every gate passes and the traffic split is as configured (the window's shadow third would
    # otherwise read as a sample-ratio mismatch, and every pass would record one)
    srm = real.sample_ratio and replace(real.sample_ratio, e_value=1.0)
    passed = replace(real, outcome=Outcome.PASS, verdicts=[replace(v, outcome=Outcome.PASS) for v in real.verdicts],
                     sample_ratio=srm, note="")
    return lambda *_, **__: passed


class Counters:
    """What the window measures: pass durations, query batches per model, API requests."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.passes: list[float] = []
        self.batches: dict[str, int] = defaultdict(int)
        self.started = time.monotonic()

    def collect(self, target: Any, *_: Any) -> dict[str, Any]:
        with self.lock:
            self.batches[target.model] += 1
        return {"ok": True}

    def reset(self, logs: list[RequestLog]) -> None:
        with self.lock:
            self.passes.clear()
            self.batches.clear()
            self.started = time.monotonic()
        for log in logs:
            log.clear()


def cached_objects(cache: Any) -> tuple[int, float]:
    """Objects the watch cache holds and their size as JSON."""
    if cache is None:
        return 0, 0.0
    objects = [o for i in cache.informers.values() for o in i.list(None)]
    return len(objects), sum(len(json.dumps(o, default=str)) for o in objects) / 2**20


def allocations(top: int = 25) -> list[tuple[str, float]]:
    """The largest live Python allocations (MiB), each charged to the innermost frame outside the
    standard library: with VIGIL_BENCH_TRACEMALLOC=1 (traced from the start) or =window (traced
    from the measured window on: the run up to it is not slowed down, and what the window
    replaces, such as kopf's copy of every ModelDeployment, is traced), for finding where the
    RSS goes."""
    if not tracemalloc.is_tracing():
        return []
    by_site: dict[str, int] = defaultdict(int)
    for stat in tracemalloc.take_snapshot().statistics("traceback"):
        frames = [f"{f.filename}:{f.lineno}" for f in stat.traceback]
        owner = next((f for f in reversed(frames) if "/python3.11/" not in f or "site-packages" in f), frames[-1])
        by_site[owner] += stat.size
    traced = [("(all traced)", tracemalloc.get_traced_memory()[0] / 2**20)]
    return traced + [(site, size / 2**20) for site, size in sorted(by_site.items(), key=lambda kv: -kv[1])[:top]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--stats", required=True, type=Path)
    parser.add_argument("--analysis", choices=("recorded", "passing"), default="recorded")
    args = parser.parse_args()
    trace = os.environ.get("VIGIL_BENCH_TRACEMALLOC")
    if trace and trace != "window":
        tracemalloc.start(12)
    os.environ["VIGIL_WATCH_NAMESPACES"] = args.namespace
    counters = Counters()
    analyzer = recorded_analyzer() if args.analysis == "recorded" else passing_analyzer
    config.configure(metrics=counters, analyzer=analyzer)
    rec = config.reconciler()  # builds the client and the watch cache as the operator does
    logs = [count_requests(config.WIRING.api_client)] + ([count_requests(config.WIRING.cache.api_client)] if config.WIRING.cache else [])
    original = Reconciler.reconcile

    def timed(self: Reconciler, md: dict[str, Any]) -> Any:
        t = time.perf_counter()
        try:
            return original(self, md)
        finally:
            with counters.lock:
                counters.passes.append(time.perf_counter() - t)

    Reconciler.reconcile = timed  # type: ignore[method-assign]
    assert rec is config.reconciler()
    wanted: dict[str, threading.Event] = {"reset": threading.Event(), "dump": threading.Event()}

    def serve() -> None:  # signal handlers only set flags; the work happens here
        while True:
            if wanted["reset"].wait(0.2):
                wanted["reset"].clear()
                counters.reset(logs)
                if trace == "window" and not tracemalloc.is_tracing():
                    tracemalloc.start(12)
            if wanted["dump"].is_set():
                wanted["dump"].clear()
                with counters.lock:
                    figures = {"seconds": time.monotonic() - counters.started, "passes": list(counters.passes),
                               "batches": dict(counters.batches),
                               "requests": [r for log in logs for r in log.requests],
                               "cache": cached_objects(config.WIRING.cache), "allocations": allocations()}
                tmp = args.stats.with_suffix(".tmp")
                tmp.write_text(json.dumps(figures))
                tmp.replace(args.stats)

    threading.Thread(target=serve, name="bench-stats", daemon=True).start()
    signal.signal(signal.SIGUSR1, lambda *_: wanted["reset"].set())
    signal.signal(signal.SIGUSR2, lambda *_: wanted["dump"].set())
    kopf.configure(verbose=False)
    try:
        kopf.run(standalone=True, clusterwide=False, namespaces=[args.namespace])
    finally:
        handlers.shutdown()


if __name__ == "__main__":
    main()
