"""Success/failure counts: the error rate (canary vs baseline) and shadow disagreement.

Error rate: anytime-valid test of the rate ratio canary/baseline, stratified by scrape
interval so that a changing canary weight (or a baseline whose own error rate moves) cannot
bias it. Fail tests against the tolerated ratio 1 + tolerance, Pass against the regression
ratio 1 + regression. With absolute floors, a rollback also needs the increase shown above
the tolerated floor, and a Pass may also come from the increase shown below the regression
floor (how an error-free service passes). Shadow disagreement: the share of mirrored
requests on which the shadow's prediction differs from stable's, against the tolerated
share (Fail) and the regression share (Pass).
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial

import numpy as np

from vigil.api.gates import Gate, MetricKind
from vigil.stats.data import RequestCounts, ShadowComparisons
from vigil.stats.evidence import (
    EvidenceCall,
    GateEvidence,
    Thresholds,
    cumulative,
    nan_to_num,
    not_computed,
    ratio,
)
from vigil.stats.quiet import quiet
from vigil.stats.report import gate_verdict, percent
from vigil.stats.result import Outcome, Verdict
from vigil.stats.sequential import (
    baseline_dispersion,
    bernoulli_bounds,
    bernoulli_log_e,
    bernoulli_log_marginal,
    difference_floor_log_e,
    exposure_ratio,
    mantel_haenszel_ratio,
    normal_halfwidth,
    normal_log_e,
    proportion_evidence,
    proportion_interval,
    rate_ratio_evidence,
    rate_ratio_interval,
    rate_ratio_llr,
    ratio_or,
    robust_rate_ratio_evidence,
    shiryaev_roberts_log_e,
    smoothed_variance,
)

CHANGE_ALTERNATIVES = np.array([1.5, 2.0, 3.0])
"""Rate ratios, as multiples of the tolerated ratio, that the change detector watches for."""

RATIO_PASS_SHARE = 0.75
"""With a regression floor, Pass has two routes (ratio or floor); beta is split 3:1 between them."""


def error_rate_evidence(n_c: np.ndarray, x_c: np.ndarray, n_b: np.ndarray, x_b: np.ndarray,
                        tolerance: float, regression: float | None = None,
                        tolerance_floor: float | None = None, regression_floor: float | None = None,
                        robust: bool = True, dispersion: float | None = None, last: bool = False,
                        reach: tuple[float, int] | None = None, fail_side: bool = True) -> GateEvidence:
    """Requests n and errors x per interval, shaped (..., T).

    Fail: the ratio e-process against 1 + tolerance and, with a tolerance floor, also the
    evidence that the increase exceeds it (the smaller of the two: a false Fail needs the
    true statement among them rejected). Pass: the ratio e-process against 1 + regression,
    or with a regression floor the larger of (3/4 of it) and (1/4 of the floor evidence),
    so that the two routes share beta.

    robust (default): the self-normalised ratio test, valid when errors come in bursts
    (`sequential.robust_rate_ratio_evidence`); robust=False: the exact Poisson likelihood-
    ratio mixture, kept to measure what robustness costs. `dispersion`: for projections on
    expected counts (see the robust test). `last`: only the evidence at the end of the window,
    shaped (..., 1), which is all a verdict reads (the floors are tests on the totals, so the
    earlier prefixes need not be searched). `reach` = (level, min_samples): the caller reads the
    Pass evidence only as "has it reached `level` with `min_samples` canary requests" (the
    plan), so the regression floor is searched only where it could make that true
    (`floor_where_it_could_reach`); elsewhere the Pass evidence is the ratio route's alone.
    `fail_side=False` (robust only): Pass only, the Fail evidence `not_computed`.
    """
    reg = tolerance if regression is None else regression
    fail: np.ndarray | None
    if robust:
        fail, passed = robust_rate_ratio_evidence(x_c, x_b, n_c, n_b, 1.0 + tolerance, 1.0 + reg,
                                                  dispersion=dispersion, fail_side=fail_side)
    else:
        fail, passed = rate_ratio_evidence(x_c, x_b, n_c, n_b, 1.0 + tolerance, rho0_pass=1.0 + reg)
    if fail is None:
        fail = not_computed(passed)
    if last:
        fail, passed = fail[..., -1:], passed[..., -1:]
    if tolerance_floor is not None or regression_floor is not None:
        cx_c, cn_c, cx_b, cn_b = (cumulative(a) for a in (x_c, n_c, x_b, n_b))
        if last:
            cx_c, cn_c, cx_b, cn_b = (a[..., -1:] for a in (cx_c, cn_c, cx_b, cn_b))
        if tolerance_floor is not None and fail_side:
            fail = np.minimum(fail, difference_floor_log_e(cx_c, cn_c, cx_b, cn_b, tolerance_floor, below=False))
        if regression_floor is not None:
            if reach is None:
                floor = difference_floor_log_e(cx_c, cn_c, cx_b, cn_b, regression_floor, below=True)
            else:
                floor = floor_where_it_could_reach(cx_c, cn_c, cx_b, cn_b, regression_floor,
                                                   passed + np.log(RATIO_PASS_SHARE), *reach)
            passed = np.maximum(passed + np.log(RATIO_PASS_SHARE), floor + np.log(1 - RATIO_PASS_SHARE))
    n_c, n_b = cumulative(n_c), cumulative(n_b)
    if last:
        n_c, n_b = n_c[..., -1:], n_b[..., -1:]
    return GateEvidence(fail, passed, n_c, n_b)


REACH_MARGIN = 1e-6
"""How far below the level a floor's upper bound must stay to skip its search (far beyond the
bound's rounding, about 1e-12)."""


def floor_where_it_could_reach(x_c: np.ndarray, n_c: np.ndarray, x_b: np.ndarray, n_b: np.ndarray, floor: float,
                               ratio_route: np.ndarray, level: float, min_samples: int) -> np.ndarray:
    """The regression floor's evidence (`difference_floor_log_e`, below=True, from cumulative
    counts) where it could lift the Pass evidence to `level`; -inf where it cannot.

    It cannot where the canary has fewer than `min_samples` requests, where the ratio route
    (already weighted) reaches the level on its own, and where an upper bound on it stays below:
    the search's value is at most max(0, e_c(hat_b + floor)) - log 2, e_c the canary's evidence
    of a rate below t, which grows with t above hat_c, while the baseline's evidence is 0 from
    t = hat_b + floor on. Only the remaining points are searched; in the usual plan none are.
    """
    x_c, n_c, x_b, n_b = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (x_c, n_c, x_b, n_b)))
    share = np.log(1 - RATIO_PASS_SHARE)
    hat_c, hat_b = ratio_or(x_c, n_c, 0.0), ratio_or(x_b, n_b, 0.0)
    t = hat_b + floor
    with quiet(divide="ignore", invalid="ignore"):
        top = np.where(t > hat_c, bernoulli_log_e(x_c, n_c, t, bernoulli_log_marginal(x_c, n_c)), 0.0)
    bound = np.maximum(top, 0.0) - np.log(2.0) + share
    need = (n_c >= min_samples) & ~(ratio_route >= level) & ~(bound < level - REACH_MARGIN)
    out = np.full(x_c.shape, -np.inf)
    if need.any():
        out[need] = difference_floor_log_e(x_c[need], n_c[need], x_b[need], n_b[need], floor, below=True)
    return out


def error_change_log_e(n_c: np.ndarray, x_c: np.ndarray, n_b: np.ndarray, x_b: np.ndarray, tolerance: float
                       ) -> np.ndarray:
    """Log of a Shiryaev-Roberts e-detector for "the rate ratio has moved beyond the tolerance
    at some point", at every prefix (..., T).

    R_t = (1 + R_{t-1}) L_t, where L_t is the interval's likelihood ratio of the canary's share
    of errors at a ratio beyond the tolerance against the tolerated ratio (`rate_ratio_llr`),
    tempered by the baseline's dispersion (`baseline_dispersion`, so bursts do not count as
    many independent errors); averaged over CHANGE_ALTERNATIVES. R_t is the sum of the
    likelihood ratios of every possible start of the change, so evidence from before a change
    never has to be paid back: a regression that starts after hours of healthy traffic is
    caught about as fast as a fresh one, plus the log of the horizon.

    Guarantee (Shin, Ramdas and Rinaldo, "E-detectors", 2023): with no change beyond the
    tolerance, R_t - t is a (super)martingale, so the chance that R reaches A within T
    intervals is at most T / A. Alarm at A = T / alpha: a false alarm within the horizon has
    probability at most alpha (and the average run length to one is at least A intervals).
    """
    a = exposure_ratio(n_c, n_b, 1.0 + tolerance)
    llr = rate_ratio_llr(x_c, x_b, a, CHANGE_ALTERNATIVES) / baseline_dispersion(n_b, x_b)[..., None]
    return shiryaev_roberts_log_e(llr)


def change_level(timestamps: np.ndarray, th: Thresholds) -> float | None:
    """log A for the change detector: A = (intervals in the horizon) / change_alpha."""
    if th.change_alpha is None:
        return None
    dts = np.diff(np.asarray(timestamps, dtype=float))
    dt = float(np.median(dts)) if dts.size and np.median(dts) > 0 else 60.0
    return float(np.log(max(th.horizon_s / dt, 1.0) / th.change_alpha))


def gate_error_evidence(n_c: np.ndarray, x_c: np.ndarray, n_b: np.ndarray, x_b: np.ndarray, gate: Gate,
                        dispersion: float | None = None, last: bool = False,
                        reach: tuple[float, int] | None = None, fail_side: bool = True) -> GateEvidence:
    """`error_rate_evidence` with the gate's margins and floors."""
    return error_rate_evidence(n_c, x_c, n_b, x_b, gate.tolerance, gate.regression,
                               gate.tolerance_floor, gate.regression_floor, dispersion=dispersion, last=last,
                               reach=reach, fail_side=fail_side)


def error_rate_evidence_call(data: RequestCounts, gate: Gate) -> EvidenceCall:
    """The verdict's evidence (`gate_error_evidence` at the end of the window) as a shareable call."""
    n_b, x_b = data.outcomes(data.baseline)
    n_c, x_c = data.outcomes(data.canary)
    return EvidenceCall.of(gate, (n_c, x_c, n_b, x_b), partial(gate_error_evidence, gate=gate, last=True))


def error_rate_verdict(data: RequestCounts, gate: Gate, th: Thresholds, ev: GateEvidence | None = None) -> Verdict:
    """`ev`: the evidence of `error_rate_evidence_call`, when computed with other windows'."""
    call = error_rate_evidence_call(data, gate)
    n_c, x_c, n_b, x_b = call.arrays
    ev = call() if ev is None else ev
    rate_b, rate_c = float(ratio(x_b.sum(), n_b.sum())), float(ratio(x_c.sum(), n_c.sum()))
    rr = mantel_haenszel_ratio(x_c, x_b, n_c, n_b)
    lo, hi = rate_ratio_interval(x_c, x_b, n_c, n_b, th.alpha_fail)
    describe = (f"error rate {percent(rate_c)} vs baseline {percent(rate_b)} "
                f"(x{rr:.2f}; tolerated x{1 + gate.tolerance:.2f}, regression x{1 + gate.regression:.2f}")
    figures: dict[str, float | None] = {"canaryRate": rate_c, "baselineRate": rate_b}
    if gate.regression_floor is not None and n_c.sum() > 0 and n_b.sum() > 0:
        c_lo, c_hi = bernoulli_bounds(float(x_c.sum()), float(n_c.sum()), th.alpha_fail / 2)
        b_lo, b_hi = bernoulli_bounds(float(x_b.sum()), float(n_b.sum()), th.alpha_fail / 2)
        figures |= {"increaseLower": c_lo - b_hi, "increaseUpper": c_hi - b_lo,
                    "regressionFloor": gate.regression_floor, "toleranceFloor": gate.tolerance_floor}
        floors = f"regression floor +{100 * gate.regression_floor:.2f} points"
        if gate.tolerance_floor is not None:
            floors = f"tolerated +{100 * gate.tolerance_floor:.2f} points, {floors}"
        describe += f"; increase {100 * (c_lo - b_hi):+.2f}..{100 * (c_hi - b_lo):+.2f} points, {floors}"
    verdict = gate_verdict(
        MetricKind.ERROR_RATE, ev, th, describe=describe + ")",
        statistic="error-rate ratio canary/baseline (Mantel-Haenszel), relative increase",
        tolerance=gate.tolerance, regression=gate.regression, effect=rr - 1, interval=(lo - 1, hi - 1),
        figures=figures,
    )
    if th.change_alpha is None:
        return verdict
    return with_change(verdict, error_change_log_e(n_c, x_c, n_b, x_b, gate.tolerance), data.timestamps, th)


def with_change(verdict: Verdict, change: np.ndarray, timestamps: np.ndarray, th: Thresholds) -> Verdict:
    """Apply a change detector's log statistic over the window: Fail once it has reached
    log A (`change_level`), and record it either way."""
    level = change_level(timestamps, th)
    if level is None:
        return verdict
    peak = float(np.max(change)) if change.size else 0.0
    figures = {**verdict.figures, "changeLogE": peak, "changeLogThreshold": level}
    if verdict.outcome is not Outcome.FAIL and peak >= level:
        at = int(np.argmax(change >= level))
        when = (timestamps[at + 1] - timestamps[0]) / 60
        return replace(verdict, outcome=Outcome.FAIL, figures=figures,
                       explanation=f"{verdict.explanation}; change detected {when:.0f} min into the window "
                                   f"(e-detector log {peak:.1f} >= {level:.1f})")
    return replace(verdict, figures=figures)


SHADOW_SCALE = 0.03
"""Prior scale of the shadow-minus-control difference (proportion points)."""


def shadow_evidence(m: np.ndarray, x: np.ndarray, tolerance: float, regression: float | None = None,
                    control: tuple[np.ndarray, np.ndarray] | None = None) -> GateEvidence:
    """Comparisons m and disagreements x per interval, shaped (..., T).

    Without a control: the shadow's disagreement rate against the tolerated rate (Fail) and
    the regression rate (Pass), exact Bernoulli mixtures. With a control (m_c, x_c: stable
    compared with itself on the same mirrored requests): the *excess* disagreement
    p_shadow - p_control against the margins, by normal mixtures on the difference of the
    two cumulative rates (asymptotic, like fairness); nondeterminism that grows with load
    raises both and cancels."""
    cm, cx = cumulative(m), cumulative(x)
    if control is None:
        fail, passed = proportion_evidence(cx, cm, tolerance, theta0_pass=regression)
        return GateEvidence(fail, passed, cm, np.zeros_like(cm))
    km, kx = cumulative(control[0]), cumulative(control[1])
    reg = tolerance if regression is None else regression
    delta = nan_to_num(ratio(cx, cm) - ratio(kx, km))
    var = smoothed_variance(cx, cm) + smoothed_variance(kx, km)
    info = np.where((cm > 0) & (km > 0) & np.isfinite(var), 1.0 / np.where(np.isfinite(var) & (var > 0), var, 1.0), 0.0)
    fail = normal_log_e(delta - tolerance, info, SHADOW_SCALE)
    passed = normal_log_e(reg - delta, info, SHADOW_SCALE)
    return GateEvidence(np.where(info > 0, fail, 0.0), np.where(info > 0, passed, 0.0), cm, km)


def shadow_evidence_call(data: ShadowComparisons, gate: Gate) -> EvidenceCall:
    """The verdict's evidence (`shadow_evidence`) as a shareable call."""
    m, x = data.comparisons()
    control = data.control_comparisons()
    arrays = (m, x) if control is None else (m, x, *control)
    return EvidenceCall.of(gate, arrays, partial(_shadow_evidence_of, tolerance=gate.tolerance,
                                                 regression=gate.regression))


def _shadow_evidence_of(m: np.ndarray, x: np.ndarray, *control: np.ndarray, tolerance: float,
                        regression: float | None) -> GateEvidence:
    return shadow_evidence(m, x, tolerance, regression, (control[0], control[1]) if control else None)


def shadow_verdict(data: ShadowComparisons, gate: Gate, th: Thresholds, ev: GateEvidence | None = None) -> Verdict:
    """`ev`: the evidence of `shadow_evidence_call`, when computed with other windows'."""
    call = shadow_evidence_call(data, gate)
    m, x = call.arrays[:2]
    control = (call.arrays[2], call.arrays[3]) if len(call.arrays) > 2 else None
    ev = call() if ev is None else ev
    rate = float(ratio(x.sum(), m.sum()))
    margins = f"tolerated {percent(gate.tolerance)}, regression {percent(gate.regression)}"
    if control is None:
        lo, hi = proportion_interval(float(x.sum()), float(m.sum()), th.alpha_fail)
        return gate_verdict(
            MetricKind.SHADOW_DISAGREEMENT, ev, th,
            describe=f"shadow disagrees on {percent(rate)} of {int(m.sum())} mirrored requests ({margins})",
            statistic="disagreement rate of shadow vs stable on mirrored requests",
            tolerance=gate.tolerance, regression=gate.regression, effect=rate, interval=(lo, hi),
            figures={"disagreementRate": rate},
        )
    natural = float(ratio(control[1].sum(), control[0].sum()))
    excess = rate - natural
    last = ev.last()
    info = 1.0 / max(float(smoothed_variance(x.sum(), m.sum()) + smoothed_variance(control[1].sum(), control[0].sum())),
                     1e-12)
    half = float(normal_halfwidth(info, th.alpha_fail, SHADOW_SCALE)) if last.n_baseline > 0 else float("inf")
    return gate_verdict(
        MetricKind.SHADOW_DISAGREEMENT, ev, th,
        describe=(f"shadow disagrees on {percent(rate)} of {int(m.sum())} mirrored requests, stable with itself on "
                  f"{percent(natural)} of {int(control[0].sum())} (excess {100 * excess:+.2f} points; {margins} "
                  "above the control)"),
        statistic="disagreement rate of shadow vs stable minus stable vs itself (live control)",
        tolerance=gate.tolerance, regression=gate.regression, effect=excess,
        interval=(excess - half, excess + half) if np.isfinite(half) else None,
        figures={"disagreementRate": rate, "controlDisagreementRate": natural},
    )
