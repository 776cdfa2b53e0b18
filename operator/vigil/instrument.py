"""Export Vigil's metric contract from your own model server (docs/metrics-contract.md).

    from vigil.instrument import ModelMetrics, VigilMiddleware
    metrics = ModelMetrics(model="ranker", version=os.environ["VIGIL_MODEL_VERSION"], groups=["a", "b"])
    app.add_middleware(VigilMiddleware, metrics=metrics)       # FastAPI / Starlette: requests, latency
    app.mount("/metrics", metrics.asgi_app())
    metrics.prediction(score=0.83, predicted_class="1", group="a")   # model-quality signals
    metrics.label_feedback(group="a", confidence=0.83, correct=True)

Why a helper: the analysis differences raw counters per series and treats a missing series as
NoData, so the names, labels and buckets must be exactly the contract's and every label
combination must exist at zero from start-up. The middleware is plain ASGI (no FastAPI or
Starlette import); `pip install vigil[instrument]` brings the web stack for your app.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, make_asgi_app

from vigil.metrics import queries

LATENCY_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.5, 5.0)
"""The contract's latency edges; add finer ones around your p99 with `latency_buckets` (keep these)."""
SCORE_BUCKETS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
CONFIDENCE_BUCKETS: tuple[str, ...] = ("0.5", "0.6", "0.7", "0.8", "0.9")
SKIPPED_PATHS: tuple[str, ...] = ("/metrics", "/healthz", "/readyz", "/livez", "/health")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]


def _family(series: str) -> str:
    """prometheus_client adds `_total` to counters and `_bucket` to histograms itself."""
    return series.removesuffix("_total").removesuffix("_bucket")


class ModelMetrics:
    """The contract's series for one model version, in their own registry (or `registry`)."""

    def __init__(self, model: str, version: str, *, groups: Iterable[str] = (), namespace: str | None = None,
                 latency_buckets: Iterable[float] = LATENCY_BUCKETS,
                 registry: CollectorRegistry | None = None, digest: str | None = None) -> None:
        for field, value in (("model", model), ("version", version)):
            if not value or not isinstance(value, str):
                raise ValueError(f"{field}: a non-empty label value is required, got {value!r}")
        buckets = tuple(sorted(set(latency_buckets)))
        missing = [b for b in LATENCY_BUCKETS if b not in buckets]
        if missing:
            raise ValueError(f"latency_buckets: must keep every contract edge; missing {missing}")
        self.registry = registry or CollectorRegistry()
        self.groups = tuple(groups)
        self._base = {"model": model, "version": version}
        if namespace:
            self._base["namespace"] = namespace
        names = tuple(self._base)

        def counter(series: str, doc: str, *labels: str) -> Counter:
            return Counter(_family(series), doc, (*names, *labels), registry=self.registry)

        self.requests = counter(queries.REQUESTS_TOTAL, "Prediction requests by outcome (error: the server failed it).",
                                "outcome")
        self.duration = Histogram(_family(queries.REQUEST_DURATION_BUCKET), "Time to answer, errors included.",
                                  names, buckets=buckets, registry=self.registry)
        self.score = Histogram(_family(queries.PREDICTION_SCORE_BUCKET), "Positive-class score of each prediction.",
                               names, buckets=SCORE_BUCKETS, registry=self.registry)
        self.predictions = counter(queries.PREDICTIONS_TOTAL, "Predictions by group and predicted class.",
                                   "group", "predicted_class")
        self.feedback = counter(queries.LABEL_FEEDBACK_TOTAL, "Delayed true labels by group, confidence and correctness.",
                                "group", "confidence_bucket", "correct")
        self.shadow = counter(queries.SHADOW_COMPARISONS_TOTAL, "Mirrored requests compared with stable's answer.",
                              "outcome")
        self.control = counter(queries.SHADOW_CONTROL_TOTAL, "Mirrored requests stable scored twice, compared with itself.",
                               "outcome")
        if digest is not None:
            # what this server really loaded: Vigil rolls back a canary whose digest is not the spec's
            from prometheus_client import Gauge

            from vigil.metrics.guards import MODEL_INFO

            if not digest.startswith("sha256:"):
                raise ValueError(f"digest: expected sha256:<hex> of the loaded artifact, got {digest!r}")
            Gauge(MODEL_INFO, "The artifact this server loaded (value 1).", (*names, "digest"),
                  registry=self.registry).labels(**self._base, digest=digest).set(1)
        self._zero()

    def _zero(self) -> None:
        """Every label combination exists from start-up: zeros, not missing series (NoData)."""
        for outcome in ("success", "error"):
            self.requests.labels(**self._base, outcome=outcome)
        self.duration.labels(**self._base)
        self.score.labels(**self._base)
        for outcome in ("agree", "disagree"):
            self.shadow.labels(**self._base, outcome=outcome)
            self.control.labels(**self._base, outcome=outcome)
        for group in self.groups:
            for cls in ("0", "1"):
                self.predictions.labels(**self._base, group=group, predicted_class=cls)
            for bucket in CONFIDENCE_BUCKETS:
                for correct in ("true", "false"):
                    self.feedback.labels(**self._base, group=group, confidence_bucket=bucket, correct=correct)

    # ------------------------------------------------------------------ signals

    def request(self, seconds: float, *, error: bool = False) -> None:
        """One prediction request: `error` when the server failed it (a 5xx), not a client error."""
        self.requests.labels(**self._base, outcome="error" if error else "success").inc()
        self.duration.labels(**self._base).observe(seconds)

    def prediction(self, score: float, *, predicted_class: str, group: str | None = None) -> None:
        """A prediction's positive-class score (drift) and, with `group`, its class (fairness)."""
        if not (isinstance(score, (int, float)) and math.isfinite(score) and 0.0 <= score <= 1.0):
            raise ValueError(f"score: a probability in [0, 1] is required, got {score!r}")
        self.score.labels(**self._base).observe(score)
        if group is not None:
            self.predictions.labels(**self._base, group=self._group(group), predicted_class=str(predicted_class)).inc()

    def label_feedback(self, *, group: str, confidence: float, correct: bool) -> None:
        """A delayed true label for an earlier prediction (calibration): `confidence` is the
        predicted class's probability, bucketed by its lower edge 0.5 ... 0.9."""
        if not (isinstance(confidence, (int, float)) and 0.5 <= confidence <= 1.0):
            raise ValueError(f"confidence: the predicted class's probability in [0.5, 1] is required, got {confidence!r}")
        bucket = CONFIDENCE_BUCKETS[min(int(confidence * 10 + 1e-9) - 5, len(CONFIDENCE_BUCKETS) - 1)]
        self.feedback.labels(**self._base, group=self._group(group), confidence_bucket=bucket,
                             correct="true" if correct else "false").inc()

    def shadow_comparison(self, agree: bool) -> None:
        """On the shadow version: a mirrored request's answer compared with stable's."""
        self.shadow.labels(**self._base, outcome="agree" if agree else "disagree").inc()

    def shadow_control(self, agree: bool) -> None:
        """On the stable version: a mirrored request scored twice, compared with itself."""
        self.control.labels(**self._base, outcome="agree" if agree else "disagree").inc()

    def _group(self, group: str) -> str:
        if self.groups and group not in self.groups:
            raise ValueError(f"group: {group!r} is not one of the groups declared at start-up {list(self.groups)}")
        return group

    def asgi_app(self) -> ASGIApp:
        """An ASGI app serving this registry (mount it at /metrics)."""
        return make_asgi_app(registry=self.registry)


class VigilMiddleware:
    """ASGI middleware counting HTTP requests and their latency into `metrics`.

    A response status of 500 or more, or an exception from the app, is an error; paths in
    `skip` (metrics, health checks) are not counted. Works with FastAPI and Starlette
    (`app.add_middleware(VigilMiddleware, metrics=...)`) or any ASGI app."""

    def __init__(self, app: ASGIApp, metrics: ModelMetrics, skip: Iterable[str] = SKIPPED_PATHS,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.app = app
        self.metrics = metrics
        self.skip = tuple(skip)
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Message]],
                       send: Callable[[Message], Awaitable[None]]) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or any(path == s or path.startswith(s + "/") for s in self.skip):
            await self.app(scope, receive, send)
            return
        started = self.clock()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        except BaseException:
            status = 500
            raise
        finally:
            self.metrics.request(self.clock() - started, error=status >= 500)
