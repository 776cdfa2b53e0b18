"""One supervisor for every child process Vigil starts: control plane, Prometheus, demo parts.

The guarantees, whoever the caller:

- every child runs in its own session and process group, with its output in a log file that
  is kept when the start fails (the error carries its last lines);
- an owned child gets ``PR_SET_PDEATHSIG`` = SIGKILL before it runs its program, so the kernel
  kills it when the thread that started it dies (a crashed, killed or interrupted test run or
  demo leaves nothing behind, even a child that ignores SIGTERM, like a busy `vigil operator`).
  util-linux's ``setpriv --pdeathsig KILL`` sets it, then ``/bin/sh`` checks that the parent
  is still the one that started it and execs the program. Not a ``preexec_fn``: that makes
  Python run its at-fork hooks, and a Ctrl-C landing in one of them is printed as "Exception
  ignored" and lost, so an interrupted demo carried on. ``preexec_fn`` is only the fallback
  where setpriv is missing;
- stopping is bounded: SIGTERM to every group at once, one shared grace period, then SIGKILL
  for the survivors and anything left in their groups or below them;
- a PID saved for later (``ProcessRecord``) is signalled only while it is still the same process
  (same start time, per psutil), never a stranger that inherited the number.

Readiness waits poll with tenacity and fail early, with the log tail, if the child exits.

Caveat of PR_SET_PDEATHSIG: it fires when the *thread* that forked the child exits, so start
children from a long-lived thread (the main thread in the CLI, the demo and pytest fixtures).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import ctypes.util
import json
import os
import signal
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import requests
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception,
    retry_if_not_result,
    stop_after_delay,
    wait_fixed,
)

PR_SET_PDEATHSIG = 1
PARENT_DEATH_SIGNAL = signal.SIGKILL
"""SIGKILL, not SIGTERM: a child that ignores or is slow to handle SIGTERM must still go."""
DEFAULT_GRACE_SECONDS = 5.0
KILL_WAIT_SECONDS = 5.0
ADDRESS_IN_USE_MARKERS = ("address already in use", "errno 98", "bind: address")


class StartError(RuntimeError):
    """A child did not start or did not become ready; the message says which and why."""


# ------------------------------------------------------------------ ports


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (callers retry on a race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ensure_port_free(port: int, what: str) -> None:
    """Fail with a one-line message if `port` is already taken on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            raise StartError(
                f"port {port} on 127.0.0.1 (wanted for {what}) is already in use; "
                f"stop whatever listens there (ss -ltnp 'sport = :{port}') or pick another port"
            ) from None


# ------------------------------------------------------------------ parent death


def _load_prctl() -> Callable[..., int] | None:
    """libc's prctl, resolved once in the parent: the child must not load libraries after fork."""
    name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        return ctypes.CDLL(name, use_errno=True).prctl  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()


def _find_setpriv() -> str | None:
    """util-linux's setpriv, if it knows --pdeathsig (2.33+)."""
    found = shutil.which("setpriv")
    if not found:
        return None
    try:
        usage = subprocess.run([found, "--help"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return found if "--pdeathsig" in usage else None


_SETPRIV = _find_setpriv()
_PARENT_CHECK = 'if [ "$PPID" != "$0" ]; then exit 1; fi; exec "$@"'
"""Run by /bin/sh after setpriv: $0 is the PID that started us; exit if the parent died before
the death signal was armed, else become the program."""


def _dying_with_parent(argv: list[str], parent_pid: int) -> tuple[list[str], Callable[[], None] | None]:
    """The command line (and fallback preexec_fn) that makes `argv` die with `parent_pid`."""
    if _SETPRIV is not None:
        return [_SETPRIV, "--pdeathsig", "KILL", "--", "/bin/sh", "-c", _PARENT_CHECK,
                str(parent_pid), *argv], None
    return argv, _die_with(parent_pid)


def _die_with(parent_pid: int) -> Callable[[], None]:
    """Fallback (no setpriv): the child's first step after fork, from Python; die with the
    parent, or exit now if it is already gone."""

    def setup() -> None:
        if _PRCTL is not None:
            _PRCTL(PR_SET_PDEATHSIG, int(PARENT_DEATH_SIGNAL), 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died between fork and prctl
            os._exit(1)

    return setup


# ------------------------------------------------------------------ identity of a saved PID


@dataclass(frozen=True)
class ProcessRecord:
    """A PID plus its start time: enough to tell the same process from a stranger later."""

    pid: int
    started: float | None = None

    @classmethod
    def of(cls, pid: int) -> ProcessRecord:
        try:
            return cls(pid, psutil.Process(pid).create_time())
        except psutil.Error:
            return cls(pid, None)

    def is_ours(self) -> bool:
        """True while `pid` is alive and (when the start time is known) still the same process."""
        try:
            proc = psutil.Process(self.pid)
            if proc.status() == psutil.STATUS_ZOMBIE:
                _reap(self.pid)
                return False
            return self.started is None or abs(proc.create_time() - self.started) < 0.01
        except psutil.Error:
            return False


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def pid_alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie child of ours is reaped and counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    with contextlib.suppress(psutil.Error):
        if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return False
    return True


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def stop_records(records: Iterable[ProcessRecord], grace: float = DEFAULT_GRACE_SECONDS) -> None:
    """Stop saved process groups that are still ours (e.g. from `cluster.json`): bounded."""
    leaders = [r for r in records if r.is_ours()]
    procs = []
    for record in leaders:
        with contextlib.suppress(psutil.Error):
            procs.append(psutil.Process(record.pid))
            procs.extend(_descendants(record.pid))
    for record in leaders:
        _signal_group(record.pid, signal.SIGTERM)
    _, alive = psutil.wait_procs(procs, timeout=grace)
    for record in leaders:
        _signal_group(record.pid, signal.SIGKILL)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=KILL_WAIT_SECONDS)
    for record in leaders:
        _reap(record.pid)


# ------------------------------------------------------------------ waiting


def wait_until(check: Callable[[], Any], *, timeout: float, what: str,
               proc: ManagedProcess | None = None, interval: float = 0.2) -> Any:
    """Poll `check` until it returns something truthy (which is returned).

    Exceptions from `check` mean "not ready yet", except StartError, which ends the wait. If
    `proc` exits meanwhile, fail at once with its exit code and log tail.
    """
    last: list[str] = ["no answer yet"]

    def attempt() -> Any:
        if proc is not None and not proc.is_running():
            raise StartError(f"{proc.name} exited with code {proc.returncode} while waiting for "
                             f"{what}; log {proc.log_path}:\n{proc.log_tail()}")
        try:
            result = check()
        except StartError:
            raise
        except Exception as exc:  # noqa: BLE001 - not ready yet, whatever the reason
            last[0] = f"{type(exc).__name__}: {exc}"
            raise
        if not result:
            last[0] = "not ready"
        return result

    retrying = Retrying(
        stop=stop_after_delay(timeout), wait=wait_fixed(interval),
        retry=retry_if_not_result(bool) | retry_if_exception(lambda e: not isinstance(e, StartError)),
    )
    try:
        return retrying(attempt)
    except RetryError:
        tail = f"; log {proc.log_path}:\n{proc.log_tail()}" if proc is not None else ""
        raise StartError(f"timed out after {timeout:.0f}s waiting for {what} ({last[0][:300]}){tail}") from None


def http_ok(url: str, timeout: float = 1.0, **kwargs: Any) -> bool:
    """True when `url` answers 200 (the readiness check of every HTTP child)."""
    return requests.get(url, timeout=timeout, **kwargs).status_code == 200


# ------------------------------------------------------------------ one child


@dataclass
class ManagedProcess:
    """One started child: its command, log, optional URL, and how to stop it."""

    name: str
    args: list[str]
    log_path: Path
    popen: subprocess.Popen[bytes]
    url: str | None = None
    port: int | None = None
    summary_path: Path | None = None
    record: ProcessRecord = field(init=False)
    _stopped: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        self.record = ProcessRecord.of(self.popen.pid)

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return self.popen.returncode

    def is_running(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def wait_until(self, check: Callable[[], Any], *, timeout: float, what: str,
                   interval: float = 0.2) -> Any:
        return wait_until(check, timeout=timeout, what=what, proc=self, interval=interval)

    def wait_ready(self, path: str = "/healthz", timeout: float = 30.0) -> None:
        """Poll ``url + path`` until it answers 200; fail early if the child exits."""
        if self.url is None:
            raise ValueError(f"{self.name} has no URL to wait for")
        try:
            self.wait_until(lambda: http_ok(self.url + path), timeout=timeout,  # type: ignore[operator]
                            what=f"{self.name} to answer at {self.url}{path}", interval=0.05)
        except StartError as err:
            if self.is_running():
                raise StartError(f"{self.name} not ready: {err}") from None
            raise

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the child to exit by itself; returns its exit code."""
        return self.popen.wait(timeout=timeout)

    def wait_summary(self, timeout: float | None = None) -> dict[str, Any]:
        """For a child that writes a JSON summary (the load generator): wait and read it."""
        code = self.wait(timeout)
        if code != 0 or self.summary_path is None or not self.summary_path.exists():
            raise StartError(f"{self.name} ended with code {code}:\n{self.log_tail()}")
        return dict(json.loads(self.summary_path.read_text()))

    def stop(self, grace: float = DEFAULT_GRACE_SECONDS) -> int | None:
        """SIGTERM the group, SIGKILL after `grace` seconds. Idempotent."""
        stop_all([self], grace)
        return self.popen.returncode


def stop_all(processes: Sequence[ManagedProcess], grace: float = DEFAULT_GRACE_SECONDS) -> None:
    """Stop children together, in at most about `grace` + KILL_WAIT_SECONDS seconds.

    SIGTERM goes to every group at once; after one shared grace period the survivors, their
    groups and their descendants (even ones that left the group) get SIGKILL.
    """
    todo = [p for p in processes if not p._stopped]
    for process in todo:
        process._stopped = True
    below = {p.pid: _descendants(p.pid) for p in todo}
    for process in todo:
        if process.is_running():
            _signal_group(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for process in todo:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.popen.wait(timeout=max(deadline - time.monotonic(), 0.0))
    for process in todo:
        _signal_group(process.pid, signal.SIGKILL)  # the survivor and anything left in its group
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.popen.wait(timeout=KILL_WAIT_SECONDS)
    strays = [d for found in below.values() for d in found]
    for stray in strays:
        with contextlib.suppress(psutil.Error):
            stray.kill()
    psutil.wait_procs(strays, timeout=KILL_WAIT_SECONDS)


# ------------------------------------------------------------------ the supervisor


class ProcessSupervisor:
    """Starts children, remembers them, and stops all of them whatever happens.

    ``detached=True`` (``vigil dev up``) lets the children outlive this Python process: no
    parent-death signal and no stop at exit; the caller saves their ``ProcessRecord``.
    Otherwise they stop on ``close()``/``__exit__``, at interpreter exit, and, through the
    kernel, when this process dies.
    """

    def __init__(self, workdir: Path | None = None, *, detached: bool = False) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="vigil-procs-")
            workdir = Path(self._tmp.name)
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.detached = detached
        self.processes: list[ManagedProcess] = []
        self._lock = threading.Lock()
        if not detached:
            atexit.register(self.stop_all)

    def __enter__(self) -> ProcessSupervisor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop every child and remove a temporary workdir (logs in a given workdir stay)."""
        self.stop_all()
        atexit.unregister(self.stop_all)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def start(self, name: str, args: Sequence[str], *, env: Mapping[str, str] | None = None,
              url: str | None = None, port: int | None = None, log_path: Path | None = None,
              cwd: Path | None = None) -> ManagedProcess:
        """Start `args` in its own session, output to ``<workdir>/<name>.log`` (or `log_path`)."""
        argv = [str(a) for a in args]
        if "/" in argv[0] and not Path(argv[0]).exists():
            raise StartError(f"{name}: binary {argv[0]} does not exist")
        log_path = log_path or self.workdir / f"{name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        command, preexec = (argv, None) if self.detached else _dying_with_parent(argv, os.getpid())
        with open(log_path, "ab") as log_file:
            try:
                popen = subprocess.Popen(  # noqa: S603 - argv from our own code
                    command, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
                    cwd=cwd or self.workdir, start_new_session=True,
                    preexec_fn=preexec,  # noqa: PLW1509 - only without setpriv
                )
            except OSError as err:
                raise StartError(f"{name}: cannot run {argv[0]}: {err}") from None
        process = ManagedProcess(name=name, args=argv, log_path=log_path, popen=popen, url=url, port=port)
        with self._lock:
            self.processes.append(process)
        return process

    def start_server(self, name: str, argv_for_port: Callable[[int], Sequence[str]], *,
                     port: int | None = None, ready_path: str = "/healthz",
                     ready_timeout: float = 60.0, env: Mapping[str, str] | None = None,
                     attempts: int = 3, wait: bool = True) -> ManagedProcess:
        """Start an HTTP server on `port` (or a free one) and wait until ``ready_path`` answers.

        With no fixed port, a lost race for a free port is retried on a new one. With
        ``wait=False`` it returns at once (start several, then ``wait_ready`` each).
        """
        for attempt in range(attempts):
            chosen = port or free_port()
            process = self.start(name, argv_for_port(chosen), env=env,
                                 url=f"http://127.0.0.1:{chosen}", port=chosen)
            if not wait:
                return process
            try:
                process.wait_ready(ready_path, ready_timeout)
                return process
            except StartError as exc:
                self.stop(process)
                lost_race = any(m in str(exc).lower() for m in ADDRESS_IN_USE_MARKERS)
                if port is not None or not lost_race or attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    def stop(self, process: ManagedProcess, grace: float = DEFAULT_GRACE_SECONDS) -> int | None:
        code = process.stop(grace)
        with self._lock:
            if process in self.processes:
                self.processes.remove(process)
        return code

    def stop_all(self, grace: float = DEFAULT_GRACE_SECONDS) -> None:
        """Stop every child together (bounded by `grace` plus the kill wait)."""
        with self._lock:
            processes, self.processes = list(reversed(self.processes)), []
        stop_all(processes, grace)
