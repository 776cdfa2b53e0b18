"""PrometheusProvider against a fake client: data shaping, NoData reasons, and connection options."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from prometheus_api_client import PrometheusApiClientException

from vigil.api.gates import Gate, MetricKind
from vigil.metrics import AnalysisTarget, NoData, PrometheusConfig, PrometheusProvider, RequestCounts
from vigil.metrics.prometheus import MAX_POINTS, connect
from vigil.stats import LatencyHistogram, ShadowComparisons

START = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
END = START + timedelta(minutes=5)
T0 = START.timestamp()
TARGET = AnalysisTarget("shop", "ranker", "v1", "v2")


def series(version: str, outcome: str, values: list[float | None], pod: str = "p0") -> dict[str, Any]:
    return {"metric": {"__name__": "vigil_model_requests_total", "namespace": "shop", "model": "ranker",
                       "version": version, "outcome": outcome, "pod": pod},
            "values": [[T0 + 60 * i, str(v)] for i, v in enumerate(values) if v is not None]}


class FakeClient:
    def __init__(self, result: list[dict[str, Any]] | Exception, newest: dict[str, float] | None = None) -> None:
        self.result = result
        self.newest = {"v1": END.timestamp(), "v2": END.timestamp()} if newest is None else newest
        self.range_calls: list[dict[str, Any]] = []
        self.instant_calls: list[str] = []

    def custom_query_range(self, query: str, start_time: datetime, end_time: datetime, step: str,
                           params: dict | None = None) -> list[dict[str, Any]]:
        self.range_calls.append({"query": query, "start": start_time, "end": end_time, "step": step})
        if isinstance(self.result, Exception):
            raise self.result
        return self.result

    def custom_query(self, query: str, params: dict | None = None) -> list[dict[str, Any]]:
        self.instant_calls.append(query)
        return [{"metric": {"version": v}, "value": [END.timestamp(), str(t)]} for v, t in self.newest.items()]


def provider(client: FakeClient, **kwargs: Any) -> PrometheusProvider:
    return PrometheusProvider(PrometheusConfig(url="http://prom:9090", **kwargs), client=client)


HEALTHY = [series("v1", "success", [0, 900, 1800, 2700, 3600, 4500]), series("v1", "error", [0, 9, 18, 27, 36, 45]),
           series("v2", "success", [0, 99, 198, 297, 396, 495]), series("v2", "error", [0, 1, 2, 3, 4, 5])]


def test_range_result_becomes_raw_counters_per_version_on_the_query_grid() -> None:
    client = FakeClient(HEALTHY)
    data = provider(client).collect(TARGET, [Gate(metric="errorRate")], START, END)[MetricKind.ERROR_RATE]
    assert isinstance(data, RequestCounts)
    assert data.timestamps.tolist() == [T0 + 60 * i for i in range(6)]
    requests_c, errors_c = data.outcomes(data.canary)
    assert requests_c.tolist() == [100] * 5 and errors_c.tolist() == [1] * 5
    assert "__name__" not in data.canary.series[0].labels
    assert client.range_calls[0]["step"] == "60s"


def test_gaps_stay_gaps() -> None:
    gappy = HEALTHY[:3] + [series("v2", "error", [None, None, 2, 3, None, 5])]
    data = provider(FakeClient(gappy)).collect(TARGET, [Gate(metric="errorRate")], START, END)[MetricKind.ERROR_RATE]
    error = [s for s in data.canary.series if s.labels["outcome"] == "error"][0]
    assert np.isnan(error.values[[0, 1, 4]]).all()
    assert data.outcomes(data.canary)[1].tolist() == [0, 2, 1, 0, 2]  # born at minute 2 with 2 errors


@pytest.mark.parametrize("failure", [
    requests.ConnectionError("connection refused"),
    requests.Timeout("read timed out"),
    PrometheusApiClientException("HTTP Status Code 400 (b'parse error')"),
])
def test_query_failures_are_no_data_with_the_reason(failure: Exception) -> None:
    out = provider(FakeClient(failure)).collect(TARGET, [Gate(metric="errorRate"), Gate(metric="latencyP99")], START, END)
    for value in out.values():
        assert isinstance(value, NoData) and "query failed" in value.reason
        assert str(failure).split("(")[0].strip()[:10] in value.reason


def test_empty_result_is_no_data_naming_the_missing_version() -> None:
    only_baseline = HEALTHY[:2]
    out = provider(FakeClient(only_baseline)).collect(TARGET, [Gate(metric="errorRate")], START, END)
    assert isinstance(out[MetricKind.ERROR_RATE], NoData)
    assert "no series for canary version 'v2'" in out[MetricKind.ERROR_RATE].reason


def test_nan_samples_are_no_data() -> None:
    broken = HEALTHY[:3] + [series("v2", "error", [0, 1, float("nan"), 3, 4, 5])]
    out = provider(FakeClient(broken)).collect(TARGET, [Gate(metric="errorRate")], START, END)
    assert isinstance(out[MetricKind.ERROR_RATE], NoData) and "must be finite" in out[MetricKind.ERROR_RATE].reason


def test_stale_canary_is_no_data() -> None:
    client = FakeClient(HEALTHY, newest={"v1": END.timestamp(), "v2": END.timestamp() - 600})
    out = provider(client, max_staleness_seconds=120).collect(TARGET, [Gate(metric="errorRate")], START, END)
    assert isinstance(out[MetricKind.ERROR_RATE], NoData)
    assert "canary version 'v2' is stale: newest sample 600s" in out[MetricKind.ERROR_RATE].reason


def test_latency_gates_share_one_query_and_shadow_needs_only_the_canary() -> None:
    buckets = [{"metric": {"version": v, "le": le, "pod": "p0"}, "values": [[T0 + 60 * i, str(10 * i)] for i in range(6)]}
               for v in ("v1", "v2") for le in ("0.1", "+Inf")]
    client = FakeClient(buckets)
    out = provider(client).collect(TARGET, [Gate(metric="latencyP50"), Gate(metric="latencyP99")], START, END)
    assert len(client.range_calls) == 1
    assert isinstance(out[MetricKind.LATENCY_P99], LatencyHistogram) and out[MetricKind.LATENCY_P50] is out[MetricKind.LATENCY_P99]
    shadow = [{"metric": {"version": "v2", "outcome": o}, "values": [[T0 + 60 * i, str(i)] for i in range(6)]}
              for o in ("agree", "disagree")]
    client = FakeClient(shadow, newest={"v2": END.timestamp()})
    out = provider(client).collect(TARGET, [Gate(metric="shadowDisagreement")], START, END)
    assert isinstance(out[MetricKind.SHADOW_DISAGREEMENT], ShadowComparisons)


def test_invalid_target_never_reaches_prometheus() -> None:
    client = FakeClient(HEALTHY)
    out = provider(client).collect(AnalysisTarget("shop", 'r"} or vector(1) or {a="', "v1", "v2"),
                                   [Gate(metric="errorRate")], START, END)
    assert isinstance(out[MetricKind.ERROR_RATE], NoData) and client.range_calls == []


def test_grid_keeps_short_windows_usable_and_long_windows_under_the_point_limit() -> None:
    p = provider(FakeClient(HEALTHY))
    _, times, step = p.grid(START, START + timedelta(seconds=40))
    assert step == 20 and times.size == 3
    _, times, step = p.grid(START, START + timedelta(days=14))
    assert times.size <= MAX_POINTS + 1


def test_connection_options_reach_the_session(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    ca = tmp_path / "ca.pem"
    config = PrometheusConfig(url="https://prom:9090", bearer_token_file=str(token), headers={"X-Scope-OrgID": "team"},
                              ca_file=str(ca), retries=4, backoff_seconds=0.25, timeout_seconds=3)
    client = connect(config)
    assert client.headers == {"X-Scope-OrgID": "team", "Authorization": "Bearer s3cret"}
    assert client._session.verify == str(ca)
    adapter = client._session.get_adapter("https://prom:9090/api/v1/query")
    assert adapter.max_retries.total == 4 and adapter.max_retries.backoff_factor == 0.25
    assert client._timeout == 3
    insecure = connect(PrometheusConfig(url="https://prom:9090", verify_tls=False, bearer_token="t"))
    assert insecure._session.verify is False and insecure.headers["Authorization"] == "Bearer t"


@pytest.mark.parametrize("garbage", [
    [{"metric": {"version": "v2", "outcome": "error"}, "values": [[T0, "not a number"]]}],
    [1764590400.0, "3"],  # a scalar result where a range vector belongs
    [{"metric": "oops", "values": None}],
])
def test_garbage_from_prometheus_is_no_data_never_an_exception(garbage: list[Any]) -> None:
    out = provider(FakeClient(garbage)).collect(TARGET, [Gate(metric="errorRate")], START, END)
    assert isinstance(out[MetricKind.ERROR_RATE], NoData)


class ControlClient(FakeClient):
    """Answers the shadow query with the shadow's comparisons and the control query with stable's."""

    def custom_query_range(self, query: str, start_time: datetime, end_time: datetime, step: str,
                           params: dict | None = None) -> list[dict[str, Any]]:
        self.range_calls.append({"query": query})
        version = "v1" if "control" in query else "v2"
        return [{"metric": {"version": version, "outcome": o}, "values": [[T0 + 60 * i, str(i * k)] for i in range(6)]}
                for o, k in (("agree", 98), ("disagree", 2))]


def test_shadow_gate_reads_the_stable_versions_live_control() -> None:
    client = ControlClient([], newest={"v2": END.timestamp()})
    out = provider(client).collect(TARGET, [Gate(metric="shadowDisagreement")], START, END)
    data = out[MetricKind.SHADOW_DISAGREEMENT]
    assert isinstance(data, ShadowComparisons) and data.control is not None
    assert "vigil_model_shadow_control_comparisons_total" in client.range_calls[-1]["query"]
    assert 'version="v1"' in client.range_calls[-1]["query"]
