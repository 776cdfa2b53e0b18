"""Run the demo's parts as local subprocesses, and always stop them again.

Each child runs in its own process group on a free loopback port, logs to a file, and
is "ready" only when its HTTP endpoint answers. ``stop`` sends SIGTERM to the whole
group, then SIGKILL after a grace period. A ``ProcessSupervisor`` tracks every child
it started and stops them all on ``__exit__``, on interpreter exit (atexit), and -
through ``PR_SET_PDEATHSIG``, set by the child itself - when the parent dies without
cleaning up (e.g. SIGKILL of a test run).

Caveat of PR_SET_PDEATHSIG: it fires when the *thread* that started the child exits.
Start children from a long-lived thread (the main thread, or pass
``die_with_parent=False``).

    with ProcessSupervisor() as procs:
        v1 = procs.start_model_server("iris", "v1", namespace="demo")
        v2 = procs.start_model_server("iris", "v2", faults=["latency:ms=200,share=0.05"])
        split = procs.start_splitter(route_file=path, backends={"iris-v1": v1.url, ...})
        load = procs.start_loadgen(split.url, rate=20, duration=30)
        summary = load.wait_summary(timeout=120)
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from vigil.dev.process import free_port  # noqa: F401  (re-exported: a port free a moment ago; start() retries on a race)

PARENT_PID_ENV = "VIGIL_DEMO_PARENT_PID"
READY_POLL_SECONDS = 0.05
ADDRESS_IN_USE_MARKERS = ("address already in use", "errno 98")


class ProcessStartError(RuntimeError):
    """A child did not become ready; the message carries the end of its log."""


def die_with_parent() -> None:
    """Called by a child at start-up: get SIGTERM if the process that started us dies.

    Only acts when the supervisor set ``VIGIL_DEMO_PARENT_PID``; exits at once if that
    parent is already gone (the race between fork and prctl).
    """
    parent = os.environ.get(PARENT_PID_ENV)
    if not parent or not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    except OSError:
        return
    if os.getppid() != int(parent):
        os._exit(0)


@dataclass
class ManagedProcess:
    """One child process: its command, log, URL, and how to stop it."""

    name: str
    args: list[str]
    log_path: Path
    popen: subprocess.Popen[bytes]
    url: str | None = None
    port: int | None = None
    summary_path: Path | None = None
    _stopped: bool = field(default=False, repr=False)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def is_running(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_ready(self, path: str = "/healthz", timeout: float = 30.0) -> None:
        """Poll ``url + path`` until it answers 200; fail early if the child exits."""
        if self.url is None:
            raise ValueError(f"{self.name} has no URL to wait for")
        deadline = time.monotonic() + timeout
        last_error = "no answer yet"
        while time.monotonic() < deadline:
            if not self.is_running():
                raise ProcessStartError(
                    f"{self.name} exited with code {self.popen.returncode} before it was ready "
                    f"(log {self.log_path}):\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(self.url + path, timeout=1.0) as response:
                    if response.status == 200:
                        return
                    last_error = f"HTTP {response.status}"
            except urllib.error.HTTPError as exc:
                last_error = f"HTTP {exc.code}"
            except (urllib.error.URLError, OSError) as exc:
                last_error = str(exc)
            time.sleep(READY_POLL_SECONDS)
        raise ProcessStartError(
            f"{self.name} not ready at {self.url}{path} after {timeout:.0f}s ({last_error}); "
            f"log {self.log_path}:\n{self.log_tail()}"
        )

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the child to exit by itself; returns its exit code."""
        return self.popen.wait(timeout=timeout)

    def wait_summary(self, timeout: float | None = None) -> dict[str, Any]:
        """For the load generator: wait for it to finish and read its JSON summary."""
        code = self.wait(timeout)
        if code != 0 or self.summary_path is None or not self.summary_path.exists():
            raise ProcessStartError(f"{self.name} ended with code {code}:\n{self.log_tail()}")
        return json.loads(self.summary_path.read_text())

    def stop(self, grace: float = 5.0) -> int | None:
        """SIGTERM to the process group, SIGKILL after ``grace`` seconds. Idempotent."""
        if self._stopped:
            return self.popen.returncode
        self._stopped = True
        self._signal_group(signal.SIGTERM)
        try:
            self.popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self._signal_group(signal.SIGKILL)
            self.popen.wait(timeout=grace)
        # Anything the child left in its group (it should not) goes too.
        self._signal_group(signal.SIGKILL)
        return self.popen.returncode

    def _signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.popen.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


class ProcessSupervisor:
    """Starts children, remembers them, and stops all of them whatever happens."""

    def __init__(self, workdir: Path | None = None, die_with_parent: bool = True,
                 python: str = sys.executable) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="vigil-demo-")
            workdir = Path(self._tmp.name)
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.die_with_parent = die_with_parent
        self.python = python
        self.processes: list[ManagedProcess] = []
        self._lock = threading.Lock()
        atexit.register(self.stop_all)

    def __enter__(self) -> "ProcessSupervisor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.stop_all()
        atexit.unregister(self.stop_all)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    # -- generic ---------------------------------------------------------------------

    def start(self, name: str, args: Sequence[str], *, env: Mapping[str, str] | None = None,
              url: str | None = None, port: int | None = None) -> ManagedProcess:
        """Start a child in its own process group, output to ``<workdir>/<name>.log``."""
        log_path = self.workdir / f"{name}.log"
        child_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        if self.die_with_parent:
            child_env[PARENT_PID_ENV] = str(os.getpid())
        with open(log_path, "ab") as log_file:
            popen = subprocess.Popen(
                list(args), stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=child_env, cwd=self.workdir, start_new_session=True,
            )
        process = ManagedProcess(name=name, args=list(args), log_path=log_path, popen=popen,
                                 url=url, port=port)
        with self._lock:
            self.processes.append(process)
        return process

    def start_http(self, name: str, module: str, args: Sequence[str], *, port: int | None = None,
                   ready_path: str = "/healthz", ready_timeout: float = 60.0,
                   env: Mapping[str, str] | None = None, attempts: int = 3,
                   wait: bool = True) -> ManagedProcess:
        """Start ``python -m module --port P args`` and wait until it answers.

        With no fixed port, a lost race for a free port is retried on a new one. With
        ``wait=False`` it returns at once (start several, then ``wait_ready`` each).
        """
        for attempt in range(attempts):
            chosen = port or free_port()
            url = f"http://127.0.0.1:{chosen}"
            process = self.start(name, [self.python, "-m", module, "--port", str(chosen), *args],
                                 env=env, url=url, port=chosen)
            if not wait:
                return process
            try:
                process.wait_ready(ready_path, ready_timeout)
                return process
            except ProcessStartError as exc:
                process.stop()
                lost_race = any(m in str(exc).lower() for m in ADDRESS_IN_USE_MARKERS)
                if port is not None or not lost_race or attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    def stop(self, process: ManagedProcess, grace: float = 5.0) -> int | None:
        code = process.stop(grace)
        with self._lock:
            if process in self.processes:
                self.processes.remove(process)
        return code

    def stop_all(self, grace: float = 5.0) -> None:
        """Stop every child, newest first (load before splitter before servers)."""
        with self._lock:
            processes, self.processes = list(reversed(self.processes)), []
        for process in processes:
            if process.is_running():
                process._signal_group(signal.SIGTERM)
        for process in processes:
            process.stop(grace)

    # -- the demo's parts ------------------------------------------------------------

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
