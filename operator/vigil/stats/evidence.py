"""The shape every gate's statistics take, and the one rule that turns them into outcomes.

A gate produces two e-processes over the window: one against "the canary is within
tolerance" (large values mean Fail) and one against "the canary is at or beyond the
regression margin" (large values mean Pass). Between tolerance and regression margin lies
the indifference zone, where either answer is acceptable. Both are arrays over prefixes of the window so the benchmark
can replay a whole rollout at once; `analyze` reads the last entry.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from vigil.stats.quiet import quiet
from vigil.stats.sequential import divided, logsumexp, tolerance_band_log_e

INCONCLUSIVE, PASS, FAIL = 0, 1, 2


@dataclass(frozen=True)
class GateEvidence:
    """Log e-processes and sample counts at every prefix, each shaped (..., T)."""

    log_e_fail: np.ndarray
    log_e_pass: np.ndarray
    n_canary: np.ndarray
    n_baseline: np.ndarray

    def last(self) -> GateEvidence:
        return GateEvidence(*(np.asarray(a)[..., -1] for a in
                              (self.log_e_fail, self.log_e_pass, self.n_canary, self.n_baseline)))


@dataclass(frozen=True)
class EvidenceCall:
    """How a verdict computes its evidence: `compute(*arrays)`, split out so that the verdicts of
    several windows can share one call. Calls with equal `key` (the gate, every other argument, the
    arrays' shapes) may take their arrays stacked on a new leading axis: each row of such a call
    equals its window's own call bit for bit. A key of None: never shared (a function whose sums
    numpy may order differently in a larger array, or that costs more stacked)."""

    key: Hashable | None
    arrays: tuple[np.ndarray, ...]
    compute: Callable[..., GateEvidence]

    def __call__(self) -> GateEvidence:
        return self.compute(*self.arrays)

    @classmethod
    def of(cls, gate: Any, arrays: tuple[np.ndarray, ...], compute: Callable[..., GateEvidence],
           *more_key: Hashable) -> EvidenceCall:
        """A call of `gate` (a frozen, hashable Gate) that windows with the same gate, the same
        `more_key` (what else `compute` was given) and arrays of the same shapes share."""
        return cls((gate, *more_key, tuple(np.shape(a) for a in arrays)), arrays, compute)


def margins_call(gate: Any, arrays: tuple[np.ndarray, ...], evidence: Callable[..., GateEvidence]) -> EvidenceCall:
    """`EvidenceCall.of` an evidence function that takes the gate's margins (tolerance,
    regression) and `last`, at the end of the window as a verdict reads it."""
    return EvidenceCall.of(gate, arrays, partial(evidence, tolerance=gate.tolerance, regression=gate.regression,
                                                 last=True))


def classify(ev: GateEvidence, alpha_fail: float, alpha_pass: float, min_samples: int) -> np.ndarray:
    """FAIL once the fail e-process reaches 1/alpha_fail; PASS once the pass e-process reaches
    1/alpha_pass *and* the canary has `min_samples`; otherwise INCONCLUSIVE (codes above).

    Fail needs no minimum: strong evidence of harm is enough at any sample size.
    """
    fail = ev.log_e_fail >= np.log(1.0 / alpha_fail)
    passed = (ev.log_e_pass >= np.log(1.0 / alpha_pass)) & (ev.n_canary >= min_samples)
    return np.where(fail, FAIL, np.where(passed, PASS, INCONCLUSIVE))


def any_of(log_e: list[np.ndarray], weights: list[float] | None = None, in_order: bool = False) -> np.ndarray:
    """Evidence that at least one sub-hypothesis is false: the (weighted) mean of the e-values.

    A mean of e-values with weights fixed in advance is an e-value under the intersection
    null, and it is never weaker than (weighted) Bonferroni.

    `in_order`: add the e-values one after the other even for a single prefix. numpy adds
    across several prefixes in order but sums one column pairwise, so a caller that computes
    only the last prefix of a longer window asks for this to get the same last bits.
    """
    w = np.full(len(log_e), 1.0 / len(log_e)) if weights is None else np.asarray(weights) / np.sum(weights)
    stacked = np.array(log_e)  # np.stack of same-shaped arrays, without its shape checks
    x = stacked + np.log(w).reshape((-1,) + (1,) * (stacked.ndim - 1))
    if not in_order:
        return logsumexp(x, axis=0)
    top = x.max(axis=0, keepdims=True)
    top[~np.isfinite(top)] = 0.0
    with quiet(divide="ignore"):
        return top[0] + np.log(np.add.accumulate(np.exp(x - top), axis=0)[-1])


def all_of(log_e: list[np.ndarray]) -> np.ndarray:
    """Evidence that every sub-hypothesis holds (intersection-union): the weakest one."""
    return np.minimum.reduce(np.array(log_e), axis=0)


def cumulative(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.add.accumulate(np.asarray(x, dtype=float), axis=axis)


_MAX = float(np.finfo(float).max)


def nan_to_num(x: np.ndarray | float, nan: float = 0.0) -> np.ndarray:
    """np.nan_to_num(x, nan=nan) without its wrapper, which costs three times the arithmetic
    on the window's small arrays: NaN to `nan`, infinities to the largest floats."""
    x = np.asarray(x, dtype=float)
    return np.where(np.isnan(x), nan, np.minimum(np.maximum(x, -_MAX), _MAX))


def ratio(num: np.ndarray | float, den: np.ndarray | float) -> np.ndarray:
    """num/den with NaN where den is 0."""
    return divided(np.asarray(num, dtype=float), np.asarray(den, dtype=float), np.nan)


@dataclass(frozen=True)
class Thresholds:
    """Error budgets of one gate: alpha_fail is already divided among the gates.

    change_alpha: when set, the gate also runs a change detector (e-detector) whose chance of
    a false alarm within `horizon_s` is at most change_alpha (see `rates.error_change_log_e`).
    """

    alpha_fail: float
    alpha_pass: float
    min_samples: int
    change_alpha: float | None = None
    horizon_s: float = 4 * 3600.0


def decide_last(ev: GateEvidence, th: Thresholds) -> tuple[int, str]:
    """Outcome code at the end of the window and the clause that explains it."""
    last = ev.last()
    code = int(classify(last, th.alpha_fail, th.alpha_pass, th.min_samples))
    e_fail, e_pass = float(np.exp(min(last.log_e_fail, 700))), float(np.exp(min(last.log_e_pass, 700)))
    if code == FAIL:
        return code, f"e={e_fail:.3g} >= {1 / th.alpha_fail:.3g}"
    if code == PASS:
        return code, f"regression ruled out, e={e_pass:.3g} >= {1 / th.alpha_pass:.3g}"
    short = th.min_samples - int(last.n_canary)
    if e_pass >= 1 / th.alpha_pass and short > 0:
        return code, f"regression ruled out but needs {short} more canary samples"
    return code, f"not decided yet (fail e={e_fail:.3g} of {1 / th.alpha_fail:.3g}, pass e={e_pass:.3g} of {1 / th.alpha_pass:.3g})"


def band_evidence(delta: np.ndarray, info: np.ndarray, tolerance: float, scale: float,
                  n_canary: np.ndarray, n_baseline: np.ndarray, tests_axis: bool = False,
                  regression: float | None = None, pass_rows: int | None = None, in_order: bool = False,
                  fail_side: bool = True) -> GateEvidence:
    """Evidence for differences that must stay within +-tolerance (Fail) and are shown inside
    +-regression (Pass), by normal mixtures.

    With `tests_axis`, the last axis of `delta`/`info` holds several differences (one per
    group): Fail needs any side of any of them out of bounds (mean of all the one-sided
    e-values), Pass needs every one shown inside. `pass_rows`: Pass only for the first rows
    of the leading axis (the plan reads the first row's); `in_order`: see `any_of`;
    `fail_side=False`: Pass only (Fail is `not_computed`).
    """
    fail, _ = tolerance_band_log_e(delta, info, tolerance, scale, regression, sides="fail") if fail_side else ([], [])
    if pass_rows is not None:
        delta, info = delta[:pass_rows], info[:pass_rows]
    _, passed = tolerance_band_log_e(delta, info, tolerance, scale, regression, sides="pass")
    if tests_axis:
        fail = [f[..., g] for f in fail for g in range(delta.shape[-1])]
        passed = [p[..., g] for p in passed for g in range(delta.shape[-1])]
    passed_all = all_of(passed)
    return GateEvidence(any_of(fail, in_order=in_order) if fail_side else not_computed(passed_all), passed_all,
                        n_canary, n_baseline)


def not_computed(like: np.ndarray) -> np.ndarray:
    """The evidence of a side the caller does not read (a plan's time to Pass reads Pass only):
    NaN, which no level is reached by."""
    return np.full(np.shape(like), np.nan)
