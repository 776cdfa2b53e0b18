"""Load generator: real requests from the demo data set at a set rate, then late labels.

    python -m vigil.demo.loadgen --target http://127.0.0.1:8080 --rate 20 --duration 120 \
        --feedback-delay 5:15 [--seed 0] [--summary out.json]

Open loop: request *i* is due at ``start + i / rate`` whatever the answers' latency (a
slow version must not slow its own traffic down, or its latency would hide). Each
answered request gets its true label sent back after a random delay, to the version
that answered: through the splitter with ``X-Vigil-Backend`` naming the backend from
the answer, or straight to the target if it was a model server. It stops by itself
after ``--duration`` seconds or ``--count`` requests, waits for the labels still due
(unless ``--no-wait-feedback``), prints a JSON summary and exits. SIGTERM/SIGINT stop
it early, cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from vigil.demo.dataset import DemoDataset, load_dataset
from vigil.demo.headers import BACKEND_HEADER, REQUEST_ID_HEADER, VERSION_HEADER

log = logging.getLogger("vigil.demo.loadgen")


@dataclass(frozen=True)
class LoadConfig:
    target: str
    rate: float = 20.0
    duration: float | None = 60.0
    count: int | None = None
    feedback_delay: tuple[float, float] = (5.0, 15.0)
    feedback_share: float = 1.0
    seed: int = 0
    max_in_flight: int = 256
    wait_for_feedback: bool = True
    request_timeout: float = 10.0

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise ValueError("rate must be > 0 requests per second")
        if self.duration is None and self.count is None:
            raise ValueError("give a duration or a count, so the run ends by itself")
        low, high = self.feedback_delay
        if not 0 <= low <= high:
            raise ValueError("feedback delay must be 0 <= min <= max")
        if not 0.0 <= self.feedback_share <= 1.0:
            raise ValueError("feedback share must be within [0, 1]")


@dataclass
class LoadStats:
    """What happened, for the demo's summary and for tests."""

    sent: int = 0
    answered: int = 0
    server_errors: int = 0
    client_errors: int = 0
    unreachable: int = 0
    by_backend: Counter[str] = field(default_factory=Counter)
    by_version: Counter[str] = field(default_factory=Counter)
    feedback_sent: int = 0
    feedback_failed: int = 0
    feedback_dropped: int = 0
    correct: int = 0
    elapsed_seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["by_backend"] = dict(self.by_backend)
        data["by_version"] = dict(self.by_version)
        return data


@dataclass(frozen=True)
class Answer:
    request_id: str
    backend: str | None
    label: int


class LoadGenerator:
    def __init__(self, config: LoadConfig, dataset: DemoDataset | None = None) -> None:
        self.config = config
        self.dataset = dataset or load_dataset()
        self.stats = LoadStats()
        self._rows = np.random.default_rng(config.seed)
        self._delays = np.random.default_rng(config.seed + 1)
        self._run_token = os.urandom(4).hex()
        self._stop = asyncio.Event()
        self._requests: set[asyncio.Task[None]] = set()
        self._feedback: set[asyncio.Task[None]] = set()

    def stop(self) -> None:
        """Stop sending new requests (the run then finishes as usual)."""
        self._stop.set()

    async def run(self) -> LoadStats:
        cfg = self.config
        timeout = aiohttp.ClientTimeout(total=cfg.request_timeout)
        connector = aiohttp.TCPConnector(limit=cfg.max_in_flight)
        loop = asyncio.get_running_loop()
        in_flight = asyncio.Semaphore(cfg.max_in_flight)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            start = loop.time()
            index = 0
            while not self._stop.is_set():
                due = start + index / cfg.rate
                if cfg.duration is not None and due - start >= cfg.duration:
                    break
                if cfg.count is not None and index >= cfg.count:
                    break
                try:
                    await asyncio.wait_for(self._stop.wait(), timeout=max(0.0, due - loop.time()))
                    break
                except asyncio.TimeoutError:
                    pass
                await in_flight.acquire()
                task = asyncio.create_task(self._request(session, index))
                task.add_done_callback(lambda t: in_flight.release())
                self._track(self._requests, task)
                index += 1
            if self._requests:
                await asyncio.gather(*self._requests, return_exceptions=True)
            await self._finish_feedback()
            self.stats.elapsed_seconds = round(loop.time() - start, 3)
        return self.stats

    async def _finish_feedback(self) -> None:
        if not self._feedback:
            return
        if self.config.wait_for_feedback and not self._stop.is_set():
            await asyncio.gather(*self._feedback, return_exceptions=True)
            return
        pending = list(self._feedback)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    @staticmethod
    def _track(tasks: set[asyncio.Task[None]], task: asyncio.Task[None]) -> None:
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def _next_row(self) -> int:
        return int(self._rows.integers(self.dataset.n_rows))

    async def _request(self, session: aiohttp.ClientSession, index: int) -> None:
        row = self._next_row()
        delay = float(self._delays.uniform(*self.config.feedback_delay))
        give_label = bool(self._delays.random() < self.config.feedback_share)
        request_id = f"lg-{self._run_token}-{index}"
        body = {"features": self.dataset.row(row), "group": self.dataset.groups[row]}
        self.stats.sent += 1
        try:
            async with session.post(self.config.target + "/predict", json=body,
                                    headers={REQUEST_ID_HEADER: request_id}) as response:
                payload = await response.read()
                backend = response.headers.get(BACKEND_HEADER)
                version = response.headers.get(VERSION_HEADER)
                status = response.status
        except (aiohttp.ClientError, asyncio.TimeoutError):
            self.stats.unreachable += 1
            return
        if backend:
            self.stats.by_backend[backend] += 1
        if status >= 500:
            self.stats.server_errors += 1
            return
        if status >= 400:
            self.stats.client_errors += 1
            return
        self.stats.answered += 1
        if version:
            self.stats.by_version[version] += 1
        try:
            answered_id = json.loads(payload)["request_id"]
        except (ValueError, KeyError, TypeError):
            answered_id = request_id
        if not give_label:
            self.stats.feedback_dropped += 1
            return
        answer = Answer(answered_id, backend, int(self.dataset.labels[row]))
        self._track(self._feedback, asyncio.create_task(self._send_label(session, answer, delay)))

    async def _send_label(self, session: aiohttp.ClientSession, answer: Answer, delay: float) -> None:
        await asyncio.sleep(delay)
        headers = {BACKEND_HEADER: answer.backend} if answer.backend else {}
        try:
            async with session.post(
                self.config.target + "/feedback", headers=headers,
                json={"request_id": answer.request_id, "label": answer.label},
            ) as response:
                result = await response.json(content_type=None) if response.status == 200 else None
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
            result = None
        if result is None:
            self.stats.feedback_failed += 1
            return
        self.stats.feedback_sent += 1
        self.stats.correct += int(bool(result.get("correct")))


async def run_load(config: LoadConfig, dataset: DemoDataset | None = None) -> LoadStats:
    """Run one bounded load; for callers that already have an event loop."""
    return await LoadGenerator(config, dataset).run()


def _delay_range(text: str) -> tuple[float, float]:
    low, sep, high = text.partition(":")
    try:
        return (float(low), float(high if sep else low))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN:MAX seconds, got {text!r}") from None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m vigil.demo.loadgen", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", required=True, help="base URL of the splitter or a model server")
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second")
    parser.add_argument("--duration", type=float, default=None, help="seconds to send for")
    parser.add_argument("--count", type=int, default=None, help="requests to send")
    parser.add_argument("--feedback-delay", type=_delay_range, default=(5.0, 15.0),
                        metavar="MIN:MAX", help="seconds before a label is sent back")
    parser.add_argument("--feedback-share", type=float, default=1.0,
                        help="share of answered requests that ever get a label")
    parser.add_argument("--no-wait-feedback", action="store_true",
                        help="do not wait for labels still due when sending stops")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--summary", type=Path, help="also write the JSON summary here")
    args = parser.parse_args(argv)
    if args.duration is None and args.count is None:
        args.duration = 60.0
    return args


async def _main(args: argparse.Namespace) -> LoadStats:
    generator = LoadGenerator(LoadConfig(
        target=args.target.rstrip("/"), rate=args.rate, duration=args.duration, count=args.count,
        feedback_delay=args.feedback_delay, feedback_share=args.feedback_share, seed=args.seed,
        wait_for_feedback=not args.no_wait_feedback,
    ))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, generator.stop)
    return await generator.run()


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args = parse_args(argv)
    try:
        stats = asyncio.run(_main(args))
    except ValueError as exc:
        raise SystemExit(f"loadgen: {exc}") from None
    summary = json.dumps(stats.to_json(), sort_keys=True)
    if args.summary:
        args.summary.write_text(summary)
    print(summary, file=sys.stdout, flush=True)


if __name__ == "__main__":
    main()
