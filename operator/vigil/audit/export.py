"""Export a ModelDeployment's audit chain as JSON lines, and verify such an export offline.

Line 1 is a header: what was exported and what the ModelDeployment's status said then
(`statusHead`, `statusSeq`). Each further line is one record, in seq order. Nothing in the
file is trusted by the verifier: the records carry the operator's signatures, the status head
is checked against them, and truncation below the status head is caught by signed checkpoints
the reviewer obtains from the sink, not from this file.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from vigil.audit.checkpoint import Checkpoint
from vigil.audit.signing import key_id
from vigil.audit.verify import ChainReport, Finding, verify_chain

EXPORT_KIND = "vigil.dev/AuditExport"
FORMAT_VERSION = 1
_HEADER_FIELDS: dict[str, tuple[type, ...]] = {
    "kind": (str,), "formatVersion": (int,), "namespace": (str,), "modelDeployment": (str,), "uid": (str,),
    "statusHead": (str, type(None)), "statusSeq": (int, type(None)), "keyId": (str, type(None)), "exportedAt": (str,),
}


class ExportError(ValueError):
    """An export file that cannot be read as one (the message names the line and the field)."""


@dataclass(frozen=True)
class Export:
    header: dict[str, Any]
    records: list[dict[str, Any]]


def build_export(md: dict[str, Any], records: Sequence[dict[str, Any]], exported_at: str) -> Export:
    """The export of `md`'s chain: `records` are the specs of its AuditRecords (any order)."""
    meta, status = md["metadata"], md.get("status") or {}
    ordered = sorted(records, key=lambda r: int(r.get("seq", 0)))
    signed_by = next((r["keyId"] for r in reversed(ordered) if r.get("keyId")), None)
    header = {
        "kind": EXPORT_KIND, "formatVersion": FORMAT_VERSION,
        "namespace": meta["namespace"], "modelDeployment": meta["name"], "uid": meta["uid"],
        "statusHead": status.get("auditHead"), "statusSeq": status.get("auditSeq"),
        "keyId": signed_by, "exportedAt": exported_at,
    }
    return Export(header, list(ordered))


def write_export(export: Export, out: TextIO) -> None:
    items = (export.header, *export.records)
    out.writelines(json.dumps(item, sort_keys=True, separators=(",", ":")) + "\n" for item in items)


def read_export(path: str | Path) -> Export:
    """Parse an export file; a malformed line or header field is named in the error."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise ExportError(f"{path}: cannot be read ({err.strerror or err})") from err
    items: list[tuple[int, Any]] = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            items.append((n, json.loads(line)))
        except json.JSONDecodeError as err:
            raise ExportError(f"{path}:{n}: not a JSON line ({err.msg})") from err
    if not items:
        raise ExportError(f"{path}: empty; an export starts with a header line of kind {EXPORT_KIND}")
    n, header = items[0]
    if not isinstance(header, dict) or header.get("kind") != EXPORT_KIND:
        raise ExportError(f"{path}:{n}: the first line must be a header with kind {EXPORT_KIND!r}")
    for name, kinds in _HEADER_FIELDS.items():
        value = header.get(name)
        if not isinstance(value, kinds) or isinstance(value, bool):
            allowed = " or ".join("null" if k is type(None) else k.__name__ for k in kinds)
            raise ExportError(f"{path}:{n}: header field {name!r} must be {allowed}, got {value!r}")
    if header["formatVersion"] != FORMAT_VERSION:
        raise ExportError(f"{path}:{n}: header field 'formatVersion' is {header['formatVersion']}; "
                          f"this vigil reads version {FORMAT_VERSION}")
    records = []
    for n, item in items[1:]:
        if not isinstance(item, dict):
            raise ExportError(f"{path}:{n}: a record line must be a JSON object")
        records.append(item)
    return Export(header, records)


def verify_export(export: Export, public_key: Ed25519PublicKey, checkpoints: Sequence[Checkpoint] = ()) -> ChainReport:
    """Verify an export with no cluster access: every record signed by `public_key`, in order,
    linked, bound to the header's UID, ending where the status head and the checkpoints say."""
    h = export.header
    report = verify_chain(export.records, h["statusHead"], public_key=public_key, checkpoints=checkpoints,
                          expected_seq=h["statusSeq"], uid=h["uid"], model_deployment=h["modelDeployment"],
                          ordered=True)
    want = key_id(public_key)
    if h["keyId"] is not None and h["keyId"] != want:
        extra = Finding("key", f"the export says its records are signed by {h['keyId']}, the given public key is {want}")
        report = replace(report, ok=False, problems=(str(extra), *report.problems), findings=(extra, *report.findings))
    return report
