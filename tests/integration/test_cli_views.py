"""`kubectl vigil status|explain|history` on objects a real operator wrote on the real apiserver,
including the errors a user meets (unknown name, no permission)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import yaml
from kopf.testing import KopfRunner
from kubernetes import client as k8s
from vigil.api.names import GROUP, VERSION
from vigil.cli.main import kubectl_plugin

from ..conftest import KubeHandle, wait_for
from .test_operator import Cluster, policy_body, running_operator
from .test_telemetry import BAD, VersionMetrics, judge


@pytest.fixture
def operator(kube: KubeHandle) -> Iterator[KopfRunner]:
    with running_operator(kube, analyzer=judge, metrics=VersionMetrics()) as runner:
        yield runner


def run(kube: KubeHandle, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = kubectl_plugin(["--kubeconfig", str(kube.kubeconfig), *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_views_on_a_promoted_then_rolled_back_model(kube: KubeHandle, namespace: str, operator: KopfRunner,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    c = Cluster(kube, namespace)
    c.create("riskpolicies", policy_body())
    c.deploy_v1()
    c.set_version("v2")
    wait_for(lambda: c.status().get("stableVersion") == "v2" and c.status()["phase"] == "Succeeded"
             and c.status().get("openIntent") is None, timeout=90,
             what="v2 promoted")
    BAD.add("v3")
    c.set_version("v3")
    wait_for(lambda: c.phase_is("RolledBack"), timeout=90, what="v3 rolled back")

    code, out, _ = run(kube, capsys, "status", "-n", namespace)
    assert code == 0
    header, row = out.splitlines()[:2]
    assert header.split() == ["NAME", "PHASE", "STEP", "WEIGHT", "VERDICT", "ETA", "ROLLBACKS"]
    assert row.split()[:2] == ["fraud", "RolledBack"] and row.split()[-2:] == ["1/2", "(50%)"]
    code, out, _ = run(kube, capsys, "status", "-A", "-o", "wide")
    assert code == 0 and any(line.split()[:2] == [namespace, "fraud"] for line in out.splitlines())
    code, out, _ = run(kube, capsys, "status", "-n", namespace, "-o", "json")
    assert [i["metadata"]["name"] for i in json.loads(out)["items"]] == ["fraud"]

    code, out, _ = run(kube, capsys, "explain", "fraud", "-n", namespace)
    assert code == 0
    assert "Decision: RolledBack: the failed version gets no traffic" in out
    gate = next(line for line in out.splitlines() if line.startswith("errorRate"))
    assert "Fail" in gate and "500 / 40" in gate and "900/100" in gate and "[0.9, 1.5]" in gate
    code, out, _ = run(kube, capsys, "explain", "fraud", "-n", namespace, "-o", "yaml")
    assert yaml.safe_load(out)["gates"][0]["eFail"] == 500

    code, out, _ = run(kube, capsys, "history", "fraud", "-n", namespace)
    assert code == 0 and "Chain verified: OK" in out
    actions = [line.split()[2] for line in out.splitlines()[2:] if line[:1].isdigit()]
    assert "deployed" in actions and "promoted" in actions and actions[-1] == "rolled-back"
    code, out, _ = run(kube, capsys, "history", "fraud", "-n", namespace, "-o", "json")
    data = json.loads(out)
    assert data["verification"]["ok"] and data["rollbacks"] == 1 and data["uid"] == c.md()["metadata"]["uid"]

    # a deleted record: the timeline says the chain is broken, with its own exit code
    uid = c.md()["metadata"]["uid"]
    first = sorted(c.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "auditrecords",
                                                          label_selector=f"vigil.dev/uid={uid}")["items"],
                   key=lambda r: r["spec"]["seq"])[1]
    c.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, "auditrecords", first["metadata"]["name"])
    code, out, _ = run(kube, capsys, "history", "fraud", "-n", namespace)
    assert code == 3 and "Chain NOT verified" in out and "missing" in out


def test_unknown_names_and_missing_permissions_are_one_line_errors(kube: KubeHandle, namespace: str,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(kube, capsys, "explain", "nope", "-n", namespace)
    assert code == 1 and out == ""
    assert err.strip() == f'Error from server (NotFound): modeldeployments.vigil.dev "nope" not found in namespace "{namespace}"'
    code, _, err = run(kube, capsys, "history", "nope", "-n", namespace)
    assert code == 1 and "NotFound" in err and len(err.strip().splitlines()) == 1

    # a ServiceAccount with no rights: kubeconfig for it, then the views are refused in one line
    core = k8s.CoreV1Api(kube.api_client)
    core.create_namespaced_service_account(namespace, k8s.V1ServiceAccount(metadata=k8s.V1ObjectMeta(name="nobody")))
    api = kube.client_as(namespace, "nobody")
    kubeconfig = kube.kubeconfig.parent / f"nobody-{namespace}.yaml"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "nobody",
        "clusters": [{"name": "c", "cluster": {"server": api.configuration.host,
                                               "certificate-authority": api.configuration.ssl_ca_cert}}],
        "users": [{"name": "nobody", "user": {"token": api.configuration.api_key["authorization"].split()[-1]}}],
        "contexts": [{"name": "nobody", "context": {"cluster": "c", "user": "nobody", "namespace": namespace}}],
    }))
    try:
        code = kubectl_plugin(["--kubeconfig", str(kubeconfig), "status"])  # namespace from the context
        err = capsys.readouterr().err
        assert code == 1 and err.startswith("Error from server (Forbidden):") and namespace in err
        assert len(err.strip().splitlines()) == 1
        code = kubectl_plugin(["--kubeconfig", str(kubeconfig), "status", "--context", "missing"])
        err = capsys.readouterr().err
        assert code == 1 and "missing" in err and len(err.strip().splitlines()) == 1
    finally:
        kubeconfig.unlink()

