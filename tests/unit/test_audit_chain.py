"""The audit hash chain: records link to their predecessor, and any edit, gap or truncation shows."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from vigil.audit import chain


def build(n: int) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for seq in range(1, n + 1):
        prev = records[-1]["hash"] if records else None
        records.append(chain.next_record(prev, seq, action="step", phase="Canary", weight=10.0 * seq,
                                         evidence={"analysis": {"verdicts": [{"metric": "errorRate",
                                                                              "effect": 0.5, "note": None}]}}))
    return records


def test_a_chain_links_each_record_to_the_one_before() -> None:
    records = build(3)
    assert records[0]["prevHash"] == chain.GENESIS
    assert [r["prevHash"] for r in records[1:]] == [r["hash"] for r in records[:-1]]
    assert all(r["hash"].startswith("sha256:") for r in records)
    report = chain.verify(records, expected_head=records[-1]["hash"])
    assert report.ok and report.records == 3 and report.head == records[-1]["hash"]
    assert report.summary().startswith("OK: 3 records")


def test_order_of_listing_does_not_matter() -> None:
    records = build(4)
    assert chain.verify(list(reversed(records))).ok


def test_a_record_as_the_apiserver_returns_it_still_verifies() -> None:
    """1.0 comes back as 1 and null fields are dropped: the hash is over that normal form."""
    record = chain.next_record(None, 1, weight=50.0, message=None, nested={"x": 2.0, "y": None})
    assert record["weight"] == 50 and isinstance(record["weight"], int)
    assert "message" not in record and record["nested"] == {"x": 2}
    as_returned = {**record, "weight": 50, "nested": {"x": 2}}
    assert chain.verify([as_returned]).ok
    assert chain.canonical(record) == chain.canonical({**record, "hash": "anything"})


@pytest.mark.parametrize("tamper, complaint", [
    (lambda rs: rs[1].update(weight=99), "edited: record 2 was edited"),
    (lambda rs: rs[1]["evidence"]["analysis"]["verdicts"][0].update(effect=0.01), "edited: record 2 was edited"),
    (lambda rs: rs[2].update(prevHash=rs[0]["hash"]), "record 3 links to"),
    (lambda rs: rs.pop(1), "removed: record 2 missing"),
])
def test_tampering_is_detected_and_named(tamper: Any, complaint: str) -> None:
    records = copy.deepcopy(build(3))
    tamper(records)
    report = chain.verify(records)
    assert not report.ok
    assert any(complaint in p for p in report.problems), report.problems
    assert report.summary().startswith("BROKEN")


def test_a_resealed_edit_breaks_the_next_link() -> None:
    """Recomputing the edited record's hash does not help: its successor still points at the old one."""
    records = copy.deepcopy(build(3))
    records[1] = chain.seal({**records[1], "weight": 99})
    report = chain.verify(records)
    assert not report.ok and any("record 3 links to" in p for p in report.problems)


def test_truncation_is_caught_by_the_head_in_status() -> None:
    records = build(3)
    report = chain.verify(records[:2], expected_head=records[-1]["hash"])
    assert not report.ok and "status points at" in report.problems[-1]


def test_an_empty_chain() -> None:
    report = chain.verify([])
    assert report.ok and report.records == 0 and report.head is None
    assert not chain.verify([], expected_head="sha256:abc").ok
