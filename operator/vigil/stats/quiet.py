"""numpy's floating-point warnings switched off once per analysis, not at every small step.

The statistics divide by counts that may be zero and take logs of e-values that may be 0 on
purpose: the result (inf, NaN) is handled as a value, so the warning is noise. `np.errstate`
costs a few microseconds to enter and leave (a context variable set, an extension object
built), and an analysis entered it about 120 times: a few per cent of its CPU on the window's
small arrays. Now `analyze` and the completion of a deferred plan run under `quietly` (one errstate
for all of them), and each step asks for `quiet(...)`, which is that step's own errstate when it
runs alone (a test, the bench, a caller of one function) and nothing under `quietly`.

Only warnings change: every value is the same either way. Under `quietly` a divide, invalid or
overflow warning is not shown at any step of the analysis, where before only the steps that
expect one silenced it; an analysis reports odd counters in its verdicts (NoData, a figure of
inf or NaN), never through a warning.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, ContextManager, TypeVar

import numpy as np

F = TypeVar("F", bound=Callable[..., Any])

_QUIET: ContextVar[bool] = ContextVar("vigil_stats_quiet", default=False)
_NOTHING = contextlib.nullcontext()
IGNORED = {"divide": "ignore", "invalid": "ignore", "over": "ignore"}
"""What `quietly` ignores: every warning a step of the analysis silences on its own."""


def quiet(**settings: str) -> ContextManager[Any]:
    """`np.errstate(**settings)`, or nothing when the caller runs under `quietly` (which already
    ignores every setting a step asks for: `IGNORED`)."""
    return _NOTHING if _QUIET.get() else np.errstate(**settings)


def quietly(fn: F) -> F:
    """Run `fn` with numpy's divide, invalid and overflow warnings ignored, once for all the
    `quiet` steps inside it (nested calls add nothing)."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if _QUIET.get():
            return fn(*args, **kwargs)
        token = _QUIET.set(True)
        try:
            with np.errstate(**IGNORED):
                return fn(*args, **kwargs)
        finally:
            _QUIET.reset(token)

    return wrapper  # type: ignore[return-value]
