"""Kill-point harness: kill the operator at every write of real rollouts, restart it, compare.

A "kill" is raised at the k-th write request the reconciler sends to the real apiserver,
either before the request leaves (the write never happened) or after the apiserver answered
(the write happened, the process never learned it). The process's memory is then thrown
away: a fresh `Reconciler` with a fresh `Kube` continues from what the apiserver stored,
exactly as a restarted pod would. Every run is checked against an uninterrupted run of the
same scenario:

- it ends in the same final state (phase, stable version, route weights);
- the same steps were decided, in the same order: none repeated, none skipped;
- every weight change seen on a watch of the route has exactly one completed intent record
  that asked for it, and no completed intent asked for a change the watch did not see;
- every intent has exactly one outcome, a plain decision at most one (abandoned), and the
  signed chain verifies with the public key.

CI runs a sample (`tests/integration/test_killpoints.py`); `python3 -m tests.killpoints`
runs every kill point and prints the count survived (`make killpoints`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from kubernetes import client as k8s
from kubernetes import watch
from kubernetes.client.exceptions import ApiException

from vigil.api.names import GROUP, VERSION
from vigil.audit import chain
from vigil.audit.signing import Signer
from vigil.kube.client import Kube
from vigil.metrics import AnalysisTarget
from vigil.reconciler import Reconciler
from vigil.routing.istio import parse_virtualservice
from vigil.stats.result import Outcome

from .doubles import AnalysisDouble

WRITES = {"POST", "PUT", "PATCH", "DELETE"}
T0 = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.timezone.utc)
STEP_ACTIONS = {"deploy", "deployed", "start", "step", "promote", "promoted", "rollback", "rolled-back"}
SCENARIOS = {"promote": "v2", "rollback": "v9"}  # the version rolled out after v1; v9 is bad
BAD = {"v9"}


class Killed(BaseException):
    """The operator process died here (BaseException: no `except Exception` may swallow it)."""


@dataclass(frozen=True)
class KillPoint:
    write: int  # the k-th write request of the run, from 1
    after: bool  # False: dies before sending it; True: dies after the apiserver answered

    def __str__(self) -> str:
        return f"write {self.write} {'after' if self.after else 'before'}"


class KillSwitch:
    """Counts the write requests an API client sends and raises Killed at the chosen one."""

    def __init__(self, point: KillPoint | None) -> None:
        self.point, self.writes, self.fired = point, 0, False

    def install(self, api_client: k8s.ApiClient) -> None:
        real = api_client.call_api

        def call_api(method: str, url: str, *args: Any, **kwargs: Any) -> Any:  # the client's (method, url, ...)
            if method.upper() not in WRITES:
                return real(method, url, *args, **kwargs)
            self.writes += 1
            here = self.point is not None and not self.fired and self.writes == self.point.write
            if here and not self.point.after:
                self.fired = True
                raise Killed(str(self.point))
            result = real(method, url, *args, **kwargs)
            if here:
                self.fired = True
                raise Killed(str(self.point))
            return result

        api_client.call_api = call_api  # type: ignore[method-assign]


class VersionMetrics:
    """The metrics double: says which version is the canary, for the analysis double."""

    def collect(self, target: AnalysisTarget, gates: Any, start: Any, end: Any) -> dict[str, str]:
        return {"canary": target.canary_version}


def judge(gates: Any, metrics: dict[str, str], **_: Any) -> AnalysisDouble:
    return AnalysisDouble(Outcome.FAIL if metrics.get("canary") in BAD else Outcome.PASS)


class RouteWatch:
    """Every distinct weight split the VirtualService carried, in order, from a watch."""

    def __init__(self, api_client: k8s.ApiClient, namespace: str) -> None:
        self.custom = k8s.CustomObjectsApi(api_client)
        self.namespace = namespace
        self.splits: list[dict[str, int]] = []
        self.last_rv = "0"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"routewatch-{namespace}")

    def start(self) -> RouteWatch:
        self._thread.start()
        return self

    def _run(self) -> None:
        rv = None
        while not self._stop.is_set():
            w = watch.Watch()
            try:
                for ev in w.stream(self.custom.list_namespaced_custom_object, "networking.istio.io", "v1",
                                   self.namespace, "virtualservices", resource_version=rv, timeout_seconds=2):
                    obj = ev["object"]
                    rv = obj["metadata"]["resourceVersion"]
                    self.last_rv = rv
                    if ev["type"] in ("ADDED", "MODIFIED"):
                        weights = dict(parse_virtualservice(obj).split().weights)
                        if not self.splits or self.splits[-1] != weights:
                            self.splits.append(weights)
                    if self._stop.is_set():
                        break
            except ApiException as err:
                if err.status == 410:
                    rv = None  # too old: cannot happen within one short run, but never loop on it
                    continue
                raise
            finally:
                w.stop()

    def caught_up(self, resource_version: str) -> bool:
        return int(self.last_rv) >= int(resource_version)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


@dataclass
class RunResult:
    point: KillPoint | None
    kills: int
    passes: int
    writes: int
    final: dict[str, Any]
    steps: list[tuple[str, int | None]]
    records: list[dict[str, Any]]
    route_splits: list[dict[str, int]]
    problems: list[str] = field(default_factory=list)


class Harness:
    """Runs one scenario per namespace on a real apiserver, with or without a kill point."""

    def __init__(self, client_factory: Callable[[], k8s.ApiClient]) -> None:
        self.client_factory = client_factory
        self.admin = client_factory()
        self.custom = k8s.CustomObjectsApi(self.admin)
        self.core = k8s.CoreV1Api(self.admin)
        self.key = Ed25519PrivateKey.generate()
        self._wait_until_audit_records_are_writable()

    def _wait_until_audit_records_are_writable(self, timeout: float = 60.0) -> None:
        """Runs compare with an uninterrupted run, so the cluster must be the same for all of
        them: an admission policy on AuditRecords left by an earlier install (being deleted)
        would refuse the first records of one run and not of the next."""
        namespace = f"kp-probe-{uuid.uuid4().hex[:6]}"
        self.core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=namespace)))
        probe = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "AuditRecord", "metadata": {"name": "probe"},
                 "spec": {"modelDeployment": "probe", "seq": 1, "time": "2026-12-01T00:00:00Z", "action": "probe",
                          "phase": "Pending", "prevHash": "genesis", "hash": "sha256:" + "0" * 64}}
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    self.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "auditrecords", probe,
                                                                dry_run="All")
                    return
                except ApiException as err:
                    if err.status != 403 or time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
        finally:
            self.core.delete_namespace(namespace)

    # ------------------------------------------------------------ objects
    def _setup(self, namespace: str) -> None:
        self.core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=namespace)))
        self.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "riskpolicies", {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "RiskPolicy", "metadata": {"name": "policy"},
            "spec": {"steps": [20, 50], "maxWeight": 50, "bakeTime": "1m", "analysisInterval": "30s",
                     "minSamples": 1}})
        self.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "modeldeployments", {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelDeployment", "metadata": {"name": "fraud"},
            "spec": self._spec("v1")})

    @staticmethod
    def _spec(version: str) -> dict[str, Any]:
        return {"model": "fraud", "version": version,
                "artifact": {"uri": f"s3://models/fraud/{version}", "digest": "sha256:" + version[-1] * 64},
                "server": {"image": "example/model-server:1"}, "replicas": 2,
                "policyRef": {"name": "policy"}, "traffic": {"router": "istio"}}

    def _md(self, namespace: str) -> dict[str, Any]:
        return self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "modeldeployments", "fraud")

    # ------------------------------------------------------------ one run
    def run(self, scenario: str, point: KillPoint | None, max_passes: int = 400) -> RunResult:
        namespace = f"kp-{uuid.uuid4().hex[:8]}"
        self._setup(namespace)
        routes = RouteWatch(self.client_factory(), namespace).start()
        switch = KillSwitch(point)
        clock = {"now": T0}
        kills = passes = 0

        def fresh() -> Reconciler:  # a restarted process: nothing survives but the apiserver
            api = self.client_factory()
            switch.install(api)
            return Reconciler(Kube(api), metrics=VersionMetrics(), analyzer=judge,
                              clock=lambda: clock["now"], signer=Signer(self.key))

        rec = fresh()
        try:
            for version, done in (("v1", _serving("v1")), (SCENARIOS[scenario], _finished(SCENARIOS[scenario]))):
                if version != "v1":
                    self.custom.patch_namespaced_custom_object(
                        GROUP, VERSION, namespace, "modeldeployments", "fraud", {"spec": self._spec(version)})
                while not done(self._md(namespace)):
                    if passes >= max_passes:
                        raise RuntimeError(f"{scenario} at {point}: not finished after {passes} passes")
                    passes += 1
                    try:
                        decision = rec.reconcile(self._md(namespace))
                    except Killed:
                        kills += 1
                        rec = fresh()
                        clock["now"] += dt.timedelta(seconds=20)  # a restart takes a while
                        continue
                    except ApiException as err:
                        if err.status != 409:
                            raise
                        continue  # a stale read: read again, as the handler does
                    clock["now"] += dt.timedelta(seconds=20)
                    if not decision.changed:
                        time.sleep(0.05)  # waiting for kwok to make pods ready
            md = self._md(namespace)
            route = Kube(self.admin).get("networking.istio.io/v1", "VirtualService", namespace, "fraud") or {}
            deadline = time.monotonic() + 30
            while route and not routes.caught_up(route["metadata"]["resourceVersion"]) and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            routes.stop()
        records = sorted(Kube(self.admin).audit_records(namespace, "fraud", uid=md["metadata"]["uid"]),
                         key=lambda r: r["seq"])
        self.core.delete_namespace(namespace)
        status = md.get("status") or {}
        result = RunResult(
            point=point, kills=kills, passes=passes, writes=switch.writes,
            final={"phase": status.get("phase"), "stable": status.get("stableVersion"),
                   "route": dict(parse_virtualservice(route).split().weights) if route else None},
            steps=decided_steps(records), records=records, route_splits=routes.splits,
        )
        result.problems = self._check(result, status)
        return result

    def _check(self, run: RunResult, status: dict[str, Any]) -> list[str]:
        problems = []
        report = chain.verify(run.records, status.get("auditHead"), public_key=self.key.public_key())
        if not report.ok:
            problems.append("chain: " + report.summary())
        intents = [r["seq"] for r in run.records if r.get("stage") == "intent"]
        decisions = {r["seq"] for r in run.records if r.get("stage") == "decision"}
        outcomes = sorted(r["of"] for r in run.records if r.get("stage") == "outcome" and r["of"] not in decisions)
        if outcomes != intents:
            problems.append(f"intents {intents} and outcomes for {outcomes} do not pair up one to one")
        closed = [r for r in run.records if r.get("stage") == "outcome" and r["of"] in decisions]
        if any(r.get("result") != "abandoned" for r in closed) or len({r["of"] for r in closed}) != len(closed):
            problems.append(f"a plain decision has an outcome other than one 'abandoned': {closed}")
        asked = completed_route_moves(run.records)
        if run.route_splits != asked:
            problems.append(f"the route carried {run.route_splits} but the completed intents asked for {asked}")
        if status.get("openIntent") is not None:
            problems.append(f"intent {status['openIntent']} is still open at the end")
        return problems


def _serving(version: str) -> Callable[[dict[str, Any]], bool]:
    def done(md: dict[str, Any]) -> bool:
        s = md.get("status") or {}
        return s.get("phase") == "Succeeded" and s.get("stableVersion") == version and s.get("openIntent") is None
    return done


def _finished(version: str) -> Callable[[dict[str, Any]], bool]:
    def done(md: dict[str, Any]) -> bool:
        s = md.get("status") or {}
        end = s.get("phase") == "RolledBack" if version in BAD else s.get("stableVersion") == version
        return end and s.get("phase") in ("Succeeded", "RolledBack") and s.get("openIntent") is None
    return done


def abandoned(records: list[dict[str, Any]]) -> set[int]:
    return {r["of"] for r in records if r.get("stage") == "outcome" and r.get("result") == "abandoned"}


def decided_steps(records: list[dict[str, Any]]) -> list[tuple[str, int | None]]:
    """The rollout's steps as decided (abandoned intents moved nothing and do not count)."""
    dropped = abandoned(records)
    return [(r["action"], r.get("weight")) for r in records
            if r.get("stage") in ("intent", "decision") and r["seq"] not in dropped and r["action"] in STEP_ACTIONS]


def completed_route_moves(records: list[dict[str, Any]]) -> list[dict[str, int]]:
    done = {r["of"] for r in records if r.get("stage") == "outcome" and r.get("result") == "completed"}
    return [r["evidence"]["moves"]["route"] for r in records
            if r.get("stage") == "intent" and r["seq"] in done and "route" in (r.get("evidence") or {}).get("moves", {})]


def compare(baseline: RunResult, run: RunResult) -> list[str]:
    """What a killed run did differently from the uninterrupted one."""
    problems = list(run.problems)
    if run.final != baseline.final:
        problems.append(f"final state {run.final} differs from the uninterrupted run's {baseline.final}")
    if run.steps != baseline.steps:
        problems.append(f"steps {run.steps} differ from the uninterrupted run's {baseline.steps} (repeated or skipped)")
    if run.point is not None and run.kills > 1:
        problems.append(f"the kill point was hit {run.kills} times, expected once")
    return problems


def reached(run: RunResult) -> bool:
    """A run can finish in fewer writes than the uninterrupted run it is compared with (one
    Event fewer, say): its last kill points are then never reached and prove nothing."""
    return run.point is None or run.kills > 0


def kill_points(writes: int) -> list[KillPoint]:
    return [KillPoint(k, after) for k in range(1, writes + 1) for after in (False, True)]


def sweep(harness: Harness, scenarios: list[str], every: int = 1,
          report: Callable[[str], None] = print) -> tuple[int, int, list[str]]:
    """Run every `every`-th kill point of each scenario; returns (survived, total, failures),
    counting only kill points the run reached."""
    survived = total = unreached = 0
    failures: list[str] = []
    for scenario in scenarios:
        baseline = harness.run(scenario, None)
        if baseline.problems:
            failures.append(f"{scenario} uninterrupted: {baseline.problems}")
            continue
        points = kill_points(baseline.writes)[::every]
        report(f"{scenario}: {len(points)} kill points over {baseline.writes} writes; steps {baseline.steps}")
        for point in points:
            run = harness.run(scenario, point)
            if not reached(run):
                unreached += 1
                problems = compare(baseline, run)  # still an uninterrupted run: it must match
                if problems:
                    failures.append(f"{scenario} (kill point {point} not reached): " + "; ".join(problems))
                continue
            total += 1
            problems = compare(baseline, run)
            if problems:
                failures.append(f"{scenario} killed at {point}: " + "; ".join(problems))
            else:
                survived += 1
        report(f"{scenario}: {survived}/{total} kill points survived so far ({unreached} not reached)")
    return survived, total, failures


def main(argv: list[str] | None = None) -> int:
    from kubernetes import config as k8s_config

    from vigil.dev.cluster import LocalCluster, temporary_state_dir

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--every", type=int, default=1, help="run every N-th kill point (1: all)")
    p.add_argument("--scenario", action="append", choices=sorted(SCENARIOS))
    args = p.parse_args(argv)
    cluster = LocalCluster(name="vigil-killpoints", state_dir=temporary_state_dir())
    cluster.up()
    try:
        harness = Harness(lambda: k8s_config.new_client_from_config(config_file=str(cluster.kubeconfig)))
        survived, total, failures = sweep(harness, args.scenario or sorted(SCENARIOS), args.every)
    finally:
        cluster.down()
    for f in failures:
        print("FAILED", f)
    print(f"kill points survived: {survived}/{total}")
    return 0 if survived == total and total else 1


if __name__ == "__main__":
    sys.exit(main())
