"""Structured logs: one JSON object per line, naming the ModelDeployment and its rollout.

`install()` switches the process to JSON (kopf's own text handler is replaced; kopf's handler
that posts Events is left alone). Fields come from three places, in this order:
- `bound(namespace=..., name=..., rollout_id=..., version=...)`, a context around a pass;
- kopf's per-object loggers (their `k8s_ref`), for ModelDeployment objects;
- `extra={...}` of the call itself.
`DecisionLog` is a `PassListener` that writes one line per recorded decision.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import sys
from collections.abc import Iterable, Iterator
from typing import IO, Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from vigil.core.model import Decision

_CONTEXT: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar("vigil_log_context", default=None)
FIELDS = ("modelDeployment", "namespace", "rolloutId", "canaryVersion")


@contextlib.contextmanager
def bound(namespace: str | None = None, name: str | None = None, rollout_id: str | None = None,
          version: str | None = None) -> Iterator[None]:
    """Every log line written inside names this ModelDeployment (thread- and task-local)."""
    fields = {"namespace": namespace, "modelDeployment": name, "rolloutId": rollout_id, "canaryVersion": version}
    token = _CONTEXT.set({**(_CONTEXT.get() or {}), **{k: v for k, v in fields.items() if v}})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


class ContextFilter(logging.Filter):
    """Copies the bound context and kopf's object reference onto each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        ref = getattr(record, "k8s_ref", None)
        if isinstance(ref, dict) and ref.get("kind") == "ModelDeployment":
            for key, value in (("modelDeployment", ref.get("name")), ("namespace", ref.get("namespace"))):
                if value and not hasattr(record, key):
                    setattr(record, key, value)
        for key, value in (_CONTEXT.get() or {}).items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class QuietSuccesses(logging.Filter):
    """Drops kopf's "Handler '<id>' succeeded." line for the handlers named. kopf says it at INFO
    after every call; for the watch-event handlers that only wake a daemon or forget a deleted
    object, that is one line per event of every watched object (tens a second at 1000
    ModelDeployments, every status write being an event) and it says nothing. Their failures,
    and every line of every other handler, still pass."""

    def __init__(self, handler_ids: Iterable[str]) -> None:
        super().__init__()
        self.lines = frozenset(f"Handler {hid!r} succeeded." for hid in handler_ids)

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() not in self.lines


def quiet_successes(handler_ids: Iterable[str], logger_name: str = "kopf.objects") -> None:
    """Install `QuietSuccesses` for `handler_ids` on kopf's per-object logger (once)."""
    logger = logging.getLogger(logger_name)
    for old in [f for f in logger.filters if isinstance(f, QuietSuccesses)]:
        logger.removeFilter(old)
    logger.addFilter(QuietSuccesses(handler_ids))


class VigilJsonFormatter(JsonFormatter):
    """`time`, `level`, `logger`, `message`, the Vigil fields, then any extras."""

    def __init__(self) -> None:
        super().__init__(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            reserved_attrs=[*RESERVED_ATTRS, "k8s_ref", "k8s_skip", "settings"],
            datefmt="%Y-%m-%dT%H:%M:%S%z",
        )


class VigilJsonHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler `install()` adds (recognised so that installing twice replaces it)."""


def install(level: int | str = logging.INFO, stream: IO[str] | None = None) -> logging.Handler:
    """Log JSON lines to `stream` (stderr) from now on; returns the handler. Idempotent."""
    handler = VigilJsonHandler(stream or sys.stderr)
    handler.setFormatter(VigilJsonFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers
                        if not isinstance(h, VigilJsonHandler) and type(h).__name__ != "_KopfStreamHandler"]
    root.addHandler(handler)
    root.setLevel(level)
    return handler


class DecisionLog:
    """A `PassListener`: one INFO line per recorded decision, one ERROR line per failed pass."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.log = logger or logging.getLogger("vigil.decisions")

    def passed(self, md: dict[str, Any], decision: Decision, seconds: float) -> None:
        if not decision.changed:
            return
        try:
            meta, s = md["metadata"], decision.status
            reason = decision.events[-1].reason if decision.events else decision.action.value
            self.log.info("%s: %s", reason, s.message, extra={
                "namespace": meta["namespace"], "modelDeployment": meta["name"], "rolloutId": s.rollout_id,
                "canaryVersion": s.canary_version, "stableVersion": s.stable_version,
                "action": decision.action.value, "reason": reason, "phase": s.phase.value,
                "weight": s.step.weight if s.step else None, "verdict": s.verdict, "auditSeq": s.audit_seq,
                "passSeconds": round(seconds, 3),
            })
        except Exception:
            self.log.exception("decision not logged")

    def failed(self, namespace: str, name: str, reason: str) -> None:
        self.log.error("pass failed: %s", reason, extra={"namespace": namespace, "modelDeployment": name,
                                                          "reason": reason})
