"""Verify an audit chain, online or offline, and name what was done to it.

Each finding has a kind a reviewer can act on:

- `edited`: a record's content no longer matches its hash (or its successor's link);
- `removed`: a gap in the sequence;
- `reordered`: records listed out of order, or a record linking to another than its predecessor;
- `planted`: a record not signed by the given key, a second record with the same seq, or a
  record of another ModelDeployment (UID) in this chain;
- `unsigned`: a record without a signature although a public key was given;
- `truncated`: the chain ends before the head that status or a signed checkpoint names;
- `re-pointed`: `status.auditHead` names an earlier or a different record than the chain's end;
- `rewritten`: a record differs from the signed checkpoint of its seq;
- `checkpoint` / `key`: a checkpoint or an export header that does not verify under the key.

Pure: no I/O. Signatures are checked with `vigil.audit.signing`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from vigil.audit.chain import GENESIS, normalize, record_message, seal
from vigil.audit.checkpoint import Checkpoint
from vigil.audit.signing import key_id, verify_signature

KINDS = ("edited", "removed", "reordered", "planted", "unsigned", "truncated", "re-pointed", "rewritten",
         "checkpoint", "key")


@dataclass(frozen=True)
class Finding:
    kind: str
    message: str
    seq: int | None = None

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    records: int
    head: str | None
    problems: tuple[str, ...]
    findings: tuple[Finding, ...] = ()
    key_id: str | None = None
    checkpoints: int = 0  # signed checkpoints the chain was checked against
    head_seq: int | None = None

    def kinds(self) -> set[str]:
        return {f.kind for f in self.findings}

    def summary(self) -> str:
        if self.ok:
            signed = f", every record signed by {self.key_id}" if self.key_id and self.records else ""
            cps = f", consistent with {self.checkpoints} signed checkpoint(s)" if self.checkpoints else ""
            return f"OK: {self.records} records, chain intact, head {self.head}{signed}{cps}"
        return f"BROKEN: {self.records} records; " + "; ".join(self.problems)


@dataclass
class _Walk:
    findings: list[Finding] = field(default_factory=list)

    def add(self, kind: str, message: str, seq: int | None = None) -> None:
        self.findings.append(Finding(kind, message, seq))


def _seq(record: dict[str, Any]) -> int:
    seq = record.get("seq")
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else 0


def verify_chain(records: Iterable[dict[str, Any]], expected_head: str | None = None, *,
                 public_key: Ed25519PublicKey | None = None, checkpoints: Sequence[Checkpoint] = (),
                 expected_seq: int | None = None, uid: str | None = None, model_deployment: str | None = None,
                 ordered: bool = False) -> ChainReport:
    """Check one ModelDeployment's chain.

    `expected_head`/`expected_seq`: what `status.auditHead`/`auditSeq` say. `public_key`: every
    record must carry a valid signature by it. `checkpoints`: signed heads from the sink (those
    that do not verify under `public_key` are reported and ignored). `uid`/`model_deployment`:
    the chain's owner (else the one most records name). `ordered`: the records are in the
    order they were exported, so listing order counts too.
    """
    if checkpoints and public_key is None:
        raise ValueError("checkpoints can only be trusted with the public key that signed them: give public_key")
    listed = [normalize(r) for r in records]
    walk = _Walk()
    if ordered:
        _check_listing_order(listed, walk)
    _check_owner(listed, walk, "uid", uid)
    _check_owner(listed, walk, "modelDeployment", model_deployment)
    by_seq: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for rec in listed:
        by_seq[_seq(rec)].append(rec)
    for seq, group in sorted(by_seq.items()):
        if len(group) > 1:
            walk.add("planted", f"{len(group)} records claim seq {seq} (hashes "
                     + ", ".join(str(r.get("hash")) for r in group) + ")", seq)
    want_key = key_id(public_key) if public_key is not None else None
    for rec in sorted(listed, key=_seq):
        _check_record(rec, public_key, want_key, walk)
    chain = _walk_links(by_seq, walk)
    last = chain[-1] if chain else None
    head = last.get("hash") if last else None
    last_seq = _seq(last) if last else 0
    hashes = {r.get("hash"): _seq(r) for r in listed}
    _check_status_head(expected_head, expected_seq, head, last_seq, hashes, walk)
    trusted = _trusted_checkpoints(checkpoints, public_key, uid or _majority(listed, "uid"), walk)
    _check_checkpoints(trusted, {_seq(r): r for r in chain}, last_seq, walk)
    problems = tuple(str(f) for f in walk.findings)
    return ChainReport(not problems, len(listed), head, problems, tuple(walk.findings), want_key, len(trusted),
                       last_seq if last else None)


def _check_listing_order(listed: list[dict[str, Any]], walk: _Walk) -> None:
    for before, after in pairwise(listed):
        if _seq(after) < _seq(before):
            walk.add("reordered", f"record {_seq(after)} is listed after record {_seq(before)}", _seq(after))


def _majority(listed: list[dict[str, Any]], key: str) -> str | None:
    counts = Counter(r.get(key) for r in listed if r.get(key) is not None)
    return counts.most_common(1)[0][0] if counts else None


def _check_owner(listed: list[dict[str, Any]], walk: _Walk, key: str, expected: str | None) -> None:
    """Every record names the chain's ModelDeployment (a re-created one has another UID)."""
    owner = expected if expected is not None else _majority(listed, key)
    if owner is None:
        return
    for rec in listed:
        if rec.get(key) != owner:
            walk.add("planted", f"record {_seq(rec)} belongs to {key} {rec.get(key)!r}, not to this chain's {owner!r}",
                     _seq(rec))


def _check_record(rec: dict[str, Any], public_key: Ed25519PublicKey | None, want_key: str | None,
                  walk: _Walk) -> None:
    seq = _seq(rec)
    if seal(rec)["hash"] != rec.get("hash"):
        walk.add("edited", f"record {seq} was edited: its content does not match its hash", seq)
        return
    if public_key is None:
        return
    signature = rec.get("signature")
    if not signature:
        walk.add("unsigned", f"record {seq} carries no signature, so the operator's key did not write it", seq)
    elif rec.get("keyId") != want_key:
        walk.add("planted", f"record {seq} is signed by key {rec.get('keyId')!r}, not by {want_key}", seq)
    elif not verify_signature(public_key, record_message(str(rec["hash"])), str(signature)):
        walk.add("planted", f"record {seq}'s signature does not verify under {want_key} "
                 "(it was edited and resealed, or made by someone without the key)", seq)


def _walk_links(by_seq: dict[int, list[dict[str, Any]]], walk: _Walk) -> list[dict[str, Any]]:
    """Follow seq 1, 2, ... and prevHash links; return the chain walked (one record per seq)."""
    seq_of = {r.get("hash"): s for s, group in by_seq.items() for r in group}
    chain: list[dict[str, Any]] = []
    prev_hash, prev_seq = GENESIS, 0
    for seq in sorted(by_seq):
        group = by_seq[seq]
        rec = next((r for r in group if r.get("prevHash") == prev_hash), group[0])
        link = rec.get("prevHash")
        if seq != prev_seq + 1:
            gone = f"record {prev_seq + 1}" if seq == prev_seq + 2 else f"records {prev_seq + 1} to {seq - 1}"
            walk.add("removed", f"{gone} missing: the chain goes from record {prev_seq} to record {seq}", prev_seq + 1)
        elif link != prev_hash:
            if link in seq_of and seq_of[link] != prev_seq:
                walk.add("reordered", f"record {seq} links to record {seq_of[link]}, not to record {prev_seq}", seq)
            else:
                walk.add("edited", f"record {seq} links to {link}, but record {prev_seq} has hash {prev_hash} "
                         f"(record {prev_seq} was changed and resealed, or replaced)", seq)
        chain.append(rec)
        prev_hash, prev_seq = str(rec.get("hash")), seq
    return chain


def _check_status_head(expected_head: str | None, expected_seq: int | None, head: str | None, last_seq: int,
                       hashes: dict[Any, int], walk: _Walk) -> None:
    if expected_head is None:
        return
    if expected_head == head:
        if expected_seq is not None and expected_seq != last_seq:
            walk.add("re-pointed", f"status.auditSeq says {expected_seq}, but status.auditHead is record {last_seq}")
        return
    if expected_head in hashes:
        walk.add("re-pointed", f"status.auditHead points at record {hashes[expected_head]}, but the chain goes on "
                 f"to record {last_seq}", hashes[expected_head])
    elif expected_seq is not None and expected_seq <= last_seq:
        walk.add("re-pointed", f"status.auditHead {expected_head} (seq {expected_seq}) is not the hash of record "
                 f"{expected_seq}", expected_seq)
    else:
        at = f"record {expected_seq} ({expected_head})" if expected_seq is not None else expected_head
        walk.add("truncated", f"the chain ends at record {last_seq} but the ModelDeployment status points at {at}: "
                 "records after the last one listed are missing", last_seq + 1)


def _trusted_checkpoints(checkpoints: Sequence[Checkpoint], public_key: Ed25519PublicKey | None, uid: str | None,
                         walk: _Walk) -> list[Checkpoint]:
    if public_key is None:
        return []
    want_key = key_id(public_key)
    trusted = []
    for cp in checkpoints:
        if uid is not None and cp.uid != uid:
            continue
        if cp.keyId != want_key or not verify_signature(public_key, cp.message(), cp.signature):
            walk.add("checkpoint", f"the checkpoint of {cp.time} (record {cp.seq}) does not verify under {want_key}; "
                     "it was ignored", cp.seq)
            continue
        trusted.append(cp)
    return trusted


def _check_checkpoints(trusted: list[Checkpoint], chain: dict[int, dict[str, Any]], last_seq: int,
                       walk: _Walk) -> None:
    beyond = [cp for cp in trusted if cp.seq > last_seq]
    if beyond:
        cp = max(beyond, key=lambda c: c.seq)
        walk.add("truncated", f"the signed checkpoint of {cp.time} has record {cp.seq} (head {cp.head}), but the "
                 f"chain ends at record {last_seq}: records after {last_seq} are missing", cp.seq)
    for cp in trusted:
        rec = chain.get(cp.seq)
        if cp.seq <= last_seq and rec is not None and rec.get("hash") != cp.head:
            walk.add("rewritten", f"record {cp.seq} has hash {rec.get('hash')}, but the signed checkpoint of {cp.time} "
                     f"has {cp.head}: the chain was rewritten from there", cp.seq)
