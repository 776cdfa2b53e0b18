"""The process helper: children get free ports, readiness is real, and nothing is left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from vigil.demo.processes import DemoProcesses
from vigil.dev.process import StartError, free_port

HTTP_CHILD = textwrap.dedent("""
    import http.server, sys, time
    port = int(sys.argv[sys.argv.index("--port") + 1])
    time.sleep(float(sys.argv[sys.argv.index("--delay") + 1]))
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
        def log_message(self, *a): pass
    http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
""")

STUBBORN_CHILD = textwrap.dedent("""
    import os, signal, subprocess, sys, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    print("grandchild", grandchild.pid, flush=True)
    time.sleep(300)
""")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "State:\tZ" not in status.read_text()


def write_module(tmp_path: Path, name: str, code: str) -> str:
    (tmp_path / f"{name}.py").write_text(code)
    return name


def test_free_port_can_be_bound() -> None:
    import socket

    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_http_child_is_ready_only_when_it_answers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = write_module(tmp_path, "slow_http_child", HTTP_CHILD)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    with DemoProcesses(tmp_path / "work") as procs:
        started = time.monotonic()
        child = procs.start_http("slow", module, ["--delay", "0.5"], ready_path="/")
        assert time.monotonic() - started >= 0.5
        assert child.is_running() and child.url == f"http://127.0.0.1:{child.port}"
    assert not child.is_running()


def test_a_child_that_dies_fails_fast_with_its_log(tmp_path: Path) -> None:
    with DemoProcesses(tmp_path) as procs:
        started = time.monotonic()
        with pytest.raises(StartError) as info:
            procs.start_http("broken", "vigil.demo.modelserver", ["--model", "m"])  # no --version
        assert time.monotonic() - started < 20
    assert "exited with code 2" in str(info.value)
    assert "--version" in str(info.value)


def test_a_child_that_never_answers_times_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = write_module(tmp_path, "sleepy_child", "import time\ntime.sleep(60)\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    with DemoProcesses(tmp_path / "work") as procs:
        with pytest.raises(StartError, match="not ready"):
            procs.start_http("sleepy", module, [], ready_timeout=0.5)
        assert procs.processes == [] or not any(p.is_running() for p in procs.processes)


def test_stop_kills_the_whole_group_even_if_sigterm_is_ignored(tmp_path: Path) -> None:
    script = tmp_path / "stubborn.py"
    script.write_text(STUBBORN_CHILD)
    procs = DemoProcesses(tmp_path / "work")
    child = procs.start("stubborn", [sys.executable, str(script)])
    for _ in range(200):
        if "grandchild" in child.log_tail():
            break
        time.sleep(0.02)
    grandchild = int(child.log_tail().split()[1])
    started = time.monotonic()
    procs.stop_all(grace=1.0)
    procs.close()
    assert time.monotonic() - started < 4
    assert child.popen.returncode == -signal.SIGKILL
    for _ in range(100):
        if not alive(grandchild):
            break
        time.sleep(0.02)
    assert not alive(grandchild)
    assert procs.processes == []


def test_children_die_with_a_parent_that_is_killed(tmp_path: Path) -> None:
    """The parent (a supervisor in another process) is SIGKILLed: its model server goes too."""
    parent_code = textwrap.dedent(f"""
        import sys, time
        from vigil.demo.processes import DemoProcesses
        procs = DemoProcesses({str(tmp_path / 'work')!r})
        server = procs.start_model_server("m", "v1", wait=False)
        print(server.pid, flush=True)
        time.sleep(300)
    """)
    parent = subprocess.Popen([sys.executable, "-c", parent_code], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child_pid = int(parent.stdout.readline())
    assert alive(child_pid)
    parent.kill()
    parent.wait()
    for _ in range(200):
        if not alive(child_pid):
            break
        time.sleep(0.05)
    assert not alive(child_pid)


def test_temp_workdir_is_removed(tmp_path: Path) -> None:
    procs = DemoProcesses()
    workdir = procs.workdir
    procs.start("true", [sys.executable, "-c", "pass"]).wait(10)
    procs.close()
    assert not workdir.exists()
