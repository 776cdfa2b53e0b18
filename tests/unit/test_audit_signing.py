"""Signed audit chains verified offline: each kind of tampering is detected and named.

A reviewer holds only the operator's public key, an export and the checkpoints. What an
attacker with RBAC on AuditRecords and status can do (edit, remove, reorder, plant, truncate,
re-point) must each show as its own finding.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from vigil.audit import chain
from vigil.audit.checkpoint import Checkpoint, FileSink, make_checkpoint
from vigil.audit.export import (
    Export,
    ExportError,
    build_export,
    read_export,
    verify_export,
    write_export,
)
from vigil.audit.signing import (
    KEY_FILE_ENV,
    Signer,
    SigningKeyError,
    generate,
    key_id,
    load_public_key,
    load_signer,
    load_signer_from_env,
)
from vigil.cli.main import main
from vigil.handlers.checkpoints import checkpoint_if_moved

UID = "0f6c1d2e-1111-4222-8333-444455556666"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Any:
    out = tmp_path_factory.mktemp("keys") / "k"
    files = generate(out)
    return files


def build(signer: Signer | None, n: int = 4, uid: str = UID) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for seq in range(1, n + 1):
        prev = records[-1]["hash"] if records else None
        records.append(chain.next_record(prev, seq, signer=signer, modelDeployment="fraud", uid=uid,
                                         time=f"2024-05-01T10:0{seq}:00Z", action="step", phase="Canary",
                                         weight=10.0 * seq, evidence={"analysis": {"effect": 0.5}}))
    return records


def md(records: list[dict[str, Any]], uid: str = UID) -> dict[str, Any]:
    last = records[-1]
    return {"metadata": {"namespace": "ml", "name": "fraud", "uid": uid},
            "status": {"auditHead": last["hash"], "auditSeq": last["seq"]}}


def test_a_signed_record_carries_the_key_id_and_a_signature_over_its_hash(keys: Any) -> None:
    signer = load_signer(keys.private)
    rec = build(signer, 1)[0]
    assert rec["keyId"] == signer.key_id == key_id(load_public_key(keys.public))
    assert rec["keyId"].startswith("ed25519:") and len(rec["keyId"]) == len("ed25519:") + 16
    assert chain.canonical(rec) == chain.canonical({**rec, "signature": "x"})  # the signature is not hashed
    assert chain.canonical(rec) != chain.canonical({**rec, "keyId": "ed25519:0000000000000000"})  # the key id is
    report = chain.verify([rec], public_key=signer.public_key)
    assert report.ok, report.problems


def test_a_valid_signed_chain_passes_with_its_status_head(keys: Any) -> None:
    signer = load_signer(keys.private)
    records = build(signer)
    report = chain.verify(records, records[-1]["hash"], expected_seq=4, uid=UID, public_key=signer.public_key)
    assert report.ok and report.records == 4
    assert report.summary() == (f"OK: 4 records, chain intact, head {records[-1]['hash']}, "
                                f"every record signed by {signer.key_id}")


def test_another_key_fails(keys: Any, tmp_path: Path) -> None:
    other = generate(tmp_path / "other")
    records = build(load_signer(keys.private))
    report = chain.verify(records, public_key=load_public_key(other.public))
    assert not report.ok and report.kinds() == {"planted"}
    assert f"not by {other.key_id}" in report.problems[0]


def test_an_unsigned_record_fails_when_a_key_is_given(keys: Any) -> None:
    signer = load_signer(keys.private)
    records = build(signer, 3)
    unsigned = chain.next_record(records[-1]["hash"], 4, modelDeployment="fraud", uid=UID, action="step",
                                 phase="Canary", time="2024-05-01T11:00:00Z")
    report = chain.verify([*records, unsigned], public_key=signer.public_key)
    assert not report.ok and report.kinds() == {"unsigned"}
    assert "record 4 carries no signature" in report.problems[0]
    assert chain.verify([*records, unsigned]).ok  # without a key only the hashes are checked


def _other_signer(tmp: Path) -> Signer:
    return load_signer(generate(tmp).private)


def edited(rs: list[dict[str, Any]], _tmp: Path) -> None:
    rs[1]["weight"] = 99


def removed(rs: list[dict[str, Any]], _tmp: Path) -> None:
    del rs[1]


def reordered(rs: list[dict[str, Any]], _tmp: Path) -> None:
    rs[1], rs[2] = rs[2], rs[1]


def planted(rs: list[dict[str, Any]], tmp: Path) -> None:
    """Someone with their own key writes a second record 3 that links correctly."""
    rs.insert(2, chain.next_record(rs[1]["hash"], 3, signer=_other_signer(tmp), modelDeployment="fraud", uid=UID,
                                   action="promote", phase="Succeeded", time="2024-05-01T10:03:30Z"))


def truncated(rs: list[dict[str, Any]], _tmp: Path) -> None:
    del rs[2:]


@pytest.mark.parametrize("tamper, kind, words", [
    (edited, "edited", "record 2 was edited"),
    (removed, "removed", "record 2 missing"),
    (reordered, "reordered", "record 2 is listed after record 3"),
    (planted, "planted", "2 records claim seq 3"),
    (truncated, "truncated", "chain ends at record 2 but the ModelDeployment status points at record 4"),
])
def test_each_tampering_of_an_export_is_detected_and_named(keys: Any, tmp_path: Path, tamper: Callable[..., None],
                                                           kind: str, words: str) -> None:
    signer = load_signer(keys.private)
    records = build(signer)
    export = build_export(md(records), records, "2024-05-02T00:00:00Z")
    assert verify_export(export, signer.public_key).ok
    tampered = copy.deepcopy(export.records)
    tamper(tampered, tmp_path / "attacker")
    report = verify_export(Export(export.header, tampered), signer.public_key)
    assert not report.ok
    assert kind in report.kinds(), report.problems
    assert any(p.startswith(kind + ":") and words in p for p in report.problems), report.problems


def test_a_re_pointed_head_is_detected(keys: Any) -> None:
    """status.auditHead moved back to record 2, while the records go on to 4."""
    signer = load_signer(keys.private)
    records = build(signer)
    header = {**build_export(md(records), records, "t").header, "statusHead": records[1]["hash"], "statusSeq": 2}
    report = verify_export(Export(header, records), signer.public_key)
    assert report.kinds() == {"re-pointed"}
    assert "status.auditHead points at record 2, but the chain goes on to record 4" in report.problems[0]
    foreign = {**header, "statusHead": "sha256:" + "0" * 64, "statusSeq": 3}
    report = verify_export(Export(foreign, records), signer.public_key)
    assert report.kinds() == {"re-pointed"} and "is not the hash of record 3" in report.problems[0]


def test_a_truncation_that_also_re_points_status_is_caught_by_a_signed_checkpoint(keys: Any) -> None:
    signer = load_signer(keys.private)
    records = build(signer)
    cp = make_checkpoint(signer, namespace="ml", model_deployment="fraud", uid=UID, seq=4, head=records[3]["hash"],
                         time="2024-05-01T10:05:00Z")
    cut = records[:2]
    export = build_export(md(cut), cut, "t")  # status agrees with the cut chain: only the checkpoint knows
    assert verify_export(export, signer.public_key).ok
    report = verify_export(export, signer.public_key, [cp])
    assert report.kinds() == {"truncated"}
    assert "signed checkpoint of 2024-05-01T10:05:00Z has record 4" in report.problems[0]
    assert verify_export(build_export(md(records), records, "t"), signer.public_key, [cp]).checkpoints == 1


def test_a_forged_or_foreign_checkpoint_is_reported_and_not_trusted(keys: Any, tmp_path: Path) -> None:
    signer = load_signer(keys.private)
    records = build(signer)
    real = make_checkpoint(signer, namespace="ml", model_deployment="fraud", uid=UID, seq=4, head=records[3]["hash"],
                           time="t1")
    forged = Checkpoint(**{**real.__dict__, "seq": 9})
    by_other = make_checkpoint(_other_signer(tmp_path / "o"), namespace="ml", model_deployment="fraud", uid=UID,
                               seq=9, head="sha256:x", time="t2")
    report = chain.verify(records, public_key=signer.public_key, checkpoints=[real, forged, by_other])
    assert report.kinds() == {"checkpoint"} and len(report.findings) == 2 and report.checkpoints == 1


def test_a_rewritten_chain_differs_from_its_checkpoint(keys: Any) -> None:
    signer = load_signer(keys.private)
    records = build(signer)
    cp = make_checkpoint(signer, namespace="ml", model_deployment="fraud", uid=UID, seq=3, head="sha256:" + "1" * 64,
                         time="t")
    report = chain.verify(records, public_key=signer.public_key, checkpoints=[cp])
    assert report.kinds() == {"rewritten"} and "record 3 has hash" in report.problems[0]


def test_a_record_of_another_modeldeployment_is_planted(keys: Any) -> None:
    signer = load_signer(keys.private)
    records = build(signer, 3)
    other = build(signer, 3, uid="99999999-0000-0000-0000-000000000000")
    report = chain.verify([*records[:2], other[2]], public_key=signer.public_key, uid=UID)
    assert "planted" in report.kinds() and "belongs to uid" in report.summary()


def test_a_resealed_edit_without_the_key_is_planted(keys: Any) -> None:
    signer = load_signer(keys.private)
    records = build(signer)
    records[1] = chain.seal({**records[1], "weight": 99})
    report = chain.verify(records, public_key=signer.public_key)
    assert {"planted", "edited"} <= report.kinds()
    assert any("record 2's signature does not verify" in p for p in report.problems)


# ----------------------------------------------------------------- keys and files
def test_keygen_writes_a_private_key_readable_by_its_owner_only(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                ) -> None:
    old = os.umask(0)  # even with a permissive umask the key is never readable by others
    try:
        assert main(["audit", "keygen", "--out", str(tmp_path / "keys")]) == 0
    finally:
        os.umask(old)
    private, public = tmp_path / "keys" / "private.pem", tmp_path / "keys" / "public.pem"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    out = capsys.readouterr().out
    assert f"kubectl create secret generic vigil-audit-signing-key -n vigil-system --from-file=private.pem={private}" in out
    assert load_signer(private).key_id == key_id(load_public_key(public)) and key_id(load_public_key(public)) in out
    assert main(["audit", "keygen", "--out", str(tmp_path / "keys")]) == 2  # never overwrites a key
    assert "exists already" in capsys.readouterr().err


def test_bad_key_files_are_named(tmp_path: Path, keys: Any) -> None:
    (tmp_path / "junk.pem").write_text("not a key")
    with pytest.raises(SigningKeyError, match="junk.pem: not an unencrypted PEM private key"):
        load_signer(tmp_path / "junk.pem")
    with pytest.raises(SigningKeyError, match="missing.pem: cannot be read"):
        load_signer(tmp_path / "missing.pem")
    with pytest.raises(SigningKeyError, match="looks like a private key: give public.pem"):
        load_public_key(keys.private)
    assert load_signer_from_env({}) is None and load_signer_from_env({KEY_FILE_ENV: " "}) is None
    from_env = load_signer_from_env({KEY_FILE_ENV: str(keys.private)})
    assert from_env is not None and from_env.key_id == load_signer(keys.private).key_id
    with pytest.raises(SigningKeyError, match="missing.pem"):
        load_signer_from_env({KEY_FILE_ENV: str(tmp_path / "missing.pem")})
    assert load_signer_from_env({KEY_FILE_ENV: str(tmp_path / "missing.pem")}, missing_ok=True) is None
    with pytest.raises(SigningKeyError, match="junk.pem"):  # optional means absent, never broken
        load_signer_from_env({KEY_FILE_ENV: str(tmp_path / "junk.pem")}, missing_ok=True)
    assert "PRIVATE" not in repr(load_signer(keys.private))


def test_file_sink_appends_with_private_modes_and_rejects_path_uids(tmp_path: Path, keys: Any) -> None:
    signer = load_signer(keys.private)
    sink = FileSink(tmp_path / "cp")
    first = make_checkpoint(signer, namespace="ml", model_deployment="fraud", uid=UID, seq=1, head="sha256:a", time="t1")
    second = make_checkpoint(signer, namespace="ml", model_deployment="fraud", uid=UID, seq=2, head="sha256:b", time="t2")
    sink.write(first)
    sink.write(second)
    assert sink.read(UID) == [first, second] and sink.read("0000") == []
    assert stat.S_IMODE((tmp_path / "cp").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "cp" / f"{UID}.jsonl").stat().st_mode) == 0o600
    with pytest.raises(ValueError, match="only letters, digits and '-'"):
        sink.read("../etc/passwd")


def test_the_checkpoint_writer_only_moves_forward(tmp_path: Path, keys: Any) -> None:
    signer = load_signer(keys.private)
    sink = FileSink(tmp_path)
    meta = {"namespace": "ml", "name": "fraud", "uid": UID}
    now = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
    assert checkpoint_if_moved(sink, signer, meta, {}, None, now) is None  # nothing recorded yet
    last = checkpoint_if_moved(sink, signer, meta, {"auditSeq": 3, "auditHead": "sha256:c"}, None, now)
    assert last is not None and last.seq == 3
    assert checkpoint_if_moved(sink, signer, meta, {"auditSeq": 3, "auditHead": "sha256:c"}, last, now) is last
    assert checkpoint_if_moved(sink, signer, meta, {"auditSeq": 2, "auditHead": "sha256:b"}, last, now) is last
    newer = checkpoint_if_moved(sink, signer, meta, {"auditSeq": 5, "auditHead": "sha256:e"}, last, now)
    assert [c.seq for c in sink.read(UID)] == [3, 5] and newer == sink.read(UID)[-1]


# ----------------------------------------------------------------- the CLI offline
def test_offline_cli_verifies_an_export_and_names_a_tampering(tmp_path: Path, keys: Any,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    signer = load_signer(keys.private)
    records = build(signer)
    path = tmp_path / "fraud.jsonl"
    with path.open("w") as f:
        write_export(build_export(md(records), records, "2024-05-02T00:00:00Z"), f)
    assert read_export(path).records == records
    args = ["audit", "verify", "--offline", str(path), "--public-key", str(keys.public)]
    assert main(args) == 0 and capsys.readouterr().out.startswith("OK: 4 records")
    lines = path.read_text().splitlines()
    body = json.loads(lines[3])
    body["weight"] = 5
    lines[3] = json.dumps(body)
    path.write_text("\n".join(lines) + "\n")
    assert main(args) == 1
    assert "edited: record 3 was edited" in capsys.readouterr().out


def test_offline_cli_bad_input_is_named(tmp_path: Path, keys: Any, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"kind": "vigil.dev/AuditExport", "formatVersion": 1}\n')
    assert main(["audit", "verify", "--offline", str(bad), "--public-key", str(keys.public)]) == 2
    assert "header field 'namespace' must be str" in capsys.readouterr().err
    assert main(["audit", "verify", "--offline", str(bad)]) == 2
    assert "--offline needs --public-key" in capsys.readouterr().err
    assert main(["audit", "verify", "--offline", str(bad), "--checkpoints", str(tmp_path)]) == 2
    assert "--checkpoints needs --public-key" in capsys.readouterr().err
    with pytest.raises(ExportError, match="not a JSON line"):
        (tmp_path / "x").write_text("{\n")
        read_export(tmp_path / "x")


def test_the_checkpoint_interval_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    from vigil.handlers.checkpoints import SECONDS_ENV, interval_seconds

    monkeypatch.delenv(SECONDS_ENV, raising=False)
    assert interval_seconds() == 300
    monkeypatch.setenv(SECONDS_ENV, "2.5")
    assert interval_seconds() == 2.5
    for bad in ("0", "-1", "soon", "nan", "inf"):
        monkeypatch.setenv(SECONDS_ENV, bad)
        with pytest.raises(ValueError, match=f"VIGIL_AUDIT_CHECKPOINT_SECONDS must be a number of seconds > 0, got {bad!r}"):
            interval_seconds()
