"""Signed checkpoints of a chain's head, kept outside the cluster's write path.

Whoever may delete AuditRecords and patch status can cut a chain's tail and point
`status.auditHead` at what is left; nothing inside the cluster can tell. A checkpoint says,
signed, "on <time> the chain of <uid> had reached record <seq> with hash <head>", and it is
written where those users cannot write. A later chain that ends before a checkpoint, or
differs from it, was truncated or rewritten.

`CheckpointSink` is one object per checkpoint, written once and listed by UID, which is what
an S3 bucket with object lock (key `<uid>/<seq>-<time>.json`) offers as well as a directory.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from vigil.audit.chain import RecordSigner

CHECKPOINT_DOMAIN = b"vigil.dev/audit-checkpoint/v1\n"
_UID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,62}$")


@dataclass(frozen=True)
class Checkpoint:
    """The head of one ModelDeployment's chain at one time, signed by the operator's key."""

    namespace: str
    modelDeployment: str
    uid: str
    seq: int
    head: str
    time: str
    keyId: str
    signature: str

    def message(self) -> bytes:
        """The bytes the signature is over: a domain prefix and canonical JSON without `signature`."""
        return checkpoint_message(self.namespace, self.modelDeployment, self.uid, self.seq, self.head, self.time,
                                  self.keyId)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "checkpoint") -> Checkpoint:
        """Parse one checkpoint; a missing or mistyped field is named in the error."""
        types = {"namespace": str, "modelDeployment": str, "uid": str, "seq": int, "head": str, "time": str,
                 "keyId": str, "signature": str}
        for name, kind in types.items():
            value = data.get(name)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise ValueError(f"{where}: field {name!r} must be a {kind.__name__}, got {value!r}")  # noqa: TRY004 (bad data, not a bad call)
        return cls(**{name: data[name] for name in types})


def checkpoint_message(namespace: str, model_deployment: str, uid: str, seq: int, head: str, time: str,
                       key_id: str) -> bytes:
    body = {"namespace": namespace, "modelDeployment": model_deployment, "uid": uid, "seq": seq, "head": head,
            "time": time, "keyId": key_id}
    return CHECKPOINT_DOMAIN + json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def make_checkpoint(signer: RecordSigner, *, namespace: str, model_deployment: str, uid: str, seq: int, head: str,
                    time: str) -> Checkpoint:
    """A checkpoint of (seq, head) signed by `signer`."""
    message = checkpoint_message(namespace, model_deployment, uid, seq, head, time, signer.key_id)
    return Checkpoint(namespace, model_deployment, uid, seq, head, time, signer.key_id, signer.sign(message))


class CheckpointSink(Protocol):
    """Where checkpoints go: written once, never rewritten, read back by ModelDeployment UID."""

    def write(self, checkpoint: Checkpoint) -> None:
        """Store `checkpoint` durably (raise if it could not be stored)."""
        ...

    def read(self, uid: str) -> list[Checkpoint]:
        """Every checkpoint stored for `uid`, oldest first."""
        ...


class FileSink:
    """Checkpoints as JSON lines, one append-only file per UID (`<dir>/<uid>.jsonl`).

    The directory is created 0700 and the files 0600, from the start. Point it at storage the
    cluster's users cannot write (a volume only the operator mounts, synced off-cluster, or a
    filesystem with append-only attributes); the sink itself only ever appends.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def _path(self, uid: str) -> Path:
        if not _UID.match(uid):
            raise ValueError(f"checkpoint uid {uid!r}: only letters, digits and '-' are allowed (a Kubernetes UID)")
        return self.directory / f"{uid}.jsonl"

    def write(self, checkpoint: Checkpoint) -> None:
        path = self._path(checkpoint.uid)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_CREAT | os.O_APPEND | os.O_WRONLY, 0o600)
        try:
            os.write(fd, (checkpoint.to_json() + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def read(self, uid: str) -> list[Checkpoint]:
        path = self._path(uid)
        if not path.exists():
            return []
        return list(_parse_lines(path))


def _parse_lines(path: Path) -> Iterator[Checkpoint]:
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}:{n}"
            try:
                data = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{where}: not a JSON line ({err.msg})") from err
            if not isinstance(data, dict):
                raise ValueError(f"{where}: a checkpoint must be a JSON object")  # noqa: TRY004 (bad data)
            yield Checkpoint.from_dict(data, where)
