"""Periodic signed checkpoints of every ModelDeployment's audit head (`audit/checkpoint.py`).

Runs only when both `$VIGIL_AUDIT_CHECKPOINT_DIR` and a signer (`configure(signer=...)`, from
`$VIGIL_AUDIT_KEY_FILE`) are set: a checkpoint nobody can verify is worth nothing. Every
`$VIGIL_AUDIT_CHECKPOINT_SECONDS` (default 300, read when the daemon starts, not at import)
it writes status.auditSeq/auditHead when they moved forward since the last checkpoint.

A daemon rather than a `kopf.timer`: a timer's interval is fixed when this module is
imported, so a process that imported it once could never change it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
from typing import Any

import kopf

from vigil.api import GROUP, VERSION
from vigil.audit.checkpoint import Checkpoint, CheckpointSink, FileSink, make_checkpoint
from vigil.core.timefmt import iso
from vigil.handlers import env
from vigil.handlers.config import WIRING

log = logging.getLogger("vigil.checkpoints")
DIR_ENV, SECONDS_ENV = "VIGIL_AUDIT_CHECKPOINT_DIR", "VIGIL_AUDIT_CHECKPOINT_SECONDS"
DEFAULT_SECONDS = 300.0


def interval_seconds() -> float:
    """`$VIGIL_AUDIT_CHECKPOINT_SECONDS`, a positive number of seconds (default 300)."""
    return env.seconds(SECONDS_ENV, DEFAULT_SECONDS)


def sink() -> CheckpointSink | None:
    directory = os.environ.get(DIR_ENV, "").strip()
    return FileSink(directory) if directory else None


def configured(**_: Any) -> bool:
    """The daemon's filter: checkpoints are written only with a sink and a signer."""
    return bool(os.environ.get(DIR_ENV, "").strip()) and WIRING.signer is not None


def checkpoint_if_moved(target: CheckpointSink, signer: Any, meta: dict[str, Any], status: dict[str, Any],
                        last: Checkpoint | None, now: dt.datetime) -> Checkpoint | None:
    """Write a checkpoint of status's head when it moved on from `last`; return the newest.

    A head that goes back (a lower seq, or another hash at the same seq) is never checkpointed:
    status was re-pointed, and the checkpoint already written is what will expose it."""
    seq, head = status.get("auditSeq"), status.get("auditHead")
    if not isinstance(seq, int) or not seq or not head:
        return last
    if last is not None:
        if (seq, head) == (last.seq, last.head):
            return last
        if seq <= last.seq:
            log.error("%s/%s: status.auditHead went back from record %s (%s) to record %s (%s); not checkpointed",
                      meta["namespace"], meta["name"], last.seq, last.head, seq, head)
            return last
    cp = make_checkpoint(signer, namespace=meta["namespace"], model_deployment=meta["name"], uid=meta["uid"],
                         seq=seq, head=head, time=iso(now))
    target.write(cp)
    log.info("%s/%s: checkpoint of record %s written", meta["namespace"], meta["name"], seq)
    return cp


@kopf.on.startup()
def _check_settings(**_: Any) -> None:
    """Refuse to start with a bad interval; say whether checkpoints are written, and why not."""
    try:
        every = interval_seconds()
    except ValueError as err:
        raise kopf.PermanentError(str(err)) from err
    directory = os.environ.get(DIR_ENV, "").strip()
    if directory and WIRING.signer is None:
        log.warning("%s is set but no signing key is configured (VIGIL_AUDIT_KEY_FILE): no checkpoints are written",
                    DIR_ENV)
    elif directory:
        log.info("signed audit checkpoints every %ss to %s", every, directory)


@kopf.daemon(GROUP, VERSION, "modeldeployments", when=configured, cancellation_timeout=3.0)
async def audit_checkpoints(body: kopf.Body, stopped: kopf.DaemonStopped, **_: Any) -> None:
    """Checkpoint this object's audit head every interval (kopf keeps `body` fresh in daemons)."""
    target, signer, every = sink(), WIRING.signer, interval_seconds()
    if target is None or signer is None:
        return
    loop = asyncio.get_running_loop()
    meta = {"namespace": str(body.metadata.namespace), "name": str(body.metadata.name), "uid": str(body.metadata.uid)}
    existing = await loop.run_in_executor(None, target.read, meta["uid"])
    last = max(existing, key=lambda c: c.seq) if existing else None
    while not stopped:
        status = dict(body.get("status") or {})
        now = dt.datetime.now(dt.UTC)
        try:
            last = await loop.run_in_executor(None, checkpoint_if_moved, target, signer, meta, status, last, now)
        except OSError as err:
            log.error("%s/%s: checkpoint not written: %s", meta["namespace"], meta["name"], err)
        await stopped.wait(every)
