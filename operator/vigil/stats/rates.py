"""Success/failure counts: the error rate (canary vs baseline) and shadow disagreement.

Error rate: anytime-valid test of the rate ratio canary/baseline against 1 + tolerance,
stratified by scrape interval so that a changing canary weight (or a baseline whose own
error rate moves) cannot bias it. Shadow disagreement: the share of mirrored requests on
which the shadow's prediction differs from stable's, against the tolerated share.
"""

from __future__ import annotations

import numpy as np

from vigil.api.gates import Gate, MetricKind
from vigil.stats.data import RequestCounts, ShadowComparisons
from vigil.stats.evidence import GateEvidence, Thresholds, cumulative, ratio
from vigil.stats.report import gate_verdict, percent
from vigil.stats.result import Verdict
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
    return gate_verdict(
        MetricKind.ERROR_RATE, ev, th, describe=describe,
        statistic="error-rate ratio canary/baseline (Mantel-Haenszel), relative increase",
        tolerance=gate.tolerance, effect=rr - 1, interval=(lo - 1, hi - 1),
        figures={"canaryRate": rate_c, "baselineRate": rate_b},
    )


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

