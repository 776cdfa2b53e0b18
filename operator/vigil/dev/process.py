"""Child processes that are always cleaned up.

Every server the project starts (etcd, apiserver, Prometheus, model servers) runs in its own
process group with its output in a log file. Owned processes also get PR_SET_PDEATHSIG, so
the kernel kills them if the Python process that started them dies (a crashed or killed
test run leaves nothing behind).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

_PR_SET_PDEATHSIG = 1


class StartError(RuntimeError):
    """A server did not start; the message says which and why, in one line."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ensure_port_free(port: int, what: str) -> None:
    """Fail with a clear message if `port` is already taken on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            raise StartError(
                f"port {port} on 127.0.0.1 (wanted for {what}) is already in use; "
                f"stop whatever listens there (ss -ltnp 'sport = :{port}') or pick another port"
            ) from None


def _die_with_parent() -> None:
    os.setsid()
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass
class Managed:
    """A started child: its name, process and log file."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the process group, wait, then SIGKILL what is left."""
        stop_group(self.proc.pid, timeout)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=1)


def start(
    name: str,
    argv: Sequence[str],
    log: Path,
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    detached: bool = False,
) -> Managed:
    """Start `argv` in its own process group, output to `log`.

    `detached=True` lets the process outlive this Python process (for `vigil dev up`);
    otherwise it dies with it.
    """
    if not Path(argv[0]).exists() and "/" in argv[0]:
        raise StartError(f"{name}: binary {argv[0]} does not exist")
    log.parent.mkdir(parents=True, exist_ok=True)
    out = open(log, "ab")  # noqa: SIM115 - handed to the child
    try:
        proc = subprocess.Popen(
            list(argv),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            preexec_fn=os.setsid if detached else _die_with_parent,  # noqa: PLW1509
        )
    finally:
        out.close()
    return Managed(name, proc, log)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still "exists": reap it if it is ours.
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return True


def stop_group(pid: int, timeout: float = 10.0) -> None:
    """Terminate the process group led by `pid` (a no-op if it is gone)."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not pid_alive(pid):
                return
            time.sleep(0.05)


def wait_until(
    check: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    proc: Managed | None = None,
    interval: float = 0.2,
) -> None:
    """Poll `check` until it is true; fail early if `proc` dies, with its log tail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise StartError(
                f"{proc.name} exited with code {proc.proc.returncode} while waiting for {what}; "
                f"log {proc.log}:\n{proc.log_tail()}"
            )
        try:
            if check():
                return
        except StartError:
            raise
        except Exception:  # noqa: BLE001 - not ready yet, whatever the reason
            pass
        time.sleep(interval)
    tail = f"; log {proc.log}:\n{proc.log_tail()}" if proc else ""
    raise StartError(f"timed out after {timeout:.0f}s waiting for {what}{tail}")
