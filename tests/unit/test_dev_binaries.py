"""`ensure_built` while another run builds the control plane: it waits for that build, unless the
caller said not to (make test's unit phase), and then it fails at once and says why."""

from __future__ import annotations

import fcntl
from pathlib import Path

import pytest
from vigil.dev.binaries import ensure_built
from vigil.dev.process import StartError


def test_a_busy_build_is_not_waited_for_when_the_caller_says_so(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VIGIL_BIN_DIR", raising=False)
    monkeypatch.setenv("VIGIL_CACHE", str(tmp_path))  # an empty cache: a build would be needed
    monkeypatch.setenv("VIGIL_CONTROLPLANE_NO_WAIT", "1")
    with open(tmp_path / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # "another build is running"
        with pytest.raises(StartError, match="marked `controlplane`"):
            ensure_built()
    assert not (tmp_path / "bin").exists()  # nothing was built or started
