"""How long one `analyze` call takes on a realistic window (all gates, two pods)."""

from __future__ import annotations

import time

import numpy as np

from bench.scenarios import CONFIDENCE_MID, CONFIDENCE_SHARES, GROUP_POSITIVE, GROUP_SHARES, LATENCY_EDGES, SCORE_EDGES, World
from vigil.api.gates import Gate, MetricKind
from vigil.stats import (
    CounterPanel,
    GroupPredictions,
    LabelFeedback,
    LatencyHistogram,
    RequestCounts,
    ScoreHistogram,
    ShadowComparisons,
    analyze,
)


def _le(edge: float) -> str:
    return "+Inf" if not np.isfinite(edge) else f"{edge:g}"


def realistic_window(rng: np.random.Generator, minutes: int = 30, rpm: float = 1000.0, weight: float = 0.1,
                     pods: int = 2) -> dict[MetricKind, object]:
    """Counters of every contract metric for both versions, as the provider returns them."""
    ts = np.arange(minutes + 1) * 60.0
    world = World()

    def panel(rate: float, cells: list[tuple[dict[str, str], float]]) -> CounterPanel:
        series = []
        for pod in range(pods):
            for labels, share in cells:
                inc = rng.poisson(rate * share / pods, minutes)
                series.append(({**labels, "pod": f"p{pod}"}, inc))
        return CounterPanel.from_counts(ts, series, start=1000.0)

    def histogram(rate: float, probs: np.ndarray, edges: np.ndarray) -> CounterPanel:
        cum = np.cumsum(probs)
        return panel(rate, [({"le": _le(e)}, float(c)) for e, c in zip(edges, cum)])

    out: dict[MetricKind, object] = {}
    arms = {"b": rpm * (1 - weight), "c": rpm * weight}
    req = {a: panel(r, [({"outcome": "error"}, world.error), ({"outcome": "success"}, 1 - world.error)]) for a, r in arms.items()}
    out[MetricKind.ERROR_RATE] = RequestCounts(req["b"], req["c"])
    lat = {a: histogram(r, world.latency, LATENCY_EDGES) for a, r in arms.items()}
    out[MetricKind.LATENCY_P99] = out[MetricKind.LATENCY_P50] = LatencyHistogram(lat["b"], lat["c"])
    score = {a: histogram(r, world.score, np.append(SCORE_EDGES, np.inf)) for a, r in arms.items()}
    out[MetricKind.PREDICTION_DRIFT] = ScoreHistogram(score["b"], score["c"])
    groups = [({"group": g, "predicted_class": k}, s * (p if k == "1" else 1 - p))
              for g, s, p in zip("abc", GROUP_SHARES, GROUP_POSITIVE) for k in "01"]
    out[MetricKind.FAIRNESS_GAP] = GroupPredictions(panel(arms["b"], groups), panel(arms["c"], groups))
    labels = [({"group": "a", "confidence_bucket": f"{m - 0.05:.1f}", "correct": ok}, s * (m if ok == "true" else 1 - m))
              for m, s in zip(CONFIDENCE_MID, CONFIDENCE_SHARES) for ok in ("true", "false")]
    out[MetricKind.CALIBRATION] = LabelFeedback(panel(arms["b"], labels), panel(arms["c"], labels))
    out[MetricKind.SHADOW_DISAGREEMENT] = ShadowComparisons(
        panel(arms["c"], [({"outcome": "agree"}, 0.99), ({"outcome": "disagree"}, 0.01)]))
    return out


def time_analyze(calls: int = 1000) -> tuple[float, float]:
    """(seconds per call, seconds for 1000 calls) over `calls` distinct windows."""
    rng = np.random.default_rng(7)
    windows = [realistic_window(rng) for _ in range(min(calls, 20))]
    gates = [Gate(metric=k) for k in MetricKind]
    started = time.perf_counter()
    for i in range(calls):
        analyze(gates, windows[i % len(windows)], confidence=0.99, min_samples=200, expected_canary_share=0.1)
    per_call = (time.perf_counter() - started) / calls
    return per_call, per_call * 1000
