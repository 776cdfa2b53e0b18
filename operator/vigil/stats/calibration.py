"""Calibration: does the canary's stated confidence still mean what the baseline's means?

Inputs are delayed ground-truth labels counted per predicted-class confidence bucket
(lower edges 0.5 ... 0.9) and whether the prediction was right. Within one bucket both
versions state the same confidence, so the difference of their accuracies there is the
change in calibration gap. The gate tests the canary-weighted mean of those differences,
calibration shift = sum_b w_b (acc_canary,b - acc_baseline,b), against +-tolerance:
negative means the canary is overconfident compared with the baseline. When the baseline
is calibrated, this is the change in expected calibration error (ECE); ECE itself is
reported for both versions but not gated, because its plug-in estimate is biased upward
by an amount that depends on the label count (and the canary always has fewer labels).

Labels arrive late: until enough have arrived the gate is Inconclusive (waiting is the
answer, never a pass), and only labels that have arrived count.
"""

from __future__ import annotations

import numpy as np

from vigil.api.gates import Gate, MetricKind
from vigil.stats.data import LabelFeedback
from vigil.stats.evidence import EvidenceCall, GateEvidence, Thresholds, band_evidence, margins_call, nan_to_num, ratio
from vigil.stats.report import gate_verdict
from vigil.stats.result import Verdict
from vigil.stats.sequential import normal_halfwidth, smoothed_variance

CALIBRATION_SCALE = 0.05
MIN_PER_BUCKET = 10
MIN_LABELS = 100


def calibration_shift(L_c: np.ndarray, X_c: np.ndarray, L_b: np.ndarray, X_b: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(shift, information) from cumulative labelled L and correct X per bucket (..., K)."""
    use = (L_c >= MIN_PER_BUCKET) & (L_b >= MIN_PER_BUCKET)
    w = np.where(use, L_c, 0.0)
    total = w.sum(axis=-1, keepdims=True)
    w = nan_to_num(ratio(w, total))
    diff = nan_to_num(ratio(X_c, L_c) - ratio(X_b, L_b))
    shift = (w * diff).sum(axis=-1)
    each = np.where(use, smoothed_variance(X_c, L_c) + smoothed_variance(X_b, L_b), 0.0)
    var = (w**2 * each).sum(axis=-1)
    enough = (np.where(use, L_c, 0).sum(axis=-1) >= MIN_LABELS) & (np.where(use, L_b, 0).sum(axis=-1) >= MIN_LABELS)
    info = np.where(enough & (var > 0), 1.0 / np.where(var > 0, var, 1.0), 0.0)
    return shift, info


def calibration_evidence(lab_c: np.ndarray, cor_c: np.ndarray, lab_b: np.ndarray, cor_b: np.ndarray,
                         tolerance: float, scale: float = CALIBRATION_SCALE, regression: float | None = None,
                         last: bool = False, pass_rows: int | None = None, fail_side: bool = True) -> GateEvidence:
    """Labelled and correct counts per interval and bucket, shaped (..., T, K). `last`: only
    the end of the window, (..., 1) (what a verdict reads); `pass_rows`, `fail_side`: see
    `band_evidence`."""
    L_c, X_c, L_b, X_b = (np.add.accumulate(a, axis=-2) for a in (lab_c, cor_c, lab_b, cor_b))
    if last:
        L_c, X_c, L_b, X_b = (a[..., -1:, :] for a in (L_c, X_c, L_b, X_b))
    shift, info = calibration_shift(L_c, X_c, L_b, X_b)
    return band_evidence(shift, info, tolerance, scale, L_c.sum(axis=-1), L_b.sum(axis=-1), regression=regression,
                         pass_rows=pass_rows, fail_side=fail_side)


def expected_calibration_error(labelled: np.ndarray, correct: np.ndarray, confidence: np.ndarray) -> float:
    """ECE over buckets: sum_b (n_b / n) |accuracy_b - confidence_b|."""
    n = labelled.sum()
    if n <= 0:
        return float("nan")
    acc = nan_to_num(ratio(correct, labelled))
    return float(np.sum(labelled / n * np.abs(acc - confidence)))


def calibration_evidence_call(data: LabelFeedback, gate: Gate) -> EvidenceCall:
    """The verdict's evidence (`calibration_evidence` at the end of the window) as a shareable call."""
    buckets = data.buckets()
    lab_b, cor_b = data.by_bucket(data.baseline, buckets)
    lab_c, cor_c = data.by_bucket(data.canary, buckets)
    return margins_call(gate, (lab_c, cor_c, lab_b, cor_b), calibration_evidence)


def calibration_verdict(data: LabelFeedback, gate: Gate, th: Thresholds, ev: GateEvidence | None = None) -> Verdict:
    """`ev`: the evidence of `calibration_evidence_call`, when computed with other windows'."""
    buckets = data.buckets()
    call = calibration_evidence_call(data, gate)
    lab_c, cor_c, lab_b, cor_b = call.arrays
    ev = call() if ev is None else ev
    L_c, X_c, L_b, X_b = (a.sum(axis=0) for a in (lab_c, cor_c, lab_b, cor_b))
    shift, info = (float(v) for v in calibration_shift(L_c, X_c, L_b, X_b))
    mid = np.array([float(b) + 0.05 for b in buckets])
    ece_c, ece_b = expected_calibration_error(L_c, X_c, mid), expected_calibration_error(L_b, X_b, mid)
    half = float(normal_halfwidth(info, th.alpha_fail, CALIBRATION_SCALE)) if info > 0 else float("inf")
    describe = (f"calibration shift {100 * shift:+.1f} points (ECE {ece_c:.3f} vs baseline {ece_b:.3f}; "
                f"tolerated +-{100 * gate.tolerance:.1f}, regression +-{100 * gate.regression:.1f}) from {int(L_c.sum())} canary labels")
    if info == 0:
        describe += f"; waiting for labels ({MIN_LABELS} per version, {MIN_PER_BUCKET} per bucket)"
    return gate_verdict(
        MetricKind.CALIBRATION, ev, th, describe=describe,
        statistic="accuracy difference canary - baseline at equal stated confidence (bucket-weighted)",
        tolerance=gate.tolerance, regression=gate.regression, effect=shift,
        interval=(shift - half, shift + half) if info > 0 else None,
        figures={"canaryEce": ece_c, "baselineEce": ece_b},
    )
