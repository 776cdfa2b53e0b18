"""The development Prometheus: starts, scrapes what it is told, reloads, stops without leftovers."""

from __future__ import annotations

import os
import socket
import time

import pytest
from prometheus_client import CollectorRegistry, Counter, start_http_server

from vigil.dev import prometheus as devprom
from vigil.dev.process import StartError, free_port, pid_alive
from vigil.dev.prometheus import PrometheusServer, openmetrics_text

pytestmark = [pytest.mark.integration, pytest.mark.prometheus_only]  # prometheus_only: make test runs it beside the build


def test_added_target_is_scraped_after_a_reload(prometheus: PrometheusServer) -> None:
    registry = CollectorRegistry()
    Counter("vigil_test_pings", "test counter", registry=registry).inc(7)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        prometheus.add_targets(f"127.0.0.1:{port}")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            found = prometheus.query(f'vigil_test_pings_total{{instance="127.0.0.1:{port}"}}')
            if found:
                break
            time.sleep(0.5)
        assert found and float(found[0]["value"][1]) == 7.0
    finally:
        server.shutdown()
        thread.join(timeout=5)


def test_stop_leaves_no_process_and_no_temp_dir() -> None:
    server = PrometheusServer.start()
    pid, workdir = server.pid, server.workdir
    assert pid is not None and pid_alive(pid)
    server.stop()
    assert not pid_alive(pid)
    assert not workdir.exists()


def test_backfill_into_a_running_server_is_queryable(prometheus: PrometheusServer) -> None:
    t0 = (int(time.time()) // 60) * 60 - 3600
    text = openmetrics_text([("vigil_backfill_probe_total", {"k": "v"}, t0 + 60 * i, 10.0 * i) for i in range(5)],
                            {"vigil_backfill_probe": "counter"})
    prometheus.backfill(text)
    assert prometheus.alive()
    result = prometheus.query('vigil_backfill_probe_total{k="v"}', time=t0 + 240)
    assert float(result[0]["value"][1]) == 40.0


def test_missing_binary_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devprom, "PROMETHEUS", "/nonexistent/prometheus")
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(StartError, match="apt-get install prometheus"):
        PrometheusServer.start()


def test_a_taken_port_is_named(tmp_path: object) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(StartError, match=f"port {port} .* already in use"):
            PrometheusServer.start(port=port)


def test_startup_timeout_shows_the_log_tail() -> None:
    with pytest.raises(StartError) as err:
        PrometheusServer.start(startup_timeout=0.0)
    assert "Prometheus" in str(err.value) and ("log" in str(err.value))


def test_no_prometheus_is_left_running_by_this_module() -> None:
    """Only this test process's children count: parallel test workers run Prometheus servers of
    their own, and a server this module leaked would still be our child."""
    mine = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmd = open(f"/proc/{entry}/cmdline", "rb").read().split(b"\0")
                parent = int(open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if (parent == os.getpid() and cmd and cmd[0].endswith(b"prometheus")
                    and any(b"vigil-prometheus-" in part for part in cmd)):
                mine.append(int(entry))
    assert mine == []
