"""Prometheus faults on the real apiserver, through the real `PrometheusProvider` and HTTP: down,
slow beyond the timeout, garbage, a scalar, NaN, stale, 429, a series for the wrong version.
Never a promotion, and the reason shows in status (`MetricsAvailable=False`).

The faulty Prometheus is a small HTTP server that answers each model's queries in one faulty
way (the model's name says which); a real Prometheus cannot be made to answer garbage or 429.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest
from kopf.testing import KopfRunner
from kubernetes import client as k8s
from vigil.api.names import GROUP, VERSION
from vigil.core.decide import default_analyzer
from vigil.handlers.config import configure
from vigil.metrics import PrometheusConfig, PrometheusProvider

from ..conftest import KubeHandle, wait_for
from .test_operator import md_body, policy_body

EXPECTED = {
    "down": "PrometheusUnavailable",
    "slow": "PrometheusTimeout",
    "garbage": "PrometheusBadResponse",
    "scalar": "PrometheusBadResponse",
    "nan": "MetricsInvalid",
    "stale": "MetricsStale",
    "throttled": "PrometheusThrottled",
    "wrongversion": "MetricsMissing",
}


def _matrix(versions: list[str], start: float, end: float, step: float, value: str) -> dict:
    times = [start + i * step for i in range(int((end - start) // step) + 1)]
    return {"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": {"__name__": "vigil_model_requests_total", "version": v, "outcome": "success"},
         "values": [[t, value if value != "count" else str(100 * (i + 1))] for i, t in enumerate(times)]}
        for v in versions]}}


@pytest.fixture
def faulty_prometheus() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            params = {k: v[0] for k, v in parse_qs(url.query).items()}
            match = re.search(r'model="([a-z]+)"', params.get("query", ""))
            mode = match.group(1) if match else ""
            if mode == "down":
                self.close_connection = True
                self.connection.close()  # a server that drops every connection
                return
            if mode == "slow":
                time.sleep(3)  # beyond the provider's 1 s timeout
            status, payload = 200, b""
            now = time.time()
            if mode == "throttled":
                status, payload = 429, b'{"status":"error","error":"too many requests"}'
            elif mode == "garbage":
                payload = b"<html>this is not Prometheus</html>"
            elif mode == "scalar":
                payload = json.dumps({"status": "success", "data": {"resultType": "scalar", "result": [now, "1"]}}).encode()
            elif url.path.endswith("/query_range"):
                start, end, step = float(params["start"]), float(params["end"]), float(params["step"].rstrip("s"))
                versions = ["v9"] if mode == "wrongversion" else ["v1", "v2"]
                payload = json.dumps(_matrix(versions, start, end, step, "NaN" if mode == "nan" else "count")).encode()
            else:  # the freshness query: when each version was last scraped
                seen = now - 3600 if mode == "stale" else now
                payload = json.dumps({"status": "success", "data": {"resultType": "vector", "result": [
                    {"metric": {"version": v}, "value": [now, str(seen)]} for v in ("v1", "v2")]}}).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:
                pass  # the client gave up (timeout)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_every_prometheus_fault_holds_the_rollout_and_shows_its_reason(
        kube: KubeHandle, namespace: str, faulty_prometheus: str) -> None:
    custom = k8s.CustomObjectsApi(kube.api_client)

    def md(name: str) -> dict:
        return custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "modeldeployments", name)

    def metrics_condition(name: str) -> tuple[str, str] | None:
        for c in (md(name).get("status") or {}).get("conditions") or []:
            if c["type"] == "MetricsAvailable":
                return c["status"], c["reason"]
        return None

    provider = PrometheusProvider(PrometheusConfig(url=faulty_prometheus, timeout_seconds=1, retries=1,
                                                   backoff_seconds=0.1, step_seconds=1, query_budget_seconds=5))
    os.environ["KUBECONFIG"] = str(kube.kubeconfig)
    configure(api_client=kube.client_for(), metrics=provider, analyzer=default_analyzer)  # the real engine
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "riskpolicies",
                                           policy_body(steps=[20, 50], bakeTime="1s", analysisInterval="1s"))
    with KopfRunner(["run", "-m", "vigil.handlers.operator", "--standalone", "-n", namespace]) as runner:
        for mode in EXPECTED:
            body = md_body("v1", "istio")
            body["metadata"]["name"] = mode
            body["spec"]["model"] = mode
            custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "modeldeployments", body)
        for mode in EXPECTED:
            wait_for(lambda m=mode: (md(m).get("status") or {}).get("phase") == "Succeeded", timeout=90,
                     what=f"{mode}: v1 deployed")
            custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, "modeldeployments", mode, {
                "spec": {"version": "v2", "artifact": {"uri": "s3://m/v2", "digest": "sha256:" + "2" * 64}}})
        seen = {}
        for mode, reason in EXPECTED.items():
            seen[mode] = wait_for(lambda m=mode, r=reason: metrics_condition(m) == ("False", r) and metrics_condition(m),
                                  timeout=120, what=f"{mode}: MetricsAvailable=False {reason}; now {metrics_condition(mode)}")
        for mode in EXPECTED:
            status = md(mode)["status"]
            assert status["stableVersion"] == "v1", f"{mode}: promoted on a faulty Prometheus: {status.get('history')}"
            assert status["phase"] in ("Canary", "Shadow", "RollingBack", "RolledBack"), (mode, status["phase"])
    assert runner.exception is None, runner.exception
