"""GitOps health on objects the real operator wrote: Argo CD's Lua check and Flux's kstatus.

A KopfRunner operator on the real apiserver (analysis double: a version in BAD fails) drives
ModelDeployments through a rollout, a pause, a wait for approval, a rollback and completion. Each
phase's object is snapshotted as the apiserver returned it, then judged by
integrations/argocd/health.lua in a real Lua interpreter and by the kstatus library itself
(hack/kstatus, built from sigs.k8s.io/cli-utils and cached by source hash).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kopf.testing import KopfRunner
from kubernetes import client as k8s
from vigil.api.names import (
    ANN_PAUSED,
    ANN_PROMOTE,
    GROUP,
    VERSION,
    approval_key,
    approval_value,
)
from vigil.stats.result import Outcome

from ..conftest import KubeHandle, wait_for
from ..doubles import AnalysisDouble
from ..unit.test_argocd_health import argocd_health
from .test_operator import running_operator

ROOT = Path(__file__).resolve().parents[2]
KSTATUS_SRC = ROOT / "hack" / "kstatus"
BIN_DIR = Path.home() / ".cache" / "vigil" / "bin"
BAD = {"v3"}


def kstatus_binary() -> Path:
    """hack/kstatus built once per source version: ~/.cache/vigil/bin/kstatus-<hash of the sources>."""
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum", "main.go"):
        digest.update(name.encode() + b"\0" + (KSTATUS_SRC / name).read_bytes())
    binary = BIN_DIR / f"kstatus-{digest.hexdigest()[:16]}"
    if binary.exists():
        print(f"kstatus: reusing {binary}")
        return binary
    go = shutil.which("go")
    if go is None:
        pytest.fail("Go is needed to build hack/kstatus (the kstatus check); it is not on PATH", pytrace=False)
    BIN_DIR.mkdir(parents=True, exist_ok=True)
    partial = binary.with_name(binary.name + f".{os.getpid()}.partial")
    print(f"kstatus: building {binary} from {KSTATUS_SRC} (first run downloads sigs.k8s.io/cli-utils; ~1-2 min)",
          flush=True)
    done = subprocess.run([go, "build", "-o", str(partial), "."], cwd=KSTATUS_SRC, capture_output=True, text=True,
                          env={**os.environ, "GOFLAGS": "-mod=readonly"}, check=False)
    if done.returncode != 0:
        pytest.fail(f"building hack/kstatus failed:\n{done.stderr[-3000:]}", pytrace=False)
    partial.replace(binary)
    print(f"kstatus: built {binary}")
    return binary


def kstatus(objects: list[dict[str, Any]]) -> list[tuple[str, str]]:
    out = subprocess.run([str(kstatus_binary())], input=json.dumps(objects), capture_output=True, text=True,
                         check=True).stdout
    return [tuple(line.split("\t", 1)) for line in out.splitlines()]  # type: ignore[misc]


@pytest.fixture
def operator(kube: KubeHandle) -> Iterator[KopfRunner]:
    with running_operator(kube, analyzer=judge) as runner:
        yield runner


def judge(gates: Any, metrics: dict, **_: Any) -> AnalysisDouble:
    return AnalysisDouble(Outcome.FAIL if metrics.get("canary") in BAD else Outcome.PASS)


def digest(version: str) -> str:
    return "sha256:" + version[-1] * 64


class Objects:
    def __init__(self, kube: KubeHandle, namespace: str) -> None:
        self.ns = namespace
        self.custom = k8s.CustomObjectsApi(kube.api_client)

    def create(self, plural: str, body: dict) -> None:
        self.custom.create_namespaced_custom_object(GROUP, VERSION, self.ns, plural, body)

    def policy(self, name: str, **spec: Any) -> None:
        base = {"steps": [20, 50], "maxWeight": 50, "bakeTime": "1h", "analysisInterval": "1s", "minSamples": 1}
        self.create("riskpolicies", {"apiVersion": f"{GROUP}/{VERSION}", "kind": "RiskPolicy",
                                     "metadata": {"name": name}, "spec": {**base, **spec}})

    def md(self, name: str, version: str, policy: str) -> None:
        self.create("modeldeployments", {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "ModelDeployment", "metadata": {"name": name},
            "spec": {"model": name, "version": version,
                     "artifact": {"uri": f"s3://models/{name}/{version}", "digest": digest(version)},
                     "server": {"image": "example/model-server:1"}, "replicas": 1,
                     "policyRef": {"name": policy}, "traffic": {"router": "istio"}}})

    def get(self, name: str) -> dict:
        return self.custom.get_namespaced_custom_object(GROUP, VERSION, self.ns, "modeldeployments", name)

    def patch(self, name: str, body: dict) -> None:
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.ns, "modeldeployments", name, body)

    def set_version(self, name: str, version: str) -> None:
        self.patch(name, {"spec": {"version": version, "artifact": {"uri": f"s3://models/{name}/{version}",
                                                                     "digest": digest(version)}}})

    def when(self, name: str, what: str, check: Any, timeout: float = 90) -> dict:
        """The object itself, as read, once the operator has observed its generation and `check` holds."""
        def ready() -> dict | None:
            obj = self.get(name)
            status = obj.get("status") or {}
            observed = status.get("observedGeneration") == obj["metadata"]["generation"]
            return obj if observed and check(status) else None
        return wait_for(ready, timeout=timeout, what=what)


def reason(status: dict, kind: str) -> str | None:
    return next((c["reason"] for c in status.get("conditions", []) if c["type"] == kind and c["status"] == "True"),
                None)


def test_argocd_and_kstatus_health_of_every_phase_the_operator_writes(kube: KubeHandle, namespace: str,
                                                                      operator: KopfRunner) -> None:
    kstatus_binary()  # build (or reuse) before the operator's timeline matters
    o = Objects(kube, namespace)
    o.policy("slow")  # bake 1h: the rollout stays in progress until promoted by hand
    o.policy("gated", steps=[50], bakeTime="1s", requiredApprovals=1)
    snapshots: dict[str, dict] = {}

    o.md("fraud", "v1", "slow")
    snapshots["deployed"] = o.when("fraud", "v1 deployed", lambda s: s.get("phase") == "Succeeded")
    o.set_version("fraud", "v2")
    snapshots["rollout"] = o.when("fraud", "v2 canary", lambda s: s.get("phase") == "Canary")
    o.patch("fraud", {"metadata": {"annotations": {ANN_PAUSED: "true"}}})
    snapshots["paused"] = o.when("fraud", "paused", lambda s: s.get("phase") == "Paused")
    o.patch("fraud", {"metadata": {"annotations": {ANN_PAUSED: None, ANN_PROMOTE: digest("v2")}}})
    snapshots["completed"] = o.when("fraud", "v2 promoted",
                                    lambda s: s.get("phase") == "Succeeded" and s.get("stableVersion") == "v2")
    o.set_version("fraud", "v3")
    snapshots["rolled back"] = o.when("fraud", "v3 rolled back", lambda s: s.get("phase") == "RolledBack")

    o.md("gated", "v1", "gated")
    o.when("gated", "gated v1 deployed", lambda s: s.get("phase") == "Succeeded")
    o.set_version("gated", "v2")
    snapshots["awaiting approval"] = o.when("gated", "awaiting approval",
                                            lambda s: reason(s, "Progressing") == "AwaitingApproval")
    o.patch("gated", {"metadata": {"annotations": {approval_key("alice"): approval_value("alice", digest("v2"))}}})
    snapshots["approved"] = o.when("gated", "approved and promoted",
                                   lambda s: s.get("phase") == "Succeeded" and s.get("stableVersion") == "v2")

    expected = {  # phase: (Argo CD health, kstatus)
        "deployed": ("Healthy", "Current"),
        "rollout": ("Progressing", "InProgress"),
        "paused": ("Suspended", "InProgress"),
        "awaiting approval": ("Suspended", "InProgress"),
        "completed": ("Healthy", "Current"),
        "rolled back": ("Degraded", "Failed"),
        "approved": ("Healthy", "Current"),
    }
    names = list(expected)
    flux = dict(zip(names, kstatus([snapshots[n] for n in names])))
    seen = {n: (argocd_health(snapshots[n])["status"], flux[n][0]) for n in names}
    assert seen == expected, {n: (argocd_health(snapshots[n]), flux[n]) for n in names}
    assert argocd_health(snapshots["rolled back"])["message"].startswith("RolledBack: ")
    assert argocd_health(snapshots["awaiting approval"])["message"].startswith("Awaiting approval: ")

    # a spec change the operator has not observed yet: both tools say so before anything else
    behind = json.loads(json.dumps(snapshots["completed"]))
    behind["metadata"]["generation"] += 1
    assert argocd_health(behind)["status"] == "Progressing"
    assert "generation" in argocd_health(behind)["message"]
    assert kstatus([behind])[0][0] == "InProgress"
