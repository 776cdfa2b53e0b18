"""`bench/operator_scale_bench.py --write` refreshes its doc's table and keeps what was written by hand."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.operator_scale_bench import DOC, HAND_WRITTEN, write_doc

ARGS = argparse.Namespace(count=1000, replicas=1, hold=60.0, no_cache=False, history=20, analysis="recorded")
ROWS = [("reconcile-pass p99 (canaries in progress)", "455 ms", "< 1000 ms: met")]


def test_the_hand_written_sections_survive_a_write(tmp_path: Path) -> None:
    doc = tmp_path / "operator_scale.md"
    doc.write_text("# an old table\n| old | 999 ms | |\n" + HAND_WRITTEN + "## This run\nwhy the round is missed\n")
    write_doc(ARGS, ROWS, 164.0, 178.0, 1000, 1000, path=doc)
    text = doc.read_text()
    head, marker, kept = text.partition(HAND_WRITTEN)
    assert marker and kept == "## This run\nwhy the round is missed\n"
    assert "| reconcile-pass p99 (canaries in progress) | 455 ms | < 1000 ms: met |" in head
    assert "999 ms" not in text
    write_doc(ARGS, ROWS, 164.0, 178.0, 1000, 1000, path=doc)
    assert doc.read_text() == text  # a second write changes nothing


def test_a_first_write_starts_the_hand_written_part_empty(tmp_path: Path) -> None:
    doc = tmp_path / "new.md"
    write_doc(ARGS, ROWS, 164.0, 178.0, 1000, 1000, path=doc)
    assert doc.read_text().endswith(HAND_WRITTEN)


def test_the_shipped_doc_carries_the_marker() -> None:
    assert HAND_WRITTEN in DOC.read_text()
