"""The judges compared in the benchmark, each turning simulated counts into decisions.

Every method returns per-minute outcome codes (reps, minutes): FAIL (roll back), PASS
(promote now) or INCONCLUSIVE (keep watching); only the first decision counts. Every
method judges the same rollout: the shipped example RiskPolicy as it deploys (its steps,
gates, margins and false-rollback budget, `bench.scenarios.example_policy`).

* vigil       - `vigil.stats` itself, through the same vectorised functions `analyze` uses
                (`vigil_evidence`, `vigil`: owned by the statistics code), one gate at a
                time at the policy's per-gate alpha, combined as `analyze` combines gates.
* Flagger     - its canary loop: a check every interval, rollback after `threshold` failed
                checks, a step up after each passing check, promotion after the last step.
* Argo        - a background AnalysisRun with success/failure conditions and Argo's
                default failureLimit / inconclusiveLimit / consecutiveErrorLimit.
* Kayenta     - NetflixACAJudge: Mann-Whitney per metric with effect-size margins, one
                judgement per canary analysis interval, scored against pass / marginal.
* z-test, mSPRT, group-sequential, oracle SPRT - the statistical comparators, each on the
                same one-sided effects and at the same per-gate alpha as Vigil.

Rules and links: docs/comparators.md.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping

import numpy as np

from bench.comparators import sequential
from bench.comparators.argo import ArgoAnalysis, argo
from bench.comparators.flagger import FlaggerAnalysis, flagger
from bench.comparators.kayenta import KayentaCanary, kayenta
from bench.comparators.oracle import oracle_llr
from bench.comparators.signals import effects
from bench.scenarios import CONFIDENCE_MID, LATENCY_EDGES, SCORE_EDGES, Policy, Scenario, example_policy  # noqa: F401
from bench.simulate import Counts
from vigil.api.gates import Gate, MetricKind
from vigil.stats.calibration import calibration_evidence
from vigil.stats.drift import drift_evidence
from vigil.stats.evidence import FAIL, INCONCLUSIVE, PASS, classify
from vigil.stats.fairness import fairness_evidence
from vigil.stats.latency import latency_evidence
from vigil.stats.rates import error_change_log_e, gate_error_evidence, shadow_evidence

ALPHA = 0.05
MIN_SAMPLES = 200
FAMILIES = ("errorRate", "latencyP99", "predictionDrift", "calibration", "fairnessGap", "shadowDisagreement")
VIGIL = "**Vigil**"
ORACLE = "oracle SPRT"


# ------------------------------------------------------------------------ vigil


def vigil_evidence(family: str, c: Counts, gate: Gate | None = None):
    """The gate's evidence over every prefix of every rollout, through the very functions
    `analyze` calls, at the gate's tolerance (Fail) and regression margin (Pass)."""
    gate = gate or Gate(metric=MetricKind(family))
    tol, reg = gate.tolerance, gate.regression
    if family == "errorRate":
        return gate_error_evidence(c.requests_c, c.errors_c, c.requests_b, c.errors_b, gate)
    if family == "latencyP99":
        return latency_evidence(LATENCY_EDGES, c.latency_c, c.latency_b, 0.99, tol, reg)
    if family == "predictionDrift":
        return drift_evidence(c.score_c, c.score_b, tol, regression=reg)
    if family == "calibration":
        return calibration_evidence(c.labelled_c, c.correct_c, c.labelled_b, c.correct_b, tol, regression=reg)
    if family == "fairnessGap":
        return fairness_evidence(c.groups_c, c.positive_c, c.groups_b, c.positive_b, tol, regression=reg)
    if family == "shadowDisagreement":
        # as deployed: the provider reads stable's live control when the server exports it
        control = None if c.control_compared is None else (c.control_compared, c.control_disagreed)
        return shadow_evidence(c.compared, c.disagreed, tol, reg, control=control)
    raise ValueError(family)


def vigil(family: str, c: Counts, alpha_fail: float = ALPHA, alpha_pass: float = ALPHA,
          gates: Mapping[str, Gate] | None = None, detect_change: bool = False,
          horizon: int | None = None) -> np.ndarray:
    """Codes of one gate, or of all six gates, as `analyze(alpha_fail=..., alpha_pass=...)`
    gives them: the false-Fail budget split among the gates, each Pass at alpha_pass (beta).
    `gates` (by family) sets margins other than the defaults, e.g. a policy's.
    `detect_change` is `analyze(detect_change=True, horizon_s=60 * horizon)` (horizon in
    minutes, default the whole simulated run): the errorRate gate's share is split between
    its cumulative test and its change detector."""
    families = FAMILIES if family == "all" else (family,)
    gates = gates or {}
    share = alpha_fail / len(families)
    minutes = horizon or c.requests_c.shape[-1]
    codes = []
    for f in families:
        watch = detect_change and f == "errorRate"
        code = classify(vigil_evidence(f, c, gates.get(f)), share / 2 if watch else share, alpha_pass, MIN_SAMPLES)
        if watch:
            gate = gates.get(f) or Gate(metric=MetricKind(f))
            change = error_change_log_e(c.requests_c, c.errors_c, c.requests_b, c.errors_b, gate.tolerance)
            alarm = np.maximum.accumulate(change, axis=-1) >= np.log(max(minutes, 1) / (share / 2))
            code = np.where(alarm, FAIL, code)
        codes.append(code)
    stack = np.stack(codes)
    return np.where((stack == FAIL).any(axis=0), FAIL, np.where((stack == PASS).all(axis=0), PASS, INCONCLUSIVE))


# ------------------------------------------------------------------- helpers


def first_decision(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(outcome code, minute) of each rollout's first non-inconclusive answer; minute is
    counted from 1, and INCONCLUSIVE with minute = inf when nothing was decided."""
    decided = codes != INCONCLUSIVE
    has = decided.any(axis=-1)
    first = np.argmax(decided, axis=-1)
    kind = np.where(has, np.take_along_axis(codes, first[..., None], -1)[..., 0], INCONCLUSIVE)
    return kind, np.where(has, first + 1.0, np.inf)


def combine(codes: list[np.ndarray]) -> np.ndarray:
    """Gates combined as `analyze` combines them: any Fail fails, Pass needs every gate's Pass."""
    stack = np.stack(codes)
    return np.where((stack == FAIL).any(axis=0), FAIL, np.where((stack == PASS).all(axis=0), PASS, INCONCLUSIVE))


def run_vigil(gates: tuple[str, ...], c: Counts, policy: Policy, hold: bool = False) -> np.ndarray:
    """Vigil on the scenario's gates with the policy's margins, each Fail at the policy's
    per-gate share of the rollout's budget (`analyze` splits alpha over all the policy's
    gates) and each Pass at the policy's beta, through `vigil` whatever its keywords are.
    In a long `hold` the change detector runs too, where the benchmark path offers one."""
    params = inspect.signature(vigil).parameters
    extra: dict = {"gates": policy.gate_models} if "gates" in params and policy.gate_models else {}
    if "detect_change" in params:
        extra["detect_change"] = hold
    per_gate = []
    for gate in gates:
        if "alpha_fail" in params:
            per_gate.append(vigil(gate, c, alpha_fail=policy.alpha_gate, alpha_pass=policy.beta, **extra))
        else:
            per_gate.append(vigil(gate, c, alpha=policy.alpha_gate, **extra))
    return combine(per_gate)


def methods(s: Scenario, c: Counts, policy: Policy | None = None) -> dict[str, np.ndarray]:
    """Codes of every method on one simulated cell."""
    p = policy or example_policy()
    gates, T = s.gates, c.requests_c.shape[1]
    eff = {g: effects(g, c, p) for g in gates}
    out = {
        VIGIL: run_vigil(gates, c, p, hold=s.long_hold),
        "Flagger (threshold 5, 1m checks)": flagger(c, gates, p, FlaggerAnalysis.from_policy(p, hold=s.long_hold)),
        "Argo Rollouts (default limits)": argo(c, gates, p, ArgoAnalysis.from_policy(p, hold=s.long_hold)),
        "Kayenta (pass 95, marginal 75)": kayenta(c, gates, KayentaCanary.from_policy(
            p, lifetime=T, lookback=60 if T > 120 else None)),
        "repeated z-test": sequential.ztest(eff, p.alpha_gate),
        "mSPRT (Johari et al.)": sequential.msprt(eff, p.alpha_gate),
        "group-sequential (Lan-DeMets OBF)": sequential.group_sequential(eff, p.alpha_gate, c.weight if
                                                                          s.phase == "canary" else np.ones(T)),
    }
    llr = None if s.healthy else oracle_llr(s, c, p)
    if llr is not None:
        out[ORACLE] = sequential.oracle(llr, p.alpha_gate)
    if s.long_hold:  # held at its weight: nothing is promoted, only a rollback ends the run
        out = {k: np.where(v == PASS, INCONCLUSIVE, v) for k, v in out.items()}
    return out
