"""The operator's Kubernetes client: timeouts on every call, bounded jittered retries, the leader fence."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from vigil.kube.resilience import NotLeader, PassBackoff, RetryPolicy, build


class Script:
    """A tiny apiserver stand-in: answers with the next status of `codes` (the last repeats)."""

    def __init__(self, codes: list[int]) -> None:
        self.codes = codes
        self.seen: list[str] = []


@pytest.fixture
def server() -> Iterator[tuple[str, Script]]:
    script = Script([200])

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            script.seen.append(f"{self.command} {self.path}")
            code = script.codes[min(len(script.seen) - 1, len(script.codes) - 1)]
            body = b'{"kind":"Namespace","apiVersion":"v1","metadata":{"name":"x"}}' if code == 200 else \
                b'{"kind":"Status","apiVersion":"v1","status":"Failure","message":"slow down","code":%d}' % code
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_PATCH = do_POST = _answer

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", script
    httpd.shutdown()
    httpd.server_close()


def client(url: str, policy: RetryPolicy | None = None, fence=None):
    cfg = k8s.Configuration()
    cfg.host = url
    api = build(cfg, policy or RetryPolicy(initial_backoff=0.01, max_backoff=0.02), fence=fence)
    return api


def test_429_and_5xx_are_retried_until_an_answer(server) -> None:
    url, script = server
    script.codes = [429, 503, 200]
    api = client(url)
    ns = k8s.CoreV1Api(api).read_namespace("x")
    assert ns.metadata.name == "x"
    assert len(script.seen) == 3 and api.retried == 2


def test_retries_are_bounded_and_the_last_error_reaches_the_caller(server) -> None:
    url, script = server
    script.codes = [503]
    api = client(url, RetryPolicy(attempts=3, initial_backoff=0.01, max_backoff=0.02))
    with pytest.raises(ApiException) as err:
        k8s.CoreV1Api(api).read_namespace("x")
    assert err.value.status == 503 and "slow down" in err.value.body
    assert len(script.seen) == 3


def test_conflicts_and_client_errors_are_not_repeated(server) -> None:
    url, script = server
    for code in (409, 404, 422):
        script.seen.clear()
        script.codes = [code, 200]
        with pytest.raises(ApiException) as err:
            k8s.CoreV1Api(client(url)).read_namespace("x")
        assert err.value.status == code and len(script.seen) == 1


def test_every_request_gets_a_read_timeout() -> None:
    """A server that accepts and never answers: the call ends with an error instead of hanging."""
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    try:
        api = client(f"http://127.0.0.1:{sock.getsockname()[1]}",
                     RetryPolicy(connect_timeout=1, read_timeout=0.3, attempts=2, initial_backoff=0.01, max_backoff=0.02))
        done: list[BaseException] = []

        def call() -> None:
            try:
                k8s.CoreV1Api(api).read_namespace("x")
            except BaseException as err:  # noqa: BLE001 - recorded for the assertion
                done.append(err)

        worker = threading.Thread(target=call, daemon=True)
        worker.start()
        worker.join(60)
        assert not worker.is_alive(), "the call hung: no read timeout"
        assert done and "timed out" in str(done[0]).lower()
        assert api.retried == 1  # a timeout is worth one more try, within the bound
    finally:
        sock.close()


def test_a_non_leader_sends_no_write_but_still_reads(server) -> None:
    url, script = server
    leader = False
    api = client(url, fence=lambda: leader)
    core = k8s.CoreV1Api(api)
    core.read_namespace("x")
    with pytest.raises(NotLeader, match="not the leader"):
        core.patch_namespace("x", {"metadata": {"labels": {"a": "b"}}})
    assert [s.split()[0] for s in script.seen] == ["GET"]
    leader = True
    core.patch_namespace("x", {"metadata": {"labels": {"a": "b"}}})
    assert script.seen[-1].startswith("PATCH")


def test_bad_retry_policy_names_the_field() -> None:
    with pytest.raises(ValueError, match="RetryPolicy.read_timeout must be > 0"):
        RetryPolicy(read_timeout=0)
    with pytest.raises(ValueError, match="RetryPolicy.attempts must be >= 1"):
        RetryPolicy(attempts=0)


def test_pass_backoff_grows_is_capped_and_resets() -> None:
    b = PassBackoff(initial=1.0, maximum=20.0)
    delays = [b.failed("ns", "a") for _ in range(12)]
    assert all(0 < d <= 20.0 for d in delays)
    assert max(delays[:2]) < min(delays[-3:]), delays  # grows
    assert b.failed("ns", "other") <= 1.0  # per model
    b.succeeded("ns", "a")
    assert b.count("ns", "a") == 0 and b.failed("ns", "a") <= 1.0


# ---------------------------------------------------------------- faults in status

import datetime as dt

import requests
from prometheus_api_client import PrometheusApiClientException
from vigil.handlers.health import Heartbeat
from vigil.kube import faults
from vigil.kube.client import Kube
from vigil.metrics.prometheus import classify


def test_api_faults_are_named_by_kind() -> None:
    assert faults.api_fault(ApiException(status=429, reason="Too Many")).reason == "ApiThrottled"
    assert faults.api_fault(ApiException(status=503, reason="down")).reason == "ApiUnavailable"
    assert faults.api_fault(ApiException(status=403, reason="Forbidden")).reason == "ApiError"
    import urllib3

    assert faults.api_fault(urllib3.exceptions.ReadTimeoutError(None, "/x", "Read timed out.")).reason == "ApiTimeout"


def test_prometheus_faults_are_named_by_kind() -> None:
    assert classify(requests.ConnectTimeout("timed out")) == "PrometheusTimeout"
    assert classify(requests.ReadTimeout("Read timed out. (read timeout=1)")) == "PrometheusTimeout"
    assert classify(requests.ConnectionError("Connection refused")) == "PrometheusUnavailable"
    assert classify(PrometheusApiClientException("HTTP Status Code 429 (b'slow down')")) == "PrometheusThrottled"
    assert classify(PrometheusApiClientException("HTTP Status Code 503 (b'')")) == "PrometheusUnavailable"
    assert classify(ValueError("Expecting value: line 1 column 1")) == "PrometheusBadResponse"


class RecordingKube(faults.FaultAwareKube):
    def __init__(self) -> None:  # no API client: only the status logic is under test
        self.ledger = faults.FaultLedger()
        self.sent: list[dict] = []


def md_with(conditions: list[dict]) -> dict:
    return {"metadata": {"name": "m", "namespace": "ns", "resourceVersion": "7", "generation": 2},
            "status": {"phase": "Canary", "conditions": conditions}}


def test_fault_conditions_ride_along_status_patches_and_no_op_patches_are_skipped(monkeypatch) -> None:
    kube = RecordingKube()
    monkeypatch.setattr(Kube, "patch_status", lambda self, md, status: self.sent.append(status) or md)
    ready = {"type": "Ready", "status": "False", "reason": "Canary", "message": "", "lastTransitionTime": "t0"}
    kube.ledger.set("ns", "m", faults.Fault(faults.METRICS, "PrometheusTimeout", "errorRate: timed out"))
    md = md_with([ready])
    kube.patch_status(md, {"phase": "Canary", "conditions": [ready]})
    sent = kube.sent[-1]["conditions"]
    assert [c["type"] for c in sent] == ["Ready", "MetricsAvailable"]
    assert sent[1]["status"] == "False" and sent[1]["reason"] == "PrometheusTimeout"
    # the reconciler writes its own five conditions again: the fault stays, and an unchanged
    # status is not written at all (no watch event, no wake-up loop)
    stored = md_with(sent)
    kube.patch_status(stored, {"phase": "Canary", "conditions": [ready]})
    assert len(kube.sent) == 1
    # the fault clears: the condition goes
    kube.ledger.clear("ns", "m", faults.METRICS)
    kube.patch_status(stored, {"phase": "Canary", "conditions": [ready]})
    assert [c["type"] for c in kube.sent[-1]["conditions"]] == ["Ready"]


def test_an_unchanged_fault_keeps_its_transition_time() -> None:
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    first = faults.fault_conditions([], {faults.API: faults.Fault(faults.API, "ApiThrottled", "429")}, now, 1)
    later = faults.fault_conditions(first, {faults.API: faults.Fault(faults.API, "ApiUnavailable", "503")},
                                    now + dt.timedelta(minutes=5), 1)
    assert later[0]["lastTransitionTime"] == first[0]["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    assert later[0]["reason"] == "ApiUnavailable"


def test_liveness_goes_stale_only_for_a_lane_that_stopped_progressing() -> None:
    t = [0.0]
    beat = Heartbeat(clock=lambda: t[0])
    beat.beat("routine")
    beat.beat("priority")
    t[0] = 100.0
    beat.beat("priority")
    assert beat.stale(60) == {"routine": 100.0}
    beat.beat("routine")
    assert beat.stale(60) == {}
