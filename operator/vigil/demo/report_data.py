"""What the rollout report shows, as data: the PromQL behind each panel, the series, the decisions.

Series come from Prometheus range queries over the model-server metric contract (metric
names from `vigil.metrics.queries`, matchers escaped by `vigil.metrics.promql`, requests on
the shared connection of `vigil.metrics.connection`); the decisions are plain dicts
(``time``, ``decision``, ``phase``, ``weight``, ``verdicts`` [{metric, outcome, statistic,
bound}], optional ``version``/``message``). Where Prometheus has nothing (or cannot be
reached) the panel gets a stated gap instead of an empty axis. Drawing and the page are in
`vigil.demo.report_page`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping, Protocol, Sequence

from vigil.metrics.connection import PrometheusConfig, QueryClient, connect
from vigil.metrics.promql import selector
from vigil.metrics.queries import REQUEST_DURATION_BUCKET, REQUESTS_TOTAL, SHADOW_COMPARISONS_TOTAL


# --- inputs ---------------------------------------------------------------------------


def to_datetime(value: datetime | str | float | int) -> datetime:
    """A UTC datetime from a datetime, an ISO-8601 string (``Z`` ok) or epoch seconds."""
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc) if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(float(value), tz=timezone.utc)
    if isinstance(value, str):
        return to_datetime(datetime.fromisoformat(value.strip().replace("Z", "+00:00")))
    raise TypeError(f"not a time: {value!r}")


@dataclass(frozen=True)
class VerdictPoint:
    """One metric's verdict as a decision recorded it: what the drift panel plots."""

    metric: str
    outcome: str
    statistic: float | None
    bound: float | None

    def text(self) -> str:
        """``metric: Outcome (statistic S, bound B)`` as the page lists it."""
        detail = []
        if self.statistic is not None:
            detail.append(f"statistic {self.statistic:.4g}")
            if self.bound is not None:
                detail.append(f"bound {self.bound:.4g}")
        return f"{self.metric}: {self.outcome}" + (f" ({', '.join(detail)})" if detail else "")


@dataclass(frozen=True)
class DecisionRecord:
    """One decision of the operator, as the report marks it on every panel."""

    time: datetime
    decision: str
    phase: str
    weight: float | None
    verdicts: tuple[VerdictPoint, ...] = ()
    version: str | None = None
    message: str = ""

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> "DecisionRecord":
        verdicts = tuple(
            VerdictPoint(
                metric=str(v.get("metric", "?")), outcome=str(v.get("outcome", "?")),
                statistic=_number(v.get("statistic")), bound=_number(v.get("bound")),
            )
            for v in record.get("verdicts") or ()
        )
        return cls(
            time=to_datetime(record["time"]), decision=str(record.get("decision", "?")),
            phase=str(record.get("phase", "")), weight=_number(record.get("weight")),
            verdicts=verdicts, version=record.get("version") or record.get("canary"),
            message=str(record.get("message", "")),
        )

    @property
    def weight_text(self) -> str:
        return "" if self.weight is None else f"{self.weight:g}"

    def verdicts_text(self) -> str:
        return "; ".join(v.text() for v in self.verdicts)


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


# --- Prometheus -----------------------------------------------------------------------


Series = dict[str, list[tuple[datetime, float]]]  # version -> points


class RangeReader(Protocol):
    """Runs a PromQL range query; returns [(labels, [(unix_time, value)])]."""

    def query_range(self, query: str, start: datetime, end: datetime,
                    step_seconds: float) -> list[tuple[dict[str, str], list[tuple[float, float]]]]: ...


class PrometheusRangeReader:
    """`RangeReader` on Vigil's one Prometheus connection (timeouts, retries, auth, TLS)."""

    def __init__(self, url: str, timeout: float = 10.0, headers: Mapping[str, str] | None = None,
                 client: QueryClient | None = None) -> None:
        self.client = client or connect(PrometheusConfig(url=url, timeout_seconds=timeout,
                                                         headers=dict(headers or {})))

    def query_range(self, query: str, start: datetime, end: datetime,
                    step_seconds: float) -> list[tuple[dict[str, str], list[tuple[float, float]]]]:
        result = self.client.custom_query_range(query, start_time=start, end_time=end,
                                                step=f"{step_seconds:g}")
        return [
            (dict(item["metric"]), [(float(t), float(v)) for t, v in item["values"]])
            for item in result
        ]


def report_queries(model: str, namespace: str | None, window: str) -> dict[str, str]:
    """The PromQL behind each panel (also printed in the page, so it can be re-run)."""
    matchers = {"model": model, **({"namespace": namespace} if namespace else {})}
    requests = selector(REQUESTS_TOTAL, matchers)
    errors = selector(REQUESTS_TOTAL, {**matchers, "outcome": "error"})
    shadow = selector(SHADOW_COMPARISONS_TOTAL, matchers)
    buckets = selector(REQUEST_DURATION_BUCKET, matchers)
    return {
        # Served requests: a shadow's mirrored copies (counted by its shadow comparisons)
        # are taken out, so shares add up to ~100% of user traffic. Copies of requests
        # the answering version failed carry no stable prediction and are not compared,
        # so they still show as the shadow's (stable error rate x mirror share).
        "served_rate": (
            f"sum by (version) (rate({requests}[{window}]))"
            f" - sum by (version) (rate({shadow}[{window}]))"
        ),
        "error_rate": (
            f"sum by (version) (rate({errors}[{window}]))"
            f" / sum by (version) (rate({requests}[{window}]))"
        ),
        "latency_p99": (
            "histogram_quantile(0.99, sum by (version, le) "
            f"(rate({buckets}[{window}])))"
        ),
    }


@dataclass
class ReportData:
    """Everything the page shows; built from Prometheus + decisions, rendered later."""

    model: str
    versions: tuple[str, ...]
    start: datetime
    end: datetime
    decisions: tuple[DecisionRecord, ...]
    traffic_share: Series = field(default_factory=dict)  # percent
    error_rate: Series = field(default_factory=dict)  # percent
    latency_p99: Series = field(default_factory=dict)  # milliseconds
    queries: dict[str, str] = field(default_factory=dict)
    gaps: dict[str, str] = field(default_factory=dict)  # panel -> why it has no data

    def drift_points(self) -> list[tuple[datetime, VerdictPoint]]:
        return [(d.time, v) for d in self.decisions for v in d.verdicts
                if "drift" in v.metric.lower() and v.statistic is not None]


def _by_version(result: Iterable[tuple[dict[str, str], list[tuple[float, float]]]],
                versions: Sequence[str], scale: float) -> Series:
    series: Series = {}
    for labels, values in result:
        version = labels.get("version")
        if version not in versions:
            continue
        points = [(to_datetime(t), v * scale) for t, v in values if math.isfinite(v)]
        if points and version is not None:
            series[version] = points
    return series


def collect(reader: RangeReader, model: str, versions: Sequence[str], start: datetime,
            end: datetime, decisions: Sequence[Mapping[str, Any]], *,
            namespace: str | None = None, window: str = "30s",
            step_seconds: float | None = None) -> ReportData:
    """Run the queries and shape the results; a failed query becomes a stated gap."""
    start, end = to_datetime(start), to_datetime(end)
    if end <= start:
        raise ValueError("the report's end must be after its start")
    step = step_seconds or max(1.0, (end - start).total_seconds() / 300.0)
    data = ReportData(model=model, versions=tuple(versions), start=start, end=end,
                      decisions=tuple(sorted((DecisionRecord.from_dict(d) for d in decisions),
                                             key=lambda d: d.time)),
                      queries=report_queries(model, namespace, window))

    def run(name: str, panel: str, scale: float) -> Series:
        try:
            series = _by_version(reader.query_range(data.queries[name], start, end, step),
                                 versions, scale)
        except Exception as exc:  # noqa: BLE001 - the page must still be written
            data.gaps[panel] = f"query failed: {type(exc).__name__}: {exc}"
            return {}
        if not series:
            data.gaps[panel] = "Prometheus returned no samples for these versions in this range"
        return series

    served = run("served_rate", "plot-weights", 1.0)
    data.traffic_share = _shares(served)
    data.error_rate = run("error_rate", "plot-error-rate", 100.0)
    data.latency_p99 = run("latency_p99", "plot-latency-p99", 1000.0)
    if not data.drift_points():
        data.gaps["plot-drift"] = "no decision carried a drift verdict with a statistic"
    return data


def _shares(rates: Series) -> Series:
    """Per-version percentage of all served requests at each timestamp."""
    totals: dict[datetime, float] = {}
    for points in rates.values():
        for t, v in points:
            totals[t] = totals.get(t, 0.0) + max(v, 0.0)
    return {
        version: [(t, 100.0 * max(v, 0.0) / totals[t]) for t, v in points if totals[t] > 0]
        for version, points in rates.items()
    }
