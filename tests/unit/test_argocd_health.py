"""The Argo CD health script, run in a real Lua interpreter (lupa) on ModelDeployment objects.

The objects here are written by hand to reach every branch; tests/integration/test_gitops_health.py
runs the same script on objects the real operator wrote.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import lupa  # test dependency: a real Lua interpreter, as Argo CD embeds one
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "integrations" / "argocd" / "health.lua"
PATCH = ROOT / "integrations" / "argocd" / "argocd-cm-patch.yaml"
KEY = "resource.customizations.health.vigil.dev_ModelDeployment"


def argocd_health(obj: dict[str, Any]) -> dict[str, str]:
    """Run the health script as Argo CD does: `obj` is the object, the script returns {status, message}."""
    lua = lupa.LuaRuntime(unpack_returned_tuples=True)
    check = lua.eval("function(obj)\n" + SCRIPT.read_text() + "\nend")
    result = check(lua.table_from(obj, recursive=True))
    return {"status": result["status"], "message": result["message"]}


def md(phase: str | None, *, generation: int = 3, observed: int | None = 3, version: str = "v2",
       stable: str | None = "v1", canary: str | None = "v2", **conditions: tuple[str, str]) -> dict[str, Any]:
    status: dict[str, Any] = {}
    if phase is not None:
        status = {"phase": phase, "observedGeneration": observed, "stableVersion": stable, "message": f"{phase} now",
                  "conditions": [{"type": t, "status": s, "reason": r, "message": f"{t} says {r}"}
                                 for t, (s, r) in conditions.items()]}
        if canary is not None:
            status["canaryVersion"] = canary
        if observed is None:
            del status["observedGeneration"]
    return {"apiVersion": "vigil.dev/v1alpha1", "kind": "ModelDeployment",
            "metadata": {"name": "fraud", "generation": generation}, "spec": {"version": version},
            "status": status or None}


@pytest.mark.parametrize(("obj", "status", "in_message"), [
    (md(None), "Progressing", "Waiting for the Vigil operator"),
    (md("Succeeded", observed=2, stable="v2", canary=None, Ready=("True", "Serving")), "Progressing", "generation 3"),
    (md("Succeeded", observed=None, stable="v2", canary=None, Ready=("True", "Serving")), "Progressing", "generation 3"),
    (md("Canary", Progressing=("True", "StepPassed"), Reconciling=("True", "StepPassed")), "Progressing", "Canary"),
    (md("Shadow", Progressing=("True", "StartShadow")), "Progressing", "Shadow"),
    (md("Holdback", stable="v2", canary=None, Progressing=("True", "Promoted")), "Progressing", "Holdback"),
    (md("Paused", Progressing=("True", "Paused")), "Suspended", "Paused"),
    (md("Canary", Progressing=("True", "AwaitingApproval")), "Suspended", "Awaiting approval"),
    (md("RolledBack", Stalled=("True", "RolledBack")), "Degraded", "Stalled says RolledBack"),
    (md("RollingBack", Stalled=("True", "AnalysisFailed")), "Degraded", "RollingBack"),
    (md("Failed", Stalled=("True", "PolicyNotFound")), "Degraded", "PolicyNotFound"),
    (md("Canary", Stalled=("True", "BudgetExceeded")), "Degraded", "BudgetExceeded"),
    (md("Succeeded", stable="v2", canary=None, Ready=("True", "Serving")), "Healthy", "Serving v2"),
    # Succeeded, but not the desired version, or not Ready: not Healthy
    (md("Succeeded", stable="v1", canary=None, Ready=("True", "Serving")), "Progressing", "Succeeded"),
    (md("Succeeded", stable="v2", canary=None, Ready=("False", "Pending")), "Progressing", "Succeeded"),
])
def test_health_of_each_phase(obj: dict[str, Any], status: str, in_message: str) -> None:
    health = argocd_health(obj)
    assert health["status"] == status, health
    assert in_message in health["message"], health


def test_the_script_uses_no_string_library_calls() -> None:
    code = "\n".join(line.split("--", 1)[0] for line in SCRIPT.read_text().splitlines())
    assert not re.search(r"\bstring\s*\.", code), "string.* call"
    assert not re.search(r"[\w)\]\"']\s*:\s*[A-Za-z_]\w*\s*\(", code), "method call (s:find(...) is the string library)"


def test_the_argocd_cm_patch_inlines_exactly_the_script() -> None:
    patch = yaml.safe_load(PATCH.read_text())
    assert patch["kind"] == "ConfigMap" and patch["metadata"]["name"] == "argocd-cm"
    assert patch["data"][KEY] == SCRIPT.read_text()
