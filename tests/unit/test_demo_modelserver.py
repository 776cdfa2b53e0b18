"""The model server over HTTP (in-process): the metric contract exactly, feedback, mirrors."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from vigil.demo.faults import FaultConfig, parse_faults
from vigil.demo.classifier import DemoModel
from vigil.demo.modelserver import ModelServer, ServerConfig, build_app

CONTRACT = {
    # family name (as the parser reports it) -> (type, sample name -> label names)
    "vigil_model_requests": ("counter", {
        "vigil_model_requests_total": {"namespace", "model", "version", "outcome"}}),
    "vigil_model_request_duration_seconds": ("histogram", {
        "vigil_model_request_duration_seconds_bucket": {"namespace", "model", "version", "le"},
        "vigil_model_request_duration_seconds_count": {"namespace", "model", "version"},
        "vigil_model_request_duration_seconds_sum": {"namespace", "model", "version"}}),
    "vigil_model_prediction_score": ("histogram", {
        "vigil_model_prediction_score_bucket": {"namespace", "model", "version", "le"},
        "vigil_model_prediction_score_count": {"namespace", "model", "version"},
        "vigil_model_prediction_score_sum": {"namespace", "model", "version"}}),
    "vigil_model_predictions": ("counter", {
        "vigil_model_predictions_total": {"namespace", "model", "version", "group", "predicted_class"}}),
    "vigil_model_label_feedback": ("counter", {
        "vigil_model_label_feedback_total": {"namespace", "model", "version", "group",
                                             "confidence_bucket", "correct"}}),
    "vigil_model_shadow_comparisons": ("counter", {
        "vigil_model_shadow_comparisons_total": {"namespace", "model", "version", "outcome"}}),
    "vigil_model_shadow_control_comparisons": ("counter", {
        "vigil_model_shadow_control_comparisons_total": {"namespace", "model", "version", "outcome"}}),
}
CONTRACT_LATENCY_LE = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.5, 5.0]
SCORE_LE = ["0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9", "1.0", "+Inf"]


@pytest.fixture(scope="module")
def model() -> DemoModel:
    return DemoModel()


def serve(model: DemoModel, faults: FaultConfig = FaultConfig(), seed: int = 0,
          version: str = "v2") -> ModelServer:
    return ModelServer(ServerConfig(model="iris", version=version, namespace="demo",
                                    faults=faults, seed=seed, base_latency_ms=0.0), model)


def with_client(server: ModelServer, body: Callable[[TestClient], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        async with TestClient(TestServer(build_app(server))) as client:
            return await body(client)
    return asyncio.run(main())


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [(s.name, s.labels, s.value) for fam in text_string_to_metric_families(text)
            for s in fam.samples]


def value(text: str, name: str, **labels: str) -> float:
    return sum(v for n, lab, v in samples(text) if n == name
               and all(lab.get(k) == want for k, want in labels.items()))


def test_metric_names_types_labels_and_buckets_are_exactly_the_contract(model: DemoModel) -> None:
    async def body(client: TestClient) -> str:
        await client.post("/predict", json={"row": 0})
        return await (await client.get("/metrics")).text()

    text = with_client(serve(model), body)
    # prometheus_client's `_created` timestamps are switched off process-wide by the
    # server's main(); in this in-process test they may be on, so they are left out.
    families = {f.name: f for f in text_string_to_metric_families(text)
                if not f.name.endswith("_created")}
    assert set(families) == set(CONTRACT)
    for name, (kind, sample_labels) in CONTRACT.items():
        family = families[name]
        assert family.type == kind, name
        seen = {s.name for s in family.samples} - {f"{name}_created"}
        assert seen == set(sample_labels), name
        for sample in family.samples:
            if sample.name in sample_labels:
                assert set(sample.labels) == sample_labels[sample.name], sample
                assert sample.labels["model"] == "iris"
                assert sample.labels["version"] == "v2"
                assert sample.labels["namespace"] == "demo"
    le = lambda n: [s.labels["le"] for s in families[n].samples if s.name.endswith("_bucket")]  # noqa: E731
    # every edge of the contract, plus finer edges (about 1.1x apart) where the demo's p99 lies
    latency = le("vigil_model_request_duration_seconds")
    assert latency[-1] == "+Inf"
    edges = [float(e) for e in latency[:-1]]
    assert edges == sorted(edges) and set(CONTRACT_LATENCY_LE) <= set(edges)
    fine = [b / a for a, b in zip(edges, edges[1:]) if 0.05 <= a and b <= 0.75]
    assert len(fine) >= 20 and max(fine) <= 1.16
    assert le("vigil_model_prediction_score") == SCORE_LE


def test_every_label_value_exists_at_zero_before_traffic(model: DemoModel) -> None:
    text = with_client(serve(model), lambda c: _text(c.get("/metrics")))
    feedback = [lab for n, lab, _ in samples(text) if n == "vigil_model_label_feedback_total"]
    assert {lab["confidence_bucket"] for lab in feedback} == {"0.5", "0.6", "0.7", "0.8", "0.9"}
    assert {lab["correct"] for lab in feedback} == {"true", "false"}
    assert {lab["group"] for lab in feedback} == {"a", "b"}
    outcomes = {lab["outcome"] for n, lab, _ in samples(text) if n == "vigil_model_requests_total"}
    assert outcomes == {"success", "error"}
    assert all(v == 0 for n, _, v in samples(text) if not n.endswith("_created"))


async def _text(response: Any) -> str:
    return await (await response).text()


def test_predictions_feedback_and_counts_agree(model: DemoModel) -> None:
    data = model.dataset

    async def body(client: TestClient) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str]:
        answers = []
        for row in range(40):
            response = await client.post("/predict", json={"features": data.row(row)},
                                         headers={"X-Request-Id": f"r{row}"})
            assert response.status == 200
            assert response.headers["X-Vigil-Version"] == "v2"
            answers.append(await response.json())
        results = []
        for row in range(30):
            response = await client.post("/feedback", json={"request_id": f"r{row}",
                                                            "label": int(data.labels[row])})
            results.append(await response.json())
        again = await client.post("/feedback", json={"request_id": "r0", "label": 1})
        assert again.status == 404  # a label counts once
        return answers, results, await (await client.get("/metrics")).text()

    answers, results, text = with_client(serve(model), body)
    assert [a["request_id"] for a in answers] == [f"r{i}" for i in range(40)]
    assert [a["group"] for a in answers] == list(data.groups[:40])
    assert value(text, "vigil_model_requests_total", outcome="success") == 40
    assert value(text, "vigil_model_prediction_score_count") == 40
    assert value(text, "vigil_model_predictions_total") == 40
    positives = sum(a["class"] for a in answers)
    assert value(text, "vigil_model_predictions_total", predicted_class="1") == positives
    assert value(text, "vigil_model_predictions_total", group="b") == list(data.groups[:40]).count("b")
    assert value(text, "vigil_model_label_feedback_total") == 30
    correct = sum(r["correct"] for r in results)
    assert value(text, "vigil_model_label_feedback_total", correct="true") == correct
    expected_buckets: dict[str, int] = {}
    for answer in answers[:30]:
        bucket = f"{min(max(int(answer['confidence'] * 10), 5), 9) / 10:.1f}"
        expected_buckets[bucket] = expected_buckets.get(bucket, 0) + 1
    for bucket, count in expected_buckets.items():
        assert value(text, "vigil_model_label_feedback_total", confidence_bucket=bucket) == count


def test_mirrored_requests_are_compared_with_stable_not_remembered(model: DemoModel) -> None:
    async def body(client: TestClient) -> str:
        for row in range(10):
            answer = await (await client.post("/predict", json={"row": row})).json()
            stable = answer["class"] if row < 7 else 1 - answer["class"]
            mirrored = await client.post(
                "/predict", json={"row": row}, headers={
                    "X-Vigil-Mirror": "1", "X-Vigil-Stable-Prediction": str(stable),
                    "X-Request-Id": f"m{row}"})
            assert mirrored.status == 200
        missing = await client.post("/feedback", json={"request_id": "m0", "label": 1})
        assert missing.status == 404
        return await (await client.get("/metrics")).text()

    text = with_client(serve(model), body)
    assert value(text, "vigil_model_shadow_comparisons_total", outcome="agree") == 7
    assert value(text, "vigil_model_shadow_comparisons_total", outcome="disagree") == 3
    assert value(text, "vigil_model_requests_total", outcome="success") == 20


def test_a_mirrored_request_is_scored_twice_by_stable_as_the_live_control(model: DemoModel) -> None:
    """X-Vigil-Shadow-Control: 1 (set by the splitter on a request it mirrors) makes the answering
    server score it again and count whether it agreed with itself, under its own version."""
    async def body(client: TestClient) -> str:
        for row in range(400):
            answer = await client.post("/predict", json={"row": row % 569},
                                       headers={"X-Vigil-Shadow-Control": "1"})
            assert answer.status == 200
        plain = await client.post("/predict", json={"row": 1})
        assert plain.status == 200
        return await (await client.get("/metrics")).text()

    text = with_client(serve(model, parse_faults([], nondeterminism=0.05), version="v1"), body)
    agree = value(text, "vigil_model_shadow_control_comparisons_total", outcome="agree", version="v1")
    disagree = value(text, "vigil_model_shadow_control_comparisons_total", outcome="disagree", version="v1")
    assert agree + disagree == 400
    assert 0.03 <= disagree / 400 <= 0.18  # 2 p (1 - p) = 9.5% with a 5% flip rate on each scoring
    assert value(text, "vigil_model_requests_total", outcome="success") == 401
    assert value(text, "vigil_model_shadow_comparisons_total") == 0


def test_injected_errors_are_503_and_counted_as_errors(model: DemoModel) -> None:
    async def body(client: TestClient) -> tuple[list[int], str]:
        statuses = [(await client.post("/predict", json={"row": i % 50})).status for i in range(400)]
        return statuses, await (await client.get("/metrics")).text()

    statuses, text = with_client(serve(model, parse_faults(["errors:share=0.25"])), body)
    errors = statuses.count(503)
    assert set(statuses) == {200, 503}
    assert 0.25 * 400 - 3 * (400 * 0.25 * 0.75) ** 0.5 < errors < 0.25 * 400 + 3 * (400 * 0.25 * 0.75) ** 0.5
    assert value(text, "vigil_model_requests_total", outcome="error") == errors
    assert value(text, "vigil_model_requests_total", outcome="success") == 400 - errors
    assert value(text, "vigil_model_request_duration_seconds_count") == 400
    assert value(text, "vigil_model_predictions_total") == 400 - errors


@pytest.mark.parametrize("payload", [
    {"features": [1, 2]}, {"row": 10_000}, {"row": "3"}, {"features": "x"}, [1, 2],
    {"row": 1, "group": "z"},
])
def test_bad_requests_are_400_and_not_counted(model: DemoModel, payload: Any) -> None:
    async def body(client: TestClient) -> tuple[int, str]:
        response = await client.post("/predict", json=payload)
        return response.status, await (await client.get("/metrics")).text()

    status, text = with_client(serve(model), body)
    assert status == 400
    assert value(text, "vigil_model_requests_total") == 0


def test_same_seed_gives_the_same_answers(model: DemoModel) -> None:
    faults = parse_faults(["disagree:share=0.3", "errors:share=0.1"])

    async def body(client: TestClient) -> list[tuple[int, Any]]:
        out = []
        for i in range(60):
            response = await client.post("/predict", json={"row": i})
            out.append((response.status, (await response.json()).get("class")))
        return out

    first = with_client(serve(model, faults, seed=5), body)
    assert with_client(serve(model, faults, seed=5), body) == first
    assert with_client(serve(model, faults, seed=6), body) != first


def test_healthz_names_the_version_and_its_faults(model: DemoModel) -> None:
    async def body(client: TestClient) -> dict[str, Any]:
        return await (await client.get("/healthz")).json()

    health = with_client(serve(model, parse_faults(["latency:ms=100,share=0.1"])), body)
    assert health["status"] == "ok"
    assert health["version"] == "v2"
    assert health["faults"]["latency"] == {"ms": 100.0, "share": 0.1}


def test_latency_is_the_service_time_not_the_event_loop_lag_of_a_busy_process(model: DemoModel) -> None:
    """A version carrying 95% of the demo's traffic shares a busy host with one carrying 5%:
    its event loop resumes requests late. That lag is the host's, not the model's, and must not
    show as the model's latency (it rolled back a healthy version in its holdback)."""
    async def body(client: TestClient) -> str:
        asyncio.get_running_loop().call_later(0.005, time.sleep, 0.3)  # the loop is stuck 300 ms
        answer = await client.post("/predict", json={"row": 3})
        assert answer.status == 200
        return await (await client.get("/metrics")).text()

    server = ModelServer(ServerConfig(model="iris", version="v2", namespace="demo", faults=FaultConfig(),
                                      base_latency_ms=20.0), model)
    started = time.perf_counter()
    text = with_client(server, body)
    assert time.perf_counter() - started >= 0.3  # the stall really happened
    assert value(text, "vigil_model_request_duration_seconds_count") == 1
    recorded = value(text, "vigil_model_request_duration_seconds_sum")
    assert 0.005 <= recorded < 0.15, recorded  # about 20 ms of simulated service, not 300 ms
