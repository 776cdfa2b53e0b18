"""Whole rollouts, minute by minute, through the real plan_analysis(), decide() and analyze().

The operator's loop is replayed exactly: each minute the simulated model servers answer the
traffic that the last decision's split sends them (mirrored copies in shadow), a simulated
Prometheus keeps their counters per arm, and then the pure plan says what to measure, the
reconciler's own `measure()` reads it, and `decide()` acts. Nothing in the decision path is a
double: only the servers and Prometheus are simulated.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Sequence

import numpy as np

from bench.scenarios import (
    BASE_ERROR,
    CONFIDENCE_MID,
    CONFIDENCE_SHARES,
    GROUP_POSITIVE,
    GROUP_SHARES,
    LABEL_DELAY,
    LATENCY_EDGES,
    NATURAL_DISAGREEMENT,
    SCORE_EDGES,
    score_bins,
)
from vigil.api.gates import MetricKind
from vigil.api.modeldeployment import ModelDeploymentSpec, ModelDeploymentStatus, Phase, StepStatus
from vigil.api.policy import RiskPolicySpec
from vigil.core.decide import AnalysisRequest, analysis_request, decide, default_analyzer, precomputed_analyzer
from vigil.core.model import Action, Arm, Observation, RouteObservation, Track, TrafficSplit, WorkloadState
from vigil.core.plan import plan_analysis
from vigil.metrics import AnalysisTarget
from vigil.metrics.prometheus import build
from vigil.reconciler import measure
from vigil.stats import (
    CounterPanel,
    MetricData,
    NoData,
)

T0 = datetime(2026, 12, 1, 0, 0, tzinfo=timezone.utc)
GROUPS = ("a", "b", "c")
CONFIDENCE_BUCKETS = tuple(f"{m - 0.05:.1f}" for m in CONFIDENCE_MID)


def latency_bins(stretch: float = 1.0) -> np.ndarray:
    """Lognormal service times (median 60 ms, p99 about 300 ms) stretched by `stretch`, binned
    on the contract's bucket edges."""
    from scipy import stats

    dist = stats.lognorm(s=0.7, scale=0.06 * stretch)
    cdf = np.append(dist.cdf(LATENCY_EDGES[:-1]), 1.0)
    return np.diff(cdf, prepend=0.0)


@dataclass(frozen=True)
class Version:
    """How one model version behaves: every metric of the contract as cell probabilities."""

    error: float = BASE_ERROR
    latency: np.ndarray = field(default_factory=latency_bins)
    score: np.ndarray = field(default_factory=lambda: score_bins(2.0))  # Beta(2, 2.5) scores
    positive: np.ndarray = field(default_factory=lambda: GROUP_POSITIVE.copy())
    accuracy: np.ndarray = field(default_factory=lambda: CONFIDENCE_MID.copy())
    disagreement: float = NATURAL_DISAGREEMENT  # share of mirrored predictions unlike stable's


@dataclass
class _Arm:
    """Per-minute increments of every counter one arm's pods export."""

    served: list[float] = field(default_factory=list)
    rows: dict[str, list[Any]] = field(default_factory=lambda: defaultdict(list))


class SimulatedPrometheus:
    """Keeps what the model servers count, per arm and minute, and serves it like the real
    provider does: one MetricData per gate for the target's baseline and canary."""

    def __init__(self) -> None:
        self.minutes = 0
        self.arms: dict[Arm, _Arm] = defaultdict(_Arm)

    def record(self, arm: Arm, minute: dict[str, Any]) -> None:
        store = self.arms[arm]
        while len(store.served) < self.minutes:  # an arm that got no traffic earlier
            store.served.append(0.0)
            for key, value in minute.items():
                store.rows[key].append(np.zeros_like(value))
        store.served.append(float(minute["requests"]))
        for key, value in minute.items():
            store.rows[key].append(value)

    def tick(self) -> None:
        self.minutes += 1
        for store in self.arms.values():
            while len(store.served) < self.minutes:
                store.served.append(0.0)
                for rows in store.rows.values():
                    rows.append(np.zeros_like(rows[-1]))

    def collect(self, target: AnalysisTarget, gates: Sequence[Any], start: datetime, end: datetime
                ) -> dict[MetricKind, MetricData | NoData]:
        track = Track(target.baseline_matchers.get("track", Track.MAIN.value))
        first = int((start - T0).total_seconds() // 60)
        last = min(int((end - T0).total_seconds() // 60), self.minutes)
        times = (T0 + timedelta(minutes=first)).timestamp() + 60.0 * np.arange(last - first + 1)
        base, canary = self.arms.get(Arm(target.baseline_version, track)), self.arms.get(Arm(target.canary_version))
        out: dict[MetricKind, MetricData | NoData] = {}
        for gate in gates:
            kind = gate.metric
            if base is None or canary is None or last - first < 1:
                out[kind] = NoData("no series for an arm yet")
                continue
            panels = {version: _panel_of(arm, kind, first, last, times)
                      for version, arm in ((target.baseline_version, base), (target.canary_version, canary))}
            out[kind] = build(kind, panels, target, times)  # the real provider's last step
        return out


def _rows(arm: _Arm, key: str, first: int, last: int) -> np.ndarray:
    return np.asarray(arm.rows[key][first:last], dtype=float)


def _panel(times: np.ndarray, cells: list[tuple[dict[str, str], np.ndarray]]) -> CounterPanel:
    return CounterPanel.from_counts(times, [({**labels, "pod": "p0"}, inc) for labels, inc in cells], start=1000.0)


def _le(edge: float) -> str:
    return "+Inf" if not np.isfinite(edge) else f"{edge:g}"


def _histogram(times: np.ndarray, bins: np.ndarray, edges: np.ndarray) -> CounterPanel:
    cumulative = np.cumsum(bins, axis=-1)
    return _panel(times, [({"le": _le(e)}, cumulative[:, i]) for i, e in enumerate(edges)])


def _panel_of(arm: _Arm, kind: MetricKind, first: int, last: int, times: np.ndarray) -> CounterPanel:
    """One arm's counters of one metric kind, as Prometheus would serve them."""
    if kind is MetricKind.ERROR_RATE:
        n, x = _rows(arm, "requests", first, last), _rows(arm, "errors", first, last)
        return _panel(times, [({"outcome": "error"}, x), ({"outcome": "success"}, n - x)])
    if kind in (MetricKind.LATENCY_P50, MetricKind.LATENCY_P99):
        return _histogram(times, _rows(arm, "latency", first, last), LATENCY_EDGES)
    if kind is MetricKind.PREDICTION_DRIFT:
        return _histogram(times, _rows(arm, "score", first, last), np.append(SCORE_EDGES[:-1], np.inf))
    if kind is MetricKind.FAIRNESS_GAP:
        g, p = _rows(arm, "groups", first, last), _rows(arm, "positive", first, last)
        return _panel(times, [({"group": name, "predicted_class": "1"}, p[:, i]) for i, name in enumerate(GROUPS)]
                      + [({"group": name, "predicted_class": "0"}, g[:, i] - p[:, i]) for i, name in enumerate(GROUPS)])
    if kind is MetricKind.CALIBRATION:
        lab, cor = _rows(arm, "labelled", first, last), _rows(arm, "correct", first, last)
        return _panel(times, [({"confidence_bucket": b, "correct": "true"}, cor[:, i]) for i, b in enumerate(CONFIDENCE_BUCKETS)]
                      + [({"confidence_bucket": b, "correct": "false"}, lab[:, i] - cor[:, i])
                         for i, b in enumerate(CONFIDENCE_BUCKETS)])
    # shadowDisagreement: the shadow's comparisons with stable (zero on an arm that is not mirrored)
    m, d = _rows(arm, "compared", first, last), _rows(arm, "disagreed", first, last)
    return _panel(times, [({"outcome": "disagree"}, d), ({"outcome": "agree"}, m - d)])


class Servers:
    """The model servers: each minute, every arm answers the requests the split sends it."""

    def __init__(self, rng: np.random.Generator, rpm: float, versions: dict[str, Version]) -> None:
        self.rng, self.rpm, self.versions = rng, rpm, versions
        self.history: dict[Arm, list[float]] = defaultdict(list)

    def minute(self, split: TrafficSplit[Arm], prometheus: SimulatedPrometheus) -> None:
        rng = self.rng
        served: dict[Arm, float] = {}
        for arm, weight in split.weights.items():
            served[arm] = float(rng.poisson(self.rpm * weight / 100))
        if split.mirror is not None:
            mirrored_from = sum(served.values())
            served[split.mirror] = float(rng.binomial(int(mirrored_from), split.mirror_percent / 100))
        for arm, n in served.items():
            prometheus.record(arm, self._counters(arm, n, shadow=arm == split.mirror))
        for arm in set(self.history) | set(served):
            self.history[arm].append(served.get(arm, 0.0))
        prometheus.tick()

    def _counters(self, arm: Arm, n: float, shadow: bool) -> dict[str, Any]:
        rng, v = self.rng, self.versions[arm.version]
        k = int(n)
        groups = rng.multinomial(k, GROUP_SHARES)
        hist = self.history[arm]
        lo, hi = LABEL_DELAY
        past = [hist[-d] for d in range(lo, hi + 1) if d <= len(hist)]
        arriving = sum(past) / (hi - lo + 1)
        labelled = rng.poisson(arriving * CONFIDENCE_SHARES)
        compared = k if shadow else 0
        return {
            "requests": k, "errors": rng.binomial(k, v.error),
            "latency": rng.multinomial(k, v.latency), "score": rng.multinomial(k, v.score),
            "groups": groups, "positive": rng.binomial(groups, v.positive),
            "labelled": labelled, "correct": rng.binomial(labelled, v.accuracy),
            "compared": compared, "disagreed": rng.binomial(compared, v.disagreement),
        }


@dataclass
class Outcome:
    """How one rollout ended, in minutes from the version change."""

    end: str  # promoted | rolled-back | budget | running
    minutes: float | None  # to full promotion, to rollback, or to the budget's stop
    rolled_back_in: str | None = None  # the phase the rollback was decided in
    plan_at: float | None = None  # first minute status carried a plan
    first_plan: str | None = None


def spec(version: str, digest: str) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate({
        "model": "fraud", "version": version, "artifact": {"uri": f"s3://m/{version}", "digest": digest},
        "server": {"image": "srv:1"}, "replicas": 2, "policyRef": {"name": "p"}, "traffic": {"router": "istio"},
    })


def run_rollout(policy: RiskPolicySpec, canary: Version, rpm: float, seed: int,
                max_minutes: int | None = None, baseline: Version | None = None,
                restart_at: int | None = None) -> Outcome:
    """One rollout of v2 (behaving as `canary`) over a stable v1, until it ends or its budget stops it.

    `restart_at`: at that minute the operator "restarts": status goes through its stored JSON
    form and back, which is all a new process would know."""
    rollout = Rollout(policy, canary, rpm, seed, max_minutes, baseline, restart_at)
    while rollout.outcome is None:
        rollout.observe()
        rollout.decide()
    return rollout.outcome


class Rollout:
    """One simulated rollout, a minute at a time: `observe` (the servers answer the minute's
    traffic, the plan says what to measure, Prometheus is read) then `decide`, with the analysis
    computed by decide's analyzer or handed in (`run_together`)."""

    def __init__(self, policy: RiskPolicySpec, canary: Version, rpm: float, seed: int,
                 max_minutes: int | None = None, baseline: Version | None = None,
                 restart_at: int | None = None) -> None:
        from vigil.api.common import parse_duration

        self.policy, self.restart_at = policy, restart_at
        rng = np.random.default_rng(seed)
        versions = {"v1": baseline or Version(), "v2": canary}
        self.servers, self.prometheus = Servers(rng, rpm, versions), SimulatedPrometheus()
        self.d1, self.d2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64
        self.status = ModelDeploymentStatus(phase=Phase.SUCCEEDED, stable_version="v1", stable_digest=self.d1,
                                            step=StepStatus(index=0, weight=100, started_at="2026-11-30T00:00:00Z"))
        self.md = spec("v2", self.d2)
        self.split: TrafficSplit[Arm] = TrafficSplit({Arm("v1"): 100})
        budget = parse_duration(policy.budget.max_duration).total_seconds() / 60
        self.limit = max_minutes or int(budget + 60)
        self.minute = 0
        self.plan_at: float | None = None
        self.first_plan: str | None = None
        self.outcome: Outcome | None = None
        self.obs: Observation | None = None
        self.now = T0

    def observe(self) -> AnalysisRequest | None:
        """This minute's traffic and observation; returns the analysis decide will ask for."""
        self.now = T0 + timedelta(minutes=self.minute)
        if self.minute:
            self.servers.minute(self.split, self.prometheus)
        plan = plan_analysis(self.status, self.policy, self.now)
        ready = {arm: WorkloadState(arm.version, self.d1 if arm.version == "v1" else self.d2, 2, 2)
                 for arm in (Arm("v1"), Arm("v2"), Arm("v1", Track.BASELINE))}
        self.obs = Observation(generation=2, workloads=ready, route=RouteObservation(self.split),
                               metrics=measure(self.prometheus, "ns", self.md, plan, self.now))
        return analysis_request(self.policy, self.status, self.obs, self.now)

    def decide(self, analyzer: Any = default_analyzer) -> None:
        """This minute's decision; sets `outcome` when the rollout ended or ran out of minutes."""
        assert self.obs is not None
        decision = decide("fraud", self.md, self.policy, self.status, self.obs, self.now, analyzer=analyzer)
        status = decision.status
        if self.minute == self.restart_at:
            status = ModelDeploymentStatus.model_validate(status.model_dump(mode="json", by_alias=True))
        self.status = status
        self.split = decision.traffic or self.split
        if status.plan is not None and self.plan_at is None:
            self.plan_at, self.first_plan = float(self.minute), status.plan.summary
        end = _ended(decision)
        if end is not None:
            self.outcome = Outcome(end, float(self.minute),
                                   rolled_back_in=_phase_of_rollback(decision) if end == "rolled-back" else None,
                                   plan_at=self.plan_at, first_plan=self.first_plan)
        elif self.minute >= self.limit:
            self.outcome = Outcome("running", None, plan_at=self.plan_at, first_plan=self.first_plan)
        self.minute += 1


def run_together(rollouts: Sequence[Rollout], starts: Sequence[int] | None = None) -> list[Outcome]:
    """Rollouts run side by side, as one operator runs many ModelDeployments: each minute every
    rollout that has started observes, the analyses they are due are computed together
    (`analyze_many`: windows of one gate and shape share their evidence calls), and each decides
    with its own. Rollout i starts at minute `starts[i]` (0 for all by default), so the fleet's
    rollouts can be spread over time as a real fleet's are. Every rollout ends as it would alone."""
    from vigil.stats.analyze import analyze_many

    starts = list(starts) if starts is not None else [0] * len(rollouts)
    clock = 0
    while any(r.outcome is None for r in rollouts):
        live = [r for r, start in zip(rollouts, starts) if r.outcome is None and start <= clock]
        requests = [(r, r.observe()) for r in live]
        due = [(r, req) for r, req in requests if req is not None]
        analyses = analyze_many([(req.gates, req.metrics, req.kwargs) for _, req in due])
        given = {id(r): (req, a) for (r, req), a in zip(due, analyses)}
        for r in live:
            r.decide(precomputed_analyzer(*given[id(r)]) if id(r) in given else default_analyzer)
        clock += 1
    return [r.outcome for r in rollouts]  # type: ignore[misc]


def _ended(decision: Any) -> str | None:
    status = decision.status
    if decision.action is Action.ROLLBACK:
        return "rolled-back"
    if status.phase is Phase.SUCCEEDED and status.stable_version == "v2":
        return "promoted"
    if any(c.type == "Stalled" and c.status == "True" and c.reason == "BudgetExceeded" for c in status.conditions):
        return "budget"
    return None


def _phase_of_rollback(decision: Any) -> str:
    analysis = decision.evidence.get("analysis") or {}
    return str(analysis.get("stage", "manual"))
