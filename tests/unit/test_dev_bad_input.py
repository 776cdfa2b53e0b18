"""Bad input to the local control plane gives one clear line and starts nothing."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from vigil.dev.binaries import BUILD_SCRIPT
from vigil.dev.cluster import ClusterInfo, LocalCluster
from vigil.dev.process import StartError


def test_a_running_cluster_of_the_same_name_is_refused(tmp_path: Path) -> None:
    info = ClusterInfo(name="busy", state_dir=str(tmp_path), kubeconfig=str(tmp_path / "kubeconfig"),
                       server="https://127.0.0.1:1", pids={"etcd": os.getpid()})
    info.save()
    with pytest.raises(StartError) as err:
        LocalCluster("busy", state_dir=tmp_path).up()
    assert "already running" in str(err.value) and "vigil dev down --name busy" in str(err.value)
    assert (tmp_path / "cluster.json").exists()  # nothing of the running one was touched


def test_a_foreign_directory_is_never_deleted(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(StartError) as err:
        LocalCluster("x", state_dir=tmp_path).up()
    assert "not a Vigil cluster directory" in str(err.value)
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_stale_state_of_a_dead_cluster_is_cleared(tmp_path: Path) -> None:
    ClusterInfo(name="old", state_dir=str(tmp_path), kubeconfig="k", server="s", pids={"etcd": 2 ** 22 + 7}).save()
    (tmp_path / "etcd").mkdir()
    cluster = LocalCluster("old", state_dir=tmp_path)
    cluster._refuse_or_clear_existing()
    assert not tmp_path.exists()


def test_build_without_go_says_what_to_install(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "VIGIL_CACHE": str(tmp_path / "cache")}
    if any(Path(d, "go").exists() for d in env["PATH"].split(":")):
        env["PATH"] = str(tmp_path)  # a PATH with bash only through its absolute path
    result = subprocess.run(["/bin/bash", str(BUILD_SCRIPT)], capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 1
    assert "the Go toolchain is not on PATH" in result.stderr and "install Go" in result.stderr
    assert not (tmp_path / "cache" / "bin").exists() or not any((tmp_path / "cache" / "bin").iterdir())
