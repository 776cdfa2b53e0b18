"""Hash chain of audit records: build the next record, verify a chain. Pure: no I/O.

A record's `hash` is sha256 over its canonical JSON without `hash` and `signature` (so `keyId`
is covered). When a signer is configured, `signature` is the signer's Ed25519 signature of
`record_message(hash)`: signing the hash signs the whole content, and the domain prefix keeps a
record signature from ever being valid for anything else (a checkpoint, say).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from vigil.audit.checkpoint import Checkpoint
    from vigil.audit.verify import ChainReport

GENESIS = "genesis"
UNHASHED = ("hash", "signature")
RECORD_DOMAIN = b"vigil.dev/audit-record/v1\n"


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
    """The bytes that are hashed: normalized, sorted keys, no whitespace, `hash` and
    `signature` left out (the signature is over the hash)."""
    body = {k: v for k, v in normalize(record).items() if k not in UNHASHED}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()


def seal(record: dict[str, Any]) -> dict[str, Any]:
    """Return `record`, normalized, with its `hash` set."""
    record = normalize(record)
    return {**record, "hash": "sha256:" + hashlib.sha256(canonical(record)).hexdigest()}


class RecordSigner(Protocol):
    """Signs records with a key the operator alone holds (implemented in `vigil.audit.signing`)."""

    key_id: str

    def sign(self, message: bytes) -> str: ...


def record_message(record_hash: str) -> bytes:
    """The bytes a record's signature is over: a domain prefix and the record's hash."""
    return RECORD_DOMAIN + record_hash.encode()


def next_record(prev_hash: str | None, seq: int, *, signer: RecordSigner | None = None, **fields: Any) -> dict[str, Any]:
    """The sealed record `seq` that follows `prev_hash`; with a signer it carries `keyId` (hashed)
    and `signature` (of `record_message(hash)`)."""
    body = {k: v for k, v in fields.items() if k not in UNHASHED and k != "keyId"}
    body.update(seq=seq, prevHash=prev_hash or GENESIS)
    if signer is not None:
        body["keyId"] = signer.key_id
    record = seal(body)
    if signer is not None:
        record["signature"] = signer.sign(record_message(record["hash"]))
    return record


def verify(records: Iterable[dict[str, Any]], expected_head: str | None = None, *,
           public_key: Ed25519PublicKey | None = None, checkpoints: Sequence[Checkpoint] = (),
           expected_seq: int | None = None, uid: str | None = None, model_deployment: str | None = None,
           ordered: bool = False) -> ChainReport:
    """Verify a chain: hashes, links, seq, owner, signatures, status head and checkpoints; each
    problem is named by kind (see `vigil.audit.verify`)."""
    from vigil.audit.verify import verify_chain

    return verify_chain(records, expected_head, public_key=public_key, checkpoints=checkpoints,
                        expected_seq=expected_seq, uid=uid, model_deployment=model_deployment, ordered=ordered)
