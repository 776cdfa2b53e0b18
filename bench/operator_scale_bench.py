"""How the operator scales on the real local control plane: many ModelDeployments at once.

    python bench/operator_scale_bench.py [--count 100] [--replicas 2]

Starts the local control plane (kwok nodes, so thousands of Pods are cheap), runs the operator
in-process with a pass-everything analysis double (the statistics have their own benchmark in
bench/analysis_bench.py), creates COUNT ModelDeployments, then rolls all of them to v2 at once.
Prints: time until all are deployed, time until all rollouts are promoted, reconcile passes and
their latency percentiles, Pods created. It prints figures and asserts nothing about timings.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kopf.testing import KopfRunner  # noqa: E402
from kubernetes import client as k8s  # noqa: E402
from kubernetes import config as k8s_config  # noqa: E402

from vigil.api.names import API_VERSION, GROUP, VERSION  # noqa: E402
from vigil.dev.cluster import LocalCluster, temporary_state_dir  # noqa: E402
from vigil.handlers.config import configure  # noqa: E402
from tests.doubles import passing_analyzer  # noqa: E402
from vigil.reconciler import Reconciler  # noqa: E402

NS = "scale"


class Metrics:
    def collect(self, *_: Any) -> dict:
        return {"ok": True}


TIMINGS: list[float] = []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--replicas", type=int, default=2)
    args = parser.parse_args()
    with LocalCluster("vigil-scale", state_dir=temporary_state_dir("vigil-scale-"), nodes=5) as cluster:
        api = k8s_config.new_client_from_config(config_file=str(cluster.kubeconfig))
        custom, core = k8s.CustomObjectsApi(api), k8s.CoreV1Api(api)
        core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=NS)))
        custom.create_namespaced_custom_object(GROUP, VERSION, NS, "riskpolicies", {
            "apiVersion": API_VERSION, "kind": "RiskPolicy", "metadata": {"name": "p"},
            "spec": {"steps": [25, 50], "maxWeight": 50, "bakeTime": "2s", "analysisInterval": "2s", "minSamples": 1}})
        os.environ["KUBECONFIG"] = str(cluster.kubeconfig)
        configure(api_client=k8s_config.new_client_from_config(config_file=str(cluster.kubeconfig)),
                  metrics=Metrics(), analyzer=passing_analyzer)
        original = Reconciler.reconcile

        def measured(self: Reconciler, md: dict) -> Any:
            t = time.perf_counter()
            try:
                return original(self, md)
            finally:
                TIMINGS.append(time.perf_counter() - t)

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
            promoted = wait_all(custom, args.count,
                                lambda s: s.get("phase") == "Succeeded" and s.get("stableVersion") == "v2")
            t2 = time.monotonic()
            pods = len(core.list_namespaced_pod(NS).items)
        timings = sorted(TIMINGS)
        pct = lambda q: timings[min(len(timings) - 1, int(q * len(timings)))] * 1000  # noqa: E731
        print(f"ModelDeployments:              {args.count} (replicas {args.replicas}, istio router)")
        print(f"all first deployments ready:   {t1 - t0:7.1f} s  ({deployed}/{args.count})")
        print(f"all rollouts promoted:         {t2 - t1:7.1f} s  ({promoted}/{args.count}; 2 steps, 2 s bake each)")
        print(f"reconcile passes:              {len(timings)}")
        print(f"reconcile latency p50/p90/p99: {pct(0.5):.0f} / {pct(0.9):.0f} / {pct(0.99):.0f} ms"
              f"  (mean {statistics.mean(timings) * 1000:.0f} ms)")
        print(f"pods in the namespace at end:  {pods}")


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
