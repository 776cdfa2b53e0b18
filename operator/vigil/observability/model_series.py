"""The per-ModelDeployment series, made at scrape time from one small record per model.

As prometheus_client children they were about 24 objects per ModelDeployment (a gauge per
phase, a counter per outcome, two histograms of 14 buckets each...), every one with its own
lock and value objects: about 22 MB of Python objects at 1000 ModelDeployments, more than kopf's
copy of the objects themselves. Here a model is one `ModelRecord` of plain numbers; a scrape
turns the records into the same metric names, labels and values (prometheus_client's custom
collector API). Counters and histograms carry no `_created` sample, which Prometheus does not
read by default.
"""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass, field, fields

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.metrics_core import Metric

MD = ["namespace", "model"]


@dataclass(slots=True)
class Histo:
    """One histogram series: counts per bucket (not cumulative; the last is +Inf) and the sum."""

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0

    def __post_init__(self) -> None:
        self.counts = self.counts or [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1  # `le` buckets: value <= bound
        self.total += value

    def exposition(self) -> list[tuple[str, float]]:
        running, out = 0, []
        for bound, count in zip([*map(_le, self.bounds), "+Inf"], self.counts):
            running += count
            out.append((bound, float(running)))
        return out


@dataclass(slots=True)
class ModelRecord:
    """Every per-model series of one ModelDeployment. `None` and empty mean "no series"."""

    phase: str | None = None
    decisions: dict[tuple[str, str], float] = field(default_factory=dict)
    completed: dict[str, float] = field(default_factory=dict)
    rollbacks: float | None = None
    audit_failures: dict[str, float] = field(default_factory=dict)
    to_promotion: Histo | None = None
    to_rollback: Histo | None = None
    errors: dict[str, float] = field(default_factory=dict)
    weight: float | None = None
    eta: float | None = None
    deadline: float | None = None
    stalled: str | None = None


def _le(bound: float) -> str:
    return str(float(bound))  # how prometheus_client writes a bucket bound


class ModelSeries:
    """The collector: `records` under `lock` (the owner's, which passes write under)."""

    def __init__(self, lock: threading.Lock, phases: tuple[str, ...], rollout_buckets: tuple[float, ...]) -> None:
        self.lock, self.phases, self.rollout_buckets = lock, phases, rollout_buckets
        self.records: dict[tuple[str, str], ModelRecord] = {}

    def record(self, ns: str, name: str) -> ModelRecord:
        """The record of a model (made empty on first use); call with the lock held."""
        found = self.records.get((ns, name))
        if found is None:
            found = self.records[(ns, name)] = ModelRecord()
        return found

    def histogram(self) -> Histo:
        return Histo(self.rollout_buckets)

    def describe(self) -> list[Metric]:
        return _Families.empty().all()

    def collect(self) -> list[Metric]:
        f = _Families.empty()
        with self.lock:  # a snapshot of plain numbers: the families are built outside the lock
            rows = [(key, _snapshot(r)) for key, r in self.records.items()]
        for (ns, name), r in rows:
            md = [ns, name]
            if r.phase is not None:
                for p in self.phases:
                    f.phase.add_metric([*md, p], 1.0 if p == r.phase else 0.0)
            for (action, reason), n in r.decisions.items():
                f.decisions.add_metric([*md, action, reason], n)
            for outcome, n in r.completed.items():
                f.completed.add_metric([*md, outcome], n)
            if r.rollbacks is not None:
                f.rollbacks.add_metric(md, r.rollbacks)
            for reason, n in r.audit_failures.items():
                f.audit_failures.add_metric([*md, reason], n)
            for histogram, histo in ((f.to_promotion, r.to_promotion), (f.to_rollback, r.to_rollback)):
                if histo is not None:
                    histogram.add_metric(md, histo.exposition(), histo.total)
            for reason, n in r.errors.items():
                f.errors.add_metric([*md, reason], n)
            for gauge, value in ((f.weight, r.weight), (f.eta, r.eta), (f.deadline, r.deadline)):
                if value is not None:
                    gauge.add_metric(md, value)
            if r.stalled is not None:
                f.stalled.add_metric([*md, r.stalled], 1.0)
        return f.all()


@dataclass(frozen=True)
class _Families:
    """One scrape's families, with the names and help they had as prometheus_client metrics."""

    phase: GaugeMetricFamily
    decisions: CounterMetricFamily
    completed: CounterMetricFamily
    rollbacks: CounterMetricFamily
    audit_failures: CounterMetricFamily
    to_promotion: HistogramMetricFamily
    to_rollback: HistogramMetricFamily
    errors: CounterMetricFamily
    weight: GaugeMetricFamily
    eta: GaugeMetricFamily
    deadline: GaugeMetricFamily
    stalled: GaugeMetricFamily

    @classmethod
    def empty(cls) -> _Families:
        return cls(
            phase=GaugeMetricFamily("vigil_modeldeployment_phase", "1 for the phase a ModelDeployment is in, 0 for "
                                    "the others.", labels=[*MD, "phase"]),
            decisions=CounterMetricFamily("vigil_decisions", "Recorded decisions, by action and reason.",
                                          labels=[*MD, "action", "reason"]),
            completed=CounterMetricFamily("vigil_rollouts_completed", "Rollouts that ended, by outcome (promoted, "
                                          "rolled_back, cancelled, superseded).", labels=[*MD, "outcome"]),
            rollbacks=CounterMetricFamily("vigil_rollbacks", "Rollbacks decided (analysis, budget or manual abort).",
                                          labels=MD),
            audit_failures=CounterMetricFamily("vigil_audit_write_failures", "Decisions refused because their audit "
                                               "record could not be written (AuditWriteFailed) or conflicted "
                                               "(AuditConflict).", labels=[*MD, "reason"]),
            to_promotion=HistogramMetricFamily("vigil_time_to_promotion_seconds", "From a rollout's start to full "
                                               "promotion.", labels=MD),
            to_rollback=HistogramMetricFamily("vigil_time_to_rollback_seconds", "From a rollout's start to its "
                                              "rollback decision.", labels=MD),
            errors=CounterMetricFamily("vigil_reconcile_errors", "Passes that raised (retried), by reason.",
                                       labels=[*MD, "reason"]),
            weight=GaugeMetricFamily("vigil_canary_weight_percent", "Traffic share of the version being rolled out "
                                     "(0 when no rollout runs).", labels=MD),
            eta=GaugeMetricFamily("vigil_rollout_eta_seconds", "Expected seconds to full promotion at the observed "
                                  "traffic.", labels=MD),
            deadline=GaugeMetricFamily("vigil_rollout_budget_deadline_timestamp_seconds", "When the running "
                                       "rollout's budget (policy budget.maxDuration) runs out, Unix time.", labels=MD),
            stalled=GaugeMetricFamily("vigil_modeldeployment_stalled", "1 while the Stalled condition is True, by "
                                      "reason.", labels=[*MD, "reason"]),
        )

    def all(self) -> list[Metric]:
        return [getattr(self, f.name) for f in fields(self)]


def _snapshot(r: ModelRecord) -> ModelRecord:
    """A copy a scrape can read after the lock is released (passes keep writing the original)."""
    def copy(h: Histo | None) -> Histo | None:
        return None if h is None else Histo(h.bounds, list(h.counts), h.total)

    return ModelRecord(r.phase, dict(r.decisions), dict(r.completed), r.rollbacks, dict(r.audit_failures),
                       copy(r.to_promotion), copy(r.to_rollback), dict(r.errors), r.weight, r.eta, r.deadline,
                       r.stalled)
