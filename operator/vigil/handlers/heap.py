"""Give freed heap memory back to the system now and then (glibc's `malloc_trim`).

Every pass parses its ModelDeployment twice (the GET, the status PATCH's answer) and kopf
parses it once more from the watch; with a real analysis in `status.lastAnalysis` each copy
is tens of KB of small objects. The copies kopf keeps live between those transient ones, so
the heap is full of holes the allocator reuses but never returns (glibc only trims the top of
the heap by itself). At 1000 ModelDeployments that was about 130 MiB of RSS that no object
used. `malloc_trim(0)` returns the free pages inside the heap too (MADV_DONTNEED); it runs in
C without the GIL and takes a few milliseconds, so a call every `$VIGIL_HEAP_TRIM_SECONDS`
(default 30, 0 turns it off) costs nothing a pass would notice.

Where the C library has no `malloc_trim` (musl, macOS) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from collections.abc import Callable

from vigil.handlers import env

log = logging.getLogger("vigil.heap")

DEFAULT_SECONDS = 30.0


def interval() -> float:
    """Seconds between trims from $VIGIL_HEAP_TRIM_SECONDS (0: never)."""
    return env.seconds("VIGIL_HEAP_TRIM_SECONDS", DEFAULT_SECONDS, allow_zero=True)


def find_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None where the C library has none."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        trim = libc.malloc_trim
    except (OSError, AttributeError, TypeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim  # type: ignore[no-any-return]


class HeapTrimmer:
    """Calls `trim(0)` when asked, at most once per `every` seconds of the caller's clock."""

    def __init__(self, trim: Callable[[int], int] | None, every: float) -> None:
        self.trim, self.every = trim, every
        self.last: float | None = None

    @property
    def enabled(self) -> bool:
        return self.trim is not None and self.every > 0

    def due(self, now: float) -> bool:
        return self.enabled and (self.last is None or now - self.last >= self.every)

    def run(self, now: float) -> bool:
        """Trim if due; returns whether it trimmed. Never raises: a failed trim only costs memory."""
        if not self.due(now):
            return False
        self.last = now
        try:
            assert self.trim is not None
            self.trim(0)
        except Exception as err:  # noqa: BLE001 - memory housekeeping must never stop the operator
            log.warning("malloc_trim failed: %s", err)
            return False
        return True
