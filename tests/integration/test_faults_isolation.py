"""Isolation between models on the real apiserver: models whose Prometheus queries hang fill
every routine worker, and another model's abort is still acted on (the priority lane), while
the hung analyses are still hanging. No wall-clock threshold: the assertion is on order."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from kopf.testing import KopfRunner
from kubernetes import client as k8s
from vigil.api.names import ANN_ABORT, ANN_REQUESTED_BY, GROUP, VERSION
from vigil.handlers import operator as handlers
from vigil.handlers.config import configure
from vigil.metrics import AnalysisTarget

from ..conftest import KubeHandle, wait_for
from ..doubles import passing_analyzer
from .test_operator import md_body, policy_body

SLOW = ("slow0", "slow1", "slow2")


class HangingForSome:
    """Metrics double: queries for the SLOW models block until released (a Prometheus that
    hangs for their selector); the others answer at once. Records concurrent passes per model."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.blocked: set[str] = set()
        self.in_flight: dict[str, int] = {}
        self.overlap: list[str] = []

    def collect(self, target: AnalysisTarget, gates: Any, start: Any, end: Any) -> dict:
        with self.lock:
            self.in_flight[target.model] = self.in_flight.get(target.model, 0) + 1
            if self.in_flight[target.model] > 1:
                self.overlap.append(target.model)
            if target.model in SLOW:
                self.blocked.add(target.model)
        try:
            if target.model in SLOW:
                self.release.wait(300)
            return {"canary": target.canary_version}
        finally:
            with self.lock:
                self.in_flight[target.model] -= 1


def body(name: str, version: str) -> dict:
    b = md_body(version, "istio")
    b["metadata"]["name"] = name
    b["spec"]["model"] = name
    return b


@pytest.fixture
def two_routine_workers() -> Iterator[None]:
    handlers.shutdown(grace=0)  # pools are made at the next start with the sizes below
    saved = {k: os.environ.get(k) for k in ("VIGIL_RECONCILE_WORKERS", "VIGIL_PRIORITY_WORKERS")}
    os.environ["VIGIL_RECONCILE_WORKERS"], os.environ["VIGIL_PRIORITY_WORKERS"] = "2", "2"
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    handlers.shutdown(grace=0)


def test_an_abort_is_served_while_slow_models_hold_every_routine_worker(
        kube: KubeHandle, namespace: str, two_routine_workers: None) -> None:
    custom = k8s.CustomObjectsApi(kube.api_client)

    def md(name: str) -> dict:
        return custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "modeldeployments", name)

    def set_version(name: str, version: str) -> None:
        custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, "modeldeployments", name, {
            "spec": {"version": version, "artifact": {"uri": f"s3://m/{version}", "digest": "sha256:" + version[-1] * 64}}})

    metrics = HangingForSome()
    os.environ["KUBECONFIG"] = str(kube.kubeconfig)
    configure(api_client=kube.client_for(), metrics=metrics, analyzer=passing_analyzer)
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "riskpolicies",
                                           policy_body(steps=[20, 50], bakeTime="600s", analysisInterval="1s"))
    try:
        with KopfRunner(["run", "-m", "vigil.handlers.operator", "--standalone", "-n", namespace]) as runner:
            for name in ("fast", *SLOW):
                custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "modeldeployments", body(name, "v1"))
            for name in ("fast", *SLOW):
                wait_for(lambda n=name: (md(n).get("status") or {}).get("phase") == "Succeeded", timeout=90,
                         what=f"{name} v1 deployed")
            set_version("fast", "v2")
            wait_for(lambda: (md("fast").get("status") or {}).get("phase") == "Canary", timeout=60, what="fast in canary")
            for name in SLOW:
                set_version(name, "v2")
            wait_for(lambda: len(metrics.blocked) >= 2, timeout=90, what="two slow analyses hanging")

            digest = md("fast")["status"]["canaryDigest"]
            custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, "modeldeployments", "fast", {
                "metadata": {"annotations": {ANN_ABORT: digest, ANN_REQUESTED_BY: "alice"}}})
            wait_for(lambda: (md("fast").get("status") or {}).get("phase") in ("RollingBack", "RolledBack"),
                     timeout=90, what="the abort acted on")
            # the order that matters: the abort went through while the slow analyses still hung
            assert not metrics.release.is_set()
            assert len(metrics.blocked) >= 2
            assert all((md(n).get("status") or {}).get("phase") == "Canary" for n in SLOW)
            wait_for(lambda: (md("fast").get("status") or {}).get("phase") == "RolledBack", timeout=90,
                     what="fast rolled back")
            assert metrics.overlap == [], f"two passes of one model at once: {metrics.overlap}"
            metrics.release.set()
    finally:
        metrics.release.set()
    assert runner.exception is None, runner.exception
