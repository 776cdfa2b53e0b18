"""A small reverse proxy that splits traffic the way the route in the apiserver says.

A stand-in for a gateway data plane (no Envoy runs here). It reads the weights of the
first rule of an HTTPRoute (or VirtualService), picks a backend per request by a
seeded weighted draw, and mirrors to the backend of a RequestMirror filter (Istio:
``mirror``) at the configured percentage. Mirrored responses are discarded, as a
gateway does; the one addition is that the answering backend's predicted class is sent
to the mirror in ``X-Vigil-Stable-Prediction`` so the shadow server can count
agreement, and the answering backend is told (``X-Vigil-Shadow-Control: 1``) that the request
is mirrored, so it scores it twice and counts its own agreement (the live control).

    python -m vigil.demo.trafficsplit --port 8080 --kubeconfig admin.kubeconfig \
        --kind httproute --namespace demo --route iris \
        --backend iris-v1=http://127.0.0.1:8081 --backend iris-v2=http://127.0.0.1:8082

Own endpoints: ``GET /metrics`` (per-backend counts), ``GET /healthz``, ``GET /readyz``
(200 once a route has been read), ``GET /_splitter/route`` (current split as JSON).
A request with header ``X-Vigil-Backend: NAME`` goes to that backend only (no split, no
mirror): the load generator uses it to send a delayed label to the version that
answered. Everything else is proxied.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest

from vigil.demo.backends import BackendMap, BackendMapError, parse_entries
from vigil.demo.headers import BACKEND_HEADER, CONTROL_HEADER, MIRROR_HEADER, STABLE_PREDICTION_HEADER
from vigil.demo.routes import EMPTY_ROUTE, ROUTE_KINDS, BackendRef, Mirror, ParsedRoute, WeightedBackend
from vigil.demo.routewatch import FileRouteWatcher, KubeRouteWatcher, RouteSource, WatchedRoute

SPLITTER_REQUESTS_TOTAL = "vigil_splitter_requests_total"
"""Requests the splitter forwarded, by backend, routing (weighted, mirror, feedback) and outcome."""

log = logging.getLogger("vigil.demo.trafficsplit")

HOP_BY_HOP = frozenset(
    h.lower() for h in (
        "Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "TE",
        "Trailers", "Transfer-Encoding", "Upgrade", "Host", "Content-Length",
    )
)
MAX_MIRRORS_IN_FLIGHT = 256


class WeightedChooser:
    """Seeded weighted choice of a backend, and seeded mirror sampling.

    Two separate streams, so that switching mirroring on or off does not change which
    backend each request goes to.
    """

    def __init__(self, seed: int = 0) -> None:
        self._split = random.Random(seed)
        self._mirror = random.Random(seed + 1_000_003)

    def choose(self, backends: Sequence[WeightedBackend]) -> WeightedBackend | None:
        total = sum(b.weight for b in backends)
        if total <= 0:
            return None
        point = self._split.random() * total
        running = 0.0
        for backend in backends:
            running += backend.weight
            if point < running and backend.weight > 0:
                return backend
        return next(b for b in reversed(backends) if b.weight > 0)

    def mirror_hit(self, mirror: Mirror) -> bool:
        if mirror.percent >= 100.0:
            return True
        if mirror.percent <= 0.0:
            return False
        return self._mirror.random() * 100.0 < mirror.percent


class SplitterMetrics:
    """Per-backend request counts and the weights currently applied."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            SPLITTER_REQUESTS_TOTAL.removesuffix("_total"), "Requests forwarded, by backend, routing and outcome.",
            ("backend", "routing", "outcome"), registry=self.registry,
        )
        self.mirrored = Counter(
            "vigil_splitter_mirrored_requests", "Mirrored copies sent, by backend and outcome.",
            ("backend", "outcome"), registry=self.registry,
        )
        self.weight = Gauge(
            "vigil_splitter_backend_weight", "Weight of each backend in the applied route.",
            ("backend",), registry=self.registry,
        )
        self.mirror_percent = Gauge(
            "vigil_splitter_mirror_percent", "Mirror percentage per mirror backend.",
            ("backend",), registry=self.registry,
        )
        self.route_updates = Counter(
            "vigil_splitter_route_updates", "Route versions applied.", registry=self.registry,
        )
        self.route_errors = Counter(
            "vigil_splitter_route_errors", "Route reads or parses that failed.", registry=self.registry,
        )

    def show_route(self, split: ParsedRoute, previous: ParsedRoute) -> None:
        for backend in previous.backends:
            self.weight.labels(backend=backend.ref.label).set(0)
        for mirror in previous.mirrors:
            self.mirror_percent.labels(backend=mirror.ref.label).set(0)
        for backend in split.backends:
            self.weight.labels(backend=backend.ref.label).set(backend.weight)
        for mirror in split.mirrors:
            self.mirror_percent.labels(backend=mirror.ref.label).set(mirror.percent)


@dataclass
class Forwarded:
    status: int
    body: bytes
    headers: dict[str, str]


class TrafficSplitter:
    """The proxy's state: the current route, the URL map, the chooser, the metrics."""

    def __init__(self, backends: BackendMap, source: RouteSource, seed: int = 0) -> None:
        self.backends = backends
        self.source = source
        self.chooser = WeightedChooser(seed)
        self.metrics = SplitterMetrics()
        self.route: ParsedRoute = EMPTY_ROUTE
        self.route_loaded = False
        self.last_error: str | None = None
        self._known_refs: dict[str, BackendRef] = {}
        self._session: aiohttp.ClientSession | None = None
        self._mirror_tasks: set[asyncio.Task[None]] = set()
        self._background: list[asyncio.Task[None]] = []

    # -- route updates ----------------------------------------------------------------

    def apply_route(self, split: ParsedRoute) -> None:
        previous, self.route, self.route_loaded = self.route, split, True
        for backend in split.backends:
            self._known_refs[backend.ref.label] = backend.ref
        for mirror in split.mirrors:
            self._known_refs[mirror.ref.label] = mirror.ref
        self.metrics.show_route(split, previous)
        self.metrics.route_updates.inc()
        if (split.weights(), split.mirrors) != (previous.weights(), previous.mirrors):
            log.info("route %s (rv %s): weights %s, mirrors %s", split.source,
                     split.resource_version, split.weights(),
                     [(m.ref.label, m.percent) for m in split.mirrors])

    def route_error(self, message: str) -> None:
        self.last_error = message
        self.metrics.route_errors.inc()
        log.warning("%s", message)

    # -- lifecycle ---------------------------------------------------------------------

    async def on_startup(self, app: web.Application) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=30, connect=2),
            connector=aiohttp.TCPConnector(limit=512),
        )
        self.source.start(asyncio.get_running_loop(), self.apply_route, self.route_error)
        self._background.append(asyncio.create_task(self._reload_backends()))

    async def on_cleanup(self, app: web.Application) -> None:
        self.source.stop()
        for task in self._background:
            task.cancel()
        for task in list(self._mirror_tasks):
            task.cancel()
        if self._session is not None:
            await self._session.close()

    async def _reload_backends(self) -> None:
        while True:
            self.backends.reload_if_changed()
            await asyncio.sleep(0.2)

    # -- request handling --------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        pinned = request.headers.get(BACKEND_HEADER)
        if pinned:
            return await self._pinned(request, body, pinned)
        route = self.route
        chosen = self.chooser.choose(route.backends)
        if chosen is None:
            self.metrics.requests.labels(backend="none", routing="weighted", outcome="no_route").inc()
            return web.json_response({"error": f"no backend with weight > 0 in {route.source}"},
                                     status=503)
        url = self.backends.resolve(chosen.ref)
        label = chosen.ref.label
        if url is None:
            self.metrics.requests.labels(backend=label, routing="weighted", outcome="unresolved").inc()
            return web.json_response({"error": f"backend {label} has no URL in the backend map"},
                                     status=502)
        # Mirror sampling is decided before forwarding, so the answering server can be told that
        # this request is mirrored: it then scores it twice for the shadow gate's live control.
        mirrors = [mirror for mirror in route.mirrors if self.chooser.mirror_hit(mirror)]
        result = await self._forward(request, body, url, label, "weighted",
                                     extra_headers={CONTROL_HEADER: "1"} if mirrors else None)
        for mirror in mirrors:
            self._start_mirror(request, body, mirror, result)
        return self._respond(result, label)

    async def _pinned(self, request: web.Request, body: bytes, label: str) -> web.Response:
        ref = self._known_refs.get(label)
        url = self.backends.resolve(ref) if ref else self.backends.resolve_label(label)
        if url is None:
            self.metrics.requests.labels(backend=label, routing="pinned", outcome="unresolved").inc()
            return web.json_response({"error": f"unknown backend {label!r}"}, status=502)
        return self._respond(await self._forward(request, body, url, label, "pinned"), label)

    @staticmethod
    def _respond(result: Forwarded, label: str) -> web.Response:
        headers = {**result.headers, BACKEND_HEADER: label}
        return web.Response(status=result.status, body=result.body, headers=headers)

    async def _forward(self, request: web.Request, body: bytes, base_url: str, label: str,
                       routing: str, extra_headers: dict[str, str] | None = None) -> Forwarded:
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() not in HOP_BY_HOP and k.lower() != CONTROL_HEADER.lower()}
        headers.update(extra_headers or {})
        try:
            async with self._session.request(
                request.method, base_url + request.path_qs, data=body, headers=headers,
            ) as response:
                payload = await response.read()
                out_headers = {k: v for k, v in response.headers.items()
                               if k.lower() not in HOP_BY_HOP}
                outcome = "error" if response.status >= 500 else "success"
                self.metrics.requests.labels(backend=label, routing=routing, outcome=outcome).inc()
                return Forwarded(response.status, payload, out_headers)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            self.metrics.requests.labels(backend=label, routing=routing, outcome="unreachable").inc()
            message = json.dumps({"error": f"backend {label} unreachable: {exc!r}"}).encode()
            return Forwarded(502, message, {"Content-Type": "application/json"})

    def _start_mirror(self, request: web.Request, body: bytes, mirror: Mirror,
                      primary: Forwarded) -> None:
        label = mirror.ref.label
        url = self.backends.resolve(mirror.ref)
        if url is None or len(self._mirror_tasks) >= MAX_MIRRORS_IN_FLIGHT:
            outcome = "unresolved" if url is None else "dropped"
            self.metrics.mirrored.labels(backend=label, outcome=outcome).inc()
            return
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() not in HOP_BY_HOP and k.lower() != CONTROL_HEADER.lower()}
        headers[MIRROR_HEADER] = "1"
        stable = stable_prediction(primary)
        if stable is not None:
            headers[STABLE_PREDICTION_HEADER] = stable
        task = asyncio.create_task(self._mirror(request.method, url + request.path_qs, body,
                                                headers, label))
        self._mirror_tasks.add(task)
        task.add_done_callback(self._mirror_tasks.discard)

    async def _mirror(self, method: str, url: str, body: bytes, headers: dict[str, str],
                      label: str) -> None:
        assert self._session is not None
        try:
            async with self._session.request(method, url, data=body, headers=headers) as response:
                await response.read()  # discarded, as a gateway does
                outcome = "error" if response.status >= 500 else "success"
        except (aiohttp.ClientError, asyncio.TimeoutError):
            outcome = "unreachable"
        self.metrics.mirrored.labels(backend=label, outcome=outcome).inc()

    # -- own endpoints -----------------------------------------------------------------

    async def metrics_endpoint(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.metrics.registry),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})

    def route_json(self) -> dict[str, Any]:
        return {
            "source": self.route.source,
            "resourceVersion": self.route.resource_version,
            "generation": self.route.generation,
            "weights": self.route.weights(),
            "mirrors": [{"backend": m.ref.label, "percent": m.percent} for m in self.route.mirrors],
            "backends": self.backends.entries,
            "loaded": self.route_loaded,
            "lastError": self.last_error,
        }

    async def route_endpoint(self, request: web.Request) -> web.Response:
        return web.json_response(self.route_json())

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", **self.route_json()})

    async def readyz(self, request: web.Request) -> web.Response:
        status = 200 if self.route_loaded else 503
        return web.json_response({"ready": self.route_loaded, "lastError": self.last_error},
                                 status=status)


def stable_prediction(primary: Forwarded) -> str | None:
    """The predicted class in the answering backend's JSON body, if it answered one."""
    if primary.status != 200:
        return None
    try:
        value = json.loads(primary.body).get("class")
    except (ValueError, AttributeError):
        return None
    return str(value) if value in (0, 1) else None


SPLITTER_KEY = web.AppKey("splitter", TrafficSplitter)


def build_app(splitter: TrafficSplitter) -> web.Application:
    app = web.Application(client_max_size=4 * 1024 * 1024)
    app.router.add_get("/metrics", splitter.metrics_endpoint)
    app.router.add_get("/healthz", splitter.healthz)
    app.router.add_get("/readyz", splitter.readyz)
    app.router.add_get("/_splitter/route", splitter.route_endpoint)
    app.router.add_route("*", "/{tail:.*}", splitter.handle)
    app.on_startup.append(splitter.on_startup)
    app.on_cleanup.append(splitter.on_cleanup)
    app[SPLITTER_KEY] = splitter
    return app


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m vigil.demo.trafficsplit", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--kind", choices=sorted(ROUTE_KINDS), default="httproute")
    parser.add_argument("--namespace", default="default", help="namespace of the route")
    parser.add_argument("--route", help="name of the HTTPRoute / VirtualService to follow")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--kubeconfig", help="watch the route in this cluster")
    source.add_argument("--route-file", type=Path,
                        help="read the route object from a YAML/JSON file (re-read on change)")
    parser.add_argument("--backend", action="append", default=[], metavar="NAME=URL",
                        help="backend URL, NAME is the Service name (or ns/name, name:subset)")
    parser.add_argument("--backend-file", type=Path,
                        help="file of NAME=URL lines or a JSON object; re-read on change")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weighted choice")
    args = parser.parse_args(argv)
    if args.kubeconfig and not args.route:
        parser.error("--kubeconfig needs --route NAME")
    return args


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args = parse_args(argv)
    from prometheus_client import disable_created_metrics

    disable_created_metrics()
    try:
        backends = BackendMap(static=parse_entries(args.backend), file=args.backend_file)
    except BackendMapError as exc:
        raise SystemExit(f"trafficsplit: {exc}") from None
    source: RouteSource
    if args.kubeconfig:
        source = KubeRouteWatcher(args.kubeconfig, WatchedRoute(args.kind, args.namespace, args.route))
    else:
        source = FileRouteWatcher(args.route_file, args.kind)
    splitter = TrafficSplitter(backends, source, seed=args.seed)
    web.run_app(build_app(splitter), host=args.host, port=args.port, print=None,
                access_log=None, handle_signals=True)


if __name__ == "__main__":
    main()
