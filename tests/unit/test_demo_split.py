"""The splitter: seeded weighted choice, mirroring, pinned feedback, and its own metrics.

The HTTP tests run the splitter and small fake backends in-process on loopback.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections import Counter
from pathlib import Path
from typing import Any, Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from vigil.demo.backends import BackendMap
from vigil.demo.routes import BackendRef, Mirror, ParsedRoute, WeightedBackend
from vigil.demo.routewatch import FileRouteWatcher
from vigil.demo.trafficsplit import (
    Forwarded, TrafficSplitter, WeightedChooser, build_app, stable_prediction,
)


def split(weights: dict[str, int], mirrors: tuple[Mirror, ...] = ()) -> ParsedRoute:
    return ParsedRoute(backends=tuple(WeightedBackend(BackendRef(n), w) for n, w in weights.items()),
                      mirrors=mirrors, source="test")


def three_sigma(n: int, p: float) -> float:
    return 3 * math.sqrt(n * p * (1 - p))


# --- weighted choice ------------------------------------------------------------------


@pytest.mark.parametrize("weights", [{"a": 90, "b": 10}, {"a": 50, "b": 50}, {"a": 1, "b": 2, "c": 7}])
def test_choice_proportions_follow_the_weights(weights: dict[str, int]) -> None:
    chooser = WeightedChooser(seed=1)
    n = 20000
    counts = Counter(chooser.choose(split(weights).backends).ref.name for _ in range(n))  # type: ignore[union-attr]
    total = sum(weights.values())
    for name, weight in weights.items():
        p = weight / total
        assert abs(counts[name] - n * p) < three_sigma(n, p), (name, counts)


def test_zero_weights_are_never_chosen_and_all_zero_means_none() -> None:
    chooser = WeightedChooser(seed=2)
    backends = split({"a": 0, "b": 5, "c": 0}).backends
    assert {chooser.choose(backends).ref.name for _ in range(2000)} == {"b"}  # type: ignore[union-attr]
    assert chooser.choose(split({"a": 0}).backends) is None
    assert chooser.choose(()) is None


def test_choice_is_deterministic_by_seed() -> None:
    backends = split({"a": 70, "b": 30}).backends

    def picks(seed: int) -> list[str]:
        chooser = WeightedChooser(seed)
        return [chooser.choose(backends).ref.name for _ in range(500)]  # type: ignore[union-attr]

    assert picks(7) == picks(7)
    assert picks(7) != picks(8)


def test_mirror_sampling_rate_and_independence_from_the_split() -> None:
    chooser = WeightedChooser(seed=3)
    mirror = Mirror(BackendRef("s"), 12.5)
    n = 20000
    hits = sum(chooser.mirror_hit(mirror) for _ in range(n))
    assert abs(hits - n * 0.125) < three_sigma(n, 0.125)
    assert all(WeightedChooser(0).mirror_hit(Mirror(BackendRef("s"), 100.0)) for _ in range(50))
    assert not any(WeightedChooser(0).mirror_hit(Mirror(BackendRef("s"), 0.0)) for _ in range(50))
    # Sampling mirrors does not change which backend each request goes to.
    backends = split({"a": 50, "b": 50}).backends
    plain, mirrored = WeightedChooser(9), WeightedChooser(9)
    picks_plain = [plain.choose(backends) for _ in range(300)]
    picks_mirrored = []
    for _ in range(300):
        picks_mirrored.append(mirrored.choose(backends))
        mirrored.mirror_hit(mirror)
    assert picks_plain == picks_mirrored


def test_stable_prediction_is_read_only_from_a_good_answer() -> None:
    assert stable_prediction(Forwarded(200, b'{"class": 1}', {})) == "1"
    assert stable_prediction(Forwarded(200, b'{"class": 0}', {})) == "0"
    assert stable_prediction(Forwarded(503, b'{"class": 1}', {})) is None
    assert stable_prediction(Forwarded(200, b"oops", {})) is None
    assert stable_prediction(Forwarded(200, b'{"class": "x"}', {})) is None


# --- over HTTP ------------------------------------------------------------------------


class StaticSource:
    """A route source the test drives by hand."""

    def __init__(self, first: ParsedRoute) -> None:
        self.first = first
        self.on_route: Callable[[ParsedRoute], None] | None = None

    def start(self, loop: Any, on_route: Callable[[ParsedRoute], None], on_error: Any) -> None:
        self.on_route = on_route
        on_route(self.first)

    def stop(self) -> None:
        pass


class FakeBackend:
    """Answers /predict with a fixed class and records what it received."""

    def __init__(self, name: str, cls: int, status: int = 200) -> None:
        self.name, self.cls, self.status = name, cls, status
        self.received: list[dict[str, str]] = []
        self.app = web.Application()
        self.app.router.add_route("*", "/{tail:.*}", self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append({"path": request.path, **dict(request.headers)})
        if self.status != 200:
            return web.json_response({"error": "boom"}, status=self.status)
        return web.json_response({"class": self.cls, "request_id": "x", "backend": self.name})


async def run_with(backends: list[FakeBackend], route: ParsedRoute,
                   body: Callable[[TestClient, TrafficSplitter, StaticSource], Awaitable[Any]],
                   extra_map: dict[str, str] | None = None) -> Any:
    servers = [TestServer(b.app) for b in backends]
    for server in servers:
        await server.start_server()
    try:
        mapping = {b.name: str(s.make_url("")).rstrip("/") for b, s in zip(backends, servers)}
        source = StaticSource(route)
        splitter = TrafficSplitter(BackendMap(static={**mapping, **(extra_map or {})}), source, seed=4)
        async with TestClient(TestServer(build_app(splitter))) as client:
            return await body(client, splitter, source)
    finally:
        for server in servers:
            await server.close()


def metric(text: str, name: str, **labels: str) -> float:
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def test_http_traffic_splits_by_weight_and_changes_at_once() -> None:
    stable, canary = FakeBackend("iris-v1", 0), FakeBackend("iris-v2", 1)

    async def body(client: TestClient, splitter: TrafficSplitter, source: StaticSource) -> None:
        async def send(n: int) -> Counter[str]:
            seen: Counter[str] = Counter()
            for _ in range(n):
                response = await client.post("/predict", json={"row": 1})
                assert response.status == 200
                seen[response.headers["X-Vigil-Backend"]] += 1
            return seen

        first = await send(1000)
        assert abs(first["iris-v2"] - 200) < three_sigma(1000, 0.2)
        assert source.on_route is not None
        source.on_route(split({"iris-v1": 0, "iris-v2": 100}))
        assert (await send(50)) == Counter({"iris-v2": 50})
        text = await (await client.get("/metrics")).text()
        assert metric(text, "vigil_splitter_requests_total", backend="iris-v1") == first["iris-v1"]
        assert metric(text, "vigil_splitter_requests_total", backend="iris-v2") == first["iris-v2"] + 50
        assert metric(text, "vigil_splitter_backend_weight", backend="iris-v1") == 0
        assert metric(text, "vigil_splitter_backend_weight", backend="iris-v2") == 100
        assert metric(text, "vigil_splitter_route_updates_total") == 2

    asyncio.run(run_with([stable, canary], split({"iris-v1": 80, "iris-v2": 20}), body))
    assert len(stable.received) + len(canary.received) == 1050


def test_mirror_gets_a_copy_with_the_stable_prediction_and_its_answer_is_discarded() -> None:
    stable, shadow = FakeBackend("iris-v1", 1), FakeBackend("iris-v2", 0, status=503)
    route = split({"iris-v1": 100}, (Mirror(BackendRef("iris-v2"), 100.0),))

    async def body(client: TestClient, splitter: TrafficSplitter, source: StaticSource) -> str:
        for _ in range(20):
            response = await client.post("/predict?x=1", json={"row": 2})
            assert response.status == 200  # the shadow's 503 never reaches the client
            assert (await response.json())["backend"] == "iris-v1"
        for _ in range(100):
            if len(shadow.received) == 20:
                break
            await asyncio.sleep(0.02)
        return await (await client.get("/metrics")).text()

    text = asyncio.run(run_with([stable, shadow], route, body))
    assert len(shadow.received) == 20
    assert all(r["X-Vigil-Mirror"] == "1" and r["X-Vigil-Stable-Prediction"] == "1"
               for r in shadow.received)
    assert all("X-Vigil-Mirror" not in r for r in stable.received)
    # the answering backend is told the request is mirrored (it scores it twice: the live control);
    # the copy itself is not
    assert all(r.get("X-Vigil-Shadow-Control") == "1" for r in stable.received)
    assert all("X-Vigil-Shadow-Control" not in r for r in shadow.received)
    assert metric(text, "vigil_splitter_mirrored_requests_total", backend="iris-v2", outcome="error") == 20
    assert metric(text, "vigil_splitter_mirror_percent", backend="iris-v2") == 100


def test_pinned_requests_go_to_the_named_backend_without_mirroring() -> None:
    stable, canary = FakeBackend("iris-v1", 0), FakeBackend("iris-v2", 1)
    route = split({"iris-v1": 100, "iris-v2": 0}, (Mirror(BackendRef("iris-v2"), 100.0),))

    async def body(client: TestClient, splitter: TrafficSplitter, source: StaticSource) -> list[int]:
        statuses = []
        for _ in range(5):
            response = await client.post("/feedback", json={"request_id": "x", "label": 1},
                                         headers={"X-Vigil-Backend": "iris-v2"})
            statuses.append(response.status)
            assert response.headers["X-Vigil-Backend"] == "iris-v2"
        unknown = await client.post("/feedback", json={}, headers={"X-Vigil-Backend": "nope"})
        statuses.append(unknown.status)
        return statuses

    statuses = asyncio.run(run_with([stable, canary], route, body))
    assert statuses == [200] * 5 + [502]
    assert [r["path"] for r in canary.received] == ["/feedback"] * 5
    assert stable.received == []


def test_no_weight_no_url_and_dead_backend_are_clear_errors() -> None:
    async def body(client: TestClient, splitter: TrafficSplitter, source: StaticSource) -> list[tuple[int, str]]:
        out = []
        assert source.on_route is not None
        for route in (split({"iris-v1": 0}), split({"ghost": 1}), split({"dead": 1})):
            source.on_route(route)
            response = await client.post("/predict", json={})
            out.append((response.status, (await response.json())["error"]))
        return out

    results = asyncio.run(run_with([FakeBackend("iris-v1", 0)], split({"iris-v1": 1}), body,
                                   extra_map={"dead": "http://127.0.0.1:9"}))
    assert results[0][0] == 503 and "no backend with weight > 0" in results[0][1]
    assert results[1][0] == 502 and "ghost has no URL" in results[1][1]
    assert results[2][0] == 502 and "dead unreachable" in results[2][1]


def test_readiness_waits_for_the_first_route(tmp_path: Path) -> None:
    route_file = tmp_path / "route.json"

    async def main() -> list[int]:
        splitter = TrafficSplitter(BackendMap(static={}), FileRouteWatcher(route_file, "httproute", 0.02))
        async with TestClient(TestServer(build_app(splitter))) as client:
            await asyncio.sleep(0.1)
            missing = await client.get("/readyz")  # no file: an (empty) route was read
            route_file.write_text(json.dumps({"metadata": {"name": "r", "namespace": "n"},
                                              "spec": {"rules": [{"backendRefs": [{"name": "a", "weight": 3}]}]}}))
            for _ in range(100):
                if splitter.route.weights() == {"a": 3}:
                    break
                await asyncio.sleep(0.02)
            route = await (await client.get("/_splitter/route")).json()
            route_file.write_text("spec: [unclosed")
            await asyncio.sleep(0.2)
            kept = splitter.route.weights()
            return [missing.status, route["weights"] == {"a": 3}, kept == {"a": 3},
                    splitter.last_error is not None]

    assert asyncio.run(main()) == [200, True, True, True]
