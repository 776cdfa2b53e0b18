"""Each metric preset read through the real provider from a real Prometheus.

A fixture exporter per version plays the model server: a `prometheus_client` registry with that
server's series names and labels (plus `namespace` and `vigil_version`, which a Kubernetes
scrape config copies from the pod; docs/presets.md), served in the text format on a free port
and scraped by the session's Prometheus. After a known number of requests, the provider must
return exactly those counts to the error and latency gates, and NoData with the preset's
reason for a gate the server cannot serve.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from vigil.api.gates import Gate
from vigil.api.gates import MetricKind as K
from vigil.dev.prometheus import PrometheusServer
from vigil.metrics import NoData, PrometheusConfig, PrometheusProvider
from vigil.metrics.target import AnalysisTarget
from vigil.stats.data import LatencyHistogram, RequestCounts

from ..conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.prometheus_only]  # prometheus_only: make test runs it beside the build
EDGES = (0.05, 0.1, 0.25, 0.5, 1.0)


@dataclass(frozen=True)
class PresetTarget(AnalysisTarget):
    """An AnalysisTarget naming its preset (what the reconciler builds from spec.analysis.metricsPreset)."""

    preset: str = "vigil"


class Server:
    """One version's model server: requests and latencies, exposed under a preset's names."""

    def __init__(self, preset: str, version: str) -> None:
        self.preset, self.version = preset, version
        self.ok = 0
        self.failed = 0
        self.latencies: list[float] = []
        self.lock = threading.Lock()

    def serve(self, n_ok: int, n_failed: int, latency: float) -> None:
        with self.lock:
            self.ok += n_ok
            self.failed += n_failed
            self.latencies += [latency] * (n_ok + n_failed)

    def collect(self) -> Iterator[Metric]:
        with self.lock:
            yield from FAMILIES[self.preset](self, {"namespace": "shop", "vigil_version": self.version})

    def histogram(self, name: str, labels: dict[str, str]) -> Metric:
        family = Metric(name, "latency", "histogram")
        for edge in (*EDGES, float("inf")):
            le = "+Inf" if edge == float("inf") else repr(edge)
            family.add_sample(f"{name}_bucket", {**labels, "le": le}, sum(x <= edge for x in self.latencies))
        family.add_sample(f"{name}_count", labels, len(self.latencies))
        family.add_sample(f"{name}_sum", labels, float(sum(self.latencies)))
        return family


def counter(name: str, samples: list[tuple[dict[str, str], float]]) -> Metric:
    """A counter family whose samples carry exactly `name` (Triton's counters have no _total)."""
    family = Metric(name.removesuffix("_total"), "requests", "counter")
    for labels, value in samples:
        family.add_sample(name, labels, value)
    return family


def vllm(s: Server, pod: dict[str, str]) -> Iterator[Metric]:
    # docs.vllm.ai Production Metrics: model_name on every series; finished_reason on the request counter
    m = {**pod, "model_name": "ranker"}
    yield counter("vllm:request_success_total", [({**m, "finished_reason": "stop"}, s.ok - s.ok // 2),
                                                 ({**m, "finished_reason": "length"}, s.ok // 2),
                                                 ({**m, "finished_reason": "error"}, s.failed)])
    yield s.histogram("vllm:e2e_request_latency_seconds", m)
    yield s.histogram("vllm:time_to_first_token_seconds", m)


def triton(s: Server, pod: dict[str, str]) -> Iterator[Metric]:
    # Triton metrics.md: model and version (Triton's own) labels, success and failure counters
    m = {**pod, "model": "ranker", "version": "1"}
    yield counter("nv_inference_request_success", [(m, s.ok)])
    yield counter("nv_inference_request_failure", [({**m, "reason": "BACKEND"}, s.failed)])
    yield counter("nv_inference_request_duration_us", [(m, 1e6 * sum(s.latencies))])


def kserve(s: Server, pod: dict[str, str]) -> Iterator[Metric]:
    # kserve/metrics.py: request_*_seconds histograms with model_name
    yield s.histogram("request_predict_seconds", {**pod, "model_name": "ranker"})


def seldon(s: Server, pod: dict[str, str]) -> Iterator[Metric]:
    # Seldon Core 2 agent.go: seldon_model_infer_total{model, code, ...}; the latency histogram has no model label
    base = {**pod, "server": "mlserver", "server_replica": "0"}
    yield counter("seldon_model_infer_total", [({**base, "model": "ranker", "model_internal": "ranker_1",
                                                 "method_type": "rest", "code": "200"}, s.ok),
                                                ({**base, "model": "ranker", "model_internal": "ranker_1",
                                                  "method_type": "rest", "code": "503"}, s.failed)])
    yield s.histogram("seldon_model_infer_api_seconds", {**base, "method": "POST", "code": "200"})


FAMILIES = {"vllm": vllm, "triton": triton, "kserve": kserve, "seldon": seldon}


class Exporter:
    """`server`'s registry in the Prometheus text format on a free loopback port."""

    def __init__(self, server: Server) -> None:
        registry = CollectorRegistry()
        registry.register(server)  # type: ignore[arg-type]

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = generate_latest(registry)
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.address = f"127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def totals(data: Any) -> dict[str, Any]:
    """What the gates read: requests and errors (RequestCounts), or the latency histogram's bins."""
    if isinstance(data, RequestCounts):
        out = {}
        for role, panel in (("baseline", data.baseline), ("canary", data.canary)):
            requests, errors = data.outcomes(panel)
            out[role] = (int(requests.sum()), int(errors.sum()))
        return out
    if isinstance(data, LatencyHistogram):
        out = {}
        for role, panel in (("baseline", data.baseline), ("canary", data.canary)):
            edges, counts = data.buckets(panel)
            out[role] = {float(e): int(c) for e, c in zip(edges, counts.sum(axis=0)) if c}
        return out
    return {"nodata": getattr(data, "reason", repr(data))}


SUPPORTED = {"vllm": [K.ERROR_RATE, K.LATENCY_P99], "triton": [K.ERROR_RATE],
             "kserve": [K.LATENCY_P99], "seldon": [K.ERROR_RATE, K.LATENCY_P50]}
UNSUPPORTED = {"vllm": K.CALIBRATION, "triton": K.LATENCY_P99, "kserve": K.ERROR_RATE, "seldon": K.PREDICTION_DRIFT}


@pytest.mark.parametrize("preset", ["vllm", "triton", "kserve", "seldon"])
def test_the_provider_reads_each_servers_own_series(prometheus: PrometheusServer, preset: str) -> None:
    baseline, canary = Server(preset, "v1"), Server(preset, "v2")
    exporters = [Exporter(baseline), Exporter(canary)]
    try:
        prometheus.add_targets(*(e.address for e in exporters))
        provider = PrometheusProvider(PrometheusConfig(url=prometheus.url, step_seconds=1, retries=0))
        target = PresetTarget("shop", "ranker", "v1", "v2", preset=preset)
        gates = [Gate(metric=k) for k in (*SUPPORTED[preset], UNSUPPORTED[preset])]
        # both versions scraped before the window starts, so the window counts only what follows
        wait_for(lambda: len(prometheus.query(f'up{{instance=~"{exporters[0].address}|{exporters[1].address}"}} == 1'))
                 == 2 and all(e.address in prometheus.active_targets() for e in exporters), what="both scraped")
        wait_for(lambda: len(prometheus.query('count by (instance) ({vigil_version=~"v1|v2",namespace="shop"})')) >= 2,
                 what="both exporters' series in Prometheus")
        start = datetime.now(UTC)
        wait_for(lambda: datetime.now(UTC).timestamp() - start.timestamp() > 2.5, what="a scrape after start")
        baseline.serve(n_ok=200, n_failed=2, latency=0.04)
        canary.serve(n_ok=90, n_failed=10, latency=0.3)
        expected = {
            K.ERROR_RATE: {"baseline": (202, 2), "canary": (100, 10)},
            K.LATENCY_P50: {"baseline": {0.05: 202}, "canary": {0.5: 100}},
            K.LATENCY_P99: {"baseline": {0.05: 202}, "canary": {0.5: 100}},
        }

        def read() -> dict | None:
            out = provider.collect(target, gates, start, datetime.now(UTC))
            got = {k: totals(out[k]) for k in SUPPORTED[preset]}
            return (out, got) if got == {k: expected[k] for k in SUPPORTED[preset]} else None

        try:
            out, _ = wait_for(read, timeout=60, what=f"{preset}: the served requests in the gates' data")
        except AssertionError:
            out = provider.collect(target, gates, start, datetime.now(UTC))
            pytest.fail(f"{preset}: {({k.value: totals(v) for k, v in out.items()})}")
        missing = out[UNSUPPORTED[preset]]
        assert isinstance(missing, NoData)
        assert f"spec.analysis.metricsPreset={preset}" in missing.reason, missing.reason
    finally:
        for e in exporters:
            e.close()
