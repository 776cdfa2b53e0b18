"""Where the control-plane binaries are, building them on first use.

The binaries come from hack/controlplane/build.sh (pinned versions, cached outside the repo).
`VIGIL_BIN_DIR` overrides the location, e.g. for a distribution that ships its own.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from vigil.dev.process import StartError

REPO_ROOT = Path(__file__).resolve().parents[3]
BUILD_SCRIPT = REPO_ROOT / "hack" / "controlplane" / "build.sh"
BUILD_BUSY = 3
"""build.sh's exit status when another build holds the cache and VIGIL_CONTROLPLANE_NO_WAIT is set."""


@dataclass(frozen=True)
class ControlPlaneBinaries:
    """Paths of the built control plane and the CRDs extracted with it."""

    root: Path

    def __getattr__(self, name: str) -> Path:  # kube_apiserver -> <root>/kube-apiserver
        path = self.root / name.replace("_", "-")
        if not path.exists():
            raise StartError(f"{path} is missing; run hack/controlplane/build.sh")
        return path

    @property
    def crds(self) -> Path:
        return self.root / "crds"


def ensure_built() -> ControlPlaneBinaries:
    """Return the binaries, running the (cached) build if needed. Build progress goes to stderr."""
    override = os.environ.get("VIGIL_BIN_DIR")
    if override:
        return ControlPlaneBinaries(Path(override))
    if not BUILD_SCRIPT.exists():
        raise StartError(
            f"{BUILD_SCRIPT} not found: set VIGIL_BIN_DIR to a directory with kube-apiserver, "
            "etcd, kwok, kubectl and helm"
        )
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT)], stdout=subprocess.PIPE, text=True, check=False
    )
    lines = [ln for ln in result.stdout.splitlines() if ln.startswith("VIGIL_BIN_DIR=")]
    if result.returncode == BUILD_BUSY:
        raise StartError(
            "the control plane is still being built by another run and VIGIL_CONTROLPLANE_NO_WAIT is set "
            "(make test's unit phase): a test that needs the binaries must be marked `controlplane`"
        )
    if result.returncode != 0 or not lines:
        raise StartError(
            f"building the control plane failed (exit {result.returncode}); the error is printed "
            f"above; rerun `bash {BUILD_SCRIPT}` to see it again"
        )
    return ControlPlaneBinaries(Path(lines[-1].split("=", 1)[1]))
