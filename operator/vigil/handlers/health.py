"""`/healthz` and `/readyz` for the kubelet, on `$VIGIL_HEALTH_PORT` (the chart sets 8080).

- `/healthz` (liveness) answers 200 only while the reconcile pools make progress: every pool
  records a heartbeat when a pass or a periodic tick task finishes on it. A process whose
  event loop runs but whose worker threads are all stuck (the failure the old "process is up"
  probe missed) goes stale after `$VIGIL_LIVENESS_STALE_SECONDS` (default 180) and is restarted.
- `/readyz` (readiness) answers 200 only while the apiserver answers (`/version`, short timeout).

Both run on every replica, leader or not; a follower's pools still run their ticks.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from vigil.handlers import env

log = logging.getLogger("vigil.health")


def health_port() -> int | None:
    """The port from $VIGIL_HEALTH_PORT (None when unset); a clear error when it is not a port."""
    return env.port("VIGIL_HEALTH_PORT")


def stale_after() -> float:
    return env.seconds("VIGIL_LIVENESS_STALE_SECONDS", 180.0)


class Heartbeat:
    """The last time each lane (reconcile pool) finished a task."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._beats: dict[str, float] = {}

    def beat(self, lane: str) -> None:
        with self._lock:
            self._beats[lane] = self._clock()

    def ages(self) -> dict[str, float]:
        now = self._clock()
        with self._lock:
            return {lane: now - t for lane, t in self._beats.items()}

    def stale(self, limit: float) -> dict[str, float]:
        """The lanes whose last progress is older than `limit` (empty: alive)."""
        return {lane: age for lane, age in self.ages().items() if age > limit}


HEARTBEAT = Heartbeat()


class HealthServer:
    """The probe endpoints, served from kopf's event loop (aiohttp)."""

    def __init__(self, heartbeat: Heartbeat, apiserver_ok: Callable[[], bool], stale_seconds: float,
                 ready_timeout: float = 5.0) -> None:
        self.heartbeat = heartbeat
        self.apiserver_ok = apiserver_ok
        self.stale_seconds = stale_seconds
        self.ready_timeout = ready_timeout
        self._probe_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vigil-health")
        self._runner: web.AppRunner | None = None

    async def healthz(self, _: web.Request) -> web.Response:
        stale = self.heartbeat.stale(self.stale_seconds)
        if stale:
            text = ", ".join(f"{lane} {age:.0f}s" for lane, age in sorted(stale.items()))
            return web.Response(status=503, text=f"no reconcile progress: {text}\n")
        return web.Response(text="ok\n")

    async def readyz(self, _: web.Request) -> web.Response:
        loop = asyncio.get_running_loop()
        try:
            ok = await asyncio.wait_for(loop.run_in_executor(self._probe_pool, self.apiserver_ok), self.ready_timeout)
        except Exception as err:  # noqa: BLE001 - any failure means not ready
            log.info("readiness: apiserver check failed: %s", err)
            ok = False
        return web.Response(text="ok\n") if ok else web.Response(status=503, text="apiserver unreachable\n")

    async def start(self, port: int, host: str = "0.0.0.0") -> int:
        app = web.Application()
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        return sockets[0].getsockname()[1] if sockets else port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._probe_pool.shutdown(wait=False, cancel_futures=True)
