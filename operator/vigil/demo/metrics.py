"""The model-server metric contract, exactly as Vigil's analysis reads it.

Every series carries ``model`` and ``version``; this server also adds ``namespace`` as
a constant label on every series, so queries work whether or not the Prometheus scrape
config adds a ``namespace`` target label (if it does, Prometheus keeps its own and
renames ours to ``exported_namespace``; both hold the same value in the demo).

All label combinations that can occur are created at zero on start-up, so a version
that has served nothing yet shows explicit zeros rather than missing series.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from vigil.demo.dataset import GROUPS
from vigil.metrics import queries
from vigil.metrics.queries import (
    LABEL_FEEDBACK_TOTAL,
    PREDICTIONS_TOTAL,
    REQUESTS_TOTAL,
    SHADOW_COMPARISONS_TOTAL,
    SHADOW_CONTROL_TOTAL,
)
from vigil.demo.classifier import CONFIDENCE_BUCKETS, Prediction

# The names the analysis queries (vigil.metrics.queries), so exporter and reader cannot drift;
# histograms are named by family here, the queries read their `_bucket` series.
REQUEST_DURATION = queries.REQUEST_DURATION_BUCKET.removesuffix("_bucket")
PREDICTION_SCORE = queries.PREDICTION_SCORE_BUCKET.removesuffix("_bucket")

CONTRACT_LATENCY_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.5, 5.0,
)
"""The contract's minimum latency buckets (docs/metrics-contract.md)."""


def fine_buckets(low: float, high: float, ratio: float) -> tuple[float, ...]:
    """Edges about `ratio` apart from `low` to `high`, rounded to 3 significant digits."""
    edges, edge = [], low
    while edge < high * (1 + 1e-9):
        edges.append(float(f"{edge:.3g}"))
        edge *= ratio
    return tuple(edges)


LATENCY_BUCKETS: tuple[float, ...] = tuple(sorted(set(CONTRACT_LATENCY_BUCKETS) | {
    edge for edge in fine_buckets(0.05, 0.75, 1.1)
    if all(abs(edge / c - 1) > 0.05 for c in CONTRACT_LATENCY_BUCKETS)}))
"""What the demo's servers export: every contract edge, plus edges 1.1x apart from 50 ms to
750 ms, where the demo's p99 lies (a lognormal around 60 ms has its p99 near 135 ms, and the
latency fault's tail near 360 ms). The p99 gate bounds what a tolerated stretch can do at an
edge from the bucket geometry; edges 1.33-1.67x apart make that bound conservative, 1.1x
apart restore most of the test's power (docs/metrics-contract.md recommends it)."""
SCORE_BUCKETS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)

CONTRACT_LABELS: dict[str, tuple[str, ...]] = {
    REQUESTS_TOTAL: ("model", "version", "outcome"),
    REQUEST_DURATION: ("model", "version"),
    PREDICTION_SCORE: ("model", "version"),
    PREDICTIONS_TOTAL: ("model", "version", "group", "predicted_class"),
    LABEL_FEEDBACK_TOTAL: ("model", "version", "group", "confidence_bucket", "correct"),
    SHADOW_COMPARISONS_TOTAL: ("model", "version", "outcome"),
    SHADOW_CONTROL_TOTAL: ("model", "version", "outcome"),
}
"""Contract labels per metric family; ``namespace`` is added on top of these."""

NAMESPACE_LABEL = "namespace"


def _family(name: str) -> str:
    """prometheus_client wants counter names without the ``_total`` suffix."""
    return name.removesuffix("_total")


class ModelMetrics:
    """The contract's series for one model version, in their own registry."""

    def __init__(self, model: str, version: str, namespace: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._base = {NAMESPACE_LABEL: namespace, "model": model, "version": version}
        labels = {name: (NAMESPACE_LABEL, *names) for name, names in CONTRACT_LABELS.items()}
        self.requests = Counter(
            _family(REQUESTS_TOTAL), "Prediction requests by outcome (error = 5xx).",
            labels[REQUESTS_TOTAL], registry=self.registry,
        )
        self.duration = Histogram(
            REQUEST_DURATION, "Time to answer a prediction request, errors included.",
            labels[REQUEST_DURATION], buckets=LATENCY_BUCKETS, registry=self.registry,
        )
        self.score = Histogram(
            PREDICTION_SCORE, "Positive-class score of each prediction.",
            labels[PREDICTION_SCORE], buckets=SCORE_BUCKETS, registry=self.registry,
        )
        self.predictions = Counter(
            _family(PREDICTIONS_TOTAL), "Predictions by protected group and predicted class.",
            labels[PREDICTIONS_TOTAL], registry=self.registry,
        )
        self.feedback = Counter(
            _family(LABEL_FEEDBACK_TOTAL),
            "Delayed true labels received, by group, predicted-class confidence bucket and correctness.",
            labels[LABEL_FEEDBACK_TOTAL], registry=self.registry,
        )
        self.shadow = Counter(
            _family(SHADOW_COMPARISONS_TOTAL),
            "Mirrored requests whose prediction agreed or disagreed with stable's.",
            labels[SHADOW_COMPARISONS_TOTAL], registry=self.registry,
        )
        self.control = Counter(
            _family(SHADOW_CONTROL_TOTAL),
            "Mirrored requests this (stable) version scored twice, by whether it agreed with itself.",
            labels[SHADOW_CONTROL_TOTAL], registry=self.registry,
        )
        self._create_zero_series()

    def _create_zero_series(self) -> None:
        for outcome in ("success", "error"):
            self.requests.labels(**self._base, outcome=outcome)
        self.duration.labels(**self._base)
        self.score.labels(**self._base)
        for group in GROUPS:
            for cls in ("0", "1"):
                self.predictions.labels(**self._base, group=group, predicted_class=cls)
            for bucket in CONFIDENCE_BUCKETS:
                for correct in ("true", "false"):
                    self.feedback.labels(
                        **self._base, group=group, confidence_bucket=bucket, correct=correct
                    )
        for outcome in ("agree", "disagree"):
            self.shadow.labels(**self._base, outcome=outcome)
            self.control.labels(**self._base, outcome=outcome)

    def observe_request(self, seconds: float, success: bool) -> None:
        self.requests.labels(**self._base, outcome="success" if success else "error").inc()
        self.duration.labels(**self._base).observe(seconds)

    def observe_prediction(self, prediction: Prediction) -> None:
        self.score.labels(**self._base).observe(prediction.score)
        self.predictions.labels(
            **self._base, group=prediction.group, predicted_class=str(prediction.predicted_class)
        ).inc()

    def observe_feedback(self, prediction: Prediction, true_label: int) -> bool:
        correct = prediction.predicted_class == true_label
        self.feedback.labels(
            **self._base,
            group=prediction.group,
            confidence_bucket=prediction.confidence_bucket,
            correct="true" if correct else "false",
        ).inc()
        return correct

    def observe_shadow(self, agrees: bool) -> None:
        self.shadow.labels(**self._base, outcome="agree" if agrees else "disagree").inc()

    def observe_control(self, agrees: bool) -> None:
        self.control.labels(**self._base, outcome="agree" if agrees else "disagree").inc()
