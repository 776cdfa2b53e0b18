"""Success/failure counts: the error rate (canary vs baseline) and shadow disagreement.

Error rate: anytime-valid test of the rate ratio canary/baseline against 1 + tolerance,
stratified by scrape interval so that a changing canary weight (or a baseline whose own
error rate moves) cannot bias it. Shadow disagreement: the share of mirrored requests on
which the shadow's prediction differs from stable's, against the tolerated share.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from vigil.api.gates import Gate, MetricKind
from vigil.stats.data import RequestCounts, ShadowComparisons
from vigil.stats.evidence import GateEvidence, Thresholds, cumulative, ratio
from vigil.stats.report import gate_verdict, percent
from vigil.stats.result import Outcome, Verdict
from vigil.stats.sequential import (
    mantel_haenszel_ratio,
    proportion_evidence,
    proportion_interval,
    rate_ratio_evidence,
    rate_ratio_interval,
)


def error_rate_evidence(n_c: np.ndarray, x_c: np.ndarray, n_b: np.ndarray, x_b: np.ndarray,
                        tolerance: float) -> GateEvidence:
    """Requests n and errors x per interval, shaped (..., T)."""
    fail, passed = rate_ratio_evidence(x_c, x_b, n_c, n_b, 1.0 + tolerance)
    return GateEvidence(fail, passed, cumulative(n_c), cumulative(n_b))


def error_rate_verdict(data: RequestCounts, gate: Gate, th: Thresholds) -> Verdict:
    n_b, x_b = data.outcomes(data.baseline)
    n_c, x_c = data.outcomes(data.canary)
    ev = error_rate_evidence(n_c, x_c, n_b, x_b, gate.tolerance)
    rate_b, rate_c = float(ratio(x_b.sum(), n_b.sum())), float(ratio(x_c.sum(), n_c.sum()))
    rr = mantel_haenszel_ratio(x_c, x_b, n_c, n_b)
    lo, hi = rate_ratio_interval(x_c, x_b, n_c, n_b, th.alpha_fail)
    describe = (f"error rate {percent(rate_c)} vs baseline {percent(rate_b)} "
                f"(x{rr:.2f}, tolerated x{1 + gate.tolerance:.2f})")
    verdict = gate_verdict(
        MetricKind.ERROR_RATE, ev, th, describe=describe,
        statistic="error-rate ratio canary/baseline (Mantel-Haenszel), relative increase",
        tolerance=gate.tolerance, effect=rr - 1, interval=(lo - 1, hi - 1),
        figures={"canaryRate": rate_c, "baselineRate": rate_b},
    )
    if gate.max_absolute_increase is None:
        return verdict
    return with_absolute_floor(verdict, gate.max_absolute_increase, (float(x_c.sum()), float(n_c.sum())),
                               (float(x_b.sum()), float(n_b.sum())), th)


def with_absolute_floor(verdict: Verdict, floor: float, canary: tuple[float, float],
                        baseline: tuple[float, float], th: Thresholds) -> Verdict:
    """Apply an error-rate gate's absolute floor: a regression is a rate ratio above the
    relative tolerance AND a rate increase above `floor` points.

    A ratio says nothing when both versions are (nearly) error-free, so without a floor such
    a gate can never pass. Pass: the ratio test passed, or the anytime-valid upper bound of
    the increase (canary upper bound minus baseline lower bound, each a confidence sequence
    at alpha_pass/2) is below the floor. Fail: the ratio test failed and the lower bound of
    the increase (each arm at alpha_fail/2) is above the floor.
    """
    (x_c, n_c), (x_b, n_b) = canary, baseline
    if n_c <= 0 or n_b <= 0:
        return verdict
    c_fail, b_fail = proportion_interval(x_c, n_c, th.alpha_fail / 2), proportion_interval(x_b, n_b, th.alpha_fail / 2)
    c_pass, b_pass = proportion_interval(x_c, n_c, th.alpha_pass / 2), proportion_interval(x_b, n_b, th.alpha_pass / 2)
    inc_lo, inc_hi = c_fail[0] - b_fail[1], c_pass[1] - b_pass[0]
    floor_text = f"increase {inc_lo * 100:+.2f}..{inc_hi * 100:+.2f} points, floor {floor * 100:.2f}"
    figures = {**verdict.figures, "increaseLower": inc_lo, "increaseUpper": inc_hi, "absoluteFloor": floor}
    if verdict.outcome is Outcome.FAIL and inc_lo <= floor:
        return replace(verdict, outcome=Outcome.INCONCLUSIVE, figures=figures,
                       explanation=f"{verdict.explanation}; but the {floor_text} is not shown to exceed the floor")
    if verdict.outcome is Outcome.INCONCLUSIVE and inc_hi < floor and n_c >= th.min_samples:
        return replace(verdict, outcome=Outcome.PASS, figures=figures,
                       explanation=f"{verdict.explanation}; passes on the absolute floor ({floor_text})")
    return replace(verdict, figures=figures)


def shadow_evidence(m: np.ndarray, x: np.ndarray, tolerance: float) -> GateEvidence:
    """Comparisons m and disagreements x per interval, shaped (..., T)."""
    cm, cx = cumulative(m), cumulative(x)
    fail, passed = proportion_evidence(cx, cm, tolerance)
    return GateEvidence(fail, passed, cm, np.zeros_like(cm))


def shadow_verdict(data: ShadowComparisons, gate: Gate, th: Thresholds) -> Verdict:
    m, x = data.comparisons()
    ev = shadow_evidence(m, x, gate.tolerance)
    rate = float(ratio(x.sum(), m.sum()))
    lo, hi = proportion_interval(float(x.sum()), float(m.sum()), th.alpha_fail)
    return gate_verdict(
        MetricKind.SHADOW_DISAGREEMENT, ev, th,
        describe=f"shadow disagrees on {percent(rate)} of {int(m.sum())} mirrored requests "
                 f"(tolerated {percent(gate.tolerance)})",
        statistic="disagreement rate of shadow vs stable on mirrored requests",
        tolerance=gate.tolerance, effect=rate, interval=(lo, hi),
        figures={"disagreementRate": rate},
    )

