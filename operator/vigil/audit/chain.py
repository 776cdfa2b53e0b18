"""Hash chain of audit records: build the next record, verify a chain. Pure: no I/O."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Iterable, Protocol

GENESIS = "genesis"


def normalize(value: Any) -> Any:
    """JSON as the apiserver hands it back: a float with no fraction comes back as an integer
    (1.0 -> 1), so hash that form; None-valued keys are dropped for the same reason."""
    if isinstance(value, dict):
        return {str(k): normalize(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [normalize(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def canonical(record: dict[str, Any]) -> bytes:
    """The bytes that are hashed: normalized, sorted keys, no whitespace, `hash` left out."""
    body = {k: v for k, v in normalize(record).items() if k != "hash"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()


def seal(record: dict[str, Any]) -> dict[str, Any]:
    """Return `record`, normalized, with its `hash` set."""
    record = normalize(record)
    return {**record, "hash": "sha256:" + hashlib.sha256(canonical(record)).hexdigest()}


class RecordSigner(Protocol):
    """Signs records with a key the operator alone holds (implemented in `vigil.audit.signing`)."""

    key_id: str

    def sign(self, message: bytes) -> str: ...


def next_record(prev_hash: str | None, seq: int, *, signer: RecordSigner | None = None, **fields: Any) -> dict[str, Any]:
    """The sealed record `seq` that follows `prev_hash` (signed when a signer is configured)."""
    return seal({**fields, "seq": seq, "prevHash": prev_hash or GENESIS})


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    records: int
    head: str | None
    problems: tuple[str, ...]

    def summary(self) -> str:
        if self.ok:
            return f"OK: {self.records} records, chain intact, head {self.head}"
        return f"BROKEN: {self.records} records; " + "; ".join(self.problems)


def verify(records: Iterable[dict[str, Any]], expected_head: str | None = None) -> ChainReport:
    """Check hashes, links and sequence numbers; `expected_head` is the hash status points at."""
    ordered = sorted(records, key=lambda r: int(r.get("seq", 0)))
    problems: list[str] = []
    prev = GENESIS
    for i, rec in enumerate(ordered, start=1):
        seq = rec.get("seq")
        if seq != i:
            problems.append(f"record {seq} found where {i} was expected (a record is missing)")
            break
        if rec.get("prevHash") != prev:
            problems.append(f"record {seq} links to {rec.get('prevHash')}, expected {prev}")
        if seal(rec)["hash"] != rec.get("hash"):
            problems.append(f"record {seq} was altered: its hash does not match its content")
        prev = rec.get("hash", "")
    head = ordered[-1]["hash"] if ordered else None
    if expected_head is not None and head != expected_head:
        problems.append(f"the chain ends at {head} but the ModelDeployment status points at {expected_head} "
                        "(records after the last one listed are missing)")
    return ChainReport(not problems, len(ordered), head, tuple(problems))
