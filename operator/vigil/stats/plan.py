"""Projections for the plan: when a gate should Pass, and what it could detect, at the
traffic seen so far.

Both figures run the gate's own evidence function on an *expected path*: every projected
interval gets the mean per-interval traffic observed so far in each arm, and the canary's
counts are the baseline's observed rates or distribution (for time to Pass) or those moved
by a given effect (for the detectable effect). Expected counts are not integers; the
likelihood ratios accept them, so the path is the one along which the log e-process grows
at its mean rate, and its crossing time is close to the median time of the real process.
Effects are evaluated as one batch (the evidence functions take leading batch axes), so a
plan costs one evidence call per gate.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np

from vigil.api.gates import Gate, MetricKind
from vigil.stats.calibration import calibration_evidence
from vigil.stats.data import (
    GroupPredictions,
    LabelFeedback,
    LatencyHistogram,
    MetricData,
    RequestCounts,
    ScoreHistogram,
    ShadowComparisons,
)
from vigil.stats.drift import DRIFT_SCALE, buckets_shown, chi_distance
from vigil.stats.evidence import GateEvidence, Thresholds, not_computed
from vigil.stats.fairness import fairness_evidence
from vigil.stats.latency import QUANTILE, latency_evidence
from vigil.stats.quiet import quiet
from vigil.stats.rates import gate_error_evidence, shadow_evidence
from vigil.stats.result import Plan
from vigil.stats.sequential import ball_log_e, exposure_ratio

PLAN_POINTS = 64
"""Projected time points over the horizon, geometric from one interval: the evidence at each
point is exactly what constant per-interval traffic would give there (the statistics are
sums over intervals), at about 5% resolution in time."""
EFFECTS = 24
"""Effect sizes tried for the detectable effect (a geometric grid beyond the tolerance)."""

FIRST_EFFECTS = 4
"""Effects projected in the first batch: at the traffic of a real canary the smallest
detectable effect is usually among the first few, and a batch costs about its row count."""

CHUNKED = frozenset({MetricKind.ERROR_RATE, MetricKind.LATENCY_P50, MetricKind.LATENCY_P99,
                     MetricKind.SHADOW_DISAGREEMENT})
"""Gates whose projection costs about its row count (elsewhere a batch's fixed cost dominates,
and a second batch would cost more than the rows it saves)."""

Path = Callable[[np.ndarray, bool], GateEvidence]
"""Evidence along the expected path for a batch of effects (rows), with the Fail side or not
(a time to Pass alone reads no Fail evidence). Only the first row's Pass evidence and the other
rows' Fail evidence are read, and only through `_first` (the first point at the level), so a
path may leave out the rest (its log_e_pass may have just the first row, and values that cannot
change the first crossing need not be exact)."""


def plan_gate(gate: Gate, data: MetricData, th: Thresholds, horizon_s: float, chunked: bool = True) -> Plan:
    """The plan of one gate (see module docstring); never raises on odd data.

    Only the smallest caught effect is reported, so with `chunked` the first FIRST_EFFECTS
    effects are projected first and the rest only when none of them is caught. Every row of
    a path is computed on its own (no operation mixes effects), so the figures are the same
    as projecting all effects at once (`chunked=False`, the reference).
    """
    made = _prepare(gate, data, th, horizon_s)
    if isinstance(made, Plan):
        return made
    dt, at, path, effects, rate, subject = made
    fail_level = math.log(1 / th.alpha_fail)
    head = FIRST_EFFECTS if chunked and gate.metric in CHUNKED else effects.size
    ev = path(np.concatenate([[0.0], effects[:head]]), True)
    t_pass = _first(ev.log_e_pass[0], ev.n_canary[0], math.log(1 / th.alpha_pass), th.min_samples, at)
    t_fail = _first(ev.log_e_fail[1:], ev.n_canary[1:], fail_level, 0, at)
    if head < effects.size and not np.isfinite(t_fail).any():
        rest = path(effects[head:], True)
        t_fail = np.concatenate([t_fail, _first(rest.log_e_fail, rest.n_canary, fail_level, 0, at)])
    caught = np.isfinite(t_fail)
    i = int(np.argmax(caught))
    per_minute = rate * 60.0 / dt
    plan = Plan(
        horizon_s=horizon_s,
        time_to_pass_s=float(t_pass) if np.isfinite(t_pass) else None,
        beyond_horizon=not np.isfinite(t_pass),
        detectable_effect=float(effects[i]) if caught.any() else None,
        detectable_time_s=float(t_fail[i]) if caught.any() else None,
    )
    return _with_note(plan, gate, per_minute, subject)


def time_to_pass(gate: Gate, data: MetricData, th: Thresholds, horizon_s: float) -> Plan:
    """The time to Pass of `plan_gate` alone, without the detectable effect.

    Status shows the time to Pass after every analysis; the detectable effect (the effect rows
    of the path, most of a plan's work) is read only where a gate's explanation carries the plan's
    note (an Inconclusive gate) and in a decision's AuditRecord. The figure is `plan_gate`'s, bit
    for bit: it is the same path's first row, no operation of a path mixes rows, and its Pass
    evidence is computed apart from its Fail evidence (which is left out here).
    """
    made = _prepare(gate, data, th, horizon_s)
    if isinstance(made, Plan):
        return made
    _, at, path, _, _, _ = made
    ev = path(_NO_EFFECT, False)
    t_pass = _first(ev.log_e_pass[0], ev.n_canary[0], math.log(1 / th.alpha_pass), th.min_samples, at)
    return Plan(horizon_s=horizon_s, time_to_pass_s=float(t_pass) if np.isfinite(t_pass) else None,
                beyond_horizon=not np.isfinite(t_pass))


_NO_EFFECT = np.zeros(1)
_NO_EFFECT.setflags(write=False)


def _prepare(gate: Gate, data: MetricData, th: Thresholds, horizon_s: float
             ) -> Plan | tuple[float, np.ndarray, Path, np.ndarray, float, str]:
    """(observed interval in seconds, projected times, path, effects tried, canary traffic per
    observed interval, subject), or the Plan that says why there is no projection."""
    grid = _grid(data.timestamps, horizon_s)
    if grid is None:
        return Plan(horizon_s, note="fewer than two samples")
    dt, ends, widths = grid
    made = _BUILDERS[gate.metric](data, gate, widths, th)
    if isinstance(made, str):
        return Plan(horizon_s, note=made)
    path, effects, rate, subject = made
    return dt, ends * dt, path, effects, rate, subject


def _grid(timestamps: np.ndarray, horizon_s: float) -> tuple[float, np.ndarray, np.ndarray] | None:
    """(observed interval in seconds, ends of the projected intervals in observed intervals,
    their widths)."""
    dts = np.diff(np.asarray(timestamps, dtype=float))
    if dts.size == 0 or not np.isfinite(dts).all():
        return None
    dt = median(dts)
    if dt <= 0:
        return None
    steps = max(math.ceil(horizon_s / dt), 1)
    return dt, _ends(steps), _widths(steps)


def median(values: np.ndarray) -> float:
    """np.median of finite values (the middle one, or the mean of the two middle ones, as numpy
    averages them) without its generic machinery."""
    ordered = np.sort(values)
    half = ordered.size // 2
    return float(ordered[half]) if ordered.size % 2 else float((ordered[half - 1] + ordered[half]) / 2)


@functools.lru_cache(maxsize=256)
def _ends(steps: int) -> np.ndarray:
    """Projected interval ends for a horizon of `steps` intervals: depends on the policy only
    (interval and horizon), so it is computed once, not at every analysis."""
    ends = np.unique(np.round(np.geomspace(1.0, steps, PLAN_POINTS)))
    ends.setflags(write=False)
    return ends


@functools.lru_cache(maxsize=256)
def _widths(steps: int) -> np.ndarray:
    """Widths of the projected intervals of `_ends(steps)`: policy-only too, so computed once."""
    widths = np.diff(_ends(steps), prepend=0.0)
    widths.setflags(write=False)
    return widths


def _first(log_e: np.ndarray, n_canary: np.ndarray, level: float, min_samples: int, at: np.ndarray) -> np.ndarray:
    """The time in `at` when log_e first reaches `level` with `min_samples` (inf if never)."""
    ok = (log_e >= level) & (n_canary >= min_samples)
    return np.where(ok.any(axis=-1), at[np.argmax(ok, axis=-1)], np.inf)


@functools.lru_cache(maxsize=256)
def _relative_effects(tolerance: float) -> np.ndarray:
    """Effects tried for a relative gate: policy-only, so computed once (read-only)."""
    effects = (1.0 + tolerance) * np.geomspace(1.02, 20.0, EFFECTS) - 1.0
    effects.setflags(write=False)
    return effects


@functools.lru_cache(maxsize=256)
def _absolute_effects(tolerance: float, highest: float) -> np.ndarray:
    """Effects tried for an absolute gate: policy-only, so computed once (read-only)."""
    effects = tolerance + np.geomspace(0.002, max(highest - tolerance, 0.003), EFFECTS)
    effects.setflags(write=False)
    return effects


def _mean(counts: np.ndarray) -> np.ndarray:
    """Mean count per observed interval from per-interval counts (T, ...)."""
    return counts.sum(axis=0) / max(counts.shape[0], 1)


def _over(per_interval: np.ndarray | float, widths: np.ndarray, rows: int, batched: bool = False) -> np.ndarray:
    """(rows, K, ...) counts of projected intervals `widths` observed intervals long.

    `batched`: the first axis of `per_interval` already holds one entry per row (effect);
    otherwise the same counts serve every row. Said explicitly, because guessing from the
    shape confused a batch of effects with a vector of buckets or groups of the same length.
    """
    per_interval = np.asarray(per_interval, dtype=float)
    if not batched:
        per_interval = np.broadcast_to(per_interval, (rows,) + per_interval.shape)
    w = widths.reshape((1, -1) + (1,) * (per_interval.ndim - 1))
    return per_interval[:, None, ...] * w


# ------------------------------------------------------------------ builders

Built = tuple[Path, np.ndarray, float, str] | str
"""(path over effects, effects tried, canary traffic per observed interval, what the effect is on)
or the reason there is no projection. Builders take (data, gate, widths, thresholds)."""


def _error_rate(data: RequestCounts, gate: Gate, widths: np.ndarray, th: Thresholds) -> Built:
    n_b, x_b = data.outcomes(data.baseline)
    n_c, _ = data.outcomes(data.canary)
    N_c, N_b = float(_mean(n_c)), float(_mean(n_b))
    if N_c <= 0 or N_b <= 0:
        return "no traffic yet in one of the arms"
    p_b = float(x_b.sum() / n_b.sum())
    n_c, x_c = data.outcomes(data.canary)
    phi = error_dispersion(n_c, x_c, n_b, x_b)

    def path(effects: np.ndarray, fail: bool) -> GateEvidence:
        rows = effects.size
        p_c = np.minimum(p_b * (1 + effects), 1.0)
        # the Pass evidence is only read against its level: floors that cannot reach it are not searched
        return gate_error_evidence(_over(N_c, widths, rows), _over(N_c * p_c, widths, rows, batched=True),
                                   _over(N_b, widths, rows), _over(N_b * p_b, widths, rows), gate, dispersion=phi,
                                   reach=(math.log(1 / th.alpha_pass), th.min_samples), fail_side=fail)

    return path, _relative_effects(gate.tolerance), N_c, ""


def error_dispersion(n_c: np.ndarray, x_c: np.ndarray, n_b: np.ndarray, x_b: np.ndarray) -> float:
    """How much more the canary's share of each interval's errors scatters than binomial
    (1 for Poisson errors, about the mean burst size's second moment ratio for bursts)."""
    a = exposure_ratio(n_c, n_b, 1.0)
    ok = np.isfinite(a) & (a > 0)
    theta = np.where(ok, a, 0.0) / (1.0 + np.where(ok, a, 0.0))
    m = x_c + x_b
    d = np.where(ok, x_c - theta * m, 0.0)
    model = float(np.sum(np.where(ok, theta * (1 - theta) * m, 0.0)))
    if model <= 0 or ok.sum() < 2:
        return 1.0
    return max(1.0, float(np.sum(np.where(ok, (d - d[ok].mean()) ** 2, 0.0)) / model))


def stretched(edges: np.ndarray, probs: np.ndarray, stretch: np.ndarray) -> np.ndarray:
    """Bin probabilities (E, bins) of latencies multiplied by `stretch` (E,), from bin
    probabilities on `edges` (last edge +Inf): log survival interpolated linearly in log latency."""
    finite = np.isfinite(edges)
    k = int(finite.sum())
    surv = np.clip(1.0 - np.cumsum(probs)[finite], 1e-12, 1.0)
    log_e, log_s = np.log(edges[finite]), np.log(surv)
    x = log_e[None, :] - np.log(stretch)[:, None]  # S'(u) = S(u / stretch)
    inside = np.interp(x, log_e, log_s)
    below = np.log(np.clip(1.0 - (1.0 - surv[0]) * np.exp(x - log_e[0]), 1e-12, 1.0))
    new_surv = np.minimum.accumulate(np.exp(np.where(x < log_e[0], below, inside)), axis=-1)
    out = np.zeros((stretch.size, edges.size))
    out[:, :k] = np.diff(1.0 - new_surv, axis=-1, prepend=0.0)
    out[:, k:] = new_surv[:, -1:] / max(edges.size - k, 1)
    return np.clip(out, 0.0, None)


def _latency(data: LatencyHistogram, gate: Gate, widths: np.ndarray, th: Thresholds) -> Built:
    edges, b = data.buckets(data.baseline)
    _, c = data.buckets(data.canary)
    N_c, N_b = float(_mean(c.sum(axis=-1))), float(_mean(b.sum(axis=-1)))
    if N_c <= 0 or N_b <= 0 or np.isfinite(edges[-1]):
        return "no traffic yet in one of the arms"
    probs = b.sum(axis=0) / b.sum()
    q = QUANTILE[gate.metric]

    def path(effects: np.ndarray, fail: bool) -> GateEvidence:
        rows = effects.size
        # one baseline for every row (what depends on it alone is computed once); Pass is read
        # on the first row only (no effect), so only that row's is computed
        return latency_evidence(edges, _over(N_c * stretched(edges, probs, 1.0 + effects), widths, rows, batched=True),
                                _over(N_b * probs, widths, 1)[0], q, gate.tolerance, gate.regression, pass_rows=1,
                                fail_side=fail)

    return path, _relative_effects(gate.tolerance), N_c, ""


def _drift(data: ScoreHistogram, gate: Gate, widths: np.ndarray, th: Thresholds) -> Built:
    _, b = data.buckets(data.baseline)
    _, c = data.buckets(data.canary)
    N_c, N_b = float(_mean(c.sum(axis=-1))), float(_mean(b.sum(axis=-1)))
    if N_c <= 0 or N_b <= 0:
        return "no traffic yet in one of the arms"
    p = b.sum(axis=0) / b.sum()
    z = np.arange(p.size, dtype=float)
    z = (z - (p * z).sum()) / max(math.sqrt((p * (z - (p * z).sum()) ** 2).sum()), 1e-9)

    def path(effects: np.ndarray, fail: bool) -> GateEvidence:
        # a tilt along the score axis whose chi-square distance from the baseline is the effect
        rows = effects.size
        tilted = np.clip(p * (1.0 + np.sqrt(effects)[:, None] * z), 0.0, None)
        tilted /= tilted.sum(axis=-1, keepdims=True)
        C, B = np.add.accumulate(_over(N_c * tilted, widths, rows, batched=True), axis=-2), np.add.accumulate(_over(N_b * p, widths, rows), axis=-2)
        norm_s, info, dim = chi_distance(C, B)
        # the statistic's length carries sampling noise even without drift: E|S|^2 = info^2 d^2 + info dim
        typical = np.sqrt(norm_s**2 + info * dim)
        _, passed = ball_log_e(typical, info, dim, math.sqrt(gate.regression), DRIFT_SCALE)
        failed = ball_log_e(typical, info, dim, math.sqrt(gate.tolerance), DRIFT_SCALE)[0] if fail else not_computed(passed)
        # only the first row (no drift) is read for the time to Pass: the bucket tests for it alone
        passed = passed.copy()
        passed[0] = _with_buckets(passed[0], C[0].sum(axis=-1), _over(N_c * tilted[:1], widths, 1, batched=True)[0],
                                  _over(N_b * p, widths, 1)[0], gate.regression, th)
        return GateEvidence(failed, passed, C.sum(axis=-1), B.sum(axis=-1))

    return path, _absolute_effects(gate.tolerance, 2.0), N_c, ""


BUCKET_PREFIX = 8
"""Projected points past the first possible Pass whose bucket tests are computed first."""


def _with_buckets(ball: np.ndarray, n_canary: np.ndarray, c: np.ndarray, b: np.ndarray, regression: float,
                  th: Thresholds) -> np.ndarray:
    """The drift plan's Pass evidence of the no-drift row: the ball test's `ball` lowered to the
    bucket tests' (`buckets_shown`) where that can matter for the time to Pass.

    The plan reads it only as "first point at the Pass level with min_samples". Where the ball
    test is below the level (or samples are short) the bucket tests cannot change that, so they
    are skipped; they are computed on the path up to a few points past the first point that
    could pass (the tests at a point depend on the intervals up to it only), and on the whole
    path only if none of those passes. Points after a Pass found early keep the ball's value:
    they come after the first crossing.
    """
    level = math.log(1 / th.alpha_pass)
    could = (ball >= level) & (n_canary >= th.min_samples)
    if not could.any():
        return ball
    out = ball.copy()
    first = int(np.argmax(could))
    for stop in dict.fromkeys((min(first + BUCKET_PREFIX, ball.size), ball.size)):
        shown = buckets_shown(c[None, :stop], b[None, :stop], regression)[0]
        out[:stop] = np.minimum(ball[:stop], shown)
        if ((out[:stop] >= level) & could[:stop]).any():
            break
    return out


def _calibration(data: LabelFeedback, gate: Gate, widths: np.ndarray, th: Thresholds) -> Built:
    buckets = data.buckets()
    if not buckets:
        return "no labels yet"
    lab_b, cor_b = data.by_bucket(data.baseline, buckets)
    lab_c, _ = data.by_bucket(data.canary, buckets)
    L_c, L_b = _mean(lab_c), _mean(lab_b)
    if L_c.sum() <= 0 or L_b.sum() <= 0:
        return "no labels yet in one of the arms"
    with quiet(divide="ignore", invalid="ignore"):
        acc = np.where(lab_b.sum(axis=0) > 0, cor_b.sum(axis=0) / lab_b.sum(axis=0), 0.5)

    def path(effects: np.ndarray, fail: bool) -> GateEvidence:
        rows = effects.size
        acc_c = np.clip(acc[None, :] - effects[:, None], 0.0, 1.0)
        return calibration_evidence(_over(L_c, widths, rows), _over(L_c * acc_c, widths, rows, batched=True),
                                    _over(L_b, widths, rows), _over(L_b * acc, widths, rows),
                                    gate.tolerance, regression=gate.regression, pass_rows=1, fail_side=fail)

    return path, _absolute_effects(gate.tolerance, 0.6), float(L_c.sum()), ""


def _fairness(data: GroupPredictions, gate: Gate, widths: np.ndarray, th: Thresholds) -> Built:
    groups = data.groups()
    if not groups:
        return "no groups reported"
    tot_b, pos_b = data.by_group(data.baseline, groups)
    tot_c, _ = data.by_group(data.canary, groups)
    N_c, N_b = _mean(tot_c), _mean(tot_b)
    if N_c.sum() <= 0 or N_b.sum() <= 0:
        return "no traffic yet in one of the arms"
    with quiet(divide="ignore", invalid="ignore"):
        rate = np.where(tot_b.sum(axis=0) > 0, pos_b.sum(axis=0) / tot_b.sum(axis=0), 0.5)
    smallest = int(np.argmin(np.where(N_c > 0, N_c, np.inf)))
    sign = -1.0 if rate[smallest] >= 0.5 else 1.0  # move the rate towards the wider side

    def path(effects: np.ndarray, fail: bool) -> GateEvidence:
        rows = effects.size
        moved = np.repeat(rate[None, :], rows, axis=0)
        moved[:, smallest] = np.clip(rate[smallest] + sign * effects, 0.0, 1.0)
        return fairness_evidence(_over(N_c, widths, rows), _over(N_c * moved, widths, rows, batched=True),
                                 _over(N_b, widths, rows), _over(N_b * rate, widths, rows),
                                 gate.tolerance, regression=gate.regression, pass_rows=1, fail_side=fail)

    share = float(N_c[smallest] / N_c.sum())
    return path, _absolute_effects(gate.tolerance, 0.6), float(N_c.sum()), f"group {groups[smallest]!r} ({100 * share:.0f}% of traffic)"


def _shadow(data: ShadowComparisons, gate: Gate, widths: np.ndarray, th: Thresholds) -> Built:
    m, x = data.comparisons()
    M = float(_mean(m))
    if M <= 0:
        return "no mirrored requests yet"
    control = data.control_comparisons()
    if control is not None and control[0].sum() > 0:
        K = float(_mean(control[0]))
        natural = float(control[1].sum() / control[0].sum())

        def path(effects: np.ndarray, fail: bool) -> GateEvidence:  # both sides: a few operations
            # effects are excess disagreement over the control's
            rows = effects.size
            return shadow_evidence(_over(M, widths, rows), _over(M * np.clip(natural + effects, 0, 1), widths, rows, batched=True),
                                   gate.tolerance, gate.regression,
                                   (_over(K, widths, rows), _over(K * natural, widths, rows)))

        return path, _absolute_effects(gate.tolerance, 0.5), M, "above the control"
    natural = min(float(x.sum() / m.sum()), gate.tolerance)  # a healthy shadow: as seen, within tolerance

    def path(effects: np.ndarray, fail: bool) -> GateEvidence:  # both sides: a few operations
        rows = effects.size
        share = np.where(effects > 0, effects, natural)
        return shadow_evidence(_over(M, widths, rows), _over(M * share, widths, rows, batched=True), gate.tolerance, gate.regression)

    return path, _absolute_effects(gate.tolerance, 0.9), M, ""


_BUILDERS: dict[MetricKind, Callable[..., Built]] = {
    MetricKind.ERROR_RATE: _error_rate,
    MetricKind.LATENCY_P50: _latency,
    MetricKind.LATENCY_P99: _latency,
    MetricKind.PREDICTION_DRIFT: _drift,
    MetricKind.CALIBRATION: _calibration,
    MetricKind.FAIRNESS_GAP: _fairness,
    MetricKind.SHADOW_DISAGREEMENT: _shadow,
}


# ------------------------------------------------------------------ words


def effect_text(metric: MetricKind, effect: float, subject: str = "") -> str:
    """An effect in the gate's own units, as a reader would say it."""
    if metric is MetricKind.ERROR_RATE:
        return f"x{1 + effect:.2f} errors"
    if metric in (MetricKind.LATENCY_P50, MetricKind.LATENCY_P99):
        return f"a {100 * effect:+.0f}% slower {'p50' if metric is MetricKind.LATENCY_P50 else 'p99'}"
    if metric is MetricKind.PREDICTION_DRIFT:
        return f"a drift of distance {effect:.2f} (PSI scale)"
    if metric is MetricKind.CALIBRATION:
        return f"a {100 * effect:.0f}-point calibration shift"
    if metric is MetricKind.FAIRNESS_GAP:
        return f"a {100 * effect:.0f}-point gap in {subject or 'the smallest group'}"
    return f"{100 * effect:.1f}{' points more' if subject else '%'} disagreement{(' ' + subject) if subject else ''}"


def duration(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def _with_note(plan: Plan, gate: Gate, per_minute: float, subject: str) -> Plan:
    unit = "labels" if gate.metric is MetricKind.CALIBRATION else (
        "mirrored req" if gate.metric is MetricKind.SHADOW_DISAGREEMENT else "canary req")
    horizon = duration(plan.horizon_s)
    if plan.detectable_effect is None:
        detect = f"at {per_minute:.0f} {unit}/min nothing up to {effect_text(gate.metric, _biggest(gate), subject)} is detectable within {horizon}"
    else:
        detect = (f"at {per_minute:.0f} {unit}/min it could detect {effect_text(gate.metric, plan.detectable_effect, subject)}"
                  f" within {duration(plan.detectable_time_s or 0.0)}")
    passing = (f"Pass expected {duration(plan.time_to_pass_s)} after the window's start"
               if plan.time_to_pass_s is not None else f"Pass beyond the {horizon} horizon")
    return Plan(plan.horizon_s, plan.time_to_pass_s, plan.beyond_horizon, plan.detectable_effect,
                plan.detectable_time_s, note=f"{detect}; {passing}")


def _biggest(gate: Gate) -> float:
    effects = _relative_effects(gate.tolerance) if gate.is_relative else _absolute_effects(
        gate.tolerance, {MetricKind.PREDICTION_DRIFT: 2.0, MetricKind.SHADOW_DISAGREEMENT: 0.9}.get(gate.metric, 0.6))
    return float(effects[-1])
