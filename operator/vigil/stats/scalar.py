"""Scalar twins of the Bernoulli-mixture searches of `sequential`, for one count at a time.

A verdict needs the floor evidence and the rate bounds of one pair of totals, but each is a
40-step bisection, and on one number a numpy operation costs a microsecond of overhead for
a nanosecond of arithmetic. These functions do the very same floating-point operations in
plain Python: `math.log` is the C library's log, as scipy's `xlogy` uses, and `log1p` below
is the Cephes routine behind scipy's `xlog1py` (numpy's own SIMD log and log1p differ from
both in the last bit now and then, so they are not used here). The tests compare every
function with its numpy original on random inputs, bit for bit.
"""

from __future__ import annotations

import math

_LP = (4.5270000862445199635215e-5, 4.9854102823193375972212e-1, 6.5787325942061044846969e0,
       2.9911919328553073277375e1, 6.0949667980987787057556e1, 5.7112963590585538103336e1,
       2.0039553499201281259648e1)
_LQ = (1.5062909083469192043167e1, 8.3047565967967209469434e1, 2.2176239823732856465394e2,
       3.0909872225312059774938e2, 2.1642788614495947685003e2, 6.0118660497603843919306e1)
_LP0, _LP1, _LP2, _LP3, _LP4, _LP5, _LP6 = _LP
_LQ0, _LQ1, _LQ2, _LQ3, _LQ4, _LQ5 = _LQ
_SQRT1_2, _SQRT2 = 0.70710678118654752440, 1.41421356237309504880
INF, NAN = float("inf"), float("nan")


def log(x: float) -> float:
    """The C library's log with its IEEE results where `math.log` raises."""
    if x > 0:
        return math.log(x)
    return -INF if x == 0 else NAN


def log1p(x: float) -> float:
    """Cephes' log1p (scipy.special's, in `xlog1py`): log(1 + x) outside [sqrt(1/2), sqrt(2)],
    a rational approximation inside."""
    z = 1.0 + x
    if z < _SQRT1_2 or z > _SQRT2:
        return log(z)
    z = x * x
    p = _LP[0]
    for c in _LP[1:]:
        p = p * x + c
    q = x + _LQ[0]
    for c in _LQ[1:]:
        q = q * x + c
    z = -0.5 * z + x * (z * p / q)
    return x + z


def xlogy(x: float, y: float) -> float:
    """scipy.special.xlogy: x log y, 0 where x is 0 (y not NaN)."""
    return 0.0 if x == 0 and not math.isnan(y) else x * log(y)


def xlog1py(x: float, y: float) -> float:
    """scipy.special.xlog1py: x log1p(y), 0 where x is 0 (y not NaN)."""
    return 0.0 if x == 0 and not math.isnan(y) else x * log1p(y)


def unit(theta: float) -> float:
    """`sequential._unit`: clipped to [0, 1], NaN kept (np.maximum/np.minimum semantics)."""
    if math.isnan(theta):
        return theta
    return 1.0 if theta > 1.0 else max(theta, 0.0)


def fmin(a: float, b: float) -> float:
    """np.minimum of two floats (NaN wins)."""
    if math.isnan(a) or math.isnan(b):
        return NAN
    return min(a, b)


def fmax(a: float, b: float) -> float:
    """np.maximum of two floats (NaN wins)."""
    if math.isnan(a) or math.isnan(b):
        return NAN
    return max(a, b)


def bernoulli_log_e(x: float, miss: float, theta: float, marginal: float) -> float:
    """`sequential.bernoulli_log_e` with n - x given as `miss`: marginal - (xlogy(x, unit(theta))
    + xlog1py(miss, -unit(theta))), written out. A bisection calls it 40 times per bound, and
    the helpers' five calls cost three times the arithmetic; the operations and their order are
    theirs (the tests compare the two on edge and random inputs, bit for bit)."""
    if theta != theta:  # unit(): NaN kept, else clipped to [0, 1]
        t = theta
    else:
        t = 1.0 if theta > 1.0 else max(theta, 0.0)
    if x == 0 and t == t:  # xlogy(x, t)
        a = 0.0
    else:
        a = x * (math.log(t) if t > 0 else (-INF if t == 0 else NAN))
    y = -t
    if miss == 0 and y == y:  # xlog1py(miss, y), with log1p() inline
        return marginal - (a + 0.0)
    z = 1.0 + y
    if z < _SQRT1_2 or z > _SQRT2:
        lp = math.log(z) if z > 0 else (-INF if z == 0 else NAN)
    else:
        z = y * y
        p = (((((_LP0 * y + _LP1) * y + _LP2) * y + _LP3) * y + _LP4) * y + _LP5) * y + _LP6
        q = ((((((y + _LQ0) * y + _LQ1) * y + _LQ2) * y + _LQ3) * y + _LQ4) * y + _LQ5)
        lp = y + (-0.5 * z + y * (z * p / q))
    return marginal - (a + miss * lp)


def difference_floor_log_e(x_c: float, n_c: float, x_b: float, n_b: float, floor: float, below: bool,
                           m_c: float, m_b: float, log2: float) -> float:
    """`sequential.difference_floor_log_e` of one pair of totals (see there), given the arms'
    log marginals and log(2) as numpy computes them."""
    hat_c = x_c / n_c if n_c > 0 else 0.0
    hat_b = x_b / n_b if n_b > 0 else 0.0
    miss_c, miss_b = n_c - x_c, n_b - x_b

    def arms(t: float) -> tuple[float, float]:
        s = t - floor
        e_c = bernoulli_log_e(x_c, miss_c, t, m_c)
        e_b = INF if s < 0 else bernoulli_log_e(x_b, miss_b, s, m_b)
        if below:
            return (e_c if t > hat_c else 0.0), (e_b if s < hat_b else 0.0)
        return (e_c if t < hat_c else 0.0), ((0.0 if s < 0 else e_b) if s > hat_b else 0.0)

    # bisect_increasing on the gap e_c - e_b (below) or e_b - e_c, written out
    lo, hi = (floor - 1e-12 if below else 0.0), 1.0 + floor
    for _ in range(40):
        mid = (lo + hi) / 2
        e_c, e_b = arms(mid)
        if (e_c - e_b if below else e_b - e_c) > 0:
            hi = mid
        else:
            lo = mid
    best = fmax(fmin(*arms(lo)), fmin(*arms(hi)))
    return fmax(best, 0.0) - log2 if n_c > 0 and n_b > 0 else 0.0


RATE_BOUND_STEPS = 24
"""Bisection steps for each end of a rate's interval (`bernoulli_bounds`): the end is found to
within 2^-24 (6e-8) of its bracket, the rate or its complement, far below the four significant
digits status and the records show of the increase's bounds, and stays on the rejected side of its
crossing (the interval is never narrower than the confidence sequence's). It was 40, the evidence
bisections' count, at 40 scalar e-values an end: 4.5% of an analysis's instructions."""


def bernoulli_bounds(x: float, n: float, marginal: float, level: float) -> tuple[float, float]:
    """`sequential.bernoulli_bounds` given the log marginal and log(1/alpha) as numpy computes them."""
    hat = x / n
    miss = n - x
    # bisect_increasing on -(e - level) over [0, hat] and on e - level over [hat, 1], with the
    # function's call inline: -(d) > 0 is d < 0 in floating point (NaN and -0.0 included)
    lo, hi = 0.0, hat
    for _ in range(RATE_BOUND_STEPS):
        mid = (lo + hi) / 2
        if bernoulli_log_e(x, miss, mid, marginal) - level < 0:
            hi = mid
        else:
            lo = mid
    lower = lo
    lo, hi = hat, 1.0
    for _ in range(RATE_BOUND_STEPS):
        mid = (lo + hi) / 2
        if bernoulli_log_e(x, miss, mid, marginal) - level > 0:
            hi = mid
        else:
            lo = mid
    return lower, hi
