"""The operator killed at write points of real rollouts, on the real apiserver (a sample).

The full sweep (every write, before and after it, both scenarios) is `make killpoints`;
CI runs every 8th kill point of the same harness (see tests/killpoints.py for the checks).
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException
from vigil.api.names import ANN_PAUSED, GROUP, VERSION
from vigil.audit import chain
from vigil.audit.signing import Signer
from vigil.kube.client import Kube
from vigil.reconciler import Reconciler

from ..conftest import KubeHandle
from ..killpoints import T0, Harness, Killed, VersionMetrics, judge, sweep

pytestmark = pytest.mark.slow


def test_killed_rollouts_end_like_uninterrupted_ones_on_the_record(kube: KubeHandle) -> None:
    harness = Harness(kube.client_for)
    lines: list[str] = []
    survived, total, failures = sweep(harness, ["promote", "rollback"], every=8, report=lines.append)
    print("\n".join(lines), f"\nkill points survived: {survived}/{total}")
    assert total >= 10, lines
    assert not failures, "\n".join(failures)


def test_a_plain_decision_orphaned_by_a_kill_is_closed_when_the_user_paused_meanwhile(kube: KubeHandle) -> None:
    """The operator dies between a plain decision's record and its status write, and the user
    pauses the rollout before it comes back: the restarted operator decides Pause, not the
    orphan's decision again. It closes the orphan as abandoned on the record (provably ours:
    signed, linked to our head, same UID) and the pause follows, instead of stalling on an
    AuditConflict for good."""
    harness = Harness(kube.client_for)
    namespace = f"kp-{uuid.uuid4().hex[:8]}"
    harness._setup(namespace)
    clock = {"now": T0}
    orphan: dict[str, Any] = {}
    armed = {"on": False}

    def fresh() -> Reconciler:  # a restarted process: nothing survives but the apiserver
        rec = Reconciler(Kube(kube.client_for()), metrics=VersionMetrics(), analyzer=judge,
                         clock=lambda: clock["now"], signer=Signer(harness.key))
        created, patch = rec.kube.create_audit_record, rec.kube.patch_status

        def create(md: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
            stored = created(md, spec)
            orphan["last"] = stored["spec"]
            return stored

        def patch_status(md: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
            last = orphan.get("last") or {}
            if armed["on"] and "seq" not in orphan and last.get("stage") == "decision" \
                    and status.get("auditSeq") == last["seq"]:
                orphan["seq"] = last["seq"]
                raise Killed("before the status write of a plain decision")
            return patch(md, status)

        rec.kube.create_audit_record, rec.kube.patch_status = create, patch_status  # type: ignore[method-assign]
        return rec

    def passes(until: Any, limit: int = 80) -> None:
        nonlocal rec
        for _ in range(limit):
            md = harness._md(namespace)
            if until(md):
                return
            try:
                rec.reconcile(md)
            except Killed:
                harness.custom.patch_namespaced_custom_object(  # the user pauses while the operator is down
                    GROUP, VERSION, namespace, "modeldeployments", "fraud",
                    {"metadata": {"annotations": {ANN_PAUSED: "true"}}})
                rec = fresh()
            except ApiException as err:
                assert err.status == 409, err
            clock["now"] += dt.timedelta(seconds=20)
            time.sleep(0.05)  # kwok makes pods ready
        raise AssertionError(f"not reached in {limit} passes: {(harness._md(namespace).get('status') or {})}")

    rec = fresh()
    try:
        passes(lambda md: (md.get("status") or {}).get("phase") == "Succeeded")
        armed["on"] = True
        harness.custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, "modeldeployments", "fraud",
                                                      {"spec": harness._spec("v2")})
        passes(lambda md: (md.get("status") or {}).get("phase") == "Paused")
        md = harness._md(namespace)
        records = sorted(Kube(harness.admin).audit_records(namespace, "fraud", uid=md["metadata"]["uid"]),
                         key=lambda r: r["seq"])
    finally:
        harness.core.delete_namespace(namespace)
    assert "seq" in orphan, "the rollout recorded no plain decision to orphan"
    closing = next(r for r in records if r["seq"] == orphan["seq"] + 1)
    assert (closing["stage"], closing["of"], closing["result"], closing["reason"]) == (
        "outcome", orphan["seq"], "abandoned", "DecisionAbandoned"), closing
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    assert not any(c["reason"] == "AuditConflict" for c in md["status"].get("conditions", []))
    report = chain.verify(records, md["status"]["auditHead"], public_key=harness.key.public_key())
    assert report.ok, report.summary()
