"""vigil.instrument: the contract's series from a FastAPI app, read back as Prometheus parses them."""

from __future__ import annotations

import pytest
from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from vigil.instrument import LATENCY_BUCKETS, ModelMetrics, VigilMiddleware
from vigil.metrics import queries


def scrape(client: TestClient) -> dict[tuple[str, frozenset], float]:
    text = client.get("/metrics/").text
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: dict, name: str, **labels: str) -> float:
    want = {"model": "ranker", "version": "v2", **labels}
    return samples[(name, frozenset(want.items()))]


@pytest.fixture
def app() -> tuple[FastAPI, ModelMetrics]:
    metrics = ModelMetrics("ranker", "v2", groups=["a", "b"])
    api = FastAPI()

    @api.post("/predict")
    def predict(fail: bool = False) -> dict:
        if fail:
            raise HTTPException(status_code=503, detail="overloaded")
        metrics.prediction(0.83, predicted_class="1", group="a")
        return {"score": 0.83}

    @api.post("/bad-input")
    def bad_input() -> dict:
        raise HTTPException(status_code=422, detail="client error")

    @api.get("/healthz")
    def health() -> dict:
        return {}

    @api.post("/crash")
    def crash() -> dict:
        raise RuntimeError("boom")

    api.add_middleware(VigilMiddleware, metrics=metrics)
    api.mount("/metrics", metrics.asgi_app())
    return api, metrics


def test_requests_and_latency_follow_the_contract(app: tuple[FastAPI, ModelMetrics]) -> None:
    api, _ = app
    client = TestClient(api, raise_server_exceptions=False)
    before = scrape(client)
    # every series exists at zero before any request (a missing series would be NoData)
    assert value(before, queries.REQUESTS_TOTAL, outcome="success") == 0
    assert value(before, queries.REQUESTS_TOTAL, outcome="error") == 0
    assert value(before, queries.SHADOW_COMPARISONS_TOTAL, outcome="disagree") == 0
    assert value(before, queries.LABEL_FEEDBACK_TOTAL, group="b", confidence_bucket="0.9", correct="false") == 0
    for _ in range(3):
        assert client.post("/predict").status_code == 200
    assert client.post("/predict?fail=true").status_code == 503
    assert client.post("/bad-input").status_code == 422  # a client error is not the server failing
    assert client.post("/crash").status_code == 500
    client.get("/healthz")
    after = scrape(client)
    assert value(after, queries.REQUESTS_TOTAL, outcome="success") == 4
    assert value(after, queries.REQUESTS_TOTAL, outcome="error") == 2
    assert value(after, queries.REQUEST_DURATION_BUCKET, le="+Inf") == 6
    edges = sorted(float(dict(k[1])["le"]) for k in after if k[0] == queries.REQUEST_DURATION_BUCKET)
    assert edges == [*LATENCY_BUCKETS, float("inf")]
    assert value(after, queries.PREDICTIONS_TOTAL, group="a", predicted_class="1") == 3
    assert value(after, queries.PREDICTION_SCORE_BUCKET, le="0.9") == 3
    assert value(after, queries.PREDICTION_SCORE_BUCKET, le="0.8") == 0


def test_quality_signals(app: tuple[FastAPI, ModelMetrics]) -> None:
    api, metrics = app
    metrics.label_feedback(group="b", confidence=0.97, correct=False)
    metrics.label_feedback(group="b", confidence=0.5, correct=True)
    metrics.shadow_comparison(agree=False)
    metrics.shadow_control(agree=True)
    samples = scrape(TestClient(api))
    assert value(samples, queries.LABEL_FEEDBACK_TOTAL, group="b", confidence_bucket="0.9", correct="false") == 1
    assert value(samples, queries.LABEL_FEEDBACK_TOTAL, group="b", confidence_bucket="0.5", correct="true") == 1
    assert value(samples, queries.SHADOW_COMPARISONS_TOTAL, outcome="disagree") == 1
    assert value(samples, queries.SHADOW_CONTROL_TOTAL, outcome="agree") == 1


def test_bad_input_names_the_field() -> None:
    metrics = ModelMetrics("ranker", "v2", groups=["a"])
    with pytest.raises(ValueError, match="score: a probability in"):
        metrics.prediction(1.5, predicted_class="1")
    with pytest.raises(ValueError, match="confidence: the predicted class's probability"):
        metrics.label_feedback(group="a", confidence=0.2, correct=True)
    with pytest.raises(ValueError, match="group: 'z' is not one of"):
        metrics.prediction(0.5, predicted_class="1", group="z")
    with pytest.raises(ValueError, match="latency_buckets: must keep every contract edge"):
        ModelMetrics("ranker", "v2", latency_buckets=[0.1, 0.2])
    with pytest.raises(ValueError, match="version: a non-empty label value"):
        ModelMetrics("ranker", "")


def test_the_loaded_artifact_is_reported_for_the_version_check() -> None:
    from prometheus_client import generate_latest

    from vigil.instrument import ModelMetrics

    m = ModelMetrics("fraud", "v2", digest="sha256:" + "a" * 64)
    text = generate_latest(m.registry).decode()
    assert 'vigil_model_info{digest="sha256:' + "a" * 64 + '",model="fraud",version="v2"} 1.0' in text
    import pytest

    with pytest.raises(ValueError, match="digest"):
        ModelMetrics("fraud", "v2", digest="latest")
