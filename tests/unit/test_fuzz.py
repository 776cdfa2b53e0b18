"""Fuzzing the inputs a user or a scrape can hand the operator: CR specs and analysis data.

Properties: nothing crashes; every rejection of a spec names the field it is about; the
analysis of arbitrary counters (resets, NaN, negative, junk labels, empty panels) returns a
verdict per gate and never raises, and deferring its plans (as the operator does) changes nothing
once completed; several such windows analysed together (`analyze_many`, the rows of shared
evidence calls) give each the analysis its own call gives, bit for bit. The test command runs
VIGIL_FUZZ_EXAMPLES (default 500) cases per property and an eighth of that for the batch (each
of its cases is several windows), 1,562 in all; `make fuzz` runs 4000 per property (12,500), the
full sweep. The sample was 3400 (10,625 cases) until a host three times slower than usual took
more than the 600 s per test for the counters' property alone under the test command's load
(about 80 ms a case there); then 1200, until a cold CI run on a slower host still took 470 s of
those 600 s for it (about 390 ms a case beside the control plane's build and a busy core): the
same harness, fewer cases, in a test command that has to pass on such a host too.
"""

from __future__ import annotations

import copy
import math
import os
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from vigil.api.gates import Gate, MetricKind
from vigil.api.modeldeployment import ModelDeploymentSpec
from vigil.api.policy import RiskPolicySpec
from vigil.core.policy_check import validation_message
from vigil.stats.analyze import analyze, analyze_many
from vigil.stats.data import CounterPanel, CounterSeries, LatencyHistogram, RequestCounts, ScoreHistogram
from vigil.stats.result import Outcome, status_record

EXAMPLES = int(os.environ.get("VIGIL_FUZZ_EXAMPLES", "500"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

MD = {"model": "fraud", "version": "v2", "artifact": {"uri": "s3://m/v2", "digest": "sha256:" + "2" * 64},
      "server": {"image": "srv:1", "port": 8080}, "replicas": 2, "policyRef": {"name": "p"},
      "traffic": {"router": "gatewayapi", "gatewayRef": {"name": "gw"}, "hostnames": ["a.example.com"], "port": 80},
      "steps": [5, 20], "analysis": {"selector": {"cluster": "eu"}}}
POLICY = {"riskTier": "high", "steps": [5, 25, 50], "maxWeight": 50, "bakeTime": "5m", "analysisInterval": "1m",
          "minSamples": 200, "shadow": {"enabled": True, "duration": "10m", "mirrorPercent": 50},
          "gates": [{"metric": "errorRate", "tolerance": 0.001}, {"metric": "latencyP99"}],
          "holdback": {"weight": 5, "bakeTime": "1h"}, "requiredApprovals": 1,
          "freezeWindows": [{"start": "2026-12-24T00:00:00Z", "end": "2026-12-27T00:00:00Z", "reason": "holidays"}],
          "errorBudget": {"objective": 0.999}, "noData": {"action": "rollback", "rollbackAfter": 3}}

JUNK = st.one_of(
    st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.sampled_from(["", "-1", "1h", "99999h", "sha256:xyz", "*", "Fresh", "0.5", "1e309"]),
    st.lists(st.integers(-5, 200), max_size=6), st.dictionaries(st.text(max_size=6), st.integers(), max_size=3),
)


def paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a JSON-like value (dict keys and list indexes), the value's own too."""
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += paths(v, (*prefix, i))
    return out


def mutate(base: dict[str, Any], path: tuple[Any, ...], value: Any, delete: bool) -> dict[str, Any]:
    body = copy.deepcopy(base)
    if not path:
        return body
    parent = body
    for key in path[:-1]:
        parent = parent[key]
    if delete and isinstance(parent, dict):
        parent.pop(path[-1], None)
    else:
        parent[path[-1]] = value
    return body


def mutated(base: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Up to three random edits of a valid spec: a field set to junk, deleted, or an unknown key."""
    edit = st.tuples(st.sampled_from(paths(base)), JUNK, st.booleans())
    extra = st.tuples(st.sampled_from([p for p in paths(base) if p == () or isinstance(p[-1], str)]),
                      st.text(min_size=1, max_size=8), JUNK)

    @st.composite
    def build(draw: Any) -> dict[str, Any]:
        body = base
        for path, value, delete in draw(st.lists(edit, min_size=1, max_size=3)):
            try:
                body = mutate(body, path, value, delete)
            except (KeyError, IndexError, TypeError):
                continue  # an earlier edit removed this path
        if draw(st.booleans()):
            path, key, value = draw(extra)
            try:
                body = mutate(body, (*path, key), value, False)
            except (KeyError, IndexError, TypeError):
                pass
        return body

    return build()


def field_names(model: type) -> set[str]:
    """Every camelCase field name in a model's JSON schema (nested models included)."""
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            names.update(node.get("properties", {}).keys())
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(model.model_json_schema(by_alias=True))
    return names


MD_FIELDS, POLICY_FIELDS = field_names(ModelDeploymentSpec), field_names(RiskPolicySpec)


def assert_rejection_names_fields(err: ValidationError, known: set[str]) -> None:
    message = validation_message(err)
    for e in err.errors():
        named = [str(p) for p in e["loc"] if isinstance(p, str)]
        assert named or any(f in e["msg"] for f in known), f"no field named in: {e}"
    assert message.startswith("spec"), message


@FUZZ
@given(body=mutated(MD))
def test_modeldeployment_specs_are_accepted_or_rejected_naming_the_field(body: dict[str, Any]) -> None:
    try:
        ModelDeploymentSpec.model_validate(body)
    except ValidationError as err:
        assert_rejection_names_fields(err, MD_FIELDS)


@FUZZ
@given(body=mutated(POLICY))
def test_riskpolicy_specs_are_accepted_or_rejected_naming_the_field(body: dict[str, Any]) -> None:
    try:
        policy = RiskPolicySpec.model_validate(body)
    except ValidationError as err:
        assert_rejection_names_fields(err, POLICY_FIELDS)
        return
    policy.fingerprint()  # an accepted policy is usable
    for gate in policy.gates:
        assert 0 <= gate.tolerance


# ------------------------------------------------------------------ analysis inputs

NUMBER = st.one_of(st.floats(-1e6, 1e9, allow_nan=False), st.just(math.nan), st.just(math.inf), st.just(0.0))


@st.composite
def panel(draw: Any, label: str, values: list[str], n: int) -> CounterPanel:
    series = []
    for lv in draw(st.lists(st.sampled_from(values), max_size=len(values), unique=True)):
        pods = draw(st.integers(1, 2))
        for pod in range(pods):
            counts = draw(st.lists(NUMBER, min_size=n, max_size=n))
            if draw(st.booleans()):  # a realistic, increasing counter with a possible reset
                start = draw(st.integers(0, 10**6))
                steps = draw(st.lists(st.integers(0, 5000), min_size=n, max_size=n))
                counts = list(np.cumsum(steps) + start)
                if n > 2 and draw(st.booleans()):
                    cut = draw(st.integers(1, n - 1))
                    counts[cut:] = list(np.cumsum(steps[cut:]))
            series.append(CounterSeries({label: lv, "pod": f"p{pod}"}, np.array(counts, dtype=float)))
    return CounterPanel(np.arange(n, dtype=float) * 60.0, tuple(series))


@st.composite
def analysis_inputs(draw: Any, length: int | None = None) -> dict[MetricKind, Any]:
    n = draw(st.integers(0, 12)) if length is None else length
    outcomes = ["success", "error", "weird"]
    les = ["0.05", "0.1", "0.5", "1", "+Inf", "junk", "-1"]
    scores = ["0.1", "0.5", "0.9", "+Inf"]
    return {
        MetricKind.ERROR_RATE: RequestCounts(draw(panel("outcome", outcomes, n)), draw(panel("outcome", outcomes, n))),
        MetricKind.LATENCY_P99: LatencyHistogram(draw(panel("le", les, n)), draw(panel("le", les, n))),
        MetricKind.LATENCY_P50: LatencyHistogram(draw(panel("le", les, n)), draw(panel("le", les, n))),
        MetricKind.PREDICTION_DRIFT: ScoreHistogram(draw(panel("le", scores, n)), draw(panel("le", scores, n))),
    }


GATES = [Gate(metric="errorRate"), Gate(metric="latencyP99"), Gate(metric="latencyP50"), Gate(metric="predictionDrift")]


@FUZZ
@given(data=analysis_inputs(), share=st.one_of(st.none(), st.floats(0.01, 0.99)), change=st.booleans())
def test_analysis_of_arbitrary_counters_never_raises(data: dict[MetricKind, Any], share: float | None,
                                                    change: bool) -> None:
    result = analyze(GATES, data, alpha_fail=0.01, alpha_pass=0.05, min_samples=50,
                     expected_canary_share=share, detect_change=change)
    # the operator defers decided gates' plans: the same status, and the same analysis once completed
    lean = analyze(GATES, data, alpha_fail=0.01, alpha_pass=0.05, min_samples=50,
                   expected_canary_share=share, detect_change=change, deferred=True)
    assert status_record(lean.to_dict()) == status_record(result.to_dict())
    assert lean.complete().to_dict() == result.to_dict()
    assert {v.metric for v in result.verdicts} == {g.metric for g in GATES}
    assert result.outcome in set(Outcome)
    for v in result.verdicts:
        assert v.outcome in set(Outcome)
        if v.outcome is Outcome.PASS:  # never a pass on too little canary data (min_samples)
            assert v.samples[1] >= 50, v


@st.composite
def recounted(draw: Any, window: dict[MetricKind, Any]) -> dict[MetricKind, Any]:
    """Another window with the same series (so the same shapes) and new arbitrary counts."""
    def panel_like(p: CounterPanel) -> CounterPanel:
        return CounterPanel(p.timestamps, tuple(
            CounterSeries(s.labels, np.array(draw(st.lists(NUMBER, min_size=p.timestamps.size,
                                                            max_size=p.timestamps.size)), dtype=float))
            for s in p.series))
    return {kind: type(item)(panel_like(item.baseline), panel_like(item.canary)) for kind, item in window.items()}


@settings(FUZZ, max_examples=max(EXAMPLES // 8, 1))
@given(n=st.integers(0, 12), seed=st.data(), change=st.booleans())
def test_analyses_together_equal_each_alone_on_arbitrary_counters(n: int, seed: Any, change: bool) -> None:
    """Two to four windows of the same series (so their evidence calls are shared), with NaN,
    infinities, resets and junk labels: each analysis of the batch is the one its own call gives."""
    first = seed.draw(analysis_inputs(n))
    windows = [first] + [seed.draw(recounted(first)) for _ in range(seed.draw(st.integers(1, 3)))]
    kwargs = dict(alpha_fail=0.01, alpha_pass=0.05, min_samples=50, detect_change=change)
    together = analyze_many([(GATES, w, kwargs) for w in windows])
    for window, got in zip(windows, together):
        assert repr(got) == repr(analyze(GATES, window, **kwargs))
