"""The one process supervisor: bounded stops, death with the parent, and saved PIDs that are
signalled only while they still belong to the process that was started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from vigil.dev.cluster import ClusterInfo, LocalCluster
from vigil.dev.process import (
    ProcessRecord,
    ProcessSupervisor,
    StartError,
    pid_alive,
    stop_records,
    wait_until,
)

IGNORES_SIGTERM = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(300)"


def test_a_saved_pid_is_ours_only_while_the_start_time_matches() -> None:
    me = ProcessRecord.of(os.getpid())
    assert me.started is not None and me.is_ours()
    assert not ProcessRecord(os.getpid(), me.started + 5).is_ours()  # a reused PID: a stranger
    assert ProcessRecord(os.getpid()).is_ours()  # no start time saved: trust the PID
    assert not ProcessRecord(2 ** 22 + 7).is_ours()


def test_stop_records_never_signals_a_stranger() -> None:
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        record = ProcessRecord.of(stranger.pid)
        stop_records([ProcessRecord(stranger.pid, (record.started or 0) - 100)], grace=0.5)
        assert stranger.poll() is None  # the start time did not match: left alone
        stop_records([record], grace=0.5)
        assert not record.is_ours()  # ours: stopped
    finally:
        stranger.kill()
        stranger.wait()


def test_stop_all_is_bounded_when_children_ignore_sigterm(tmp_path: Path) -> None:
    with ProcessSupervisor(tmp_path) as procs:
        children = [procs.start(f"stubborn-{i}", [sys.executable, "-c", IGNORES_SIGTERM]) for i in range(3)]
        for child in children:
            child.wait_until(lambda c=child: "up" in c.log_tail(), timeout=20, what="start", interval=0.02)
        started = time.monotonic()
        procs.stop_all(grace=1.0)
        assert time.monotonic() - started < 3.0  # one shared grace period, not one per child
    assert all(c.returncode == -signal.SIGKILL for c in children)
    assert (tmp_path / "stubborn-0.log").exists()  # logs stay in a workdir the caller gave


@pytest.mark.parametrize("setpriv", [True, False], ids=["setpriv", "preexec-fallback"])
def test_an_owned_child_dies_with_its_parent_even_if_it_ignores_sigterm(tmp_path: Path, setpriv: bool) -> None:
    parent_code = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        import vigil.dev.process as process
        from vigil.dev.process import ProcessSupervisor
        if not {setpriv}:
            process._SETPRIV = None
        procs = ProcessSupervisor(Path({str(tmp_path)!r}))
        child = procs.start("stubborn", [sys.executable, "-c", {IGNORES_SIGTERM!r}])
        print(child.pid, flush=True)
        time.sleep(300)
    """)
    parent = subprocess.Popen([sys.executable, "-c", parent_code], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert pid_alive(child)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    wait_until(lambda: not pid_alive(child), timeout=10, what="the child to die with its parent", interval=0.05)


def test_a_detached_child_outlives_its_supervisor(tmp_path: Path) -> None:
    procs = ProcessSupervisor(tmp_path, detached=True)
    child = procs.start("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"])
    record = child.record
    try:
        assert record.is_ours()
    finally:
        stop_records([record], grace=1.0)
    assert not record.is_ours()


def test_wait_until_fails_early_with_the_log_when_the_child_exits(tmp_path: Path) -> None:
    with ProcessSupervisor(tmp_path) as procs:
        child = procs.start("crash", [sys.executable, "-c", "print('boom: bad flag'); raise SystemExit(3)"])
        started = time.monotonic()
        with pytest.raises(StartError) as err:
            child.wait_until(lambda: False, timeout=30, what="a port")
        assert time.monotonic() - started < 10
    assert "exited with code 3" in str(err.value) and "boom: bad flag" in str(err.value)


def test_wait_until_times_out_with_the_last_reason() -> None:
    def check() -> bool:
        raise ConnectionError("refused")

    with pytest.raises(StartError, match=r"timed out after 0s waiting for the thing \(ConnectionError: refused\)"):
        wait_until(check, timeout=0.2, what="the thing", interval=0.05)
    assert wait_until(lambda: "ready", timeout=1, what="x") == "ready"


def test_a_missing_binary_is_one_clear_error(tmp_path: Path) -> None:
    with ProcessSupervisor(tmp_path) as procs, pytest.raises(StartError, match="does not exist"):
        procs.start("ghost", ["/nonexistent/bin/ghost"])


@pytest.mark.parametrize("name", ["/", "..", "a/b", "../etc", "", "-x"])
def test_a_cluster_name_is_never_a_path(name: str) -> None:
    with pytest.raises(StartError, match="a name is not a path"):
        LocalCluster(name)


def test_cluster_records_carry_start_times(tmp_path: Path) -> None:
    me = ProcessRecord.of(os.getpid())
    info = ClusterInfo(name="c", state_dir=str(tmp_path), kubeconfig="k", server="s",
                       pids={"etcd": os.getpid(), "kwok": 2 ** 22 + 7}, started={"etcd": me.started or 0.0})
    info.save()
    loaded = ClusterInfo.load(tmp_path)
    assert loaded is not None and loaded.records() == [ProcessRecord(2 ** 22 + 7), me]


def test_the_child_runs_the_program_itself_not_a_wrapper(tmp_path: Path) -> None:
    """setpriv and sh exec into the program: same PID, the program's own name and arguments."""
    with ProcessSupervisor(tmp_path) as procs:
        child = procs.start("sleeper", [sys.executable, "-c", "import time; time.sleep(30)", "marker-arg"])
        child.wait_until(lambda: Path(f"/proc/{child.pid}/comm").read_text().startswith("python"),
                         timeout=10, what="the exec into the program", interval=0.02)
        cmdline = Path(f"/proc/{child.pid}/cmdline").read_text().split("\0")
        assert cmdline[:2] == [sys.executable, "-c"] and "marker-arg" in cmdline
        assert child.args[0] == sys.executable


FORKS_SEEN_BY_PYTHON: list[int] = []
os.register_at_fork(after_in_parent=lambda: FORKS_SEEN_BY_PYTHON.append(1))


def test_starting_a_child_runs_no_python_at_fork_hook(tmp_path: Path) -> None:
    """With a preexec_fn, Python runs its at-fork hooks in the parent (logging's lock release, ...),
    and a KeyboardInterrupt raised inside one is only printed ("Exception ignored") and lost: an
    interrupted demo carried on. Children must start without them."""
    with ProcessSupervisor(tmp_path) as procs:
        FORKS_SEEN_BY_PYTHON.clear()
        procs.start("t", [sys.executable, "-c", "pass"]).wait(10)
    assert FORKS_SEEN_BY_PYTHON == []
