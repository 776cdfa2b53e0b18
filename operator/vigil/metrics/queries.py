"""The PromQL Vigil sends, per metric kind: raw counters, never rates or sums.

Counters are fetched per series (per pod and label set) and differenced by the engine, so a
pod restart inside the window cannot masquerade as a huge drop or a negative rate, which
`sum(...)` before `increase(...)` would cause.

With a metrics preset other than `vigil` (`spec.analysis.metricsPreset`, see
`vigil.metrics.presets`), the same functions read the server's own series and rename its
labels into the contract's with `label_replace`: Vigil's version (`vigil_version`, from the pod
label) becomes `version`, the server's own `version` is kept as `server_version`, and success
and failure become `outcome="success"|"error"`. The provider and the statistics then read
every preset exactly as they read the contract.
"""

from __future__ import annotations

from vigil.api.gates import MetricKind
from vigil.metrics import presets
from vigil.metrics.presets import Preset, PresetName, Series
from vigil.metrics.promql import RESERVED, escape, selector
from vigil.metrics.target import AnalysisTarget

REQUESTS_TOTAL = "vigil_model_requests_total"
REQUEST_DURATION_BUCKET = "vigil_model_request_duration_seconds_bucket"
PREDICTION_SCORE_BUCKET = "vigil_model_prediction_score_bucket"
PREDICTIONS_TOTAL = "vigil_model_predictions_total"
LABEL_FEEDBACK_TOTAL = "vigil_model_label_feedback_total"
SHADOW_COMPARISONS_TOTAL = "vigil_model_shadow_comparisons_total"
SHADOW_CONTROL_TOTAL = "vigil_model_shadow_control_comparisons_total"
"""The live control of shadowDisagreement: stable compared with itself on the same mirrored
requests (`outcome="agree"|"disagree"`), exported under the *stable* version's labels."""

SERIES: dict[MetricKind, str] = {
    MetricKind.ERROR_RATE: REQUESTS_TOTAL,
    MetricKind.LATENCY_P50: REQUEST_DURATION_BUCKET,
    MetricKind.LATENCY_P99: REQUEST_DURATION_BUCKET,
    MetricKind.PREDICTION_DRIFT: PREDICTION_SCORE_BUCKET,
    MetricKind.CALIBRATION: LABEL_FEEDBACK_TOTAL,
    MetricKind.FAIRNESS_GAP: PREDICTIONS_TOTAL,
    MetricKind.SHADOW_DISAGREEMENT: SHADOW_COMPARISONS_TOTAL,
}

CANARY_ONLY = frozenset({MetricKind.SHADOW_DISAGREEMENT})
"""Shadow comparisons are emitted by the shadow (canary) version only."""


def versions(kind: MetricKind, target: AnalysisTarget) -> tuple[str, ...]:
    if kind in CANARY_ONLY:
        return (target.canary_version,)
    return (target.baseline_version, target.canary_version)


def counters_query(kind: MetricKind, target: AnalysisTarget, namespace_label: str = "namespace") -> str:
    """All raw series of the kind's counter for both versions, e.g.
    `vigil_model_requests_total{namespace="ns",model="m",version="v1"} or ...{version="v2"}`.
    Raises UnsupportedGate when the target's preset has no series for `kind` (see `problem`)."""
    preset = preset_of(target)
    if preset.name is not PresetName.VIGIL:
        return " or ".join(_normalized(s, preset, _selector(s, preset, target, v, namespace_label))
                           for v in versions(kind, target) for s in _series(kind, preset))
    metric = SERIES[kind]
    return " or ".join(selector(metric, target.matchers(v, namespace_label)) for v in versions(kind, target))


def freshness_query(kind: MetricKind, target: AnalysisTarget, namespace_label: str = "namespace") -> str:
    """Newest sample time per version. `timestamp()` must wrap the selectors themselves:
    applied to the result of `or` it would return the evaluation time, not the scrape time."""
    preset = preset_of(target)
    if preset.name is not PresetName.VIGIL:
        return " or ".join(
            "max by (version) (" + " or ".join(
                _version_renamed(preset, f"timestamp({_selector(s, preset, target, v, namespace_label)})")
                for s in _series(kind, preset)) + ")"
            for v in versions(kind, target))
    metric = SERIES[kind]
    return " or ".join(f"max by (version) (timestamp({selector(metric, target.matchers(v, namespace_label))}))"
                       for v in versions(kind, target))


def control_query(target: AnalysisTarget, namespace_label: str = "namespace") -> str:
    """The shadow gate's live control: every raw series of stable-vs-stable comparisons on the
    mirrored requests, e.g. `vigil_model_shadow_control_comparisons_total{namespace="ns",
    model="m",version="v1"}` (the baseline version). Optional: without it the gate compares
    the shadow with a fixed tolerated rate."""
    return selector(SHADOW_CONTROL_TOTAL, target.matchers(target.baseline_version, namespace_label))


# ------------------------------------------------------------------ presets


class UnsupportedGate(ValueError):
    """A gate the target's metrics preset cannot serve; the message names the field."""


def preset_of(target: AnalysisTarget) -> Preset:
    """The target's preset: its `preset` attribute (spec.analysis.metricsPreset), default vigil."""
    return presets.get(getattr(target, "preset", None))


def problem(kind: MetricKind, target: AnalysisTarget, namespace_label: str = "namespace") -> str | None:
    """Why `kind` cannot be read for `target` with its preset (the NoData reason), or None.

    Checks the preset name, that the preset serves the gate, and that no extra matcher
    overrides a label the preset selects on (its model label or `vigil_version`)."""
    name = getattr(target, "preset", None)
    why = presets.unsupported(kind, name)
    if why:
        return why
    preset = presets.get(name)
    if preset.name is PresetName.VIGIL:
        return None
    own = {preset.version_label, namespace_label} | {s.model_label for s in _series(kind, preset) if s.model_label}
    for label in {**target.extra_matchers, **target.baseline_matchers}:
        if label in own or label in RESERVED:
            return (f"spec.analysis.selector: label {label!r} would override a label the "
                    f"{preset.name.value} preset selects on ({', '.join(sorted(own))})")
    return None


def _series(kind: MetricKind, preset: Preset) -> tuple[Series, ...]:
    if not preset.supports(kind):
        raise UnsupportedGate(presets.unsupported(kind, preset.name) or kind.value)
    return preset.series[kind]


def _selector(series: Series, preset: Preset, target: AnalysisTarget, version: str, namespace_label: str) -> str:
    matchers = {namespace_label: target.namespace}
    if series.model_label:
        matchers[series.model_label] = target.model
    matchers[preset.version_label] = version
    arm = target.baseline_matchers if version == target.baseline_version else {}
    return selector(series.metric, {**matchers, **series.matchers, **target.extra_matchers, **arm})


def _version_renamed(preset: Preset, expr: str) -> str:
    """Vigil's version label becomes `version`; the server's own `version` is kept as `server_version`."""
    if preset.version_label == "version":
        return expr
    expr = f'label_replace({expr}, "server_version", "$1", "version", "(.+)")'
    return f'label_replace({expr}, "version", "$1", "{escape(preset.version_label)}", "(.+)")'


def _normalized(series: Series, preset: Preset, expr: str) -> str:
    """`expr` with the contract's labels: `version`, and `outcome` for request counters."""
    expr = _version_renamed(preset, expr)
    if series.outcome:
        return f'label_replace({expr}, "outcome", "{escape(series.outcome)}", "", "")'
    if series.error_label and series.error_regex:
        expr = f'label_replace({expr}, "outcome", "error", "{escape(series.error_label)}", "{escape(series.error_regex)}")'
        return f'label_replace({expr}, "outcome", "success", "outcome", "")'
    return expr
