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
from collections.abc import Callable

_LP = (4.5270000862445199635215e-5, 4.9854102823193375972212e-1, 6.5787325942061044846969e0,
       2.9911919328553073277375e1, 6.0949667980987787057556e1, 5.7112963590585538103336e1,
       2.0039553499201281259648e1)
_LQ = (1.5062909083469192043167e1, 8.3047565967967209469434e1, 2.2176239823732856465394e2,
       3.0909872225312059774938e2, 2.1642788614495947685003e2, 6.0118660497603843919306e1)
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


def bisect_increasing(f: Callable[[float], float], lo: float, hi: float, iterations: int = 40
                      ) -> tuple[float, float]:
    """`sequential.bisect_increasing` on one bracket."""
    for _ in range(iterations):
        mid = (lo + hi) / 2
        if f(mid) > 0:
            hi = mid
        else:
            lo = mid
    return lo, hi


def bernoulli_log_e(x: float, miss: float, theta: float, marginal: float) -> float:
    """`sequential.bernoulli_log_e` with n - x given as `miss`."""
    theta = unit(theta)
    return marginal - (xlogy(x, theta) + xlog1py(miss, -theta))


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

    def gap(t: float) -> float:
        e_c, e_b = arms(t)
        return e_c - e_b if below else e_b - e_c

    start = floor - 1e-12 if below else 0.0
    lo, hi = bisect_increasing(gap, start, 1.0 + floor)
    best = fmax(fmin(*arms(lo)), fmin(*arms(hi)))
    return fmax(best, 0.0) - log2 if n_c > 0 and n_b > 0 else 0.0


def bernoulli_bounds(x: float, n: float, marginal: float, level: float) -> tuple[float, float]:
    """`sequential.bernoulli_bounds` given the log marginal and log(1/alpha) as numpy computes them."""
    hat = x / n
    miss = n - x

    def lower(t: float) -> float:
        return -(bernoulli_log_e(x, miss, t, marginal) - level)

    def upper(t: float) -> float:
        return bernoulli_log_e(x, miss, t, marginal) - level

    return bisect_increasing(lower, 0.0, hat)[0], bisect_increasing(upper, hat, 1.0)[1]
