"""Metric presets: read the latency and error series that real model servers already export.

Vigil's own contract (docs/metrics-contract.md) is the `vigil` preset. The others map the gate
kinds a server can support onto that server's documented series and label names, so the
errorRate and latency gates work without new instrumentation. Each preset is data only; the
PromQL is built in `vigil.metrics.queries`, which renames the server's labels into the
contract's (`version`, `outcome`) with `label_replace`, so the provider and the statistics read
every preset the same way.

Where the version comes from: a server knows its model's name but not Vigil's version string
(Triton's own `version` label is its repository version number, vLLM has none). Vigil labels
every pod it creates with `vigil.dev/version`; with a preset, the scrape config copies that pod
label onto the series as `vigil_version` (docs/presets.md has the relabel rule). The model is
matched on the server's own model label, which must carry `spec.model`.

Gates a preset cannot serve (no such series on that server) are not guessed at: the provider
returns NoData naming `spec.analysis.metricsPreset` and the gate (see `unsupported`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from vigil.api.gates import MetricKind
from vigil.api.modeldeployment import MetricsPreset as PresetName

VERSION_LABEL = "vigil_version"
"""Target label carrying Vigil's version for non-vigil presets (from the pod label vigil.dev/version)."""

PRESET_FIELD = "spec.analysis.metricsPreset"


@dataclass(frozen=True)
class Series:
    """One exported series family a gate reads, and how its labels map onto the contract.

    * `model_label`: the server's label carrying the model name; None when the series has no
      model label (the pod's `vigil_version` and the namespace alone select it).
    * `outcome`: a constant outcome for every sample of this series ("success" or "error"),
      for servers that count successes and failures in separate counters.
    * `error_label`/`error_regex`: the label whose value (fully matching the regex) marks a
      failed request; every other value is a success.
    """

    metric: str
    model_label: str | None
    outcome: str | None = None
    error_label: str | None = None
    error_regex: str | None = None
    matchers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Preset:
    name: PresetName
    version_label: str
    series: Mapping[MetricKind, tuple[Series, ...]]
    why_not: Mapping[MetricKind, str] = field(default_factory=dict)
    """Why a gate kind is not available on this server, for the NoData reason."""

    def supports(self, kind: MetricKind) -> bool:
        return kind in self.series


_QUALITY = "a model-quality signal this server does not export; instrument it with vigil.instrument"


def _quality_gaps(*extra: tuple[MetricKind, str]) -> dict[MetricKind, str]:
    gaps = {k: _QUALITY for k in (MetricKind.PREDICTION_DRIFT, MetricKind.CALIBRATION, MetricKind.FAIRNESS_GAP,
                                  MetricKind.SHADOW_DISAGREEMENT)}
    gaps.update(dict(extra))
    return gaps


VIGIL = Preset(
    name=PresetName.VIGIL, version_label="version",
    series={
        MetricKind.ERROR_RATE: (Series("vigil_model_requests_total", "model"),),
        MetricKind.LATENCY_P50: (Series("vigil_model_request_duration_seconds_bucket", "model"),),
        MetricKind.LATENCY_P99: (Series("vigil_model_request_duration_seconds_bucket", "model"),),
        MetricKind.PREDICTION_DRIFT: (Series("vigil_model_prediction_score_bucket", "model"),),
        MetricKind.CALIBRATION: (Series("vigil_model_label_feedback_total", "model"),),
        MetricKind.FAIRNESS_GAP: (Series("vigil_model_predictions_total", "model"),),
        MetricKind.SHADOW_DISAGREEMENT: (Series("vigil_model_shadow_comparisons_total", "model"),),
    },
)

# vLLM, docs.vllm.ai "Production Metrics" (usage/metrics): every vllm: series carries
# `model_name` (the served model name). `vllm:request_success_total` counts finished requests
# by `finished_reason` (stop, length, abort, error, repetition in the V1 engine,
# vllm/v1/engine/__init__.py FINISH_REASON_STRINGS); "error" is a request the engine failed.
# `vllm:e2e_request_latency_seconds` is the end-to-end latency histogram (seconds);
# `vllm:time_to_first_token_seconds` is exported too (VLLM_TTFT_BUCKET) but no gate kind reads it yet.
VLLM_REQUESTS = "vllm:request_success_total"
VLLM_E2E_BUCKET = "vllm:e2e_request_latency_seconds_bucket"
VLLM_TTFT_BUCKET = "vllm:time_to_first_token_seconds_bucket"
VLLM = Preset(
    name=PresetName.VLLM, version_label=VERSION_LABEL,
    series={
        MetricKind.ERROR_RATE: (Series(VLLM_REQUESTS, "model_name", error_label="finished_reason", error_regex="error"),),
        MetricKind.LATENCY_P50: (Series(VLLM_E2E_BUCKET, "model_name"),),
        MetricKind.LATENCY_P99: (Series(VLLM_E2E_BUCKET, "model_name"),),
    },
    why_not=_quality_gaps(),
)

# Triton, docs/user_guide/metrics.md ("Inference Request Metrics"): per-model counters with
# labels `model` and `version` (Triton's repository version, kept as `server_version`):
# `nv_inference_request_success`, `nv_inference_request_failure` (each request counts 1, even
# a batch). Latency is exported as cumulative duration counters
# (`nv_inference_request_duration_us`): a sum, so a mean, and no percentiles; the optional
# summaries (`--metrics-config summary_latencies=true`) are per-process sliding quantiles that
# cannot be compared or combined across pods. The percentile gates therefore have no data.
TRITON_SUCCESS = "nv_inference_request_success"
TRITON_FAILURE = "nv_inference_request_failure"
TRITON_DURATION_US = "nv_inference_request_duration_us"
_TRITON_NO_PERCENTILE = (f"Triton exports latency only as cumulative counters ({TRITON_DURATION_US}: a mean, "
                         "no histogram), so a percentile cannot be measured")
TRITON = Preset(
    name=PresetName.TRITON, version_label=VERSION_LABEL,
    series={
        MetricKind.ERROR_RATE: (Series(TRITON_SUCCESS, "model", outcome="success"),
                                Series(TRITON_FAILURE, "model", outcome="error")),
    },
    why_not=_quality_gaps((MetricKind.LATENCY_P50, _TRITON_NO_PERCENTILE), (MetricKind.LATENCY_P99, _TRITON_NO_PERCENTILE)),
)

# KServe, kserve.github.io "Prometheus Metrics" (modelserving/observability/prometheus_metrics)
# and python/kserve/kserve/metrics.py: the KServe Python model server exports histograms with
# the label `model_name`, `request_predict_seconds` among them (seconds). It exports no request
# or error counter ("there is not currently a unified set of metrics exported by the model
# servers"), so errorRate has no data with this preset.
KSERVE_PREDICT_BUCKET = "request_predict_seconds_bucket"
KSERVE = Preset(
    name=PresetName.KSERVE, version_label=VERSION_LABEL,
    series={
        MetricKind.LATENCY_P50: (Series(KSERVE_PREDICT_BUCKET, "model_name"),),
        MetricKind.LATENCY_P99: (Series(KSERVE_PREDICT_BUCKET, "model_name"),),
    },
    why_not=_quality_gaps(
        (MetricKind.ERROR_RATE, ("the KServe model server exports no request or error counter "
                                 "(only request_*_seconds histograms)")),
    ),
)

# Seldon Core 2, docs.seldon.ai "Operational Metrics" (user-guide/operational-monitoring/operational)
# and scheduler/pkg/metrics/agent.go: `seldon_model_infer_total` counts inference calls with
# labels `model`, `code` (HTTP status, or the gRPC code name), `method_type`, `server`;
# `seldon_model_infer_api_seconds` is the latency histogram (seconds) with labels `server`,
# `server_replica`, `method`, `code` and no model label (each Vigil-managed pod serves one model
# version, so the pod's `vigil_version` selects it). A failed call is a 5xx HTTP status or a
# gRPC server-side error code.
SELDON_INFER_TOTAL = "seldon_model_infer_total"
SELDON_INFER_BUCKET = "seldon_model_infer_api_seconds_bucket"
SELDON_ERROR_CODES = "5..|Unknown|DeadlineExceeded|Internal|Unavailable|DataLoss"
SELDON = Preset(
    name=PresetName.SELDON, version_label=VERSION_LABEL,
    series={
        MetricKind.ERROR_RATE: (Series(SELDON_INFER_TOTAL, "model", error_label="code", error_regex=SELDON_ERROR_CODES),),
        MetricKind.LATENCY_P50: (Series(SELDON_INFER_BUCKET, None),),
        MetricKind.LATENCY_P99: (Series(SELDON_INFER_BUCKET, None),),
    },
    why_not=_quality_gaps(),
)

PRESETS: dict[PresetName, Preset] = {p.name: p for p in (VIGIL, VLLM, TRITON, KSERVE, SELDON)}


def get(name: str | PresetName | None) -> Preset:
    """The preset called `name` (None: vigil); ValueError naming the field and the allowed values."""
    if name is None:
        return VIGIL
    try:
        return PRESETS[PresetName(name)]
    except ValueError:
        allowed = ", ".join(p.value for p in PresetName)
        raise ValueError(f"{PRESET_FIELD}: unknown preset {name!r}; allowed: {allowed}") from None


def unsupported(kind: MetricKind, name: str | PresetName | None) -> str | None:
    """Why the `kind` gate cannot be measured with preset `name`, or None if it can."""
    try:
        preset = get(name)
    except ValueError as err:
        return str(err)
    if preset.supports(kind):
        return None
    why = preset.why_not.get(kind, "the server exports no series for it")
    return (f"{kind.value}: not available with {PRESET_FIELD}={preset.name.value}: {why}. Use the vigil preset "
            f"(docs/metrics-contract.md) or remove the gate from the RiskPolicy")


def supported_kinds(name: str | PresetName | None) -> list[MetricKind]:
    return [k for k in MetricKind if get(name).supports(k)]
