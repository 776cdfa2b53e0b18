"""The cheaper analysis gives the same answers as the reference path, on random inputs.

* the plan projects the first few effects first (`plan_gate(chunked=True)`); the reference
  projects all of them at once (`chunked=False`): every figure must be identical;
* panels memoise their increments and histograms; a second `analyze` on the same objects
  (the memo warm) must equal an `analyze` on fresh copies (the memo cold).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from vigil.api.gates import Gate, MetricKind
from vigil.stats import CounterPanel, LatencyHistogram, RequestCounts, analyze
from vigil.stats.evidence import Thresholds
from vigil.stats.plan import plan_gate

EDGES = ["0.05", "0.1", "0.2", "0.3", "0.5", "0.75", "1", "+Inf"]


def requests(rng: np.random.Generator, t: int, canary_share: float, err_b: float, err_c: float) -> RequestCounts:
    def panel(n: float, p: float) -> CounterPanel:
        total = rng.poisson(n, t)
        errors = rng.binomial(total, p)
        return CounterPanel.from_counts(np.arange(t + 1) * 60.0, [({"outcome": "error"}, errors),
                                                                 ({"outcome": "success"}, total - errors)])

    return RequestCounts(baseline=panel(1000 * (1 - canary_share), err_b), canary=panel(1000 * canary_share, err_c))


def latency(rng: np.random.Generator, t: int, canary_share: float, stretch: float) -> LatencyHistogram:
    edges = np.array([float(e) if e != "+Inf" else np.inf for e in EDGES])

    def panel(n: float, scale: float) -> CounterPanel:
        samples = [rng.lognormal(np.log(0.15 * scale), 0.6, rng.poisson(n)) for _ in range(t)]
        cum = np.array([[np.sum(s <= e) for e in edges] for s in samples])  # cumulative over le
        return CounterPanel.from_counts(np.arange(t + 1) * 60.0, [({"le": le}, cum[:, i]) for i, le in enumerate(EDGES)])

    return LatencyHistogram(baseline=panel(400 * (1 - canary_share), 1.0), canary=panel(400 * canary_share, stretch))


def fresh(item: Any) -> Any:
    def copy(p: CounterPanel) -> CounterPanel:
        return CounterPanel(p.timestamps.copy(), tuple(type(s)(dict(s.labels), s.values.copy()) for s in p.series))

    return type(item)(baseline=copy(item.baseline), canary=copy(item.canary))


def same(a: Any, b: Any) -> bool:
    return a.to_dict() == b.to_dict() if hasattr(a, "to_dict") else a == b


cases = st.tuples(st.integers(0, 2**32 - 1), st.integers(2, 40), st.floats(0.02, 0.5),
                  st.floats(0.0, 0.05), st.floats(0.0, 0.2), st.floats(0.7, 2.5))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases, st.sampled_from([Gate(metric=MetricKind.ERROR_RATE), Gate(metric=MetricKind.LATENCY_P50),
                               Gate(metric=MetricKind.LATENCY_P99)]))
def test_the_chunked_plan_equals_the_reference(case: tuple, gate: Gate) -> None:
    seed, t, share, err_b, err_c, stretch = case
    rng = np.random.default_rng(seed)
    data = requests(rng, t, share, err_b, err_c) if gate.metric is MetricKind.ERROR_RATE else latency(rng, t, share, stretch)
    th = Thresholds(alpha_fail=0.01, alpha_pass=0.05, min_samples=100)
    assert plan_gate(gate, data, th, 4 * 3600.0, chunked=True) == plan_gate(gate, data, th, 4 * 3600.0, chunked=False)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases)
def test_analysis_with_a_warm_memo_equals_one_on_fresh_panels(case: tuple) -> None:
    seed, t, share, err_b, err_c, stretch = case
    rng = np.random.default_rng(seed)
    data = {MetricKind.ERROR_RATE: requests(rng, t, share, err_b, err_c),
            MetricKind.LATENCY_P99: latency(rng, t, share, stretch)}
    data[MetricKind.LATENCY_P50] = data[MetricKind.LATENCY_P99]  # one histogram, two gates: shared as in the provider
    gates = [Gate(metric=MetricKind.ERROR_RATE), Gate(metric=MetricKind.LATENCY_P50), Gate(metric=MetricKind.LATENCY_P99)]
    kwargs: dict[str, Any] = {"alpha_fail": 0.05, "alpha_pass": 0.05, "min_samples": 100,
                              "expected_canary_share": share}
    cold = analyze(gates, {k: fresh(v) for k, v in data.items()}, **kwargs)
    analyze(gates, data, **kwargs)
    warm = analyze(gates, data, **kwargs)
    assert warm.outcome == cold.outcome
    assert warm.to_dict() == cold.to_dict()
