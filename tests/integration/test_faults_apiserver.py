"""Apiserver faults on the real apiserver: injected 429s and 409s on the operator's own client,
and an outage of one resource. No lost or duplicated decision (one audit record per sequence
number, the chain verifies, no step repeated or skipped), and the outage shows in status."""

from __future__ import annotations

import os
import threading
from typing import Any

import urllib3
from kopf.testing import KopfRunner
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client import rest
from vigil.audit import chain
from vigil.handlers.config import configure
from vigil.kube import resilience

from ..conftest import KubeHandle, wait_for
from .test_operator import Cluster, VersionMetrics, judge, md_body, policy_body


class Injector:
    """Answers some requests itself instead of sending them: every 4th with 429, every 3rd status
    PATCH with 409, and every request for VirtualServices with 503 while `outage` is set."""

    def __init__(self, api: resilience.ResilientApiClient) -> None:
        self.real = api.rest_client.request
        self.lock = threading.Lock()
        self.count = 0
        self.patches = 0
        self.injected: dict[int, int] = {}
        self.outage = threading.Event()
        api.rest_client.request = self.request  # type: ignore[method-assign]

    def _fake(self, status: int) -> rest.RESTResponse:
        self.injected[status] = self.injected.get(status, 0) + 1
        body = b'{"kind":"Status","apiVersion":"v1","status":"Failure","message":"injected","code":%d}' % status
        return rest.RESTResponse(urllib3.HTTPResponse(body=body, status=status, reason="Injected",
                                                      headers={"Content-Type": "application/json"}))

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> rest.RESTResponse:
        with self.lock:
            self.count += 1
            if self.outage.is_set() and "/virtualservices" in url:
                return self._fake(503)
            if self.count % 4 == 0:
                return self._fake(429)
            if method == "PATCH" and url.split("?")[0].endswith("/status"):
                self.patches += 1
                if self.patches % 3 == 0:
                    return self._fake(409)
        return self.real(method, url, *args, **kwargs)


def test_injected_429_409_and_an_outage_lose_and_duplicate_no_decision(kube: KubeHandle, namespace: str) -> None:
    cfg = k8s.Configuration()
    k8s_config.load_kube_config(config_file=str(kube.kubeconfig), client_configuration=cfg)
    api = resilience.build(cfg, resilience.RetryPolicy(initial_backoff=0.05, max_backoff=0.2, max_seconds=5))
    injector = Injector(api)
    os.environ["KUBECONFIG"] = str(kube.kubeconfig)
    configure(api_client=api, metrics=VersionMetrics(), analyzer=judge)
    c = Cluster(kube, namespace)
    c.create("riskpolicies", policy_body(steps=[20, 50], bakeTime="2s"))
    with KopfRunner(["run", "-m", "vigil.handlers.operator", "--standalone", "-n", namespace]) as runner:
        c.create("modeldeployments", md_body("v1", "istio"))
        wait_for(lambda: c.phase_is("Succeeded"), timeout=90, what="v1 deployed")

        injector.outage.set()  # the route's API fails: the pass fails, status says why
        c.set_version("v2")
        wait_for(lambda: c.conditions().get("ApiAvailable") == ("False", "ApiUnavailable"), timeout=90,
                 what=f"ApiAvailable=False ApiUnavailable; now {c.conditions()}")
        assert c.route_weights("istio") == {"fraud-v1": 100}
        injector.outage.clear()

        wait_for(lambda: c.status().get("stableVersion") == "v2" and c.status().get("phase") == "Succeeded"
                 and c.status().get("openIntent") is None,
                 timeout=150, what="v2 promoted through the faults")
        wait_for(lambda: "ApiAvailable" not in c.conditions(), timeout=30, what="the fault condition cleared")
    assert runner.exception is None, runner.exception
    assert injector.injected.get(429, 0) > 0 and injector.injected.get(409, 0) > 0, injector.injected
    records = c.kube.audit_records(namespace, "fraud")
    seqs = sorted(r["seq"] for r in records)
    assert seqs == list(range(1, len(seqs) + 1)), f"one record per sequence number: {seqs}"
    assert chain.verify(records, expected_head=c.status()["auditHead"]).ok
    ordered = sorted(records, key=lambda r: r["seq"])
    assert [r["weight"] for r in ordered if r["action"] in ("start", "step") and r.get("stage") != "outcome"] == [20, 50]
    assert [r["action"] for r in ordered if r.get("stage") != "outcome"].count("promote") == 1
