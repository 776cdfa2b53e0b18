"""manifests/install is the chart rendered for `kubectl apply -k`: it must be current, so a
user of the plain YAML gets what a Helm user gets (tests/integration/test_install.py applies it)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from vigil.dev.binaries import REPO_ROOT

pytestmark = pytest.mark.controlplane  # hack/render-manifests.py renders with the helm of hack/controlplane/build.sh

INSTALL = REPO_ROOT / "manifests" / "install"


def renderer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("render_manifests", REPO_ROOT / "hack" / "render-manifests.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_manifests_install_is_the_current_chart() -> None:
    fresh = renderer().render()
    on_disk = {p.name: p.read_text() for p in INSTALL.glob("*.yaml")}
    assert set(on_disk) == set(fresh), "run `make manifests`"
    stale = [name for name in fresh if fresh[name] != on_disk[name]]
    assert not stale, f"manifests/install is stale ({', '.join(stale)}): run `make manifests`"


def test_the_check_mode_notices_an_edit(tmp_path: Path) -> None:
    module = renderer()
    assert module.main(["--out", str(tmp_path)]) == 0
    assert module.main(["--out", str(tmp_path), "--check"]) == 0
    (tmp_path / "vigil.yaml").write_text((tmp_path / "vigil.yaml").read_text() + "# edited\n")
    assert module.main(["--out", str(tmp_path), "--check"]) == 1


def test_the_kustomization_lists_every_file_and_no_hook() -> None:
    kustomization = yaml.safe_load((INSTALL / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(p.name for p in INSTALL.glob("*.yaml")
                                                        if p.name != "kustomization.yaml")
    docs = [d for p in INSTALL.glob("*.yaml") if p.name != "kustomization.yaml"
            for d in yaml.safe_load_all(p.read_text()) if d]
    kinds = {d["kind"] for d in docs}
    assert {"Namespace", "CustomResourceDefinition", "Deployment", "ServiceAccount", "ClusterRole"} <= kinds
    assert "Job" not in kinds  # the chart's pre-delete hook has no place in plain manifests
    assert not any("helm.sh/hook" in (d["metadata"].get("annotations") or {}) for d in docs)
