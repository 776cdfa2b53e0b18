"""The load generator: bounded, open-loop, seeded, and every answer gets its label back."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from vigil.demo.dataset import load_dataset
from vigil.demo.loadgen import LoadConfig, LoadGenerator, run_load


class RecordingServer:
    """A model-server stand-in that records predictions and labels it receives."""

    def __init__(self, backend: str | None = "iris-v2", slow_every: int = 0, fail_every: int = 0):
        self.backend, self.slow_every, self.fail_every = backend, slow_every, fail_every
        self.predictions: list[dict[str, Any]] = []
        self.feedback: list[tuple[dict[str, Any], str | None]] = []
        self.app = web.Application()
        self.app.router.add_post("/predict", self.predict)
        self.app.router.add_post("/feedback", self.label)

    async def predict(self, request: web.Request) -> web.Response:
        body = await request.json()
        n = len(self.predictions)
        self.predictions.append({**body, "id": request.headers["X-Request-Id"]})
        if self.slow_every and n % self.slow_every == 0:
            await asyncio.sleep(0.5)
        if self.fail_every and n % self.fail_every == 0:
            return web.json_response({"error": "x"}, status=503)
        headers = {"X-Vigil-Version": "v2"}
        if self.backend:
            headers["X-Vigil-Backend"] = self.backend
        return web.json_response({"request_id": request.headers["X-Request-Id"], "class": 1},
                                 headers=headers)

    async def label(self, request: web.Request) -> web.Response:
        self.feedback.append((await request.json(), request.headers.get("X-Vigil-Backend")))
        return web.json_response({"correct": True})


async def run_against(server: RecordingServer, **config: Any) -> tuple[Any, float]:
    test_server = TestServer(server.app)
    await test_server.start_server()
    try:
        started = time.monotonic()
        stats = await run_load(LoadConfig(target=str(test_server.make_url("")).rstrip("/"), **config))
        return stats, time.monotonic() - started
    finally:
        await test_server.close()


def test_count_rate_and_labels_back_to_the_backend_that_answered() -> None:
    server = RecordingServer()
    stats, elapsed = asyncio.run(run_against(server, rate=100, count=60, feedback_delay=(0.05, 0.2),
                                             duration=None))
    assert stats.sent == stats.answered == len(server.predictions) == 60
    assert 0.5 <= elapsed < 5.0  # 60 requests at 100/s take ~0.6 s, plus label delays
    assert stats.by_backend == {"iris-v2": 60} and stats.by_version == {"v2": 60}
    assert stats.feedback_sent == 60 and stats.correct == 60
    data = load_dataset()
    sent_labels = {p["id"]: int(data.labels[list(map(tuple, data.features)).index(tuple(p["features"]))])
                   for p in server.predictions}
    assert {(f["request_id"], f["label"]) for f, _ in server.feedback} == set(sent_labels.items())
    assert {backend for _, backend in server.feedback} == {"iris-v2"}
    assert all(p["group"] in ("a", "b") for p in server.predictions)


def test_duration_bounds_the_run_and_slow_answers_do_not_slow_the_rate() -> None:
    server = RecordingServer(slow_every=3)
    stats, elapsed = asyncio.run(run_against(server, rate=50, duration=1.0, feedback_delay=(0, 0)))
    assert stats.sent == 50  # open loop: a third of the answers take 0.5 s, the rate holds
    assert elapsed < 3.0


def test_errors_are_counted_and_get_no_label() -> None:
    server = RecordingServer(fail_every=4, backend=None)
    stats, _ = asyncio.run(run_against(server, rate=200, count=40, duration=None,
                                       feedback_delay=(0, 0)))
    assert stats.server_errors == 10 and stats.answered == 30
    assert stats.feedback_sent == 30
    assert all(backend is None for _, backend in server.feedback)  # straight to the server


def test_rows_are_the_same_for_the_same_seed() -> None:
    first, second, other = RecordingServer(), RecordingServer(), RecordingServer()
    for server, seed in ((first, 1), (second, 1), (other, 2)):
        asyncio.run(run_against(server, rate=500, count=30, duration=None, seed=seed,
                                feedback_delay=(0, 0)))
    rows = lambda s: [tuple(p["features"]) for p in s.predictions]  # noqa: E731
    assert sorted(rows(first)) == sorted(rows(second))
    assert sorted(rows(first)) != sorted(rows(other))


def test_feedback_share_and_stop() -> None:
    server = RecordingServer()
    stats, _ = asyncio.run(run_against(server, rate=400, count=200, duration=None,
                                       feedback_delay=(0, 0), feedback_share=0.5))
    assert stats.feedback_sent + stats.feedback_dropped == 200
    assert 70 < stats.feedback_sent < 130

    async def stopped_early() -> Any:
        test_server = TestServer(RecordingServer().app)
        await test_server.start_server()
        generator = LoadGenerator(LoadConfig(target=str(test_server.make_url("")).rstrip("/"),
                                             rate=50, duration=30, feedback_delay=(60, 60)))
        asyncio.get_running_loop().call_later(0.3, generator.stop)
        started = time.monotonic()
        stats = await generator.run()
        await test_server.close()
        return stats, time.monotonic() - started

    stats, elapsed = asyncio.run(stopped_early())
    assert elapsed < 5 and stats.sent < 50
    assert stats.feedback_sent == 0  # labels still due are dropped on stop, not awaited


@pytest.mark.parametrize("bad", [dict(rate=0), dict(duration=None, count=None),
                                 dict(feedback_delay=(2, 1)), dict(feedback_share=2)])
def test_bad_configs_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        LoadConfig(target="http://x", **bad)
