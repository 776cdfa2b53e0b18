"""The engine's verdict from real PromQL equals its verdict on the same numbers given directly.

A known history (simulated counters of both versions, two pods each, one pod restarting in
the middle) is backfilled into a real Prometheus; `PrometheusProvider.collect` reads it back
with range queries and `analyze` judges it. The same counters handed straight to `analyze`
must give identical verdicts: same outcomes, sample sizes, e-values and effects.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from bench.scenarios import Scenario, World, score_bins, score_shift_for_psi
from bench.simulate import simulate
from bench.windows import window
from vigil.api.gates import Gate, MetricKind
from vigil.dev.process import free_port
from vigil.dev.prometheus import PrometheusServer, openmetrics_text
from vigil.metrics import AnalysisTarget, NoData, PrometheusConfig, PrometheusProvider
from vigil.metrics.promql import selector
from vigil.metrics.queries import SERIES
from vigil.stats import CounterPanel, CounterSeries, Outcome, analyze

pytestmark = [pytest.mark.integration, pytest.mark.prometheus_only]  # prometheus_only: make test runs it beside the build

TARGET = AnalysisTarget(namespace="shop", model="ranker", baseline_version="v1", canary_version="v2")
TYPES = {"vigil_model_requests": "counter", "vigil_model_request_duration_seconds": "histogram",
         "vigil_model_prediction_score": "histogram", "vigil_model_predictions": "counter",
         "vigil_model_label_feedback": "counter", "vigil_model_shadow_comparisons": "counter"}
GATES = [Gate(metric=k) for k in MetricKind]
MINUTES = 30


def restart(panel: CounterPanel, pod: str, at: int) -> CounterPanel:
    """The same counts, but `pod` restarts just before sample `at` (its counters drop to what
    it counted since the restart)."""
    series = []
    for s in panel.series:
        values = s.values.copy()
        if s.labels.get("pod") == pod:
            values[at:] -= values[at - 1]
        series.append(CounterSeries(s.labels, values))
    return CounterPanel(panel.timestamps, tuple(series))


def known_history() -> tuple[dict, float, float]:
    t0 = (math.floor(time.time() / 60) - 150) * 60.0  # 2.5 hours ago, on a minute
    scenario = Scenario("mixed", "all", canary=World(error=0.02, score=score_bins(score_shift_for_psi(0.1))))
    data = window(simulate(scenario, 5000, reps=1, seed=42, minutes=MINUTES), 0, pods=2, t0=t0)
    requests = data[MetricKind.ERROR_RATE]
    data[MetricKind.ERROR_RATE] = type(requests)(requests.baseline, restart(requests.canary, "p0", at=12))
    return data, t0, t0 + 60.0 * MINUTES


def to_openmetrics(data: dict) -> str:
    samples = []
    seen = set()
    for kind, item in data.items():
        name = SERIES[kind]
        if name in seen:
            continue
        seen.add(name)
        arms = [("canary", item.canary)] + ([("baseline", item.baseline)] if hasattr(item, "baseline") else [])
        for role, panel in arms:
            version = TARGET.canary_version if role == "canary" else TARGET.baseline_version
            for s in panel.series:
                labels = {**s.labels, "namespace": TARGET.namespace, "model": TARGET.model, "version": version}
                samples += [(name, labels, float(t), float(v)) for t, v in zip(panel.timestamps, s.values)
                            if not np.isnan(v)]
    return openmetrics_text(samples, TYPES)


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory):
    data, start, end = known_history()
    try:
        server = PrometheusServer.start(history=to_openmetrics(data), workdir=tmp_path_factory.mktemp("prom-history"))
    except Exception as err:  # noqa: BLE001 - the test must fail, not skip
        pytest.fail(f"Prometheus with the known history did not start: {err}", pytrace=False)
    try:
        yield server, data, datetime.fromtimestamp(start, timezone.utc), datetime.fromtimestamp(end, timezone.utc)
    finally:
        server.stop()


def provider(url: str, **kwargs: object) -> PrometheusProvider:
    return PrometheusProvider(PrometheusConfig(url=url, step_seconds=60, timeout_seconds=5, retries=1, **kwargs))


def test_verdicts_from_promql_equal_verdicts_on_the_same_numbers(history) -> None:
    server, direct_data, start, end = history
    collected = provider(server.url).collect(TARGET, GATES, start, end)
    assert not [k for k, v in collected.items() if isinstance(v, NoData)], collected
    via_prometheus = analyze(GATES, collected, alpha_fail=0.05, alpha_pass=0.05, min_samples=200,
                             expected_canary_share=0.1)
    direct = analyze(GATES, direct_data, alpha_fail=0.05, alpha_pass=0.05, min_samples=200,
                     expected_canary_share=0.1)
    for got, want in zip(via_prometheus.verdicts, direct.verdicts):
        assert got.outcome is want.outcome, got.metric
        assert got.samples == want.samples, got.metric
        assert got.e_fail == pytest.approx(want.e_fail, rel=1e-9), got.metric
        assert got.e_pass == pytest.approx(want.e_pass, rel=1e-9), got.metric
        assert got.effect == pytest.approx(want.effect, rel=1e-9, nan_ok=True), got.metric
    assert via_prometheus.to_dict() == direct.to_dict()
    outcomes = {v.metric: v.outcome for v in direct.verdicts}
    assert outcomes[MetricKind.ERROR_RATE] is Outcome.FAIL  # errors x2 at 5000 req/min for 30 minutes
    assert outcomes[MetricKind.PREDICTION_DRIFT] is Outcome.FAIL
    assert via_prometheus.outcome is Outcome.FAIL


def test_the_restart_is_seen_as_a_restart(history) -> None:
    server, direct_data, start, end = history
    collected = provider(server.url).collect(TARGET, [Gate(metric="errorRate")], start, end)
    data = collected[MetricKind.ERROR_RATE]
    restarted = [s for s in data.canary.series if s.labels["pod"] == "p0" and s.labels["outcome"] == "success"][0]
    assert restarted.values[12] < restarted.values[11]  # the drop is really in what Prometheus returned
    n_direct, _ = direct_data[MetricKind.ERROR_RATE].outcomes(direct_data[MetricKind.ERROR_RATE].canary)
    n_prom, _ = data.outcomes(data.canary)
    assert n_prom.tolist() == n_direct.tolist() and (n_prom > 0).all()


def test_a_hostile_label_value_stays_a_literal_in_real_promql(history) -> None:
    server = history[0]
    hostile = 'ranker"} or vector(1) or up{x="'
    naive = f'vigil_model_requests_total{{model="{hostile}"}}'
    assert server.query(naive), "the unescaped query should have been hijacked (else this test proves nothing)"
    assert server.query(selector("vigil_model_requests_total", {"model": hostile})) == []


def test_hostile_target_names_become_no_data(history) -> None:
    server, _, start, end = history
    for bad in (AnalysisTarget("shop", 'x"} or vector(1) or {a="', "v1", "v2"),
                AnalysisTarget("shop", "ranker", "v1", "v2\n"),
                AnalysisTarget("shop", "ranker", "v1", "v2", extra_matchers={"bad-name": "x"})):
        result = provider(server.url).collect(bad, [Gate(metric="errorRate")], start, end)
        assert isinstance(result[MetricKind.ERROR_RATE], NoData)
        assert "invalid analysis target" in result[MetricKind.ERROR_RATE].reason


@pytest.mark.parametrize("change, reason", [
    (lambda t, s, e: (AnalysisTarget("shop", "other-model", "v1", "v2"), s, e), "no series"),
    (lambda t, s, e: (t, s, e + timedelta(minutes=4)), "stale: newest sample 240s before the window end"),
    (lambda t, s, e: (t, s, e + timedelta(minutes=30)), "no sample within Prometheus' lookback"),
])
def test_missing_and_stale_series_are_no_data(history, change: Callable, reason: str) -> None:
    server, _, start, end = history
    target, s, e = change(TARGET, start, end)
    result = provider(server.url).collect(target, [Gate(metric="errorRate")], s, e)[MetricKind.ERROR_RATE]
    assert isinstance(result, NoData) and reason in result.reason


def test_an_unreachable_server_is_no_data_not_an_exception(history) -> None:
    _, _, start, end = history
    result = provider(f"http://127.0.0.1:{free_port()}").collect(TARGET, GATES, start, end)
    assert all(isinstance(v, NoData) and "query failed" in v.reason for v in result.values())
    assert analyze(GATES, result, alpha_fail=0.05, alpha_pass=0.05, min_samples=1).outcome is Outcome.NO_DATA
