"""The demo's parts as local processes, on the one supervisor of `vigil.dev.process`.

Each part is a Python module run as a child on a free loopback port and is "ready" only
when its HTTP endpoint answers; the supervisor gives every child its own process group, a
log file, a bounded stop, and death with its parent (PR_SET_PDEATHSIG).

    with DemoProcesses() as procs:
        v1 = procs.start_model_server("iris", "v1", namespace="demo")
        v2 = procs.start_model_server("iris", "v2", faults=["latency:ms=200,share=0.05"])
        split = procs.start_splitter(route_file=path, backends={"iris-v1": v1.url, ...})
        load = procs.start_loadgen(split.url, rate=20, duration=30)
        summary = load.wait_summary(timeout=120)
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from vigil.dev.process import ManagedProcess, ProcessSupervisor


class DemoProcesses(ProcessSupervisor):
    """The supervisor plus one method per demo part (model server, splitter, load generator)."""

    def __init__(self, workdir: Path | str | None = None, *, python: str = sys.executable) -> None:
        super().__init__(Path(workdir) if workdir is not None else None)
        self.python = python

    def start_http(self, name: str, module: str, args: Sequence[str], *, port: int | None = None,
                   ready_path: str = "/healthz", ready_timeout: float = 60.0,
                   env: Mapping[str, str] | None = None, attempts: int = 3,
                   wait: bool = True) -> ManagedProcess:
        """Start ``python -m module --port P args`` and wait until it answers."""
        return self.start_server(
            name, lambda chosen: [self.python, "-m", module, "--port", str(chosen), *args],
            port=port, ready_path=ready_path, ready_timeout=ready_timeout, env=env,
            attempts=attempts, wait=wait)

    def start_model_server(self, model: str, version: str, *, namespace: str = "default",
                           faults: Iterable[str] = (), nondeterminism: float | None = None,
                           seed: int = 0, base_latency_ms: float | None = None,
                           port: int | None = None, name: str | None = None,
                           wait: bool = True) -> ManagedProcess:
        """A model server; ``wait=False`` to start several in parallel (training takes ~1-2 s)."""
        args = ["--model", model, "--version", version, "--namespace", namespace,
                "--seed", str(seed)]
        for fault in faults:
            args += ["--fault", fault]
        if nondeterminism is not None:
            args += ["--nondeterminism", str(nondeterminism)]
        if base_latency_ms is not None:
            args += ["--base-latency-ms", str(base_latency_ms)]
        return self.start_http(name or f"modelserver-{model}-{version}",
                               "vigil.demo.modelserver", args, port=port,
                               env={"VIGIL_DEMO_FAULTS": "", "VIGIL_DEMO_NONDETERMINISM": ""},
                               wait=wait)

    def start_splitter(self, *, kubeconfig: str | Path | None = None,
                       route_file: str | Path | None = None, kind: str = "httproute",
                       namespace: str = "default", route: str | None = None,
                       backends: Mapping[str, str] | None = None,
                       backend_file: str | Path | None = None, seed: int = 0,
                       port: int | None = None, name: str = "trafficsplit",
                       ready_timeout: float = 60.0) -> ManagedProcess:
        """Ready means: the route has been read (``/readyz``), not only that it listens."""
        if (kubeconfig is None) == (route_file is None):
            raise ValueError("give exactly one of kubeconfig= or route_file=")
        args = ["--kind", kind, "--namespace", namespace, "--seed", str(seed)]
        if kubeconfig is not None:
            if not route:
                raise ValueError("route= (the route's name) is needed with kubeconfig=")
            args += ["--kubeconfig", str(kubeconfig), "--route", route]
        else:
            args += ["--route-file", str(route_file)]
        for key, url in (backends or {}).items():
            args += ["--backend", f"{key}={url}"]
        if backend_file is not None:
            args += ["--backend-file", str(backend_file)]
        return self.start_http(name, "vigil.demo.trafficsplit", args, port=port,
                               ready_path="/readyz", ready_timeout=ready_timeout)

    def start_loadgen(self, target: str, *, rate: float, duration: float | None = None,
                      count: int | None = None, feedback_delay: tuple[float, float] = (5.0, 15.0),
                      feedback_share: float = 1.0, seed: int = 0,
                      name: str = "loadgen") -> ManagedProcess:
        """Runs until it has sent its requests and labels; see ``wait_summary``."""
        summary = self.workdir / f"{name}-summary.json"
        summary.unlink(missing_ok=True)
        args = [self.python, "-m", "vigil.demo.loadgen", "--target", target, "--rate", str(rate),
                "--feedback-delay", f"{feedback_delay[0]}:{feedback_delay[1]}",
                "--feedback-share", str(feedback_share), "--seed", str(seed),
                "--summary", str(summary)]
        if duration is not None:
            args += ["--duration", str(duration)]
        if count is not None:
            args += ["--count", str(count)]
        process = self.start(name, args)
        process.summary_path = summary
        return process
