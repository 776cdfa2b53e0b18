"""The operator's probes over HTTP, as the kubelet calls them: /healthz and /readyz answer 200
while the operator runs; /readyz answers 503 while the apiserver is down, and 200 again after."""

from __future__ import annotations

import threading

import pytest
import requests

from vigil.dev.process import free_port

from ..conftest import KubeHandle, wait_for
from .test_operator import running_operator


def status(port: int, path: str) -> int:
    try:
        return requests.get(f"http://127.0.0.1:{port}{path}", timeout=5).status_code
    except requests.RequestException:
        return 0


def test_probes_follow_the_loop_and_the_apiserver(kube: KubeHandle, monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    monkeypatch.setenv("VIGIL_HEALTH_PORT", str(port))
    with running_operator(kube):
        wait_for(lambda: status(port, "/readyz") == 200, timeout=60, what="/readyz 200")
        assert status(port, "/healthz") == 200
        seen: list[int] = []
        done = threading.Event()

        def poll() -> None:
            while not done.is_set():
                seen.append(status(port, "/readyz"))
                done.wait(0.2)

        poller = threading.Thread(target=poll)
        poller.start()
        try:
            # from this (long-lived) thread: the control plane's children die with the thread
            # that started them (pdeathsig), so a restart must not run on a short-lived one
            kube.cluster.restart_apiserver()
        finally:
            done.set()
            poller.join()
        assert 503 in seen, seen  # not ready while the apiserver was down
        wait_for(lambda: status(port, "/readyz") == 200, timeout=60, what="/readyz 200 again")
        assert status(port, "/healthz") == 200  # alive throughout: the loop kept ticking
