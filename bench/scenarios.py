"""The simulated world: what baseline and canary look like in each benchmark scenario family.

Every signal is a probability vector over the cells of one metric of the contract
(error/success, latency bucket, score bucket, group x class, confidence bucket x correct,
agree/disagree). Traffic is Poisson, so each cell's count in a minute is an independent
Poisson draw (thinning); the families then break that ideal on purpose (bursts, a flaky
pod, restarts, a drifting baseline, load-dependent nondeterminism), because real traffic
does.

The rollout every method judges is the shipped example policy
(`manifests/examples/riskpolicy.yaml`) as it deploys: its steps and bake time set the
canary weight over time, its gates set the tolerances and regression margins, its
`confidence` sets the false-rollback budget for the whole rollout (`Policy`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from scipy import optimize, stats
from vigil.api.gates import DEFAULT_REGRESSION, DEFAULT_TOLERANCE, MetricKind

LATENCY_EDGES = np.array([0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.5, 5.0, np.inf])
SCORE_EDGES = np.round(np.arange(1, 11) / 10, 1)
GROUP_SHARES = np.array([0.5, 0.3, 0.2])
GROUP_POSITIVE = np.array([0.5, 0.45, 0.4])
CONFIDENCE_SHARES = np.array([0.15, 0.2, 0.25, 0.25, 0.15])
CONFIDENCE_MID = np.array([0.55, 0.65, 0.75, 0.85, 0.95])
BASE_ERROR = 0.01
NATURAL_DISAGREEMENT = 0.01
LABEL_DELAY = (5, 15)  # minutes, uniform
EXAMPLE_POLICY = Path(__file__).resolve().parents[1] / "manifests" / "examples" / "riskpolicy.yaml"
CANARY_GATES = ("errorRate", "latencyP99", "predictionDrift", "calibration", "fairnessGap")
ALL_GATES = CANARY_GATES + ("shadowDisagreement",)
RATES = (100, 1000, 10000)


# ------------------------------------------------------------------ the policy


def _minutes(duration: str) -> int:
    from vigil.api.common import parse_duration

    return round(parse_duration(duration).total_seconds() / 60)


@dataclass(frozen=True)
class Policy:
    """The parts of a RiskPolicy every method is held to (read from the shipped example)."""

    steps: tuple[int, ...]
    bake: int  # minutes per step
    interval: int  # minutes between analyses
    shadow: int  # minutes of shadow (0: none)
    alpha: float  # false-rollback budget of the whole rollout: 1 - confidence
    beta: float  # budget for promoting a regression: 1 - promotionConfidence (alpha where absent)
    tolerance: dict[str, float]
    regression: dict[str, float]
    failure_limit: int
    gate_models: dict[str, Any] = field(default_factory=dict, compare=False)  # vigil.api.gates.Gate by metric

    @property
    def gates(self) -> tuple[str, ...]:
        return tuple(self.tolerance)

    @property
    def alpha_gate(self) -> float:
        """Each gate's share of the rollout's false-rollback budget (Bonferroni, as `analyze`
        splits it): every method, Vigil and comparators alike, gets this per gate."""
        return self.alpha / len(self.tolerance)

    def schedule(self) -> tuple[tuple[int, float], ...]:
        """Canary weight over time: each step held for the bake time, the last one after."""
        return tuple((i * self.bake, w / 100) for i, w in enumerate(self.steps))


@lru_cache(maxsize=1)
def example_policy(path: Path = EXAMPLE_POLICY) -> Policy:
    """The example RiskPolicy, through the operator's own model (defaults filled in as a user gets them)."""
    from vigil.api.policy import RiskPolicySpec

    spec = RiskPolicySpec.model_validate(yaml.safe_load(path.read_text())["spec"])
    tol, reg = {}, {}
    for gate in spec.gates:
        kind = MetricKind(gate.metric)
        tol[kind.value] = float(getattr(gate, "tolerance", DEFAULT_TOLERANCE[kind]))
        reg[kind.value] = float(getattr(gate, "regression", DEFAULT_REGRESSION[kind]))
    return Policy(
        steps=tuple(spec.steps), bake=_minutes(spec.bake_time), interval=max(1, _minutes(spec.analysis_interval)),
        shadow=_minutes(spec.shadow.duration) if spec.shadow.enabled else 0,
        alpha=1.0 - float(spec.confidence),
        beta=1.0 - float(getattr(spec, "promotion_confidence", spec.confidence)), tolerance=tol, regression=reg, failure_limit=int(spec.failure_limit),
        gate_models={MetricKind(g.metric).value: g for g in spec.gates},
    )


# ------------------------------------------------------------------- the world


def _bins(cdf) -> np.ndarray:
    values = np.array([cdf(e) if np.isfinite(e) else 1.0 for e in LATENCY_EDGES])
    return np.diff(values, prepend=0.0)


def latency_mixture(tail_scale: float = 1.0, stretch: float = 1.0):
    """97% fast requests (median 80 ms) and 3% slow ones (median 300 ms) whose latency is
    stretched by `tail_scale` (the p99 moves, the median does not); `stretch` slows every
    request by the same factor (what a latency tolerance means)."""
    def cdf(x: float) -> float:
        x = x / stretch
        body = stats.lognorm.cdf(x, s=0.45, scale=0.08)
        tail = stats.lognorm.cdf(x, s=0.3, scale=0.3 * tail_scale)
        return 0.97 * body + 0.03 * tail
    return cdf


def mixture_quantile(cdf, q: float) -> float:
    return optimize.brentq(lambda x: cdf(x) - q, 1e-4, 100.0)


def tail_scale_for_p99(increase: float) -> float:
    """The tail stretch that raises the true p99 by `increase` (0.3 = +30%)."""
    target = (1 + increase) * mixture_quantile(latency_mixture(), 0.99)
    return optimize.brentq(lambda s: mixture_quantile(latency_mixture(s), 0.99) - target, 1.0, 5.0)


def score_bins(a: float, b: float = 2.5) -> np.ndarray:
    return np.diff(stats.beta.cdf(np.concatenate([[0.0], SCORE_EDGES]), a, b))


def psi(p: np.ndarray, q: np.ndarray) -> float:
    return float(np.sum((p - q) * np.log(p / q)))


def score_shift_for_psi(target: float) -> float:
    base = score_bins(2.0)
    return optimize.brentq(lambda a: psi(score_bins(a), base) - target, 2.0, 6.0)


def rare_bucket(factor: float, bucket: int = -1) -> np.ndarray:
    """The baseline's score histogram with one rare bucket's share multiplied by `factor`."""
    p = score_bins(2.0)
    p[bucket] *= factor
    return p / p.sum()


@dataclass(frozen=True)
class World:
    """Cell probabilities of one version."""

    error: float = BASE_ERROR
    latency: np.ndarray = field(default_factory=lambda: _bins(latency_mixture()))
    score: np.ndarray = field(default_factory=lambda: score_bins(2.0))
    positive: np.ndarray = field(default_factory=lambda: GROUP_POSITIVE.copy())
    accuracy: np.ndarray = field(default_factory=lambda: CONFIDENCE_MID.copy())
    disagreement: float | None = None  # None: the stable version's own nondeterminism


@dataclass(frozen=True)
class Pods:
    """Each arm runs `count` pods; pod 0 errs `flaky` times as often as the others; every
    minute the load balancer's shares scatter around equal (Dirichlet, `concentration` per
    pod: 2 is lumpy, as keep-alive connections make it), so the arm's error rate wanders
    with the flaky pod's share, in both arms independently."""

    count: int = 5
    flaky: float = 3.0
    concentration: float = 2.0


@dataclass(frozen=True)
class Scenario:
    """One family of the table: the canary's world, which gates run, and what counts as right.

    `healthy` families must not be rolled back (false rollback, target <= 5% per rollout);
    the others must be, within `target` minutes of `onset`. `family` is the gate the
    scenario stresses, "canary" for every gate of a canary step, or "all" for all six.
    """

    name: str
    family: str = "all"
    canary: World = field(default_factory=World)
    baseline: World = field(default_factory=World)
    weights: tuple[tuple[int, float], ...] | None = ((0, 0.10),)  # (from minute, weight); None: the policy's steps
    error_trend: float = 0.0  # shared absolute rise of the error rate over the horizon (both versions)
    healthy: bool = True
    target: int | None = None  # regression: minutes after onset within which it must be caught
    key: str = ""
    minutes: int = 60
    burst: float = 1.0  # mean errors per burst (1: independent errors)
    pods: Pods | None = None
    restarts_per_hour: float = 0.0  # per pod; each restart loses part of that minute's increments
    onset: int = 0  # minute from which the canary's world applies (before: the baseline's)
    nondeterminism_growth: float = 0.0  # natural disagreement = 1% x (rpm/1000)^growth (0.5: 0.3% to 3.2%)
    boundary: bool = False  # exactly at a gate's tolerance: rolled back at most alpha
    phase: str = "canary"  # canary | shadow (mirrored, no user traffic)
    long_hold: bool = False  # held at its weight (no promotion) for the whole horizon
    at_margin: bool = True  # a regression exactly at a gate's regression margin (issue 11's targets)

    @property
    def gates(self) -> tuple[str, ...]:
        if self.family == "all":
            return ALL_GATES
        if self.family == "canary":
            return CANARY_GATES
        return (self.family,)

    def weight_at(self, minutes: np.ndarray, policy: Policy | None = None) -> np.ndarray:
        if self.phase == "shadow":
            return np.zeros(np.shape(minutes))
        schedule = self.weights or (policy or example_policy()).schedule()
        w = np.zeros(np.shape(minutes))
        for start, weight in schedule:
            w = np.where(minutes >= start, weight, w)
        return w

    def disagreement(self, rpm: float) -> float:
        """The stable version's own disagreement with itself at this load."""
        return NATURAL_DISAGREEMENT * (rpm / 1000.0) ** self.nondeterminism_growth


def scenarios(policy: Policy | None = None) -> list[Scenario]:
    """The families of issue 11's "How it is shown", at the example policy's margins."""
    p = policy or example_policy()
    tol, reg = p.tolerance, p.regression
    err_reg = World(error=BASE_ERROR * (1 + reg["errorRate"]))
    slow = World(latency=_bins(latency_mixture(tail_scale_for_p99(reg["latencyP99"]))))
    drift = World(score=score_bins(score_shift_for_psi(reg["predictionDrift"])))
    unfair = GROUP_POSITIVE.copy()
    unfair[2] -= reg["fairnessGap"]
    benign = World(error=BASE_ERROR * 1.05, latency=_bins(latency_mixture(tail_scale_for_p99(0.05))))
    at_tol = World(latency=_bins(latency_mixture(stretch=1 + tol["latencyP99"])))
    steps = None  # the policy's canary steps
    canary: dict[str, Any] = {"family": "canary", "weights": steps}
    regress: dict[str, Any] = {"family": "canary", "weights": steps, "healthy": False, "target": 45}
    return [
        Scenario("A/A, all six gates, held at 10%", "all", key="aa-10"),
        Scenario("A/A, every gate", key="aa", **canary),
        Scenario("error bursts, mean size 3, both arms", key="bursts3", burst=3.0, **canary),
        Scenario("error bursts, mean size 10, both arms", key="bursts10", burst=10.0, **canary),
        Scenario("one pod of five with 3x errors, both versions", key="pods", pods=Pods(), **canary),
        Scenario("counter resets (1 restart per pod-hour)", key="resets", restarts_per_hour=1.0, **canary),
        Scenario("weight steps, errors drift 1% -> 2% in both", key="drift-baseline", error_trend=0.01, **canary),
        Scenario("benign: errors x1.05, p99 x1.05", key="benign", canary=benign, family="canary", weights=steps),
        Scenario(f"latency stretched x{1 + tol['latencyP99']:g} (exactly the tolerance)", key="latency-at-tol",
                 canary=at_tol, boundary=True, family="canary", weights=steps),
        Scenario("shadow: nondeterminism grows with load, shadow as stable", "shadowDisagreement", key="shadow-load",
                 phase="shadow", nondeterminism_growth=0.5),
        Scenario(f"errors x{1 + reg['errorRate']:g}", key="errors-reg", canary=err_reg, **regress),
        Scenario(f"p99 +{reg['latencyP99']:.0%}, median same", key="p99-reg", canary=slow, **regress),
        Scenario(f"drift PSI {reg['predictionDrift']:g}", key="drift-reg", canary=drift, **regress),
        Scenario(f"ECE +{reg['calibration']:g}, labels 5-15 min late", key="calibration-reg",
                 canary=World(accuracy=CONFIDENCE_MID - reg["calibration"]), **regress),
        Scenario(f"fairness -{reg['fairnessGap'] * 100:.0f} pts in a 20% group", key="fairness-reg",
                 canary=World(positive=unfair), **regress),
        Scenario("one rare score bucket (top 10%) x3", key="rare-bucket", canary=World(score=rare_bucket(3.0)),
                 at_margin=False, **regress),
        Scenario("late onset: errors x2 after 6 h held at 10%", "errorRate", key="late-onset",
                 canary=World(error=BASE_ERROR * 2), minutes=420, onset=360, healthy=False, target=25,
                 long_hold=True),
    ]
