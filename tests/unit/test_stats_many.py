"""`analyze_many`: the analyses of many windows at once are each exactly what its own call gives."""

from __future__ import annotations

import numpy as np
from vigil.api.gates import Gate, MetricKind
from vigil.stats import CounterPanel, NoData, RequestCounts, analyze
from vigil.stats.analyze import analyze_many
from vigil.stats.batch import evidence_together
from vigil.stats.evidence import EvidenceCall, GateEvidence
from vigil.stats.rates import error_rate_evidence_call

from tests.unit.test_stats_worlds import healthy_window

ALL = [Gate(metric=k) for k in MetricKind]
SETTINGS = [dict(alpha_fail=0.05, alpha_pass=0.05, min_samples=200, expected_canary_share=0.1),
            dict(alpha_fail=0.01, alpha_pass=0.05, min_samples=100, detect_change=True, pass_needed=False),
            dict(alpha_fail=0.05, alpha_pass=0.1, min_samples=50, deferred=True)]


def counts(errors: list[float], total: list[float]) -> CounterPanel:
    ts = 60.0 * np.arange(len(total) + 1)
    return CounterPanel.from_counts(ts, [({"outcome": "error"}, errors),
                                         ({"outcome": "success"}, [t - e for t, e in zip(total, errors)])])


def test_each_analysis_of_a_batch_equals_its_own_call_bit_for_bit() -> None:
    """Windows of two lengths, several seeds, traffic levels and settings mixed in one batch (so
    windows of one shape share their evidence calls): every analysis, and its completion, is
    the one its own call gives, to the last bit of every figure."""
    requests = [(ALL, healthy_window(rpm=rpm, minutes=minutes, seed=seed), setting)
                for minutes in (12, 30) for seed in (1, 2, 3) for rpm in (300, 3000) for setting in SETTINGS]
    together = analyze_many(requests)
    alone = [analyze(gates, data, **setting) for gates, data, setting in requests]
    assert len(together) == len(alone) == len(requests)
    for a, b in zip(together, alone):
        assert repr(a) == repr(b)
        assert repr(a.complete()) == repr(b.complete())


def test_one_windows_broken_counters_cost_no_other_window_its_verdict() -> None:
    """A window whose error counters are malformed (an absurd count) is reported as alone (NoData
    with the reason, or whatever its own call gives), and the windows that share its evidence
    call still get theirs; missing data stays NoData."""
    gate = [Gate(metric="errorRate")]
    setting = dict(alpha_fail=0.05, alpha_pass=0.05, min_samples=10)
    good = [{MetricKind.ERROR_RATE: RequestCounts(counts([1, 2, 1], [100, 100, 100]), counts([0, 1, 0], [10, 12, 9]))}
            for _ in range(3)]
    odd = {MetricKind.ERROR_RATE: RequestCounts(counts([1, 2, 1], [100, 100, 100]), counts([0, 1e308, 0], [10, 1e308, 9]))}
    missing = {MetricKind.ERROR_RATE: NoData("Prometheus unreachable")}
    requests = [(gate, d, setting) for d in (good[0], odd, good[1], missing, good[2])]
    together = analyze_many(requests)
    for (gates, data, kwargs), got in zip(requests, together):
        assert repr(got) == repr(analyze(gates, data, **kwargs))
    assert together[3].verdicts[0].explanation == "Prometheus unreachable"


def test_evidence_calls_share_one_call_only_with_the_same_key() -> None:
    """Calls of one key are computed as the rows of one call; a key of None is never shared; a
    stacked call that fails is redone window by window, so only the failing window goes without."""
    gate = Gate(metric="errorRate")
    panels = [RequestCounts(counts([1, 2, 1], [100, 100, 100]), counts([k, 1, 0], [10, 12, 9])) for k in range(3)]
    calls = {k: error_rate_evidence_call(p, gate) for k, p in enumerate(panels)}
    seen: list[int] = []

    def counting(call: EvidenceCall) -> EvidenceCall:
        def compute(*arrays: np.ndarray) -> GateEvidence:
            seen.append(np.shape(arrays[0])[0] if np.ndim(arrays[0]) > 1 else 1)
            return call.compute(*arrays)
        return EvidenceCall(call.key, call.arrays, compute)

    shared = evidence_together({k: counting(c) for k, c in calls.items()})
    assert seen == [3]
    for k, call in calls.items():
        assert all(np.array_equal(getattr(shared[k], f), getattr(call(), f))
                   for f in ("log_e_fail", "log_e_pass", "n_canary", "n_baseline"))
    seen.clear()
    apart = evidence_together({k: EvidenceCall(None, c.arrays, counting(c).compute) for k, c in calls.items()})
    assert seen == [1, 1, 1] and set(apart) == {0, 1, 2}

    def failing_for_window_1(*arrays: np.ndarray) -> GateEvidence:
        if np.ndim(arrays[0]) > 1 or arrays[1][0] == 1:
            raise ValueError("bad counters")
        return calls[0].compute(*arrays)

    got = evidence_together({k: EvidenceCall(c.key, c.arrays, failing_for_window_1) for k, c in calls.items()})
    assert set(got) == {0, 2}
