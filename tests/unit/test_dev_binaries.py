"""The control plane's build cache: `ensure_built` while another run builds it (it waits for that
build, unless the caller said not to, make test's unit phase, and then fails at once and says why),
and what its key covers."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from vigil.dev.binaries import ensure_built
from vigil.dev.process import StartError

ROOT = Path(__file__).resolve().parents[2]


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


def _cache_dir(tree: Path) -> str:
    out = subprocess.run(["bash", str(tree / "build.sh"), "--print-dir"], capture_output=True, text=True, check=True,
                         env={**os.environ, "VIGIL_CACHE": str(tree / "cache")})
    return out.stdout.strip()


def test_changed_build_flags_do_not_reuse_binaries_built_without_them(tmp_path: Path) -> None:
    """The cache key covers the go build flags too: after a flag changes, the binaries of the
    old flags are not found (and so not reused)."""
    tree = tmp_path / "controlplane"
    shutil.copytree(ROOT / "hack" / "controlplane", tree)
    before = _cache_dir(tree)
    assert before == _cache_dir(tree)  # the key is stable
    script = tree / "build.sh"
    text = script.read_text()
    assert "-gcflags=all=-dwarf=false" in text
    script.write_text(text.replace("-gcflags=all=-dwarf=false", "-gcflags=all=-N"))
    assert _cache_dir(tree) != before
