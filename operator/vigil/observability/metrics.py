"""The operator's own `/metrics`: what it decided, how long rollouts take, how often they fail.

`OperatorMetrics` is a `vigil.reconciler.PassListener`: the reconciler tells it about every
pass, and it reads the decision and the new status (never the cluster). Label cardinality is
bounded by the number of ModelDeployments: labels are `namespace`, `model` (the
ModelDeployment's name) and small closed sets (phase, action, reason, gate kind, outcome);
never a version, a digest or a rollout id.

Rollback rate per model over a window (docs/observability.md):

    sum by (namespace, model) (increase(vigil_rollbacks_total[30d]))
      / (sum by (namespace, model) (increase(vigil_rollouts_completed_total[30d])) > 0)
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily

from vigil.api.modeldeployment import ModelDeploymentStatus, Phase
from vigil.core.model import Decision
from vigil.core.timefmt import parse_iso
from vigil.observability.model_series import ModelRecord, ModelSeries

log = logging.getLogger("vigil.observability")

PHASES = tuple(p.value for p in Phase)
OUTCOMES = ("promoted", "rolled_back", "cancelled", "superseded")
AUDIT_FAILURES = ("AuditWriteFailed", "AuditConflict")
IN_ROLLOUT = {Phase.SHADOW, Phase.CANARY, Phase.PROMOTING, Phase.HOLDBACK, Phase.PAUSED}
ROLLED_BACK = {Phase.ROLLING_BACK, Phase.ROLLED_BACK}
BUDGETED = {Phase.SHADOW, Phase.CANARY, Phase.PAUSED}  # the budget stops at promotion (not in holdback)
# Seconds: rollouts take minutes to days; a short tail for fast test and demo policies.
ROLLOUT_BUCKETS = (10, 30, 60, 300, 600, 1800, 3600, 7200, 14400, 28800, 86400, 259200, 604800)
PASS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


def decision_reason(decision: Decision) -> str:
    """The reason an audit record carries for this decision (its last Event's reason)."""
    return decision.events[-1].reason if decision.events else decision.action.value


@dataclass(frozen=True)
class _Previous:
    """What the transition counters compare with: the last status seen, only the fields they
    read (a whole status, with its last analysis, is tens of KB per ModelDeployment)."""

    phase: Phase
    canary_version: str | None
    rollout_id: str | None

    @classmethod
    def of(cls, s: ModelDeploymentStatus) -> _Previous:
        return cls(s.phase, s.canary_version, s.rollout_id)


GATE_SERIES = (
    ("vigil_gate_verdict", "Outcome of each gate in the last analysis: 1 Pass, 0 Inconclusive, -1 Fail, -2 NoData."),
    ("vigil_gate_e_value", "Latest e-value against the canary (evidence of a regression)."),
    ("vigil_gate_e_value_threshold", "E-value at which the gate fails."),
    ("vigil_gate_pass_e_value", "Latest e-value for the canary (evidence it is within tolerance)."),
    ("vigil_gate_effect", "Latest effect estimate (canary vs baseline, in the gate's unit)."),
    ("vigil_gate_effect_upper_bound", "Upper bound of the effect's anytime-valid interval."),
    ("vigil_gate_effect_lower_bound", "Lower bound of the effect's anytime-valid interval."),
)
"""The per-gate gauges, in the order of `gate_values`."""

GateValues = tuple[float | None, ...]


def gate_values(v: Mapping[str, Any]) -> GateValues:
    """One verdict of a status's last analysis as the values of GATE_SERIES (None: no sample)."""
    interval: list[Any] = v["interval"] if isinstance(v.get("interval"), list) and len(v["interval"]) == 2 \
        else [None, None]
    raw = (VERDICT_VALUE.get(str(v.get("outcome"))), v.get("eFail"), v.get("thresholdFail"), v.get("ePass"),
           v.get("effect"), interval[1], interval[0])
    return tuple(_number(x) for x in raw)


class GateGauges:
    """The per-gate gauges of every ModelDeployment, made at scrape time from one small tuple
    per gate. As prometheus_client children they were 7 objects with a lock each per gate:
    about 37 MiB at 1000 ModelDeployments with 7 gates."""

    def __init__(self, lock: threading.Lock) -> None:
        self.lock = lock  # the owner's: passes write under it, a scrape reads under it
        self.table: dict[tuple[str, str], dict[str, GateValues]] = {}

    def describe(self) -> list[GaugeMetricFamily]:
        return [GaugeMetricFamily(name, doc, labels=["namespace", "model", "gate"]) for name, doc in GATE_SERIES]

    def collect(self) -> list[GaugeMetricFamily]:
        families = self.describe()
        with self.lock:  # a pass replaces a model's gates whole, never edits them: the rows can be read after
            rows = list(self.table.items())
        for (ns, name), gates in rows:
            for gate, values in gates.items():
                for family, value in zip(families, values):
                    if value is not None:
                        family.add_metric([ns, name, gate], value)
        return families


class OperatorMetrics:
    """The operator's metrics on one registry; implements `PassListener` (never raises)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.pass_seconds = Histogram("vigil_reconcile_duration_seconds", "Duration of one pass of the loop; "
                                      "analysed=true when the pass ran a statistical analysis.",
                                      ["analysed"], buckets=PASS_BUCKETS, registry=r)
        self.queue_depth = Gauge("vigil_reconcile_queue_depth", "Passes waiting for a reconcile worker.", registry=r)
        self.leader = Gauge("vigil_leader", "1 while this operator process is the active leader.", registry=r)
        self._seen: dict[tuple[str, str], _Previous] = {}  # the last status seen, per model
        self._lock = threading.Lock()  # passes of different ModelDeployments run on several threads
        self.models = ModelSeries(self._lock, PHASES, ROLLOUT_BUCKETS)
        self.gates = GateGauges(self._lock)
        r.register(self.models)
        r.register(self.gates)

    # ------------------------------------------------------------ PassListener
    def passed(self, md: dict[str, Any], decision: Decision, seconds: float) -> None:
        try:
            self._passed(md, decision, seconds)
        except Exception:
            log.exception("metrics for a pass of %s not recorded", md.get("metadata", {}).get("name"))

    def failed(self, namespace: str, name: str, reason: str) -> None:
        try:
            with self._lock:
                errors = self.models.record(namespace, name).errors
                errors[reason] = errors.get(reason, 0.0) + 1
        except Exception:
            log.exception("metrics for a failed pass of %s/%s not recorded", namespace, name)

    # ------------------------------------------------------------ setters others call
    def set_leader(self, leading: bool) -> None:
        self.leader.set(1 if leading else 0)

    def set_queue_depth(self, depth: int) -> None:
        self.queue_depth.set(max(int(depth), 0))

    def forget(self, namespace: str, name: str) -> None:
        """Drop every series of a deleted ModelDeployment (its counters too)."""
        with self._lock:
            self._seen.pop((namespace, name), None)
            self.gates.table.pop((namespace, name), None)
            self.models.records.pop((namespace, name), None)

    # ------------------------------------------------------------ internals
    def _passed(self, md: dict[str, Any], decision: Decision, seconds: float) -> None:
        meta = md["metadata"]
        ns, name = str(meta["namespace"]), str(meta["name"])
        old = _old_status(md)
        new = decision.status
        self.pass_seconds.labels("true" if "analysis" in decision.evidence else "false").observe(max(seconds, 0.0))
        with self._lock:
            record = self.models.record(ns, name)
            previous = self._seen.get((ns, name))
            if previous is None:
                previous = _Previous.of(old)
                self._initialise(record)
            self._transitions(record, previous, new)
            self._seen[(ns, name)] = _Previous.of(new)
            record.phase = new.phase.value
            self._rollout_gauges(record, new)
            cond = next((c for c in new.conditions if c.type == "Stalled" and c.status == "True"), None)
            record.stalled = cond.reason if cond else None
            self._gates(ns, name, new)
            if decision.changed:
                self._decision(record, decision)

    def _initialise(self, r: ModelRecord) -> None:
        """Counters and the rollout-time histograms exist at 0 before their first event, so
        `increase()` sees the first one (a series born at 1 has no increase, and the dashboard's
        time-to-rollback panel stayed empty after a model's first rollback)."""
        r.rollbacks = r.rollbacks or 0.0
        r.to_rollback = r.to_rollback or self.models.histogram()
        r.to_promotion = r.to_promotion or self.models.histogram()
        for outcome in OUTCOMES:
            r.completed.setdefault(outcome, 0.0)
        for reason in AUDIT_FAILURES:
            r.audit_failures.setdefault(reason, 0.0)

    @staticmethod
    def _decision(r: ModelRecord, decision: Decision) -> None:
        reason = decision_reason(decision)
        key = (decision.action.value, reason)
        r.decisions[key] = r.decisions.get(key, 0.0) + 1
        if reason in AUDIT_FAILURES:
            r.audit_failures[reason] = r.audit_failures.get(reason, 0.0) + 1

    @staticmethod
    def _transitions(r: ModelRecord, prev: _Previous, new: ModelDeploymentStatus) -> None:
        """Rollout outcomes from the change between the last status seen and this one, not from
        the pass's action: a pass that raised after recording (and was completed from its open
        intent by the next pass) still counts."""
        took = _elapsed(new.rollout_started_at, new.phase_started_at)
        if new.phase in ROLLED_BACK and prev.phase not in ROLLED_BACK and prev.canary_version:
            r.rollbacks = (r.rollbacks or 0.0) + 1
            _count(r.completed, "rolled_back")
            if took is not None and r.to_rollback is not None:
                r.to_rollback.observe(took)
        elif new.phase is Phase.SUCCEEDED and prev.phase in IN_ROLLOUT and prev.canary_version:
            if new.stable_version == prev.canary_version:
                _count(r.completed, "promoted")
                if took is not None and r.to_promotion is not None:
                    r.to_promotion.observe(took)
            else:
                _count(r.completed, "cancelled")
        elif (prev.phase in IN_ROLLOUT and prev.rollout_id and new.rollout_id
              and new.rollout_id != prev.rollout_id):
            _count(r.completed, "superseded")  # a newer version replaced a running rollout

    @staticmethod
    def _rollout_gauges(r: ModelRecord, s: ModelDeploymentStatus) -> None:
        running = s.canary_version is not None and s.phase not in (Phase.SUCCEEDED, Phase.PENDING)
        r.weight = float(s.step.weight if running and s.step else 0)
        plan = s.plan if running else None
        r.eta = _number(plan.eta_seconds) if plan else None
        deadline = None
        if plan is not None and plan.budget_seconds is not None and s.last_analysis_at and s.phase in BUDGETED:
            deadline = parse_iso(s.last_analysis_at).timestamp() + plan.budget_seconds
        r.deadline = deadline

    def _gates(self, ns: str, name: str, s: ModelDeploymentStatus) -> None:
        """The gates of the last analysis replace the ones before (a gate no longer judged
        has no series)."""
        verdicts = [v for v in (s.last_analysis or {}).get("verdicts") or [] if isinstance(v, Mapping)]
        gates = {str(v["metric"]): gate_values(v) for v in verdicts if v.get("metric")}
        if gates:
            self.gates.table[(ns, name)] = gates
        else:
            self.gates.table.pop((ns, name), None)


VERDICT_VALUE = {"Pass": 1.0, "Inconclusive": 0.0, "Fail": -1.0, "NoData": -2.0}


def _old_status(md: Mapping[str, Any]) -> ModelDeploymentStatus:
    try:
        return ModelDeploymentStatus.model_validate(md.get("status") or {})
    except ValueError:
        return ModelDeploymentStatus.model_validate({})


def _elapsed(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return max((parse_iso(end) - parse_iso(start)).total_seconds(), 0.0)


def _count(counts: dict[str, float], key: str) -> None:
    counts[key] = counts.get(key, 0.0) + 1


def _number(value: Any) -> float | None:
    """A status field as a sample value: numbers only (a bool or text is no sample)."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


# ---------------------------------------------------------------- the process-wide instance
REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
METRICS = OperatorMetrics(REGISTRY)
_SERVER: dict[int, WSGIServer] = {}


def set_leader(leading: bool) -> None:
    """Leader election calls this when this process gains (True) or loses (False) leadership."""
    METRICS.set_leader(leading)


def set_queue_depth(depth: int) -> None:
    """The handler layer calls this with the number of passes waiting for a worker."""
    METRICS.set_queue_depth(depth)


def serve(port: int, addr: str = "0.0.0.0") -> WSGIServer:
    """Serve REGISTRY on http://addr:port/metrics (idempotent per port)."""
    if port not in _SERVER:
        server, _thread = start_http_server(port, addr=addr, registry=REGISTRY)
        _SERVER[port] = server
    return _SERVER[port]


def stop_serving() -> None:
    """Close every endpoint `serve` opened (an operator stopping inside a longer process)."""
    for port in list(_SERVER):
        server = _SERVER.pop(port)
        server.shutdown()
        server.server_close()
