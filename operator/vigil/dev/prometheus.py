"""A real Prometheus for development and tests: Debian's `prometheus` on a free loopback port.

    with PrometheusServer.start(["127.0.0.1:8000"], scrape_interval="1s") as prom:
        prom.add_targets("127.0.0.1:8001")      # rewrites the config, POSTs /-/reload
        prom.query("up")

    # a known history, queried with real PromQL:
    with PrometheusServer.start(history=openmetrics_text(samples, types)) as prom: ...

The server runs in its own temp directory (config, TSDB, log) under the one process
supervisor (`vigil.dev.process`), so `stop()` leaves nothing behind: SIGTERM, wait, SIGKILL.
Queries and the HTTP endpoints go through Vigil's one Prometheus connection
(`vigil.metrics.connection`), the same as the operator's.

Backfill writes OpenMetrics text and turns it into TSDB blocks with `promtool tsdb
create-blocks-from openmetrics`. Prometheus reads blocks only when it opens the TSDB, so a
backfill into a running server stops it, adds the blocks and starts it again on the same
port. Keep backfilled samples inside the retention (15 days) and older than a few minutes.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from prometheus_api_client import PrometheusApiClientException, PrometheusConnect

from vigil.dev.process import ManagedProcess, ProcessSupervisor, StartError, ensure_port_free, free_port, wait_until
from vigil.metrics.connection import PrometheusConfig, connect, request
from vigil.metrics.promql import escape

PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"
INSTALL_HINT = "apt-get install prometheus"


def find_binary(path: str) -> str:
    """The binary's path, or a one-line StartError saying how to install it."""
    found = path if Path(path).exists() else shutil.which(Path(path).name)
    if not found:
        raise StartError(f"{Path(path).name} not found at {path} or on PATH: {INSTALL_HINT}")
    return found


@dataclass
class PrometheusServer:
    """One Prometheus process and its working directory."""

    workdir: Path
    port: int
    scrape_interval: str = "1s"
    targets: list[str] = field(default_factory=list)
    startup_timeout: float = 60.0
    _proc: ManagedProcess | None = None
    _own_workdir: bool = False
    _supervisor: ProcessSupervisor | None = None
    _client: PrometheusConnect | None = None

    # ----------------------------------------------------------------- lifecycle

    @classmethod
    def start(
        cls,
        targets: Sequence[str] = (),
        *,
        scrape_interval: str = "1s",
        port: int | None = None,
        workdir: Path | None = None,
        history: str | None = None,
        startup_timeout: float = 60.0,
    ) -> PrometheusServer:
        """Start a server scraping `targets` ("host:port"); `history` is OpenMetrics text to
        backfill before it starts. Raises StartError with a one-line reason."""
        find_binary(PROMETHEUS)
        own = workdir is None
        workdir = Path(tempfile.mkdtemp(prefix="vigil-prometheus-")) if workdir is None else Path(workdir)
        if port is not None:
            ensure_port_free(port, "Prometheus")
        server = cls(workdir=workdir, port=port or free_port(), scrape_interval=scrape_interval,
                     targets=list(targets), startup_timeout=startup_timeout, _own_workdir=own)
        try:
            if history is not None:
                server._create_blocks(history)
            server._launch()
        except BaseException:
            server.stop()
            raise
        return server

    def __enter__(self) -> PrometheusServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Terminate the server (SIGTERM, wait, SIGKILL) and remove a temp dir it created."""
        if self._supervisor is not None:
            self._supervisor.close()
            self._supervisor, self._proc = None, None
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def config_path(self) -> Path:
        return self.workdir / "prometheus.yml"

    @property
    def log_path(self) -> Path:
        return self.workdir / "prometheus.log"

    @property
    def processes(self) -> list[ManagedProcess]:
        """The running server process, for a caller that stops several things at once."""
        return [self._proc] if self._proc is not None else []

    def alive(self) -> bool:
        return self._proc is not None and self._proc.is_running()

    @property
    def client(self) -> PrometheusConnect:
        """The shared Prometheus connection; no retries: callers here poll or fail fast."""
        if self._client is None:
            self._client = connect(PrometheusConfig(url=self.url, timeout_seconds=10.0, retries=0))
        return self._client

    # ------------------------------------------------------------------ targets

    def add_targets(self, *targets: str, timeout: float = 30.0) -> None:
        """Scrape more targets from now on: rewrite the config and reload it in place."""
        self.targets.extend(t for t in targets if t not in self.targets)
        self._write_config()
        self._post("/-/reload")
        wait_until(lambda: set(targets) <= self.active_targets(), timeout=timeout,
                   what=f"Prometheus to pick up targets {', '.join(targets)}", proc=self._proc)

    def active_targets(self) -> set[str]:
        data = self._api(lambda: self.client.get_targets(state="active"), "/api/v1/targets")
        return {t["labels"].get("instance", "") for t in data["activeTargets"]}

    # ----------------------------------------------------------------- backfill

    def backfill(self, openmetrics: str) -> None:
        """Load a known history: stop, add TSDB blocks made by promtool, start again."""
        running = self._proc is not None
        if running:
            assert self._supervisor is not None and self._proc is not None
            self._supervisor.stop(self._proc)
            self._proc = None
        self._create_blocks(openmetrics)
        if running:
            self._launch(check_port=False)  # our own port, possibly still in TIME_WAIT; Prometheus reuses it

    def _create_blocks(self, openmetrics: str) -> None:
        promtool = find_binary(PROMTOOL)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        source = self.workdir / "backfill.om"
        source.write_text(openmetrics if openmetrics.rstrip().endswith("# EOF") else openmetrics.rstrip() + "\n# EOF\n")
        done = subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", str(source), str(self.data_dir)],
                              capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            detail = " ".join((done.stderr or done.stdout).split())[-500:]
            raise StartError(f"promtool could not backfill {source}: {detail}")

    # ------------------------------------------------------------------- queries

    def query(self, promql: str, time: float | None = None) -> list[dict[str, Any]]:
        """Instant query; returns the result list (raises StartError on an API error)."""
        params = {"time": f"{time:.3f}"} if time is not None else None
        return list(self._api(lambda: self.client.custom_query(promql, params=params), "/api/v1/query"))

    # ----------------------------------------------------------------- internals

    def _write_config(self) -> None:
        config: dict[str, Any] = {
            "global": {"scrape_interval": self.scrape_interval, "evaluation_interval": self.scrape_interval,
                       "scrape_timeout": _timeout_for(self.scrape_interval)},
            "scrape_configs": [{"job_name": "vigil", "static_configs": [{"targets": list(self.targets)}]}],
        }
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    def _launch(self, check_port: bool = True) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._write_config()
        if check_port:
            ensure_port_free(self.port, "Prometheus")
        argv = [find_binary(PROMETHEUS), f"--config.file={self.config_path}", f"--storage.tsdb.path={self.data_dir}",
                f"--web.listen-address=127.0.0.1:{self.port}", "--web.enable-lifecycle",
                "--storage.tsdb.retention.time=15d", "--log.level=info"]
        if self._supervisor is None:
            self._supervisor = ProcessSupervisor(self.workdir)
        self._proc = self._supervisor.start("prometheus", argv, log_path=self.log_path)
        wait_until(self._ready, timeout=self.startup_timeout,
                   what=f"Prometheus on {self.url} to be ready", proc=self._proc)

    def _ready(self) -> bool:
        return request(self.client, "GET", "/-/ready", timeout=2).status_code == 200

    def _api(self, call: Any, path: str) -> Any:
        """Run a client call; an HTTP error becomes a one-line StartError naming the endpoint."""
        try:
            return call()
        except PrometheusApiClientException as err:
            raise StartError(f"Prometheus {path} -> {str(err)[:300]}") from None

    def _post(self, path: str) -> None:
        response = request(self.client, "POST", path)
        if response.status_code >= 400:
            raise StartError(f"Prometheus {path} -> HTTP {response.status_code}: {response.content[:300]!r}")


def _timeout_for(interval: str) -> str:
    """A scrape timeout no longer than the interval (Prometheus rejects longer ones)."""
    seconds = _seconds(interval)
    return f"{int(1000 * max(min(seconds * 0.8, 10.0), 0.5))}ms"


def _seconds(text: str) -> float:
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    for unit in ("ms", "s", "m", "h"):
        if text.endswith(unit) and text[: -len(unit)].replace(".", "", 1).isdigit():
            return float(text[: -len(unit)]) * units[unit]
    raise ValueError(f"scrape interval {text!r}: use a duration such as 1s, 15s or 1m")


# ------------------------------------------------------------------- OpenMetrics


_SUFFIXES = ("_total", "_bucket", "_count", "_sum", "_created")


def family_of(sample: str, types: Mapping[str, str]) -> str:
    if sample in types:
        return sample
    for suffix in _SUFFIXES:
        if sample.endswith(suffix) and sample[: -len(suffix)] in types:
            return sample[: -len(suffix)]
    raise ValueError(f"sample {sample!r} belongs to no family in {sorted(types)}")


def openmetrics_text(samples: Iterable[tuple[str, Mapping[str, str], float, float]], types: Mapping[str, str]) -> str:
    """OpenMetrics text for promtool from (sample name, labels, unix seconds, value) tuples.

    `types` maps family names to counter | gauge | histogram (the counter family
    `vigil_model_requests` holds samples `vigil_model_requests_total`). Samples are grouped
    by family and series and put in time order, as promtool requires.
    """
    grouped: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], list[tuple[float, float]]]] = {}
    for name, labels, ts, value in samples:
        if not math.isfinite(ts):
            raise ValueError(f"sample {name} has a non-finite timestamp")
        series = (name, tuple(sorted(labels.items())))
        grouped.setdefault(family_of(name, types), {}).setdefault(series, []).append((ts, value))
    lines = []
    for family in sorted(grouped):
        lines.append(f"# TYPE {family} {types[family]}")
        for (name, pairs), points in sorted(grouped[family].items()):
            rendered = ",".join(f'{k}="{escape(v)}"' for k, v in pairs)
            for ts, value in sorted(points):
                lines.append(f"{name}{{{rendered}}} {value:.17g} {ts:.3f}")
    lines.append("# EOF")
    return "\n".join(lines) + "\n"

