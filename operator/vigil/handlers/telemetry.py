"""kopf wiring of the operator's telemetry (metrics endpoint, JSON logs, decision log).

Environment, read at start-up:
- `VIGIL_METRICS_PORT`: serve `/metrics` on this port (the chart sets 9102); unset: no endpoint.
- `VIGIL_METRICS_ADDRESS`: the address to bind (default 0.0.0.0).
- `VIGIL_LOG_FORMAT=json`: one JSON object per log line.
- `VIGIL_LEADER_ELECTION=true`: leadership is reported by the election code (`set_leader`);
  otherwise this process is the only operator and reports itself as leader.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import kopf

from vigil.api import GROUP, VERSION
from vigil.handlers import env
from vigil.handlers.config import reconciler
from vigil.observability import logs, metrics

log = logging.getLogger("vigil.telemetry")


def metrics_port() -> int | None:
    """The port from $VIGIL_METRICS_PORT; a clear error when it is not a port number."""
    try:
        return env.port("VIGIL_METRICS_PORT")
    except ValueError as err:
        raise kopf.PermanentError(str(err)) from err


def log_format() -> str:
    value = os.environ.get("VIGIL_LOG_FORMAT", "text").strip().lower() or "text"
    if value not in ("text", "json"):
        raise kopf.PermanentError(f"VIGIL_LOG_FORMAT must be 'text' or 'json', got {value!r}")
    return value


@kopf.on.startup()
def _telemetry(**_: Any) -> None:
    if log_format() == "json":
        logs.install(level=logging.getLogger().level or logging.INFO)
    listeners = reconciler().listeners
    for listener in (metrics.METRICS, DECISION_LOG):
        if listener not in listeners:
            listeners.append(listener)
    port = metrics_port()
    if port is not None:
        metrics.serve(port, os.environ.get("VIGIL_METRICS_ADDRESS", "0.0.0.0"))
        log.info("serving operator metrics on :%d/metrics", port)
    if os.environ.get("VIGIL_LEADER_ELECTION", "").lower() != "true":
        metrics.set_leader(True)


@kopf.on.cleanup()
def _telemetry_stop(**_: Any) -> None:
    metrics.set_leader(False)
    metrics.stop_serving()


@kopf.on.event(GROUP, VERSION, "modeldeployments")
async def _forget_deleted(type: str, name: str, namespace: str | None, **_: Any) -> None:
    """A deleted ModelDeployment's series go away (watch event only: no finalizer is added).
    Async, so the other events (every status write is one) cost no trip through a thread;
    forgetting is three dictionary removals, done here."""
    if type == "DELETED" and namespace:
        metrics.METRICS.forget(namespace, name)


DECISION_LOG = logs.DecisionLog()
