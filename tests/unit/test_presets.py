"""Metric presets: each server's documented series and labels, renamed into the contract's."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from pydantic import ValidationError
from vigil.api.gates import MetricKind as K
from vigil.api.modeldeployment import ModelDeploymentSpec
from vigil.metrics import presets, queries
from vigil.metrics.target import AnalysisTarget


@dataclass(frozen=True)
class PresetTarget(AnalysisTarget):
    """An AnalysisTarget naming its preset (the field the reconciler fills from the spec)."""

    preset: str = "vigil"


def target(preset: str, **kw: object) -> PresetTarget:
    return PresetTarget("shop", "ranker", "v1", "v2", preset=preset, **kw)  # type: ignore[arg-type]


def test_the_vigil_preset_sends_exactly_the_contract_queries() -> None:
    plain = AnalysisTarget("shop", "ranker", "v1", "v2")
    assert queries.counters_query(K.ERROR_RATE, plain) == (
        'vigil_model_requests_total{namespace="shop",model="ranker",version="v1"} or '
        'vigil_model_requests_total{namespace="shop",model="ranker",version="v2"}')
    for kind in K:
        assert queries.counters_query(kind, target("vigil")) == queries.counters_query(kind, plain)
        assert queries.freshness_query(kind, target("vigil")) == queries.freshness_query(kind, plain)
        assert queries.problem(kind, plain) is None


@pytest.mark.parametrize(("preset", "kind", "series", "model_label"), [
    ("vllm", K.ERROR_RATE, "vllm:request_success_total", "model_name"),
    ("vllm", K.LATENCY_P99, "vllm:e2e_request_latency_seconds_bucket", "model_name"),
    ("triton", K.ERROR_RATE, "nv_inference_request_failure", "model"),
    ("kserve", K.LATENCY_P50, "request_predict_seconds_bucket", "model_name"),
    ("seldon", K.ERROR_RATE, "seldon_model_infer_total", "model"),
    ("seldon", K.LATENCY_P99, "seldon_model_infer_api_seconds_bucket", None),
])
def test_presets_select_the_servers_series_by_its_model_label_and_the_pods_version(
        preset: str, kind: K, series: str, model_label: str | None) -> None:
    query = queries.counters_query(kind, target(preset))
    for version in ("v1", "v2"):
        labels = f'namespace="shop",{model_label}="ranker",' if model_label else 'namespace="shop",'
        assert f'{series}{{{labels}vigil_version="{version}"}}' in query
    assert '"version", "$1", "vigil_version", "(.+)"' in query  # renamed into the contract's label
    fresh = queries.freshness_query(kind, target(preset))
    assert fresh.count("max by (version)") == 2 and f"timestamp({series}{{" in fresh


def test_error_counters_are_mapped_to_the_contracts_outcome_label() -> None:
    triton = queries.counters_query(K.ERROR_RATE, target("triton"))
    assert '"outcome", "success", "", "")' in triton and '"outcome", "error", "", "")' in triton
    vllm = queries.counters_query(K.ERROR_RATE, target("vllm"))
    assert '"outcome", "error", "finished_reason", "error")' in vllm
    assert '"outcome", "success", "outcome", "")' in vllm  # every other reason is a success
    seldon = queries.counters_query(K.ERROR_RATE, target("seldon"))
    assert '"code", "5..|' in seldon


@pytest.mark.parametrize(("preset", "kind", "why"), [
    ("triton", K.LATENCY_P99, "cumulative counters"),
    ("kserve", K.ERROR_RATE, "no request or error counter"),
    ("vllm", K.PREDICTION_DRIFT, "vigil.instrument"),
    ("seldon", K.SHADOW_DISAGREEMENT, "vigil.instrument"),
])
def test_a_gate_the_preset_cannot_serve_is_a_reason_naming_the_field(preset: str, kind: K, why: str) -> None:
    reason = queries.problem(kind, target(preset))
    assert reason is not None
    assert f"spec.analysis.metricsPreset={preset}" in reason and kind.value in reason and why in reason
    with pytest.raises(queries.UnsupportedGate, match="metricsPreset"):
        queries.counters_query(kind, target(preset))


def test_every_preset_serves_what_it_claims() -> None:
    assert presets.supported_kinds("vigil") == list(K)
    assert presets.supported_kinds("vllm") == [K.ERROR_RATE, K.LATENCY_P50, K.LATENCY_P99]
    assert presets.supported_kinds("seldon") == [K.ERROR_RATE, K.LATENCY_P50, K.LATENCY_P99]
    assert presets.supported_kinds("triton") == [K.ERROR_RATE]
    assert presets.supported_kinds("kserve") == [K.LATENCY_P50, K.LATENCY_P99]


def test_an_unknown_preset_names_the_field_and_the_allowed_values() -> None:
    reason = queries.problem(K.ERROR_RATE, target("torchserve"))
    assert reason == ("spec.analysis.metricsPreset: unknown preset 'torchserve'; "
                      "allowed: vigil, kserve, vllm, triton, seldon")


def test_a_selector_cannot_override_a_label_the_preset_selects_on() -> None:
    reason = queries.problem(K.LATENCY_P99, target("vllm", extra_matchers={"model_name": "other"}))
    assert reason is not None and "spec.analysis.selector" in reason and "model_name" in reason
    assert queries.problem(K.LATENCY_P99, target("vllm", extra_matchers={"cluster": "eu-1"})) is None
    assert 'cluster="eu-1"' in queries.counters_query(K.LATENCY_P99, target("vllm", extra_matchers={"cluster": "eu-1"}))


def test_a_fresh_baseline_keeps_its_track_matcher_on_the_baseline_arm_only() -> None:
    query = queries.counters_query(K.ERROR_RATE, target("vllm", baseline_matchers={"track": "baseline"}))
    assert 'vigil_version="v1",track="baseline"}' in query and 'vigil_version="v2",track' not in query


def test_the_spec_field_defaults_to_vigil_and_rejects_unknown_servers() -> None:
    base = {"model": "m", "version": "v1", "artifact": {"uri": "s3://x", "digest": "sha256:" + "a" * 64},
            "server": {"image": "i"}, "policyRef": {"name": "p"}, "traffic": {"router": "replicas"}}
    assert ModelDeploymentSpec.model_validate(base).analysis.metrics_preset.value == "vigil"
    spec = ModelDeploymentSpec.model_validate({**base, "analysis": {"metricsPreset": "vllm"}})
    assert spec.analysis.metrics_preset.value == "vllm"
    with pytest.raises(ValidationError) as err:
        ModelDeploymentSpec.model_validate({**base, "analysis": {"metricsPreset": "torchserve"}})
    assert "metricsPreset" in str(err.value) and "'vllm'" in str(err.value)
