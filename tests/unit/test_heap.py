"""Free heap memory goes back to the system: the trim the operator runs now and then."""

from __future__ import annotations

import asyncio
import platform
from pathlib import Path

import pytest
from vigil.handlers import operator as handlers
from vigil.observability import heap


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(platform.system() != "Linux" or heap.trimmer() is None, reason="glibc's malloc_trim")
def test_a_trim_returns_the_free_pages_between_live_objects() -> None:
    """What a pass's churn leaves behind: mid-sized blocks freed between ones still held. The
    trim threshold never reaches them (they are not at the top of the heap); the trim does."""
    trim = heap.trimmer()
    assert trim is not None
    trim()
    blocks = [bytearray(4000) for _ in range(16_000)]  # about 64 MiB from malloc (beyond pymalloc's 512 B)
    held = blocks[::16]  # one block in 16 stays: 15 free blocks (60 KB) between live ones
    del blocks
    before = rss_mib()
    assert trim()
    after = rss_mib()
    assert before - after > 20, (before, after)
    assert len(held) == 1000


@pytest.mark.parametrize("raw, wanted", [("", heap.DEFAULT_SECONDS), ("0", 0.0), ("12.5", 12.5)])
def test_the_trim_interval_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch, raw: str, wanted: float) -> None:
    monkeypatch.setenv("VIGIL_HEAP_TRIM_SECONDS", raw)
    assert heap.interval() == wanted


@pytest.mark.parametrize("raw", ["soon", "-1"])
def test_a_bad_trim_interval_names_the_variable(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("VIGIL_HEAP_TRIM_SECONDS", raw)
    with pytest.raises(ValueError, match="VIGIL_HEAP_TRIM_SECONDS"):
        heap.interval()


@pytest.mark.parametrize("every, trims", [(0.0, False), (0.01, True)])
def test_the_operators_ticker_trims_when_asked(monkeypatch: pytest.MonkeyPatch, every: float, trims: bool) -> None:
    calls: list[int] = []
    monkeypatch.setattr(heap, "trimmer", lambda: (lambda: calls.append(1) or True))
    monkeypatch.setattr(handlers, "TICK_SECONDS", 0.01)

    async def run() -> None:
        task = asyncio.create_task(handlers._tick(every))
        # 20 ticks at least; on a loaded host, up to 10 s for the second trim (not a fixed 0.2 s,
        # which a busy machine can spend on one tick)
        await asyncio.sleep(0.2)
        for _ in range(980):
            if not trims or len(calls) >= 2:
                break
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run())
    assert bool(calls) is trims
    if trims:
        assert len(calls) >= 2  # again and again, not once


def test_without_glibc_there_is_nothing_to_trim(monkeypatch: pytest.MonkeyPatch) -> None:
    heap.trimmer.cache_clear()
    monkeypatch.setattr(heap.ctypes.util, "find_library", lambda _: None)
    try:
        assert heap.trimmer() is None
    finally:
        heap.trimmer.cache_clear()
