"""Root searches that give exactly scipy's answers at a fraction of the function calls' overhead.

The confidence intervals of `sequential` find both ends of an interval with Brent's method
(`scipy.optimize.brentq`). Each call of the function costs a dozen numpy operations on tiny
arrays, so the time goes into per-call overhead, not arithmetic. `brent_steps` is a step-by-step
port of scipy's C `brentq` (same operations, in the same order, so the same iterates and the
same root), written as a generator that asks for one function value at a time; `lockstep` runs
several such searches side by side and answers all of their questions with one vectorised
function call per round. The function values are the same numbers the scalar calls give
(elementwise operations), so every search takes the same path as on its own.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Iterable, Sequence

import numpy as np

BRENT_RTOL = 4 * float(np.finfo(float).eps)
"""scipy's default (and smallest allowed) relative tolerance of brentq."""
BRENT_MAXITER = 100

Search = Generator[float, float, float]
"""Yields the points it needs the function at, is sent their values, returns the root."""


class NotExact(Exception):
    """A search left the path this port reproduces (a NaN value, no convergence, no sign
    change): the caller redoes it with scipy, which raises what it raises."""


def brent_steps(xa: float, xb: float, xtol: float, rtol: float = BRENT_RTOL, maxiter: int = BRENT_MAXITER) -> Search:
    """scipy's brentq (scipy/optimize/Zeros/brentq.c) for a root between xa and xb."""
    xpre, xcur = float(xa), float(xb)
    xblk = fblk = spre = scur = 0.0
    fpre = yield xpre
    fcur = yield xcur
    if math.isnan(fpre) or math.isnan(fcur):
        raise NotExact
    if fpre == 0:
        return xpre
    if fcur == 0:
        return xcur
    if math.copysign(1.0, fpre) == math.copysign(1.0, fcur):
        raise NotExact
    for _ in range(maxiter):
        if fpre != 0 and fcur != 0 and math.copysign(1.0, fpre) != math.copysign(1.0, fcur):
            xblk, fblk = xpre, fpre
            spre = scur = xcur - xpre
        if abs(fblk) < abs(fcur):
            xpre, xcur, xblk = xcur, xblk, xcur
            fpre, fcur, fblk = fcur, fblk, fcur
        delta = (xtol + rtol * abs(xcur)) / 2
        sbis = (xblk - xcur) / 2
        if fcur == 0 or abs(sbis) < delta:
            return xcur
        if abs(spre) > delta and abs(fcur) < abs(fpre):
            if xpre == xblk:  # interpolate
                stry = -fcur * (xcur - xpre) / (fcur - fpre)
            else:  # extrapolate
                dpre = (fpre - fcur) / (xpre - xcur)
                dblk = (fblk - fcur) / (xblk - xcur)
                stry = -fcur * (fblk * dblk - fpre * dpre) / (dblk * dpre * (fblk - fpre))
            if 2 * abs(stry) < min(abs(spre), 3 * abs(sbis) - delta):  # good short step
                spre, scur = scur, stry
            else:  # bisect
                spre = scur = sbis
        else:  # bisect
            spre = scur = sbis
        xpre, fpre = xcur, fcur
        xcur += scur if abs(scur) > delta else (delta if sbis > 0 else -delta)
        fcur = yield xcur
        if math.isnan(fcur):
            raise NotExact
    raise NotExact


def lockstep(f: Callable[[np.ndarray], Iterable[float]], searches: Sequence[Search],
             known: dict[float, float] | None = None) -> list[float]:
    """Run the searches side by side: one call of the vectorised `f` per round answers every
    search's next question (values in `known` are not asked again). Raises NotExact when a
    search leaves the reproduced path."""
    known = dict(known or {})
    roots: list[float | None] = [None] * len(searches)
    asks: dict[int, float] = {}
    for i, search in enumerate(searches):
        asks[i] = next(search)
    while asks:
        todo = sorted({x for x in asks.values() if x not in known})
        if todo:
            known.update(zip(todo, (float(v) for v in f(np.array(todo)))))
        nxt: dict[int, float] = {}
        for i, x in asks.items():
            try:
                nxt[i] = searches[i].send(known[x])
            except StopIteration as done:
                roots[i] = done.value
        asks = nxt
    return [float(r) for r in roots]  # type: ignore[arg-type]


def brentq(f: Callable[[float], float], a: float, b: float, xtol: float = 2e-12) -> float:
    """scipy.optimize.brentq's root of a scalar `f` between a and b, by the port above; a search
    the port does not reproduce is redone by scipy itself. scipy.optimize is imported only
    then: with scipy.stats it would add about 45 MiB to every operator process."""
    search = brent_steps(a, b, xtol)
    try:
        x = next(search)
        while True:
            x = search.send(float(f(x)))
    except StopIteration as done:
        return float(done.value)
    except NotExact:
        from scipy import optimize

        return float(optimize.brentq(f, a, b, xtol=xtol))
