"""`vigil operator` stops within seconds of SIGTERM, even while a Prometheus query hangs.

A kubelet sends SIGTERM and waits out the grace period before SIGKILL; an operator that hangs in
a blocking query would stall every restart and upgrade. Here Prometheus is a socket that accepts
connections and never answers, and the rollout is in canary analysis, so a reconcile is blocked
in that query when the signal arrives.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Iterator

import pytest
from kubernetes import client as k8s

from vigil.api.names import GROUP, PLURAL_MODELDEPLOYMENTS, VERSION

from ..conftest import KubeHandle, wait_for
from .test_operator import md_body, policy_body


@pytest.fixture
def silent_prometheus() -> Iterator[str]:
    """A TCP server that accepts and never replies: every query waits for its read timeout."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join(2)
    for conn in held:
        conn.close()
    server.close()


def test_sigterm_during_a_hanging_prometheus_query_exits_within_seconds(
        kube: KubeHandle, namespace: str, silent_prometheus: str) -> None:
    custom = k8s.CustomObjectsApi(kube.api_client)
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "riskpolicies", policy_body())
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL_MODELDEPLOYMENTS, md_body("v1"))
    env = {**os.environ, "KUBECONFIG": str(kube.kubeconfig), "VIGIL_PROMETHEUS_URL": silent_prometheus}
    proc = subprocess.Popen([sys.executable, "-m", "vigil", "operator", "--namespace", namespace],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        def status() -> dict:
            md = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL_MODELDEPLOYMENTS, "fraud")
            return md.get("status") or {}

        wait_for(lambda: status().get("phase") == "Succeeded", timeout=90, what="v1 deployed")
        custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL_MODELDEPLOYMENTS, "fraud", {
            "spec": {"version": "v2", "artifact": {"uri": "s3://models/fraud/v2", "digest": "sha256:" + "2" * 64}}})
        wait_for(lambda: (status().get("step") or {}).get("startedAt"), timeout=60, what="canary step started")
        time.sleep(3)  # the first analysis is now waiting on the silent Prometheus
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        took = time.monotonic() - started
        assert took < 12, f"operator took {took:.1f}s to stop after SIGTERM"
        # the hung query never promoted anything
        assert status().get("stableVersion") == "v1"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
