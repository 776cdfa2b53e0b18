"""Returning freed heap memory (vigil.handlers.heap): when it trims, its setting, and that a
trim really gives memory back under the chart's allocator settings."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from vigil.handlers import heap

OPERATOR = Path(__file__).resolve().parents[2] / "operator"


def test_trims_at_most_once_per_interval() -> None:
    calls: list[int] = []
    trimmer = heap.HeapTrimmer(lambda pad: calls.append(pad) or 1, every=30.0)
    assert [trimmer.run(t) for t in (0.0, 10.0, 29.9, 30.0, 45.0, 61.0)] == [True, False, False, True, False, True]
    assert calls == [0, 0, 0]


@pytest.mark.parametrize("trim, every", [(None, 30.0), (lambda pad: 1, 0.0)])
def test_no_trim_function_or_zero_interval_never_trims(trim, every) -> None:  # type: ignore[no-untyped-def]
    trimmer = heap.HeapTrimmer(trim, every)
    assert not trimmer.enabled
    assert not trimmer.run(0.0) and not trimmer.run(1000.0)


def test_a_failing_trim_does_not_raise() -> None:
    def broken(pad: int) -> int:
        raise OSError("no")

    trimmer = heap.HeapTrimmer(broken, every=1.0)
    assert trimmer.run(0.0) is False
    assert trimmer.run(0.5) is False and trimmer.last == 0.0  # not retried before its interval


def test_the_interval_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VIGIL_HEAP_TRIM_SECONDS", raising=False)
    assert heap.interval() == heap.DEFAULT_SECONDS
    monkeypatch.setenv("VIGIL_HEAP_TRIM_SECONDS", "0")
    assert heap.interval() == 0.0
    monkeypatch.setenv("VIGIL_HEAP_TRIM_SECONDS", "120")
    assert heap.interval() == 120.0
    for bad in ("-1", "often", "inf"):
        monkeypatch.setenv("VIGIL_HEAP_TRIM_SECONDS", bad)
        with pytest.raises(ValueError, match="VIGIL_HEAP_TRIM_SECONDS must be a number of seconds >= 0"):
            heap.interval()


@pytest.mark.skipif(heap.find_trim() is None, reason="this C library has no malloc_trim (not glibc)")
def test_a_trim_returns_the_holes_parsed_objects_leave() -> None:
    """What the operator's heap looks like: many parsed ModelDeployments, one in ten kept (kopf's
    copies), the rest freed (a pass's GET and PATCH answers). The freed memory stays in the
    process until the trim, which returns most of it."""
    script = textwrap.dedent("""
        import json, sys
        from vigil.handlers import heap

        def rss_kib():
            for line in open("/proc/self/status"):
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])

        doc = json.dumps({"status": {"verdicts": [{"metric": f"m{i}", "figures": {str(k): k * 0.5 for k in range(40)},
                                                   "explanation": "x" * 200} for i in range(7)]}})
        parsed = [json.loads(doc) for _ in range(6000)]
        kept = parsed[::10]
        del parsed
        before = rss_kib()
        assert heap.HeapTrimmer(heap.find_trim(), 30.0).run(0.0)
        print(before, rss_kib(), len(kept))
    """)
    env = {**os.environ, "PYTHONPATH": str(OPERATOR), "PYTHONMALLOC": "malloc", "MALLOC_ARENA_MAX": "2",
           "MALLOC_TRIM_THRESHOLD_": "65536", "MALLOC_MMAP_THRESHOLD_": "65536"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    before, after, _ = (int(x) for x in out.stdout.split())
    assert before - after > 50 * 1024, f"RSS {before} KiB before the trim, {after} KiB after"
