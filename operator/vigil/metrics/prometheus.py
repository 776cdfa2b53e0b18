"""Read the metric contract from Prometheus (via prometheus-api-client).

One range query per metric kind returns every raw counter series of both versions on a
regular grid from `start` to `end`; one instant query tells when each version was last
scraped. Anything that goes wrong becomes `NoData(reason)` for that metric only: an
unreachable server, an HTTP or PromQL error, no series, NaN samples, a version whose
newest sample is older than `max_staleness`. Nothing here raises into the reconciler,
and nothing here ever stands in for a pass.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, Protocol

import numpy as np
import requests
from prometheus_api_client import PrometheusApiClientException

from vigil.api.gates import Gate, MetricKind
from vigil.metrics.connection import PrometheusConfig, QueryClient, connect
from vigil.metrics.promql import InvalidLabel
from vigil.metrics.queries import (
    CANARY_ONLY,
    control_query,
    counters_query,
    freshness_query,
    problem,
)
from vigil.metrics.target import AnalysisTarget
from vigil.stats.data import (
    CounterPanel,
    CounterSeries,
    GroupPredictions,
    LabelFeedback,
    LatencyHistogram,
    MetricData,
    NoData,
    RequestCounts,
    ScoreHistogram,
    ShadowComparisons,
)

MAX_POINTS = 10_000  # Prometheus refuses more than 11,000 points per series


class MetricsProvider(Protocol):
    """Where the analysis gets its counters from."""

    def collect(
        self, target: AnalysisTarget, gates: Sequence[Gate], start: datetime, end: datetime
    ) -> dict[MetricKind, MetricData | NoData]: ...


class PrometheusProvider:
    """`MetricsProvider` backed by Prometheus. `client` may be injected (tests, custom auth)."""

    def __init__(self, config: PrometheusConfig, client: QueryClient | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self._client = client
        self._clock = clock
        self._faults: dict[tuple[str, str], tuple[str, str]] = {}

    def fault(self, namespace: str, model: str) -> tuple[str, str] | None:
        """(reason, message) of the last collect for this model when Prometheus could not be used,
        e.g. ("PrometheusTimeout", ...); None when the last collect was clean. The operator shows
        it as the `MetricsAvailable` condition (`kube/faults.py`)."""
        return self._faults.get((namespace, model))

    @property
    def client(self) -> QueryClient:
        if self._client is None:
            self._client = connect(self.config)
        return self._client

    def collect(
        self, target: AnalysisTarget, gates: Sequence[Gate], start: datetime, end: datetime
    ) -> dict[MetricKind, MetricData | NoData]:
        """Counters for every gate's metric kind over [start, end]; NoData with a reason on failure."""
        kinds = list(dict.fromkeys(g.metric for g in gates))
        try:
            target.validate(self.config.namespace_label)
        except InvalidLabel as err:
            return {k: NoData(f"invalid analysis target: {err}") for k in kinds}
        if end <= start:
            return {k: NoData(f"empty window: end {end.isoformat()} is not after start {start.isoformat()}") for k in kinds}
        fetched: dict[str, tuple[MetricData | NoData, str | None]] = {}
        out: dict[MetricKind, MetricData | NoData] = {}
        deadline = self._clock() + self.config.query_budget_seconds
        for kind in kinds:
            unsupported = problem(kind, target, self.config.namespace_label)  # the target's metrics preset
            if unsupported:
                out[kind] = NoData(unsupported)
                continue
            key = counters_query(kind, target, self.config.namespace_label)
            if key not in fetched:
                if self._clock() > deadline:  # a slow server: stop here rather than hold a worker
                    fetched[key] = (NoData(f"{kind.value}: Prometheus query budget of "
                                           f"{self.config.query_budget_seconds:g}s spent"), "PrometheusTimeout")
                else:
                    fetched[key] = self._collect_kind_coded(kind, target, start, end)
            out[kind] = fetched[key][0]
        problems = [(code, data.reason) for data, code in fetched.values() if code and isinstance(data, NoData)]
        if problems:
            self._faults[(target.namespace, target.model)] = problems[0]
        else:
            self._faults.pop((target.namespace, target.model), None)
        return out

    # ------------------------------------------------------------------ internals

    def grid(self, start: datetime, end: datetime) -> tuple[datetime, np.ndarray, float]:
        """Whole-second start, the sample times and the step of the range query."""
        t0 = math.floor(start.timestamp())
        t1 = math.floor(end.timestamp())
        span = max(t1 - t0, 1)
        step = max(1.0, min(self.config.step_seconds, span / 2), math.ceil(span / MAX_POINTS))
        times = t0 + step * np.arange(int(span // step) + 1)
        return datetime.fromtimestamp(t0, tz=start.tzinfo), times, step

    def _collect_kind(self, kind: MetricKind, target: AnalysisTarget, start: datetime, end: datetime
                      ) -> MetricData | NoData:
        return self._collect_kind_coded(kind, target, start, end)[0]

    def _collect_kind_coded(self, kind: MetricKind, target: AnalysisTarget, start: datetime, end: datetime
                            ) -> tuple[MetricData | NoData, str | None]:
        """The data or NoData, with the fault reason a user should see (None when clean)."""
        query = counters_query(kind, target, self.config.namespace_label)
        aligned, times, step = self.grid(start, end)
        try:
            result = self.client.custom_query_range(query, start_time=aligned,
                                                    end_time=datetime.fromtimestamp(times[-1], tz=start.tzinfo),
                                                    step=f"{step:g}s")
            fresh = self.client.custom_query(freshness_query(kind, target, self.config.namespace_label),
                                             params={"time": f"{end.timestamp():.3f}"})
        except (requests.RequestException, PrometheusApiClientException, ValueError, KeyError, OSError) as err:
            return NoData(f"{kind.value}: Prometheus query failed: {_one_line(err)}"), classify(err)
        try:  # a malformed answer (a scalar, a string, garbage) is NoData, never an exception in the loop
            by_version = panels(result, times, target)
            if isinstance(by_version, NoData):
                return NoData(f"{kind.value}: {by_version.reason}"), "MetricsInvalid"
            problem = missing_or_stale(kind, target, by_version, fresh, end.timestamp(), self.config.max_staleness_seconds)
            if problem:
                return NoData(f"{kind.value}: {problem}"), "MetricsStale" if "stale" in problem or "lookback" in problem \
                    else "MetricsMissing"
            data = build(kind, by_version, target, times)
        except (TypeError, ValueError, KeyError, IndexError, AttributeError) as err:
            return (NoData(f"{kind.value}: Prometheus answered something that is not a range vector: {_one_line(err)}"),
                    "PrometheusBadResponse")
        if kind is MetricKind.SHADOW_DISAGREEMENT:
            return self._with_control(data, target, aligned, times, step), None
        return data, None

    def _with_control(self, data: MetricData, target: AnalysisTarget, aligned: datetime, times: np.ndarray,
                      step: float) -> MetricData:
        """The shadow gate's live control (stable compared with itself on the same mirrored
        requests), when the stable version exports it; without it the gate compares the shadow
        with its fixed tolerance."""
        try:
            result = self.client.custom_query_range(control_query(target, self.config.namespace_label),
                                                    start_time=aligned,
                                                    end_time=datetime.fromtimestamp(times[-1], tz=aligned.tzinfo),
                                                    step=f"{step:g}s")
            control = panels(result, times, target)
        except (requests.RequestException, PrometheusApiClientException, TypeError, ValueError, KeyError,
                IndexError, OSError):
            return data
        if isinstance(control, NoData) or target.baseline_version not in control:
            return data
        return replace(data, control=control[target.baseline_version])


def panels(result: list[dict[str, Any]], times: np.ndarray, target: AnalysisTarget
           ) -> dict[str, CounterPanel] | NoData:
    """Range-query result -> one CounterPanel per version on the grid `times` (NaN = no sample)."""
    series: dict[str, list[CounterSeries]] = {}
    for item in result:
        labels = {k: v for k, v in item.get("metric", {}).items() if k != "__name__"}
        version = labels.get("version")
        if version not in (target.baseline_version, target.canary_version):
            continue
        values = np.full(times.size, np.nan)
        step = times[1] - times[0] if times.size > 1 else 1.0
        for ts, text in item.get("values", []):
            value = float(text)
            if not math.isfinite(value):
                return NoData(f"sample {text} at {float(ts):.0f} in series {labels}: counters must be finite")
            i = int(round((float(ts) - times[0]) / step))
            if 0 <= i < times.size:
                values[i] = value
        if not np.isnan(values).all():
            series.setdefault(version, []).append(CounterSeries(labels, values))
    return {version: CounterPanel(times, tuple(s)) for version, s in series.items()}


def missing_or_stale(kind: MetricKind, target: AnalysisTarget, by_version: Mapping[str, CounterPanel],
                     fresh: list[dict[str, Any]], end: float, max_staleness: float) -> str | None:
    """Why the data cannot be used (no series, or scraped too long ago), else None."""
    newest = {}
    for item in fresh:
        version = item.get("metric", {}).get("version")
        try:
            newest[version] = float(item["value"][1])
        except (KeyError, IndexError, TypeError, ValueError):
            continue
    roles = [("canary", target.canary_version)]
    if kind not in CANARY_ONLY:
        roles.insert(0, ("baseline", target.baseline_version))
    for role, version in roles:
        if version not in by_version:
            return (f"no series for {role} version {version!r} of model {target.model!r} in namespace "
                    f"{target.namespace!r} (is it scraped and does it expose the Vigil metric contract?)")
        seen = newest.get(version)
        if seen is None or not math.isfinite(seen):
            return f"{role} version {version!r} has no sample within Prometheus' lookback at the window end"
        if end - seen > max_staleness:
            return f"{role} version {version!r} is stale: newest sample {end - seen:.0f}s before the window end"
    return None


def build(kind: MetricKind, by_version: Mapping[str, CounterPanel], target: AnalysisTarget, times: np.ndarray
          ) -> MetricData:
    canary = by_version[target.canary_version]
    if kind in CANARY_ONLY:
        return ShadowComparisons(canary)
    baseline = by_version[target.baseline_version]
    cls: type = {
        MetricKind.ERROR_RATE: RequestCounts,
        MetricKind.LATENCY_P50: LatencyHistogram,
        MetricKind.LATENCY_P99: LatencyHistogram,
        MetricKind.PREDICTION_DRIFT: ScoreHistogram,
        MetricKind.CALIBRATION: LabelFeedback,
        MetricKind.FAIRNESS_GAP: GroupPredictions,
    }[kind]
    return cls(baseline, canary)


def classify(err: BaseException) -> str:
    """The condition reason for a failed query: what kind of trouble Prometheus is in."""
    text = str(err).lower()
    if isinstance(err, PrometheusApiClientException):
        if "429" in text:
            return "PrometheusThrottled"
        return "PrometheusUnavailable" if any(f"code {c}" in text or f" {c}" in text for c in (500, 502, 503, 504)) \
            else "PrometheusBadResponse"
    if isinstance(err, (requests.Timeout,)) or "timed out" in text or "timeout" in type(err).__name__.lower():
        return "PrometheusTimeout"
    if isinstance(err, (ValueError, KeyError)):  # an answer that is not Prometheus' JSON
        return "PrometheusBadResponse"
    return "PrometheusUnavailable"


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text[:300]}"
