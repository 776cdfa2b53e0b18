"""`vigil demo`: a real closed-loop model rollout on this machine, start to finish.

It starts the local control plane, a real Prometheus, three model-server versions, the
traffic splitter (a stand-in gateway that follows the HTTPRoute the operator writes), a load
generator, and the operator itself as a separate process (`vigil operator`, exactly as a user
runs it). Then it rolls out a good v2 (shadow, canary steps, promoted) and a regressing v3
(rolled back), prints progress, and writes a report and the audit records. Everything it
started is stopped on exit, Ctrl-C included.

The rollouts are governed by the shipped example policy (manifests/examples/riskpolicy.yaml),
read at run time and changed in one way only: every duration is multiplied by one factor, and
the load is raised so that a scaled minute carries the requests of a real minute at a stated
traffic (`Timing`). The start of the run prints both.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import signal
import sys
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path
from typing import Any, cast

import yaml

from kubernetes import client as k8s
from requests import RequestException
from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed
from kubernetes import config as k8s_config

from vigil.api.common import parse_duration
from vigil.api.names import API_VERSION, GROUP, PLURAL_MODELDEPLOYMENTS, PLURAL_RISKPOLICIES, VERSION
from vigil.api.policy import RiskPolicySpec
from vigil.audit import chain
from vigil.core.timefmt import parse_iso
from vigil.demo.processes import DemoProcesses
from vigil.demo.report_page import build_report
from vigil.demo.trafficsplit import SPLITTER_REQUESTS_TOTAL
from vigil.dev.cluster import LocalCluster, temporary_state_dir
from vigil.dev.prometheus import PrometheusServer
from vigil.dev.process import StartError, stop_all
from vigil.kube.client import Kube
from vigil.metrics.promql import escape

NS, MODEL = "demo", "fraud"

# v3's regression per scenario. The example policy has every gate, so a scenario only picks the
# fault; the gate that should catch it is named for the printout.
SCENARIOS: dict[str, tuple[list[str], str]] = {
    "drift-latency": (["drift:shift=0.15", "latency:ms=300,share=0.05"], "predictionDrift, latencyP99"),
    "errors": (["errors:share=0.05"], "errorRate"),
    "latency": (["latency:ms=300,share=0.05"], "latencyP99"),
    "calibration": (["miscalibrated:temperature=3"], "calibration"),
    "fairness": (["unfair:group=b,share=0.5"], "fairnessGap"),
    "shadow": (["disagree:share=0.10"], "shadowDisagreement"),
}
# A lognormal service time around 60 ms spreads requests over several histogram buckets, as
# a real model server's would, so a p99 shift is visible at the bucket edges.
BASE_LATENCY_MS = 60.0

EXAMPLE_POLICY = Path(__file__).resolve().parents[3] / "manifests" / "examples" / "riskpolicy.yaml"
"""The shipped example policy: the demo's rollouts are governed by it, read at run time."""

DURATION_FIELDS: tuple[tuple[str, ...], ...] = (
    ("shadow", "duration"), ("bakeTime",), ("analysisInterval",), ("holdback", "bakeTime"),
    ("budget", "maxDuration"),
)
"""Every duration of a RiskPolicy: the only thing the demo changes, all by one factor."""


@dataclass(frozen=True)
class Timing:
    """How fast the demo runs. A demo cannot wait 10-minute bakes, so every duration of the policy
    is multiplied by `scale` (and nothing else is changed); the load is raised so that a scaled
    minute carries as many requests as a real minute of a rollout at `equivalent_per_minute`."""

    scale: Fraction  # demo seconds per policy second
    rate: float  # requests per second the load generator sends
    timeout: float  # seconds a rollout may take before the demo calls it timed out

    @property
    def equivalent_per_minute(self) -> float:
        """Requests the demo sees per scaled policy minute: the real traffic it stands for."""
        return self.rate * 60 * float(self.scale)

    @classmethod
    def pick(cls, fast: bool) -> Timing:
        scale = os.environ.get("VIGIL_DEMO_TIME_SCALE")  # e.g. 1/20; for measuring the machine
        rate = os.environ.get("VIGIL_DEMO_RATE")
        # Both stand for a real rollout at 1000 requests/min (the traffic of the issue's targets):
        # 1000/3 requests/s for 3 s per policy minute, or 1000/6 for 6 s.
        if fast:
            timing = cls(scale=Fraction(1, 20), rate=1000 / 3, timeout=420)
        else:
            timing = cls(scale=Fraction(1, 10), rate=1000 / 6, timeout=900)
        if scale or rate:
            timing = cls(scale=Fraction(scale) if scale else timing.scale,
                         rate=float(rate) if rate else timing.rate, timeout=timing.timeout)
        return timing


def load_policy(path: Path = EXAMPLE_POLICY) -> dict[str, Any]:
    """The RiskPolicy document as shipped (never written)."""
    doc = yaml.safe_load(path.read_text())
    if not isinstance(doc, dict) or doc.get("kind") != "RiskPolicy" or not isinstance(doc.get("spec"), dict):
        raise SystemExit(f"{path} is not a RiskPolicy")
    RiskPolicySpec.model_validate(doc["spec"])
    return doc


def _get(tree: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(tree, dict) or key not in tree:
            return None
        tree = tree[key]
    return tree


def _format_seconds(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return "".join(f"{v}{u}" for v, u in ((hours, "h"), (minutes, "m"), (secs, "s")) if v) or "0s"


@dataclass(frozen=True)
class ScaledField:
    path: str
    shipped: str  # as written in the file, or the default in force when the file leaves it out
    demo: str
    from_file: bool


def scale_policy(doc: dict[str, Any], scale: Fraction) -> tuple[dict[str, Any], list[ScaledField]]:
    """A copy of the policy with every duration in force (given or defaulted) multiplied by
    `scale`; everything else is left exactly as shipped. A scaled duration must be a whole
    number of seconds (the Duration format), at least 1 s."""
    spec = doc["spec"]
    in_force = RiskPolicySpec.model_validate(spec).to_wire()
    scaled = copy.deepcopy(doc)
    fields: list[ScaledField] = []
    for path in DURATION_FIELDS:
        value = _get(in_force, path)
        if value is None:  # e.g. no holdback in the policy: nothing to scale
            continue
        seconds = Fraction(int(parse_duration(value).total_seconds())) * scale
        if seconds.denominator != 1 or seconds < 1:
            raise SystemExit(f"time scale {scale} makes {'.'.join(path)}={value} {float(seconds):g}s; "
                             "pick a scale that gives whole seconds")
        node = scaled["spec"]
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = _format_seconds(int(seconds))
        fields.append(ScaledField(".".join(path), value, node[path[-1]], _get(spec, path) is not None))
    return scaled, fields


def policy_differences(shipped: dict[str, Any], in_force: dict[str, Any], scale: Fraction) -> list[str]:
    """Where the policy in force differs from the shipped one once its durations are divided by
    `scale`: empty when the demo runs the shipped policy up to the time scale. Both specs are
    compared as the operator reads them (validated, every default filled in)."""

    def normal(spec: dict[str, Any], factor: Fraction) -> dict[str, Any]:
        wire = RiskPolicySpec.model_validate(spec).to_wire()
        for path in DURATION_FIELDS:
            value = _get(wire, path)
            if value is not None:
                node = wire
                for key in path[:-1]:
                    node = node[key]
                node[path[-1]] = Fraction(int(parse_duration(value).total_seconds())) * factor
        return wire

    def diff(a: Any, b: Any, where: str) -> list[str]:
        if isinstance(a, dict) and isinstance(b, dict):
            return [d for k in sorted(set(a) | set(b)) for d in diff(a.get(k), b.get(k), f"{where}.{k}".lstrip("."))]
        return [] if a == b else [f"{where}: shipped {a!r}, in force {b!r}"]

    return diff(normal(shipped, scale), normal(in_force, Fraction(1)), "")


@dataclass
class RolloutResult:
    version: str
    outcome: str  # promoted | rolled back | timed out
    started: datetime
    decided: datetime | None
    served_by_version: float = 0.0
    decisions: list[str] = field(default_factory=list)
    promote_seconds: float | None = None  # rollout start -> the promote decision (holdback follows)
    rollback_seconds: float | None = None  # rollout start -> the rollback decision
    rollback_phase: str | None = None  # the phase the rollback was decided in (Shadow, Canary, ...)

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


def modeldeployment(version: str, policy_name: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION, "kind": "ModelDeployment", "metadata": {"name": MODEL},
        "spec": {
            "model": MODEL, "version": version,
            "artifact": {"uri": f"s3://models/{MODEL}/{version}", "digest": digest(version)},
            "server": {"image": "vigil-demo/model-server:1", "port": 8080}, "replicas": 2,
            "policyRef": {"name": policy_name},
            "traffic": {"router": "gatewayapi", "gatewayRef": {"name": "demo-gateway"}, "port": 80},
        },
    }


class Demo:
    def __init__(self, args: argparse.Namespace) -> None:
        self.scenario = args.scenario
        if self.scenario not in SCENARIOS:
            raise SystemExit(f"--scenario must be one of {', '.join(SCENARIOS)}, not {self.scenario!r}")
        self.timing = Timing.pick(args.fast)
        self.policy_path = Path(getattr(args, "policy", None) or EXAMPLE_POLICY).resolve()
        self.shipped = load_policy(self.policy_path)
        self.policy, self.scaled = scale_policy(self.shipped, self.timing.scale)
        self.policy_name = str(self.policy["metadata"]["name"])
        # The demo's time limit per rollout: at least twice the scaled shadow, bakes and holdback.
        spec = RiskPolicySpec.model_validate(self.policy["spec"])
        planned = (parse_duration(spec.shadow.duration).total_seconds() if spec.shadow.enabled else 0) + \
            len(spec.steps) * parse_duration(spec.bake_time).total_seconds() + \
            (parse_duration(spec.holdback.bake_time).total_seconds() if spec.holdback else 0)
        self.timeout = max(self.timing.timeout, 2 * planned + 60)
        self.out = Path(args.out).resolve()
        self.out.mkdir(parents=True, exist_ok=True)
        self.stack = ExitStack()

    def time_scale(self) -> dict[str, Any]:
        """What the demo changed in the policy, and the load that makes the scaled time honest."""
        t = self.timing
        return {
            "policy": str(self.policy_path),
            "factor": str(t.scale),
            "scaled": [{"field": f.path, "shipped": f.shipped, "demo": f.demo,
                        "given_in_file": f.from_file} for f in self.scaled],
            "unchanged": "everything else in the spec: gates, tolerances, regression margins (defaults), confidence, "
                         "promotionConfidence, steps, maxWeight, minSamples, failureLimit, noData, "
                         "shadow.mirrorPercent, holdback.weight, budget.onExpiry, requiredApprovals, riskTier",
            "rate_per_second": t.rate,
            "requests_per_scaled_minute": t.equivalent_per_minute,
            "stands_for": f"a real rollout at {t.equivalent_per_minute:.0f} requests/min",
        }

    def announce_policy(self) -> None:
        t = self.timing
        _say(f"policy: {self.policy_path} ({self.policy_name}), used as shipped except time")
        _say(f"time scale {t.scale} (1 policy minute = {60 * float(t.scale):g} s), applied to every duration:")
        for f in self.scaled:
            origin = "" if f.from_file else " (the default; the file leaves it out)"
            _say(f"    {f.path}: {f.shipped} -> {f.demo}{origin}")
        _say("    nothing else changed: gates, tolerances, regression margins, confidence, promotionConfidence,")
        _say("    steps, maxWeight, minSamples, failureLimit, noData, mirrorPercent and holdback weight as shipped")
        _say(f"load: {t.rate:.4g} requests/s, so a scaled minute carries {t.equivalent_per_minute:.0f} requests: "
             f"the evidence per minute of a real rollout at {t.equivalent_per_minute:.0f} requests/min "
             f"({t.equivalent_per_minute / 60:.1f} requests/s)")

    # ------------------------------------------------------------ start everything
    def start(self) -> None:
        self.announce_policy()
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
        faults, gate = SCENARIOS[self.scenario]
        _say(f"starting model servers v1, v2 (good) and v3 ({', '.join(faults)}; should fail {gate})")
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

        self.custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL_RISKPOLICIES, self.policy)
        in_force = cast(dict[str, Any], self.custom.get_namespaced_custom_object(
            GROUP, VERSION, NS, PLURAL_RISKPOLICIES, self.policy_name))["spec"]
        self.in_force = in_force
        differences = policy_differences(self.shipped["spec"], in_force, self.timing.scale)
        if differences:
            raise RuntimeError("the policy in force is not the shipped one up to the time scale: " + "; ".join(differences))
        _say(f"RiskPolicy {self.policy_name} in force: equal to {self.policy_path.name} up to the time scale {self.timing.scale}")
        self.custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL_MODELDEPLOYMENTS,
                                                    modeldeployment("v1", self.policy_name))
        self.wait_phase(lambda s: s.get("phase") == "Succeeded" and s.get("stableVersion") == "v1", 60, "v1 deployed")

        backends = {f"{MODEL}-{v}": f"http://127.0.0.1:{s.port}" for v, s in servers.items()}
        self.splitter = self.sup.start_splitter(kubeconfig=cluster.kubeconfig, kind="httproute", namespace=NS,
                                                route=MODEL, backends=backends)
        self.prom.add_targets(f"127.0.0.1:{self.splitter.port}")
        _say(f"sending {self.timing.rate:.4g} requests/s through the traffic splitter, labels 3-8 s later")
        self.load_started = _now()
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
        plan = (s.get("plan") or {}).get("summary")
        return (f"phase={s.get('phase')} stable={s.get('stableVersion')} canary={s.get('canaryVersion')} "
                f"weight={step.get('weight')} verdict={s.get('verdict')} [{verdicts}]"
                + (f" plan: {plan}" if plan else "") + f" {s.get('message', '')[:120]}")

    def rollout(self, version: str, expect: str) -> RolloutResult:
        _say(f"=== rolling out {version} (expected: {expect}) ===")
        started = _now()
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL_MODELDEPLOYMENTS, MODEL, {
            "spec": {"version": version, "artifact": {"uri": f"s3://models/{MODEL}/{version}", "digest": digest(version)}}})

        def finished(s: dict[str, Any]) -> bool:
            promoted = s.get("stableVersion") == version and s.get("phase") == "Succeeded"
            rolled_back = s.get("phase") == "RolledBack" and s.get("canaryVersion") == version
            return promoted or rolled_back

        s = self.wait_phase(finished, self.timeout, f"{version} to be decided")
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

    def sustained_load(self) -> dict[str, float]:
        """What the machine really carried: user requests per second through the splitter since
        the load started, and how many of them failed to reach a backend."""
        window = max(int((_now() - self.load_started).total_seconds()), 1)
        out: dict[str, float] = {"asked_per_second": self.timing.rate, "seconds": window}
        for key, match in (("answered_per_second", 'routing="weighted",outcome=~"success|error"'),
                           ("unreachable_per_second", 'routing="weighted",outcome="unreachable"'),
                           ("labels_per_second", 'routing="pinned"')):
            try:
                result = self.prom.query(f"sum(increase({SPLITTER_REQUESTS_TOTAL}{{{match}}}[{window}s]))")
                out[key] = round(float(result[0]["value"][1]) / window, 1) if result else 0.0
            except (StartError, RequestException, KeyError, IndexError, ValueError):
                out[key] = float("nan")
        return out

    # ------------------------------------------------------------ report
    @staticmethod
    def read_decisions(results: list[RolloutResult], records: list[dict[str, Any]]) -> None:
        """When each rollout's promote or rollback was decided, and in which phase, from the audit."""
        for r in results:
            mine = [rec for rec in records if rec.get("version") == r.version]
            phase = None  # the phase a decision was taken in: the one the records before it left
            for rec in mine:
                seconds = (parse_iso(rec["time"]) - r.started).total_seconds()
                if rec["action"] == "promote" and r.promote_seconds is None:
                    r.promote_seconds = seconds
                if rec["action"] == "rollback" and r.rollback_seconds is None:
                    r.rollback_seconds, r.rollback_phase = seconds, phase
                phase = rec.get("phase")

    def finish(self, results: list[RolloutResult], started: datetime) -> int:
        records = sorted(self.kube.audit_records(NS, MODEL), key=lambda r: r["seq"])
        self.read_decisions(results, records)
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
        total = (_now() - started).total_seconds()
        load = self.sustained_load()
        summary = {
            "scenario": self.scenario,
            "time_scale": self.time_scale(),
            "policy_in_force": self.in_force,
            "policy_differences_beyond_time": policy_differences(self.shipped["spec"], self.in_force, self.timing.scale),
            "total_seconds": round(total, 1),
            "load": load,
            "final_route_weights": final_weights,
            "final_status": {k: v for k, v in self.status().items() if k in ("phase", "stableVersion", "canaryVersion",
                                                                            "conditions", "failedDigests")},
            "events": events,
            "rollouts": [{"version": r.version, "outcome": r.outcome, "seconds_to_decision": r.seconds,
                          "seconds_to_promote_decision": r.promote_seconds,
                          "seconds_to_rollback_decision": r.rollback_seconds, "rollback_phase": r.rollback_phase,
                          "requests_served_by_version": r.served_by_version} for r in results],
            "decisions": [f"{r['seq']} {r['action']} {r['phase']} {r.get('version')} w={r.get('weight')}" for r in records],
            "audit_chain": report.summary(),
            "report": str(files.html),
        }
        (self.out / "summary.json").write_text(json.dumps(summary, indent=2))
        print("\n==================== summary ====================")
        t = self.timing
        print(f"  policy:    {self.policy_path.name} as shipped, every duration x{t.scale} "
              f"({', '.join(f'{f.path} {f.shipped}->{f.demo}' for f in self.scaled)})")
        print(f"  load:      {t.rate:.4g} requests/s asked = {t.equivalent_per_minute:.0f} requests per scaled minute; "
              f"carried {load['answered_per_second']:g}/s answered, {load['unreachable_per_second']:g}/s unreachable, "
              f"{load['labels_per_second']:g} labels/s")
        for r in results:
            detail = ""
            if r.promote_seconds is not None:
                detail = f" (promote decided at {r.promote_seconds:.0f}s, then the holdback)"
            elif r.rollback_seconds is not None:
                detail = f" (rollback decided at {r.rollback_seconds:.0f}s, in {r.rollback_phase})"
            print(f"  {r.version}: {r.outcome:<12} in {r.seconds or float('nan'):5.0f}s{detail}, "
                  f"{r.served_by_version:6.0f} user requests answered by {r.version}")
        print(f"  total:     {total:.0f}s")
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
