"""Fairness: does the canary change how often any protected group gets the positive class?

For every group g the gate tests the change of its positive-prediction rate between
versions, p_canary(g) - p_baseline(g), against +-tolerance. Fail needs one group (either
direction) to be out of bounds, with the error shared across all 2G one-sided tests by
averaging their e-values (family-wise control, never weaker than Bonferroni); Pass needs
every group to be shown inside. The demographic-parity difference (max - min group rate)
and the four-fifths ratio (min / max) are reported for both versions.
"""

from __future__ import annotations

import numpy as np

from vigil.api.gates import Gate, MetricKind
from vigil.stats.data import GroupPredictions
from vigil.stats.evidence import EvidenceCall, GateEvidence, Thresholds, band_evidence, margins_call, nan_to_num, ratio
from vigil.stats.report import gate_verdict, percent
from vigil.stats.result import Verdict
from vigil.stats.sequential import normal_halfwidth, smoothed_variance

FAIRNESS_SCALE = 0.08
MIN_PER_GROUP = 30


def group_shift(N_c: np.ndarray, P_c: np.ndarray, N_b: np.ndarray, P_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rate change, information) per group from cumulative totals N and positives P (..., G)."""
    delta = nan_to_num(ratio(P_c, N_c) - ratio(P_b, N_b))
    var = smoothed_variance(P_c, N_c) + smoothed_variance(P_b, N_b)
    enough = (N_c >= MIN_PER_GROUP) & (N_b >= MIN_PER_GROUP)
    info = np.where(enough & np.isfinite(var), 1.0 / np.where(np.isfinite(var) & (var > 0), var, 1.0), 0.0)
    return delta, info


def fairness_evidence(tot_c: np.ndarray, pos_c: np.ndarray, tot_b: np.ndarray, pos_b: np.ndarray,
                      tolerance: float, scale: float = FAIRNESS_SCALE, regression: float | None = None,
                      last: bool = False, pass_rows: int | None = None, fail_side: bool = True) -> GateEvidence:
    """Predictions and positive predictions per interval and group, shaped (..., T, G). `last`:
    only the end of the window, (..., 1) (what a verdict reads); `pass_rows`, `fail_side`: see
    `band_evidence`."""
    N_c, P_c, N_b, P_b = (np.add.accumulate(a, axis=-2) for a in (tot_c, pos_c, tot_b, pos_b))
    if last:
        N_c, P_c, N_b, P_b = (a[..., -1:, :] for a in (N_c, P_c, N_b, P_b))
    delta, info = group_shift(N_c, P_c, N_b, P_b)
    return band_evidence(delta, info, tolerance, scale, N_c.sum(axis=-1), N_b.sum(axis=-1), tests_axis=True,
                         regression=regression, pass_rows=pass_rows, in_order=last and tot_c.shape[-2] > 1,
                         fail_side=fail_side)


def parity(rates: np.ndarray) -> tuple[float, float]:
    """(demographic-parity difference, four-fifths ratio) of per-group positive rates."""
    rates = rates[np.isfinite(rates)]
    if rates.size == 0:
        return float("nan"), float("nan")
    top = rates.max()
    return float(top - rates.min()), float(rates.min() / top) if top > 0 else float("nan")


def fairness_evidence_call(data: GroupPredictions, gate: Gate) -> EvidenceCall:
    """The verdict's evidence (`fairness_evidence` at the end of the window) as a shareable call."""
    groups = data.groups()
    tot_b, pos_b = data.by_group(data.baseline, groups)
    tot_c, pos_c = data.by_group(data.canary, groups)
    return margins_call(gate, (tot_c, pos_c, tot_b, pos_b), fairness_evidence)


def fairness_verdict(data: GroupPredictions, gate: Gate, th: Thresholds, ev: GateEvidence | None = None) -> Verdict:
    """`ev`: the evidence of `fairness_evidence_call`, when computed with other windows'."""
    groups = data.groups()
    call = fairness_evidence_call(data, gate)
    tot_c, pos_c, tot_b, pos_b = call.arrays
    ev = call() if ev is None else ev
    N_c, P_c, N_b, P_b = (a.sum(axis=0) for a in (tot_c, pos_c, tot_b, pos_b))
    delta, info = group_shift(N_c, P_c, N_b, P_b)
    rate_c, rate_b = ratio(P_c, N_c), ratio(P_b, N_b)
    dpd_c, ff_c = parity(rate_c)
    dpd_b, ff_b = parity(rate_b)
    figures = {"canaryParityDifference": dpd_c, "baselineParityDifference": dpd_b,
               "canaryFourFifths": ff_c, "baselineFourFifths": ff_b}
    if not groups:
        return gate_verdict(MetricKind.FAIRNESS_GAP, ev, th, describe="no groups reported",
                            statistic="per-group positive-rate change", tolerance=gate.tolerance,
                            regression=gate.regression, figures=figures)
    worst = int(np.argmax(np.abs(delta)))
    alpha_each = th.alpha_fail / (2 * len(groups))
    half = float(normal_halfwidth(info[worst], alpha_each, FAIRNESS_SCALE)) if info[worst] > 0 else None
    describe = (f"group {groups[worst]!r} positive rate {percent(rate_c[worst], 1)} vs baseline {percent(rate_b[worst], 1)} "
                f"({100 * delta[worst]:+.1f} points, tolerated +-{100 * gate.tolerance:.1f}, "
                f"regression +-{100 * gate.regression:.1f}); "
                f"parity difference {dpd_c:.3f} vs {dpd_b:.3f}")
    short = [g for g, i in zip(groups, info) if i == 0]
    if short:
        describe += f"; groups below {MIN_PER_GROUP} predictions: {', '.join(short[:5])}"
    return gate_verdict(
        MetricKind.FAIRNESS_GAP, ev, th, describe=describe,
        statistic="largest per-group change of positive-prediction rate, canary - baseline",
        tolerance=gate.tolerance, regression=gate.regression, effect=float(delta[worst]),
        interval=(float(delta[worst]) - half, float(delta[worst]) + half) if half is not None else None,
        figures=figures | {"worstGroupCanaryRate": float(rate_c[worst]), "worstGroupBaselineRate": float(rate_b[worst])},
    )

