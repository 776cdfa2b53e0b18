"""Turn one simulated rollout into the raw counters `analyze` reads (as Prometheus would serve them).

Used to time `analyze` on realistic input and to check, rep by rep, that the vectorised
benchmark path and `analyze` reach the same verdicts.
"""

from __future__ import annotations

import numpy as np

from bench.scenarios import CONFIDENCE_MID, LATENCY_EDGES, SCORE_EDGES
from bench.simulate import Counts
from vigil.api.gates import MetricKind
from vigil.stats import (
    CounterPanel,
    GroupPredictions,
    LabelFeedback,
    LatencyHistogram,
    MetricData,
    RequestCounts,
    ScoreHistogram,
    ShadowComparisons,
)

GROUP_NAMES = ("a", "b", "c")


def _le(edge: float) -> str:
    return "+Inf" if not np.isfinite(edge) else f"{edge:g}"


class _Panels:
    """Builds panels for one rep, splitting every cell's counts across `pods` series."""

    def __init__(self, rng: np.random.Generator, minutes: int, pods: int, t0: float, start: float = 1000.0) -> None:
        self.rng, self.pods, self.start = rng, pods, start
        self.times = t0 + 60.0 * np.arange(minutes + 1)

    def panel(self, cells: list[tuple[dict[str, str], np.ndarray]]) -> CounterPanel:
        series = []
        for labels, counts in cells:
            remaining = np.asarray(counts, dtype=np.int64)
            for pod in range(self.pods):
                part = remaining if pod == self.pods - 1 else self.rng.binomial(remaining, 1 / (self.pods - pod))
                remaining = remaining - part
                series.append(({**labels, "pod": f"p{pod}"}, part))
        return CounterPanel.from_counts(self.times, series, start=self.start)

    def histogram(self, bins: np.ndarray, edges: np.ndarray) -> CounterPanel:
        cumulative = np.cumsum(bins, axis=-1)
        if edges.size > cumulative.shape[-1]:  # Prometheus' +Inf bucket above the last real edge
            cumulative = np.concatenate([cumulative, cumulative[:, -1:]], axis=-1)
        return self.panel([({"le": _le(e)}, cumulative[:, i]) for i, e in enumerate(edges)])


def window(c: Counts, rep: int, minutes: int | None = None, pods: int = 2, seed: int = 0,
           t0: float = 1_700_000_000.0) -> dict[MetricKind, MetricData]:
    """The counters of rep `rep` over its first `minutes` minutes (all simulated families),
    sampled every minute from unix time `t0`, split across `pods` series."""
    t = minutes or c.requests_c.shape[1]
    p = _Panels(np.random.default_rng(seed), t, pods, t0)

    def arm(name: str) -> dict[str, np.ndarray]:
        return {k.removesuffix(f"_{name}"): getattr(c, k)[rep, :t] for k in c.__dataclass_fields__
                if k.endswith(f"_{name}") and getattr(c, k) is not None}

    out: dict[MetricKind, MetricData] = {}
    panels = {}
    for name in ("b", "c"):
        a = arm(name)
        panels[name] = {"requests": p.panel([({"outcome": "error"}, a["errors"]),
                                             ({"outcome": "success"}, a["requests"] - a["errors"])])}
        if "latency" in a:
            panels[name]["latency"] = p.histogram(a["latency"], LATENCY_EDGES)
        if "score" in a:
            panels[name]["score"] = p.histogram(a["score"], np.append(SCORE_EDGES, np.inf))
        if "groups" in a:
            panels[name]["groups"] = p.panel(
                [({"group": g, "predicted_class": "1"}, a["positive"][:, i]) for i, g in enumerate(GROUP_NAMES)]
                + [({"group": g, "predicted_class": "0"}, a["groups"][:, i] - a["positive"][:, i])
                   for i, g in enumerate(GROUP_NAMES)])
        if "labelled" in a:
            buckets = [f"{m - 0.05:.1f}" for m in CONFIDENCE_MID]
            panels[name]["labels"] = p.panel(
                [({"group": "a", "confidence_bucket": b, "correct": "true"}, a["correct"][:, i]) for i, b in enumerate(buckets)]
                + [({"group": "a", "confidence_bucket": b, "correct": "false"}, a["labelled"][:, i] - a["correct"][:, i])
                   for i, b in enumerate(buckets)])
    b, k = panels["b"], panels["c"]
    out[MetricKind.ERROR_RATE] = RequestCounts(b["requests"], k["requests"])
    if "latency" in k:
        out[MetricKind.LATENCY_P99] = out[MetricKind.LATENCY_P50] = LatencyHistogram(b["latency"], k["latency"])
    if "score" in k:
        out[MetricKind.PREDICTION_DRIFT] = ScoreHistogram(b["score"], k["score"])
    if "groups" in k:
        out[MetricKind.FAIRNESS_GAP] = GroupPredictions(b["groups"], k["groups"])
    if "labels" in k:
        out[MetricKind.CALIBRATION] = LabelFeedback(b["labels"], k["labels"])
    if c.compared is not None:
        out[MetricKind.SHADOW_DISAGREEMENT] = ShadowComparisons(p.panel(
            [({"outcome": "disagree"}, c.disagreed[rep, :t]), ({"outcome": "agree"}, c.compared[rep, :t] - c.disagreed[rep, :t])]))
    return out
