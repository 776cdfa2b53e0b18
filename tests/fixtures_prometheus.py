"""Prometheus fixtures for integration tests (loaded by the root conftest via pytest_plugins).

* `prometheus`: one real server for the session (1 s scrapes); `prometheus.add_targets(...)`
  starts scraping more endpoints, `prometheus.backfill(text)` loads a known history
  (OpenMetrics; the server restarts to read it).
* `prometheus_with_history`: a factory for a fresh server that starts with a backfilled
  history, stopped after the test: `prom = prometheus_with_history(openmetrics_text(...))`.

Both FAIL (never skip) when the server cannot start: a run that did not talk to a real
Prometheus must not look green.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import pytest

from vigil.dev.process import StartError
from vigil.dev.prometheus import PrometheusServer


def _start(factory: pytest.TempPathFactory, name: str, **kwargs: object) -> PrometheusServer:
    try:
        return PrometheusServer.start(workdir=factory.mktemp(name), **kwargs)  # type: ignore[arg-type]
    except StartError as err:
        pytest.fail(f"Prometheus did not start: {err}", pytrace=False)


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    server = _start(tmp_path_factory, "prometheus", scrape_interval="1s")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def prometheus_with_history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., PrometheusServer]]:
    started: list[PrometheusServer] = []

    def make(history: str, targets: Sequence[str] = (), scrape_interval: str = "1s") -> PrometheusServer:
        server = _start(tmp_path_factory, "prometheus-history", history=history, targets=targets,
                        scrape_interval=scrape_interval)
        started.append(server)
        return server

    try:
        yield make
    finally:
        for server in started:
            server.stop()
