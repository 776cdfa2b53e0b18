"""A signed chain from a real rollout, exported by the CLI and verified offline, then tampered.

The operator runs against the real apiserver with a signing key and the checkpoint daemon
writing to a local directory; a reviewer's view is the export file, the public key and that
directory, nothing else.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kopf.testing import KopfRunner
from vigil.audit import chain
from vigil.audit.checkpoint import FileSink
from vigil.audit.signing import KeyFiles, generate, load_signer
from vigil.cli.main import main
from vigil.handlers.checkpoints import DIR_ENV, SECONDS_ENV
from vigil.handlers.config import configure

from ..conftest import KubeHandle, wait_for
from .test_operator import Cluster, VersionMetrics, judge, policy_body


@pytest.fixture
def keys(tmp_path: Path) -> KeyFiles:
    return generate(tmp_path / "keys")


@pytest.fixture
def checkpoint_dir(tmp_path: Path) -> Path:
    return tmp_path / "checkpoints"


@pytest.fixture
def signing_operator(kube: KubeHandle, keys: KeyFiles, checkpoint_dir: Path) -> Iterator[KopfRunner]:
    os.environ["KUBECONFIG"] = str(kube.kubeconfig)
    saved = {k: os.environ.get(k) for k in (DIR_ENV, SECONDS_ENV)}
    os.environ[DIR_ENV], os.environ[SECONDS_ENV] = str(checkpoint_dir), "1"
    configure(api_client=kube.client_for(), metrics=VersionMetrics(), analyzer=judge, signer=load_signer(keys.private))
    try:
        with KopfRunner(["run", "-m", "vigil.handlers.operator", "-m", "vigil.handlers.checkpoints",
                         "--standalone", "--all-namespaces"]) as runner:
            yield runner
    finally:
        configure(signer=None)  # the other tests' operators run unsigned and without checkpoints
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    assert runner.exception is None, runner.exception


Lines = list[dict[str, Any]]  # header first, then records


def edit(lines: Lines, _keys: Path) -> None:
    lines[3]["weight"] = 7


def remove(lines: Lines, _keys: Path) -> None:
    del lines[3]


def reorder(lines: Lines, _keys: Path) -> None:
    lines[3], lines[4] = lines[4], lines[3]


def plant(lines: Lines, attacker: Path) -> None:
    """A second record 3, correctly linked, signed with a key that is not the operator's."""
    forged = chain.next_record(lines[2]["hash"], 3, signer=load_signer(generate(attacker).private),
                               **{k: v for k, v in lines[3].items() if k not in ("seq", "prevHash", "hash", "signature",
                                                                                "keyId")} | {"weight": 100})
    lines.insert(4, forged)


def truncate(lines: Lines, _keys: Path) -> None:
    """Tail records gone and status re-pointed to match: only the checkpoint still knows."""
    del lines[3:]
    lines[0].update(statusHead=lines[-1]["hash"], statusSeq=lines[-1]["seq"])


def re_point(lines: Lines, _keys: Path) -> None:
    lines[0].update(statusHead=lines[2]["hash"], statusSeq=2)


def test_a_real_chain_exports_verifies_offline_and_each_tampering_is_named(
        kube: KubeHandle, namespace: str, signing_operator: KopfRunner, keys: KeyFiles, checkpoint_dir: Path,
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    c = Cluster(kube, namespace)
    c.create("riskpolicies", policy_body())
    c.deploy_v1()
    c.set_version("v2")
    wait_for(lambda: c.status().get("stableVersion") == "v2" and c.phase_is("Succeeded"), timeout=90,
             what="v2 promoted")
    status, uid = c.status(), c.md()["metadata"]["uid"]
    records: list[dict[str, Any]] = list(c.kube.audit_records(namespace, "fraud", uid))
    assert len(records) >= 5 and all(r["keyId"] == load_signer(keys.private).key_id for r in records)

    # the checkpoint daemon caught up with the head the operator wrote
    sink = FileSink(checkpoint_dir)
    wait_for(lambda: [cp.seq for cp in sink.read(uid)][-1:] == [status["auditSeq"]], timeout=30,
             what="a checkpoint of the final head")
    assert sink.read(uid)[-1].head == status["auditHead"]

    kc = ["--kubeconfig", str(kube.kubeconfig)]
    out = tmp_path / "fraud.jsonl"
    assert main([*kc, "audit", "export", "fraud", "-n", namespace, "--out", str(out)]) == 0
    header = json.loads(out.read_text().splitlines()[0])
    assert header | {"exportedAt": None} == {
        "kind": "vigil.dev/AuditExport", "formatVersion": 1, "namespace": namespace, "modelDeployment": "fraud",
        "uid": uid, "statusHead": status["auditHead"], "statusSeq": status["auditSeq"],
        "keyId": load_signer(keys.private).key_id, "exportedAt": None}
    offline = ["audit", "verify", "--offline", str(out), "--public-key", str(keys.public)]
    with_checkpoints = [*offline, "--checkpoints", str(checkpoint_dir)]
    capsys.readouterr()
    assert main(with_checkpoints) == 0, capsys.readouterr().out
    assert f"OK: {len(records)} records" in capsys.readouterr().out
    assert main([*kc, "audit", "verify", "fraud", "-n", namespace, "--public-key", str(keys.public),
                 "--checkpoints", str(checkpoint_dir)]) == 0
    assert "OK:" in capsys.readouterr().out

    exported = [json.loads(line) for line in out.read_text().splitlines()]
    cases: list[tuple[Callable[[Lines, Path], None], str]] = [
        (edit, "edited"), (remove, "removed"), (reorder, "reordered"), (plant, "planted"), (truncate, "truncated"),
        (re_point, "re-pointed")]
    for tamper, kind in cases:
        lines = json.loads(json.dumps(exported))
        tamper(lines, tmp_path / f"attacker-{kind}")
        bad = tmp_path / f"{kind}.jsonl"
        bad.write_text("".join(json.dumps(x) + "\n" for x in lines))
        assert main([*offline[:3], str(bad), *with_checkpoints[4:]]) == 1, kind
        report = capsys.readouterr().out
        assert report.startswith("BROKEN") and f"{kind}: " in report, (kind, report)
        if tamper is truncate:  # without the checkpoints the cut chain and re-pointed status agree
            assert main([*offline[:3], str(bad), *offline[4:]]) == 0
            capsys.readouterr()
