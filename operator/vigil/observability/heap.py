"""Hand free heap memory back to the system now and then (glibc's `malloc_trim`).

Every pass parses its ModelDeployment (tens of KB of Python objects once its status carries an
analysis and a history) and drops it again, from several worker threads. glibc returns free
memory on its own only from the top of a heap (`MALLOC_TRIM_THRESHOLD_`): the free chunks that
this churn leaves between live objects stay counted in the RSS. `malloc_trim(0)` releases the
whole free pages among them (madvise), which keeps the operator's RSS at what it really holds.
On a fragmented heap of 300 MiB a call took 240 ms the first time and 44 ms the next, so the
operator runs it in a thread of its own (the event loop goes on), every `VIGIL_HEAP_TRIM_SECONDS`
(30 by default, 0: never). Elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
from collections.abc import Callable

DEFAULT_SECONDS = 30.0


def interval() -> float:
    """Seconds between trims (0: never), from VIGIL_HEAP_TRIM_SECONDS."""
    raw = os.environ.get("VIGIL_HEAP_TRIM_SECONDS", "").strip()
    if not raw:
        return DEFAULT_SECONDS
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"VIGIL_HEAP_TRIM_SECONDS must be a number of seconds (0 to turn trimming off), got {raw!r}")
    if value < 0:
        raise ValueError(f"VIGIL_HEAP_TRIM_SECONDS must be 0 or more, got {raw!r}")
    return value


@functools.lru_cache(maxsize=1)
def trimmer() -> Callable[[], bool] | None:
    """glibc's malloc_trim(0) as a callable returning whether memory was released, or None
    where there is no glibc (musl, macOS)."""
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name)
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return lambda: bool(trim(0))
