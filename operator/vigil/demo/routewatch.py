"""Keep the splitter's route current: watch the apiserver, or poll a file.

``KubeRouteWatcher`` lists the named HTTPRoute/VirtualService, then watches it from
that resourceVersion; on any error (including 410 Gone) it lists again, with a jittered
exponential backoff (tenacity) while listing fails, so a missed event can delay an update
but never lose it. It runs the
(synchronous) kubernetes client in a daemon thread and hands each parsed route to the
asyncio loop.

``FileRouteWatcher`` reads the same object from a YAML/JSON file and re-reads it when
it changes: for tests and runs without an apiserver.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol

import yaml
from tenacity import RetryCallState, RetryError, Retrying, retry_if_exception_type, wait_exponential, wait_random

from vigil.demo.routes import EMPTY_ROUTE, ROUTE_KINDS, RouteParseError, ParsedRoute, parse_route

log = logging.getLogger("vigil.demo.routewatch")

RouteCallback = Callable[[ParsedRoute], None]
ErrorCallback = Callable[[str], None]

WATCH_TIMEOUT_SECONDS = 30
FIRST_BACKOFF_SECONDS = 0.2
MAX_BACKOFF_SECONDS = 5.0


class RouteSource(Protocol):
    """Something that calls ``on_route`` with every new version of the route."""

    def start(self, loop: asyncio.AbstractEventLoop, on_route: RouteCallback,
              on_error: ErrorCallback) -> None: ...

    def stop(self) -> None: ...


@dataclass(frozen=True)
class WatchedRoute:
    """The one route object a splitter follows."""

    kind: str  # "httproute" | "virtualservice"
    namespace: str
    name: str

    def __post_init__(self) -> None:
        if self.kind not in ROUTE_KINDS:
            raise ValueError(f"unknown route kind {self.kind!r}; use one of {sorted(ROUTE_KINDS)}")

    def describe(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


def route_from_object(target: WatchedRoute, obj: Mapping[str, Any] | None) -> ParsedRoute:
    """Parse an object, or the empty route when it does not exist (a gateway 404s)."""
    if obj is None:
        return EMPTY_ROUTE
    return parse_route(target.kind, obj)


class KubeRouteWatcher:
    """List + watch one route object in a real apiserver."""

    def __init__(self, kubeconfig: str, target: WatchedRoute, *,
                 api_factory: Callable[[], Any] | None = None,
                 watch_factory: Callable[[], Any] | None = None) -> None:
        """``api_factory``/``watch_factory`` replace the kubernetes client in unit tests."""
        self.kubeconfig = kubeconfig
        self.target = target
        self._api_factory = api_factory
        self._watch_factory = watch_factory
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._watch: Any = None

    def start(self, loop: asyncio.AbstractEventLoop, on_route: RouteCallback,
              on_error: ErrorCallback) -> None:
        def deliver(split: ParsedRoute) -> None:
            loop.call_soon_threadsafe(on_route, split)

        def report(message: str) -> None:
            loop.call_soon_threadsafe(on_error, message)

        self._thread = threading.Thread(
            target=self.run, args=(deliver, report), name="route-watch", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._watch is not None:
            self._watch.stop()

    def _make_api(self) -> tuple[Any, Callable[[], None]]:
        """A CustomObjectsApi and how to close it."""
        if self._api_factory is not None:
            return self._api_factory(), lambda: None
        from kubernetes import client, config

        api_client = config.new_client_from_config(config_file=self.kubeconfig)
        return client.CustomObjectsApi(api_client), api_client.close

    def _new_watch(self) -> Any:
        if self._watch_factory is not None:
            return self._watch_factory()
        from kubernetes import watch

        return watch.Watch()

    def run(self, deliver: RouteCallback, report: ErrorCallback) -> None:
        """List, then watch; after any failure list again (backing off while listing fails).
        Blocks until stop()."""
        kind = ROUTE_KINDS[self.target.kind]
        session: dict[str, Any] = {"api": None, "close": lambda: None}
        try:
            while not self._stopping.is_set():
                try:
                    resource_version = self._list_retrying(report)(self._list_once, session, kind,
                                                                   deliver, report)
                except RetryError:  # stopped while backing off
                    break
                try:
                    self._watch_from(session["api"], kind, resource_version, deliver, report)
                except Exception as exc:  # noqa: BLE001 - any failure means: list again
                    if self._stopping.is_set():
                        break
                    report(f"watching {self.target.describe()}: {type(exc).__name__}: {exc}")
                    self._stopping.wait(FIRST_BACKOFF_SECONDS)
        finally:
            session["close"]()

    def _list_retrying(self, report: ErrorCallback) -> Retrying:
        """Fresh per list, so one success resets the backoff; stop() ends a wait at once."""

        def tell(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            report(f"listing {self.target.describe()}: {type(exc).__name__}: {exc}")

        return Retrying(
            retry=retry_if_exception_type(Exception),
            wait=wait_exponential(multiplier=FIRST_BACKOFF_SECONDS, max=MAX_BACKOFF_SECONDS) + wait_random(0, 0.1),
            stop=lambda _: self._stopping.is_set(),
            sleep=lambda seconds: None if self._stopping.wait(seconds) else None,
            before_sleep=tell,
        )

    def _list_once(self, session: dict[str, Any], kind: Any, deliver: RouteCallback,
                   report: ErrorCallback) -> str:
        if session["api"] is None:  # a kubeconfig written late is picked up on retry
            session["api"], session["close"] = self._make_api()
        return self._list(session["api"], kind, deliver, report)

    def _list(self, api: Any, kind: Any, deliver: RouteCallback, report: ErrorCallback) -> str:
        listing = api.list_namespaced_custom_object(
            kind.group, kind.version, self.target.namespace, kind.plural,
            field_selector=f"metadata.name={self.target.name}", _request_timeout=10,
        )
        items = listing.get("items") or []
        self._deliver(items[0] if items else None, deliver, report)
        return listing["metadata"]["resourceVersion"]

    def _watch_from(self, api: Any, kind: Any, resource_version: str,
                    deliver: RouteCallback, report: ErrorCallback) -> None:
        """Follow events until an error; a server-side timeout just resumes."""
        while not self._stopping.is_set():
            self._watch = self._new_watch()
            stream = self._watch.stream(
                api.list_namespaced_custom_object, kind.group, kind.version,
                self.target.namespace, kind.plural,
                field_selector=f"metadata.name={self.target.name}",
                resource_version=resource_version, timeout_seconds=WATCH_TIMEOUT_SECONDS,
                _request_timeout=WATCH_TIMEOUT_SECONDS + 10,
            )
            for event in stream:
                if self._stopping.is_set():
                    return
                obj = event.get("object") or {}
                if event.get("type") == "ERROR":
                    raise RuntimeError(f"watch error event: {obj.get('message', obj)}")
                resource_version = (obj.get("metadata") or {}).get("resourceVersion", resource_version)
                if event.get("type") == "DELETED":
                    self._deliver(None, deliver, report)
                elif event.get("type") in ("ADDED", "MODIFIED"):
                    self._deliver(obj, deliver, report)
            resource_version = self._watch.resource_version or resource_version

    def _deliver(self, obj: Mapping[str, Any] | None, deliver: RouteCallback,
                 report: ErrorCallback) -> None:
        try:
            deliver(route_from_object(self.target, obj))
        except RouteParseError as exc:
            report(f"{self.target.describe()} not applied: {exc}")


class FileRouteWatcher:
    """Poll a YAML/JSON route file; a missing file means no route."""

    def __init__(self, path: Path, kind: str, poll_seconds: float = 0.2) -> None:
        self.path = path
        self.kind = kind
        self.poll_seconds = poll_seconds
        self._task: asyncio.Task[None] | None = None

    def start(self, loop: asyncio.AbstractEventLoop, on_route: RouteCallback,
              on_error: ErrorCallback) -> None:
        self._task = loop.create_task(self._poll(on_route, on_error))

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _poll(self, on_route: RouteCallback, on_error: ErrorCallback) -> None:
        stamp: tuple[float, int] | None = None
        first = True
        while True:
            try:
                stat = self.path.stat()
                current: tuple[float, int] | None = (stat.st_mtime_ns, stat.st_size)
            except FileNotFoundError:
                current = None
            if current != stamp or first:
                stamp, first = current, False
                try:
                    obj = yaml.safe_load(self.path.read_text()) if current else None
                    on_route(parse_route(self.kind, obj) if obj else EMPTY_ROUTE)
                except (OSError, yaml.YAMLError, RouteParseError, AttributeError) as exc:
                    on_error(f"route file {self.path} not applied: {exc}")
            await asyncio.sleep(self.poll_seconds)
