"""How the operator scales on the real local control plane: many ModelDeployments at once.

    python bench/operator_scale_bench.py [--count 1000] [--replicas 1] [--hold 60] [--no-cache]

Starts the local control plane (kwok nodes, so thousands of Pods are cheap), runs the operator
in-process with a pass-everything analysis double (the statistics have their own benchmark in
bench/analysis_bench.py), creates COUNT ModelDeployments, then rolls all of them to v2 at once.
Prints: time until all are deployed, time until all rollouts are promoted, reconcile passes and
their latency percentiles, Pods created. It prints figures and asserts nothing about timings.

Then the issue-13 scale figures, measured while every canary is in progress (a first step with a
long bake holds them there for `--hold` seconds): reconcile-pass p50/p99, RSS, API requests per
second (counted on the operator's client and the watch cache's), Prometheus query batches per
model per analysis interval (one `collect` is one batch), and the CPU one analysis round of the
real `vigil.stats.analyze` costs for COUNT models on bench/timing.py's window. A missed target
is printed as MISSED; `--write` puts the table into docs/benchmarks/operator_scale.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kopf.testing import KopfRunner
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from vigil.api.names import API_VERSION, GROUP, VERSION
from vigil.dev.cluster import LocalCluster, temporary_state_dir
from vigil.handlers import config
from vigil.handlers.config import configure
from vigil.kube.cache import WatchCache
from vigil.kube.client import count_requests
from vigil.reconciler import Reconciler

from bench.timing import time_analyze
from tests.doubles import passing_analyzer

NS = "scale"


class Metrics:
    """Counts collects (query batches) per model: one batch per model per interval is the target."""

    def __init__(self) -> None:
        self.batches: dict[str, list[float]] = defaultdict(list)

    def collect(self, target: Any, *_: Any) -> dict:
        self.batches[target.model].append(time.monotonic())
        return {"ok": True}


TIMINGS: list[tuple[float, float]] = []  # (when it ended, seconds)
TARGETS = {"p99": 1.0, "rss_mib": 300.0, "batches": 1.0, "analysis_cpu_s": 5.0}


def cached_size(cache: WatchCache) -> tuple[int, float]:
    """Objects the cache holds and their size as JSON (a lower bound of their memory)."""
    objects = [o for i in cache.informers.values() for o in i.list(None)]
    return len(objects), sum(len(json.dumps(o, default=str)) for o in objects) / 2**20


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def mark(value: float, target: float) -> str:
    return "met" if value < target or (target == 1.0 and value <= target) else "MISSED"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--hold", type=float, default=60.0, help="seconds to measure with every canary in progress")
    parser.add_argument("--no-cache", action="store_true", help="read from the API on every pass (for comparison)")
    parser.add_argument("--write", action="store_true", help="write the figures to docs/benchmarks/operator_scale.md")
    args = parser.parse_args()
    interval_s = 5.0
    metrics = Metrics()
    with LocalCluster("vigil-scale", state_dir=temporary_state_dir("vigil-scale-"), nodes=5) as cluster:
        api = k8s_config.new_client_from_config(config_file=str(cluster.kubeconfig))
        custom, core = k8s.CustomObjectsApi(api), k8s.CoreV1Api(api)
        core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=NS)))
        custom.create_namespaced_custom_object(GROUP, VERSION, NS, "riskpolicies", {
            "apiVersion": API_VERSION, "kind": "RiskPolicy", "metadata": {"name": "p"},
            "spec": {"steps": [10, 50], "maxWeight": 50, "bakeTime": "1h", "analysisInterval": f"{interval_s:.0f}s",
                     "minSamples": 1}})
        os.environ["KUBECONFIG"] = str(cluster.kubeconfig)
        operator_api = k8s_config.new_client_from_config(config_file=str(cluster.kubeconfig))
        operator_api.configuration.connection_pool_maxsize = 32
        requests = count_requests(operator_api)
        configure(api_client=operator_api, metrics=metrics, analyzer=passing_analyzer)
        cache = None
        if not args.no_cache:
            cache = WatchCache(operator_api, namespaces=[NS]).start()
            cache.wait_synced(60)
            cache_requests = count_requests(cache.api_client)
            config.reconciler().kube.attach_cache(cache)
        original = Reconciler.reconcile

        def measured(self: Reconciler, md: dict) -> Any:
            t = time.perf_counter()
            try:
                return original(self, md)
            finally:
                TIMINGS.append((time.monotonic(), time.perf_counter() - t))

        Reconciler.reconcile = measured  # type: ignore[method-assign]
        with KopfRunner(["run", "-m", "vigil.handlers.operator", "--standalone", "-n", NS]):
            t0 = time.monotonic()
            for i in range(args.count):
                custom.create_namespaced_custom_object(GROUP, VERSION, NS, "modeldeployments", {
                    "apiVersion": API_VERSION, "kind": "ModelDeployment", "metadata": {"name": f"m{i}"},
                    "spec": {"model": f"m{i}", "version": "v1",
                             "artifact": {"uri": "s3://x", "digest": "sha256:" + "1" * 64},
                             "server": {"image": "s:1"}, "replicas": args.replicas, "policyRef": {"name": "p"},
                             "traffic": {"router": "istio"}}})
            deployed = wait_all(custom, args.count, lambda s: s.get("phase") == "Succeeded")
            t1 = time.monotonic()
            for i in range(args.count):
                custom.patch_namespaced_custom_object(GROUP, VERSION, NS, "modeldeployments", f"m{i}", {
                    "spec": {"version": "v2", "artifact": {"uri": "s3://x", "digest": "sha256:" + "2" * 64}}})
            in_canary = wait_all(custom, args.count, lambda s: s.get("phase") == "Canary" and (s.get("step") or {}).get("weight"))
            t2 = time.monotonic()
            # the measured window: every canary in progress, analysed every interval
            requests.clear()
            before_cache = len(cache_requests) if cache else 0
            for batches in metrics.batches.values():
                batches.clear()
            start = time.monotonic()
            time.sleep(args.hold)
            end = time.monotonic()
            api_calls = len(requests) + ((len(cache_requests) - before_cache) if cache else 0)
            memory = rss_mib()
            pods = len(core.list_namespaced_pod(NS).items)
        held = cached_size(cache) if cache is not None else (0, 0.0)
        if cache is not None:
            cache.stop()
        window = sorted(sec for when, sec in TIMINGS if start <= when <= end)
        every = sorted(sec for _, sec in TIMINGS)
        pct = lambda xs, q: xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")
        intervals = (end - start) / interval_s
        per_model = [len(b) / intervals for b in metrics.batches.values()] or [0.0]
    analysis_cpu = time_analyze(calls=50) * args.count  # after the cluster is down: less contention
    rows = [
        ("reconcile-pass p50 (canaries in progress)", f"{pct(window, 0.5) * 1000:.0f} ms", ""),
        ("reconcile-pass p99 (canaries in progress)", f"{pct(window, 0.99) * 1000:.0f} ms",
         f"< 1000 ms: {mark(pct(window, 0.99), TARGETS['p99'])}"),
        ("passes in the window", f"{len(window)} in {end - start:.0f} s", ""),
        ("RSS of the operator process (kopf, client, cache, bench)", f"{memory:.0f} MiB",
         f"< 300 MiB: {mark(memory, TARGETS['rss_mib'])}"),
        ("of which the watch cache holds (objects, JSON size)", f"{held[0]}, {held[1]:.1f} MiB", ""),
        ("passes per model per minute (analysis due every 5 s = 12)", f"{len(window) / args.count / ((end - start) / 60):.1f}", ""),
        ("API requests per second (passes + cache)", f"{api_calls / (end - start):.1f}", ""),
        ("Prometheus query batches per model per interval", f"max {max(per_model):.2f}, mean {statistics.mean(per_model):.2f}",
         f"<= 1: {mark(max(per_model), TARGETS['batches'])}"),
        ("CPU per analysis round (real analyze, bench/timing window)", f"{analysis_cpu:.1f} s",
         f"< 5 s: {mark(analysis_cpu, TARGETS['analysis_cpu_s'])}"),
    ]
    print(f"ModelDeployments:              {args.count} (replicas {args.replicas}, istio router, "
          f"watch cache {'off' if args.no_cache else 'on'})")
    print(f"all first deployments ready:   {t1 - t0:7.1f} s  ({deployed}/{args.count})")
    print(f"all canaries in progress:      {t2 - t1:7.1f} s  ({in_canary}/{args.count})")
    print(f"reconcile passes (whole run):  {len(every)}, p50/p99 {pct(every, 0.5) * 1000:.0f} / {pct(every, 0.99) * 1000:.0f} ms")
    print(f"pods in the namespace at end:  {pods}")
    for name, value, target in rows:
        print(f"{name:58s} {value:>22s}  {target}")
    if args.write:
        write_doc(args, rows, t1 - t0, t2 - t1, deployed, in_canary)


def write_doc(args: argparse.Namespace, rows: list[tuple[str, str, str]], deploy_s: float, canary_s: float,
              deployed: int, in_canary: int) -> None:
    path = Path(__file__).resolve().parents[1] / "docs" / "benchmarks" / "operator_scale.md"
    lines = [
        "# Operator scale (issue 13)", "",
        (f"`python bench/operator_scale_bench.py --count {args.count} --replicas {args.replicas} --hold {args.hold:.0f}"
         f"{' --no-cache' if args.no_cache else ''} --write`, on the local control plane (kwok nodes), one operator "
         "replica, the analysis a pass-everything double inside the loop; the analysis CPU is measured separately on "
         "the real `vigil.stats.analyze` (bench/timing.py's window) and multiplied by the model count."), "",
        (f"- first deployments ready: {deploy_s:.0f} s ({deployed}/{args.count}); all canaries in progress after "
         f"{canary_s:.0f} s more ({in_canary}/{args.count})"), "",
        "| figure | measured | target |", "|---|---|---|",
        *[f"| {n} | {v} | {t} |" for n, v, t in rows], "",
        "The machine is shared (2 cores, several other workloads), so the wall-clock figures are upper bounds.", "",
        "## How the figures are kept down", "",
        ("- **Watch cache** (`vigil/kube/cache.py`): Vigil's Deployments, RiskPolicies, HTTPRoutes and "
         "VirtualServices come from list+watch informers (one thread per kind, 410 re-list, bounded), so a pass "
         "reads none of them from the API (tests/integration/test_kube_cache.py counts the requests). A write's "
         "result goes into the cache at once and an entry is only replaced by a newer resourceVersion, so a pass "
         "never sees an object older than its own last write."),
        ("- **Query batches**: one `collect` per ModelDeployment per analysis (the provider batches its queries "
         "in it); the figure above counts collects per model per interval."),
        ("- **Analysis CPU** (`python bench/timing.py`, this thread's CPU time, fresh panels per call): one "
         "`analyze` of 7 gates on a 30-minute window went from about 31 ms to about 16 ms with identical results "
         "(tests/unit/test_stats_fastpath.py; every verdict, figure and plan of 36 windows compared with the "
         "previous code bit for bit): the plan projects the first few effects first, panels memoise their "
         "increments, policy-only values (projection grid, prior alternatives, bucket ratios) are computed once, "
         "and the root searches and bisections do less per step. That is 2x, not the 6x the target needs: "
         "one round of 1000 models still costs about 16 s of one core."),
        "",
    ]
    path.write_text("\n".join(lines))
    print(f"written to {path}")


def wait_all(custom: k8s.CustomObjectsApi, count: int, done: Any, timeout: float = 900) -> int:
    deadline = time.monotonic() + timeout
    finished = 0
    while time.monotonic() < deadline:
        items = custom.list_namespaced_custom_object(GROUP, VERSION, NS, "modeldeployments")["items"]
        finished = sum(1 for md in items if done(md.get("status") or {}))
        if finished >= count:
            break
        time.sleep(1)
    return finished


if __name__ == "__main__":
    main()
