"""The guard queries on the real Prometheus, scraping a live exporter: the digest a version's
pods report, and the stable version's burn rate (errors over requests over the budget)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from vigil.core.guards import GuardPlan, budget_problem
from vigil.api.policy import RiskPolicySpec
from vigil.dev.process import free_port
from vigil.metrics.guards import GuardReader
from vigil.metrics.target import AnalysisTarget

from ..conftest import wait_for

pytestmark = pytest.mark.prometheus_only  # make test runs it beside the control plane build


@pytest.fixture
def exporter() -> Iterator[tuple[str, Counter, Gauge]]:
    registry = CollectorRegistry()
    requests = Counter("vigil_model_requests", "requests", ["namespace", "model", "version", "outcome"],
                       registry=registry)
    info = Gauge("vigil_model_info", "artifact", ["namespace", "model", "version", "digest"], registry=registry)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        yield f"127.0.0.1:{port}", requests, info
    finally:
        server.shutdown()
        thread.join(timeout=5)


def test_digests_and_burn_rates_read_from_real_prometheus(prometheus, exporter) -> None:
    address, requests, info = exporter
    ns = f"guards-{int(time.time() * 1000) % 10**8}"
    info.labels(ns, "fraud", "v2", "sha256:" + "a" * 64).set(1)
    ok = requests.labels(ns, "fraud", "v1", "success")
    bad = requests.labels(ns, "fraud", "v1", "error")
    prometheus.add_targets(address)
    target = AnalysisTarget(namespace=ns, model="fraud", baseline_version="v1", canary_version="v2")
    reader = GuardReader(prometheus.client)
    plan = GuardPlan(artifact_of="v2", budget_of="v1", windows=("5m", "1h"), objective=0.999)

    wait_for(lambda: reader.read(target, plan).canary_digests, timeout=30, what="the digest series")
    assert reader.read(target, plan).canary_digests == {"sha256:" + "a" * 64}

    # 10% errors against a 0.1% budget: a burn rate of about 100x in both windows
    def burning() -> dict | None:
        ok.inc(90)
        bad.inc(10)
        rates = reader.read(target, plan).burn_rates or {}
        return rates if rates.get("5m", 0) > 50 else None

    rates = wait_for(burning, timeout=60, interval=1.0, what="a measurable burn rate")
    assert 50 < rates["5m"] <= 100.0001 and 50 < rates["1h"] <= 100.0001
    policy = RiskPolicySpec.model_validate({"errorBudget": {"objective": 0.999, "windows": [
        {"long": "1h", "short": "5m", "factor": 14.4}]}})
    assert "faster than sustainable" in budget_problem(policy, reader.read(target, plan))


def test_an_unreachable_prometheus_is_a_problem_never_a_healthy_reading() -> None:
    from vigil.metrics import PrometheusConfig
    from vigil.metrics.connection import connect

    client = connect(PrometheusConfig(url=f"http://127.0.0.1:{free_port()}", timeout_seconds=2.0, retries=0))
    target = AnalysisTarget(namespace="x", model="fraud", baseline_version="v1", canary_version="v2")
    readings = GuardReader(client).read(target, GuardPlan(budget_of="v1", windows=("5m",), objective=0.99))
    assert readings.burn_rates is None and "failed" in (readings.problem or "")
    policy = RiskPolicySpec.model_validate({"errorBudget": {"objective": 0.99}})
    assert "unknown" in budget_problem(policy, readings)
