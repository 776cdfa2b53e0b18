"""The operator's /metrics on a real Prometheus: a real operator (KopfRunner with the telemetry
module) drives real rollouts on the real apiserver (one promoted, one rolled back, one past its
budget, one whose passes fail, one whose audit record is refused by a quota), Prometheus scrapes
it, and every PromQL expression of the dashboard and of the alert rules must parse and return
data from what the operator really exports."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kopf.testing import KopfRunner
from kubernetes import client as k8s
from vigil.api.names import GROUP, VERSION
from vigil.dev.process import free_port
from vigil.dev.prometheus import PrometheusServer
from vigil.handlers.config import configure
from vigil.metrics import AnalysisTarget
from vigil.observability import metrics as telemetry
from vigil.stats.result import Analysis, Outcome, Plan, Verdict

from ..conftest import KubeHandle, wait_for

CHART = Path(__file__).resolve().parents[2] / "charts" / "vigil"
BAD, SLOW, BROKEN = {"v3"}, {"s2"}, {"b9"}


class VersionMetrics:
    """Metrics double: names the canary; a provider that raises for BROKEN versions."""

    def collect(self, target: AnalysisTarget, gates: Any, start: Any, end: Any) -> dict:
        if target.canary_version in BROKEN:
            raise RuntimeError("metrics backend exploded")
        return {"canary": target.canary_version}


def judge(gates: Any, metrics: dict, **_: Any) -> Analysis:
    """Real result types (their to_dict is what status stores): fail BAD, hold SLOW, pass others."""
    canary = metrics.get("canary")
    outcome = Outcome.FAIL if canary in BAD else Outcome.INCONCLUSIVE if canary in SLOW else Outcome.PASS
    verdicts = [Verdict(g.metric, outcome, f"{g.metric.value} {outcome.value} (double)", statistic="ratio",
                        effect=1.3 if outcome is Outcome.FAIL else 1.01, interval=(0.9, 1.5), tolerance=0.1,
                        e_fail=500.0 if outcome is Outcome.FAIL else 1.5, threshold_fail=40.0,
                        e_pass=50.0 if outcome is Outcome.PASS else 2.0, threshold_pass=20.0, samples=(900, 100),
                        plan=Plan(horizon_s=3600, time_to_pass_s=600.0))
                for g in gates]
    return Analysis(outcome, verdicts)


@pytest.fixture
def telemetry_operator(kube: KubeHandle, prometheus: PrometheusServer) -> Iterator[int]:
    port = free_port()
    os.environ["KUBECONFIG"] = str(kube.kubeconfig)
    os.environ["VIGIL_METRICS_PORT"] = str(port)
    os.environ["VIGIL_METRICS_ADDRESS"] = "127.0.0.1"
    configure(api_client=kube.client_for(), metrics=VersionMetrics(), analyzer=judge)
    try:
        with KopfRunner(["run", "-m", "vigil.handlers.operator", "-m", "vigil.handlers.telemetry",
                         "--standalone", "--all-namespaces"]) as runner:
            wait_for(lambda: port in telemetry._SERVER, what="the metrics endpoint")
            prometheus.add_targets(f"127.0.0.1:{port}")
            yield port
        assert runner.exception is None, runner.exception
    finally:
        for key in ("VIGIL_METRICS_PORT", "VIGIL_METRICS_ADDRESS"):
            os.environ.pop(key, None)


def policy(name: str, **spec: Any) -> dict:
    base = {"steps": [20, 50], "maxWeight": 50, "bakeTime": "1s", "analysisInterval": "1s", "minSamples": 1}
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "RiskPolicy", "metadata": {"name": name},
            "spec": {**base, **spec}}


def md(name: str, version: str, policy_name: str = "policy") -> dict:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelDeployment", "metadata": {"name": name},
            "spec": {"model": name, "version": version,
                     "artifact": {"uri": f"s3://m/{version}", "digest": "sha256:" + (version[-1] * 64)},
                     "server": {"image": "example/model-server:1"}, "replicas": 1,
                     "policyRef": {"name": policy_name}, "traffic": {"router": "istio"}}}


class Objects:
    def __init__(self, kube: KubeHandle, namespace: str) -> None:
        self.ns, self.custom = namespace, k8s.CustomObjectsApi(kube.api_client)
        self.core = k8s.CoreV1Api(kube.api_client)

    def create(self, plural: str, body: dict) -> None:
        self.custom.create_namespaced_custom_object(GROUP, VERSION, self.ns, plural, body)

    def status(self, name: str) -> dict:
        return self.custom.get_namespaced_custom_object(GROUP, VERSION, self.ns, "modeldeployments", name).get("status") or {}

    def set_version(self, name: str, version: str) -> None:
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.ns, "modeldeployments", name, {"spec": {
            "version": version, "artifact": {"uri": f"s3://m/{version}", "digest": "sha256:" + version[-1] * 64}}})

    def stalled(self, name: str) -> str | None:
        cond = next((c for c in self.status(name).get("conditions", []) if c["type"] == "Stalled"), {})
        return cond.get("reason") if cond.get("status") == "True" else None


def concrete(expr: str, namespace: str) -> str:
    """A dashboard query as Grafana would send it for one namespace and every model."""
    return (expr.replace("$namespace", namespace).replace("$model", ".*")
            .replace("$__rate_interval", "1m").replace("$__range", "15m").replace("$__interval", "30s"))


def dashboard_queries() -> list[tuple[str, str]]:
    dash = json.loads((CHART / "files" / "dashboard.json").read_text())
    out = [(p["title"], t["expr"]) for p in dash["panels"] for t in p["targets"]]
    out += [(a["name"], a["expr"]) for a in dash["annotations"]["list"]]
    out += [(v["name"], "vigil_modeldeployment_phase") for v in dash["templating"]["list"] if v["type"] == "query"]
    return out


def alert_rules() -> dict[str, str]:
    rules = yaml.safe_load((CHART / "files" / "alerts.yaml").read_text())
    return {r["alert"]: r["expr"] for g in rules["groups"] for r in g["rules"]}


def scenario(kube: KubeHandle, namespace: str) -> Objects:
    o = Objects(kube, namespace)
    o.create("riskpolicies", policy("policy"))
    o.create("riskpolicies", policy("short", budget={"maxDuration": "3s", "onExpiry": "hold"}))
    o.create("modeldeployments", md("fraud", "v1"))
    o.create("modeldeployments", md("slow", "s1", "short"))
    o.create("modeldeployments", md("broken", "b1"))
    for name, v in (("fraud", "v1"), ("slow", "s1"), ("broken", "b1")):
        wait_for(lambda n=name, w=v: o.status(n).get("stableVersion") == w, what=f"{name} {v} deployed")
    o.set_version("fraud", "v2")
    o.set_version("slow", "s2")
    o.set_version("broken", "b9")
    wait_for(lambda: o.status("fraud").get("stableVersion") == "v2" and o.status("fraud")["phase"] == "Succeeded",
             timeout=90, what="fraud v2 promoted")
    o.set_version("fraud", "v3")
    wait_for(lambda: o.status("fraud").get("phase") == "RolledBack", timeout=90, what="fraud v3 rolled back")
    wait_for(lambda: o.stalled("slow") == "BudgetExceeded", timeout=90, what="slow past its budget")
    # a quota that admits no further AuditRecord: the next decision is refused (AuditWriteFailed)
    records = len(o.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "auditrecords")["items"])
    o.core.create_namespaced_resource_quota(namespace, k8s.V1ResourceQuota(
        metadata=k8s.V1ObjectMeta(name="no-audit"),
        spec=k8s.V1ResourceQuotaSpec(hard={"count/auditrecords.vigil.dev": str(records)})))
    # (admission refuses objects a quota counts until the quota controller has computed its usage)
    o.set_version("fraud", "v4")
    wait_for(lambda: o.stalled("fraud") == "AuditWriteFailed", timeout=60, what="fraud Stalled=AuditWriteFailed")
    return o


def test_dashboard_and_alert_queries_return_data_from_the_real_operator(
        kube: KubeHandle, namespace: str, prometheus: PrometheusServer, telemetry_operator: int) -> None:
    scenario(kube, namespace)
    sel = f'{{namespace="{namespace}"}}'
    wait_for(lambda: prometheus.query(f'vigil_audit_write_failures_total{{namespace="{namespace}",reason="AuditWriteFailed"}} > 0')
             and prometheus.query(f'vigil_reconcile_errors_total{sel} > 3'), timeout=60, what="Prometheus to scrape the failures")

    # the operator's own numbers, through Prometheus
    def one(q: str) -> float:
        (sample,) = prometheus.query(q)
        return float(sample["value"][1])

    assert one(f'vigil_rollbacks_total{{namespace="{namespace}",model="fraud"}}') == 1
    assert one(f'vigil_rollouts_completed_total{{namespace="{namespace}",model="fraud",outcome="promoted"}}') == 1
    assert one(f'vigil_modeldeployment_phase{{namespace="{namespace}",model="slow",phase="Canary"}}') == 1
    assert one(f'vigil_modeldeployment_stalled{{namespace="{namespace}",model="slow",reason="BudgetExceeded"}}') == 1
    assert one(f'vigil_gate_e_value_threshold{{namespace="{namespace}",model="slow",gate="errorRate"}}') == 40
    errors = prometheus.query(f'vigil_reconcile_errors_total{sel}')
    assert {s["metric"]["model"] for s in errors} == {"broken"} and errors[0]["metric"]["reason"] == "RuntimeError"

    empty = [(title, concrete(e, namespace)) for title, e in dashboard_queries() if not prometheus.query(concrete(e, namespace))]
    assert not empty, f"dashboard queries without data: {empty}"

    rules = alert_rules()
    for alert in ("VigilRolloutOverBudget", "VigilRollback", "VigilAuditWriteFailing", "VigilReconcileErrors"):
        # the broken model's passes fail at a backed-off pace, and increase() does not count the
        # error that created its series: the errors rule may need a few more before it holds
        wait_for(lambda a=alert: namespace in {s["metric"].get("namespace") for s in prometheus.query(rules[a])},
                 timeout=120, what=f"{alert}'s expression to hold for {namespace}")
    assert not prometheus.query(rules["VigilNoLeader"])  # this operator leads
    telemetry.set_leader(False)
    try:
        wait_for(lambda: prometheus.query(rules["VigilNoLeader"]), timeout=30, what="VigilNoLeader to fire")
    finally:
        telemetry.set_leader(True)


def test_every_metric_name_the_dashboard_and_rules_use_is_exported(telemetry_operator: int) -> None:
    import urllib.request

    text = urllib.request.urlopen(f"http://127.0.0.1:{telemetry_operator}/metrics", timeout=10).read().decode()
    exported = set(re.findall(r"^# TYPE (\w+) (\w+)", text, re.MULTILINE))
    names = {n for n, _ in exported} | {f"{n}_total" for n, t in exported if t == "counter"} | \
        {f"{n}_bucket" for n, t in exported if t == "histogram"}
    used = set()
    for expr in [e for _, e in dashboard_queries()] + list(alert_rules().values()):
        used |= set(re.findall(r"\bvigil_\w+", expr))
    assert used and used <= names, f"not exported: {used - names}"
