"""`vigil demo`: a real closed-loop model rollout on this machine, start to finish.

It starts the local control plane, a real Prometheus, three model-server versions, the
traffic splitter (a stand-in gateway that follows the HTTPRoute the operator writes), a load
generator, and the operator itself as a separate process (`vigil operator`, exactly as a user
runs it). Then it rolls out a good v2 (shadow, canary steps, promoted) and a regressing v3
(rolled back), prints progress, and writes a report and the audit records. Everything it
started is stopped on exit, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, cast

from kubernetes import client as k8s
from requests import RequestException
from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed
from kubernetes import config as k8s_config

from vigil.api.names import API_VERSION, GROUP, PLURAL_MODELDEPLOYMENTS, PLURAL_RISKPOLICIES, VERSION
from vigil.audit import chain
from vigil.demo.processes import DemoProcesses
from vigil.demo.report_page import build_report
from vigil.demo.trafficsplit import SPLITTER_REQUESTS_TOTAL
from vigil.dev.cluster import LocalCluster, temporary_state_dir
from vigil.dev.prometheus import PrometheusServer
from vigil.dev.process import StartError, stop_all
from vigil.kube.client import Kube
from vigil.metrics.promql import escape

NS, MODEL = "demo", "fraud"

# v3's regression per scenario, and the gates that should catch it (errors alone would not)
SCENARIOS: dict[str, tuple[list[str], list[dict[str, Any]]]] = {
    "drift-latency": (["drift:shift=0.15", "latency:ms=300,share=0.05"], []),
    "errors": (["errors:share=0.05"], []),
    "latency": (["latency:ms=300,share=0.05"], []),
    "calibration": (["miscalibrated:temperature=3"], [{"metric": "calibration"}]),
    "fairness": (["unfair:group=b,share=0.5"], [{"metric": "fairnessGap"}]),
    "shadow": (["disagree:share=0.10"], [{"metric": "shadowDisagreement"}]),
}
# A lognormal service time around 60 ms spreads requests over several histogram buckets, as
# a real model server's would, so a p99 shift is visible at the bucket edges.
BASE_LATENCY_MS = 60.0
# Tolerances for a demo that decides within minutes at ~60 requests/s: an error-free service
# passes errorRate on its absolute floor; p99 may not grow by more than half.
BASE_GATES = [
    {"metric": "errorRate", "maxRelativeIncrease": 0.5, "maxAbsoluteIncrease": 0.01},
    {"metric": "latencyP99", "maxRelativeIncrease": 0.5},
    {"metric": "predictionDrift", "maxAbsoluteIncrease": 0.05},
]


@dataclass
class Timing:
    """How fast the demo runs: --fast keeps the whole run under five minutes."""

    rate: float
    shadow: str
    bake: str
    interval: str
    steps: list[int]
    timeout: float

    @classmethod
    def pick(cls, fast: bool) -> Timing:
        if fast:
            return cls(rate=100, shadow="10s", bake="10s", interval="5s", steps=[25, 50], timeout=210)
        return cls(rate=100, shadow="60s", bake="60s", interval="10s", steps=[10, 25, 50], timeout=900)


@dataclass
class RolloutResult:
    version: str
    outcome: str  # promoted | rolled back | timed out
    started: datetime
    decided: datetime | None
    served_by_version: float = 0.0
    decisions: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float | None:
        return (self.decided - self.started).total_seconds() if self.decided else None


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _say(msg: str) -> None:
    print(f"[{_now():%H:%M:%S}] {msg}", flush=True)


def digest(version: str) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(f"{MODEL}/{version}".encode()).hexdigest()


def policy(timing: Timing, scenario: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION, "kind": "RiskPolicy", "metadata": {"name": "demo-policy"},
        "spec": {
            "riskTier": "high", "shadow": {"enabled": True, "duration": timing.shadow, "mirrorPercent": 100},
            "steps": timing.steps, "maxWeight": 50, "bakeTime": timing.bake, "analysisInterval": timing.interval,
            "minSamples": 200, "confidence": 0.95, "failureLimit": 1,
            "noData": {"action": "hold", "rollbackAfter": 12},
            "gates": BASE_GATES + SCENARIOS[scenario][1],
        },
    }


def modeldeployment(version: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION, "kind": "ModelDeployment", "metadata": {"name": MODEL},
        "spec": {
            "model": MODEL, "version": version,
            "artifact": {"uri": f"s3://models/{MODEL}/{version}", "digest": digest(version)},
            "server": {"image": "vigil-demo/model-server:1", "port": 8080}, "replicas": 2,
            "policyRef": {"name": "demo-policy"},
            "traffic": {"router": "gatewayapi", "gatewayRef": {"name": "demo-gateway"}, "port": 80},
        },
    }


class Demo:
    def __init__(self, args: argparse.Namespace) -> None:
        self.scenario = args.scenario
        if self.scenario not in SCENARIOS:
            raise SystemExit(f"--scenario must be one of {', '.join(SCENARIOS)}, not {self.scenario!r}")
        self.timing = Timing.pick(args.fast)
        self.out = Path(args.out).resolve()
        self.out.mkdir(parents=True, exist_ok=True)
        self.stack = ExitStack()

    # ------------------------------------------------------------ start everything
    def start(self) -> None:
        _say("starting the local control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok)")
        cluster = LocalCluster("vigil-demo", state_dir=temporary_state_dir("vigil-demo-"), nodes=2)
        cluster.up()
        self.stack.callback(cluster.down)
        self.cluster = cluster
        api = k8s_config.new_client_from_config(config_file=str(cluster.kubeconfig))
        self.custom = k8s.CustomObjectsApi(api)
        self.kube = Kube(api)
        k8s.CoreV1Api(api).create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=NS)))

        self.sup = DemoProcesses(self.out / "logs")
        self.stack.callback(self.sup.close)
        _say("starting model servers v1, v2 (good) and v3 (" + ", ".join(SCENARIOS[self.scenario][0]) + ")")
        servers = {
            "v1": self.sup.start_model_server(MODEL, "v1", namespace=NS, nondeterminism=0.01, seed=1, wait=False,
                                              base_latency_ms=BASE_LATENCY_MS),
            "v2": self.sup.start_model_server(MODEL, "v2", namespace=NS, nondeterminism=0.01, seed=2, wait=False,
                                              base_latency_ms=BASE_LATENCY_MS),
            "v3": self.sup.start_model_server(MODEL, "v3", namespace=NS, nondeterminism=0.01, seed=3, wait=False,
                                              base_latency_ms=BASE_LATENCY_MS,
                                              faults=SCENARIOS[self.scenario][0]),
        }
        for server in servers.values():
            server.wait_ready()
        self.servers = servers

        _say("starting Prometheus (scrape every 1s)")
        self.prom = PrometheusServer.start([f"127.0.0.1:{s.port}" for s in servers.values()], scrape_interval="1s")
        self.stack.callback(self.prom.stop)
        self.stack.callback(self.stop_everything)  # runs first: one bounded stop for all of them

        _say("starting the operator (vigil operator), as a user would")
        env = {"VIGIL_PROMETHEUS_URL": self.prom.url, "VIGIL_PROMETHEUS_STEP_SECONDS": "1",
               "KUBECONFIG": str(cluster.kubeconfig)}
        self.operator = self.sup.start("operator", [sys.executable, "-m", "vigil", "--kubeconfig",
                                                    str(cluster.kubeconfig), "operator", "-n", NS], env=env)

        self.custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL_RISKPOLICIES, policy(self.timing, self.scenario))
        self.custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL_MODELDEPLOYMENTS, modeldeployment("v1"))
        self.wait_phase(lambda s: s.get("phase") == "Succeeded" and s.get("stableVersion") == "v1", 60, "v1 deployed")

        backends = {f"{MODEL}-{v}": f"http://127.0.0.1:{s.port}" for v, s in servers.items()}
        self.splitter = self.sup.start_splitter(kubeconfig=cluster.kubeconfig, kind="httproute", namespace=NS,
                                                route=MODEL, backends=backends)
        self.prom.add_targets(f"127.0.0.1:{self.splitter.port}")
        _say(f"sending {self.timing.rate:.0f} requests/s through the traffic splitter, labels 3-8 s later")
        self.load = self.sup.start_loadgen(f"http://127.0.0.1:{self.splitter.port}", rate=self.timing.rate,
                                           duration=3600, feedback_delay=(3.0, 8.0))
        _pause(10)  # a baseline history for the first analysis

    def stop_everything(self) -> None:
        """Stop every process the demo started (its parts, Prometheus, the control plane) at once,
        so shutdown takes one grace period however many there are; the closes that follow find
        nothing left to stop."""
        started = time.monotonic()
        processes = [*self.sup.processes, *self.prom.processes, *self.cluster.procs]
        stop_all(processes)
        _say(f"stopped {len(processes)} processes in {time.monotonic() - started:.1f}s")

    # ------------------------------------------------------------ rollouts
    def status(self) -> dict[str, Any]:
        md = cast(dict[str, Any], self.custom.get_namespaced_custom_object(
            GROUP, VERSION, NS, PLURAL_MODELDEPLOYMENTS, MODEL))
        return dict(md.get("status") or {})

    def wait_phase(self, done: Any, timeout: float, what: str) -> dict[str, Any] | None:
        """Poll status every second, printing each new progress line, until `done(status)`;
        None after `timeout` seconds. Fails at once if the operator exits."""
        last = [""]

        def poll() -> dict[str, Any]:
            _raise_if_interrupted()
            if not self.operator.is_running():
                raise RuntimeError(f"the operator exited; its log:\n{self.operator.log_tail()}")
            s = self.status()
            line = self.progress_line(s)
            if line != last[0]:
                _say(line)
                last[0] = line
            return s

        polling = Retrying(stop=stop_after_delay(timeout), wait=wait_fixed(1),
                           retry=retry_if_result(lambda s: not done(s)))
        try:
            return polling(poll)
        except RetryError:
            _say(f"timed out waiting for {what}")
            return None

    @staticmethod
    def progress_line(s: dict[str, Any]) -> str:
        step = s.get("step") or {}
        analysis = s.get("lastAnalysis") or {}
        verdicts = ", ".join(
            f"{v.get('metric')}={v.get('outcome')}" for v in analysis.get("verdicts", []))
        return (f"phase={s.get('phase')} stable={s.get('stableVersion')} canary={s.get('canaryVersion')} "
                f"weight={step.get('weight')} verdict={s.get('verdict')} [{verdicts}] {s.get('message', '')[:120]}")

    def rollout(self, version: str, expect: str) -> RolloutResult:
        _say(f"=== rolling out {version} (expected: {expect}) ===")
        started = _now()
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL_MODELDEPLOYMENTS, MODEL, {
            "spec": {"version": version, "artifact": {"uri": f"s3://models/{MODEL}/{version}", "digest": digest(version)}}})

        def finished(s: dict[str, Any]) -> bool:
            promoted = s.get("stableVersion") == version and s.get("phase") == "Succeeded"
            rolled_back = s.get("phase") == "RolledBack" and s.get("canaryVersion") == version
            return promoted or rolled_back

        s = self.wait_phase(finished, self.timing.timeout, f"{version} to be decided")
        outcome = "timed out" if s is None else ("promoted" if s.get("stableVersion") == version else "rolled back")
        decided = _now() if s else None
        result = RolloutResult(version, outcome, started, decided)
        result.served_by_version = self.served(version, started)
        _say(f"{version}: {outcome} after {result.seconds or float('nan'):.0f}s; "
             f"{result.served_by_version:.0f} user requests were answered by {version}")
        return result

    def served(self, version: str, since: datetime) -> float:
        """User requests answered by `version` (mirrored copies excluded), from the splitter."""
        window = max(int((_now() - since).total_seconds()), 1)
        query = (f'sum(increase({SPLITTER_REQUESTS_TOTAL}{{backend="{escape(f"{MODEL}-{version}")}",'
                 f'routing!="feedback"}}[{window}s]))')
        try:
            result = self.prom.query(query)
            return float(result[0]["value"][1]) if result else 0.0
        except (StartError, RequestException, KeyError, IndexError, ValueError):
            return float("nan")

    # ------------------------------------------------------------ report
    def finish(self, results: list[RolloutResult], started: datetime) -> int:
        records = sorted(self.kube.audit_records(NS, MODEL), key=lambda r: r["seq"])
        report = chain.verify(records, expected_head=self.status().get("auditHead"))
        (self.out / "audit.json").write_text(json.dumps(records, indent=2))
        decisions = [{
            "time": r["time"], "decision": r["action"], "phase": r["phase"], "weight": r.get("weight"),
            "version": r.get("version"), "message": r.get("message", ""),
            "verdicts": [{"metric": v.get("metric"), "outcome": v.get("outcome"),
                          "statistic": v.get("effect"), "bound": v.get("tolerance")}
                         for v in ((r.get("evidence") or {}).get("analysis") or {}).get("verdicts", [])],
        } for r in records if r["action"] not in ("none",)]
        files = build_report(self.prom.url, started, _now(), MODEL, ["v1", "v2", "v3"], decisions, self.out,
                             namespace=NS, window="15s", step_seconds=2)
        route = self.kube.get("gateway.networking.k8s.io/v1", "HTTPRoute", NS, MODEL) or {}
        final_weights = {b["name"]: b.get("weight") for b in route.get("spec", {}).get("rules", [{}])[0].get("backendRefs", [])}
        events = [{"type": e.type, "reason": e.reason, "message": e.message} for e in self.kube.events_for(NS, MODEL)]
        summary = {
            "scenario": self.scenario,
            "final_route_weights": final_weights,
            "final_status": {k: v for k, v in self.status().items() if k in ("phase", "stableVersion", "canaryVersion",
                                                                            "conditions", "failedDigests")},
            "events": events,
            "rollouts": [{"version": r.version, "outcome": r.outcome, "seconds_to_decision": r.seconds,
                          "requests_served_by_version": r.served_by_version} for r in results],
            "decisions": [f"{r['seq']} {r['action']} {r['phase']} {r.get('version')} w={r.get('weight')}" for r in records],
            "audit_chain": report.summary(),
            "report": str(files.html),
        }
        (self.out / "summary.json").write_text(json.dumps(summary, indent=2))
        print("\n==================== summary ====================")
        for r in results:
            print(f"  {r.version}: {r.outcome:<12} in {r.seconds or float('nan'):5.0f}s, "
                  f"{r.served_by_version:6.0f} user requests answered by {r.version}")
        print(f"  decisions: {len(records)} audit records; {report.summary()}")
        print(f"  report:    {files.html}\n  figure:    {files.png}\n  audit:     {self.out / 'audit.json'}")
        ok = [r.outcome for r in results] == ["promoted", "rolled back"] and report.ok
        print("  result:    " + ("OK: good version promoted, bad version rolled back" if ok else "UNEXPECTED"))
        return 0 if ok else 1


INTERRUPTED = threading.Event()
"""Set by Ctrl-C or SIGTERM and checked by every wait: a KeyboardInterrupt raised where Python
only prints "Exception ignored" (a __del__, an at-fork hook) must not let the demo carry on."""


def _interrupt(signum: int, frame: Any) -> None:
    INTERRUPTED.set()
    raise KeyboardInterrupt  # SIGTERM cleans up like Ctrl-C: every process stopped, temp files removed


def _raise_if_interrupted() -> None:
    if INTERRUPTED.is_set():
        raise KeyboardInterrupt


def _pause(seconds: float) -> None:
    """Sleep, but end at once (with KeyboardInterrupt) if the demo was interrupted."""
    if INTERRUPTED.wait(seconds):
        raise KeyboardInterrupt


def main(args: argparse.Namespace) -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    demo = Demo(args)
    started = _now()
    with demo.stack:
        try:
            demo.start()
            results = [demo.rollout("v2", "promoted"), demo.rollout("v3", "rolled back")]
            return demo.finish(results, started)
        except KeyboardInterrupt:
            _say("interrupted: stopping everything")
            return 130
