"""How users install and drive Vigil: the Helm chart, its RBAC, `kubectl apply`, `kubectl vigil`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml
from kubernetes import client as k8s

from vigil.api.names import GROUP, VERSION
from vigil.cli.main import whoami
from vigil.dev.binaries import REPO_ROOT, ensure_built
from vigil.kube.client import Kube
from vigil.reconciler import Reconciler

from ..conftest import KubeHandle

from .test_operator import VersionMetrics, judge, md_body, policy_body


def helm(kube: KubeHandle, *args: str) -> str:
    bins = ensure_built()
    result = subprocess.run([str(bins.helm), f"--kubeconfig={kube.kubeconfig}", *args],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_helm_chart_installs_and_its_rbac_is_enough_to_roll_out(kube: KubeHandle, namespace: str) -> None:
    release_ns = f"{namespace}-sys"
    helm(kube, "install", "vigil", str(REPO_ROOT / "charts" / "vigil"), "-n", release_ns, "--create-namespace",
         "--set", "prometheus.url=http://prometheus.monitoring:9090", "--wait", "--timeout", "120s")
    try:
        apps = k8s.AppsV1Api(kube.api_client)
        dep = apps.read_namespaced_deployment("vigil-operator", release_ns)
        assert dep.status.available_replicas == 1
        env = {e.name: e.value for e in dep.spec.template.spec.containers[0].env}
        assert env["VIGIL_PROMETHEUS_URL"] == "http://prometheus.monitoring:9090"
        releases = yaml.safe_load(helm(kube, "list", "-n", release_ns, "-o", "yaml"))
        assert [(r["name"], r["status"]) for r in releases] == [("vigil", "deployed")]

        # run a whole rollout with nothing but the chart's ServiceAccount token
        as_operator = Reconciler(Kube(kube.client_as(release_ns, "vigil-operator")), metrics=VersionMetrics(), analyzer=judge)
        custom = k8s.CustomObjectsApi(kube.api_client)
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "riskpolicies", policy_body())
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "modeldeployments",
                                               md_body("v1", "gatewayapi"))

        def drive(until) -> None:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                body = as_operator.kube.get_modeldeployment(namespace, "fraud")
                as_operator.reconcile(body)
                if until(as_operator.kube.get_modeldeployment(namespace, "fraud").get("status") or {}):
                    return
                time.sleep(0.5)
            raise AssertionError("rollout did not finish with the chart's permissions")

        drive(lambda s: s.get("phase") == "Succeeded")
        custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, "modeldeployments", "fraud", {
            "spec": {"version": "v2", "artifact": {"uri": "s3://m/v2", "digest": "sha256:" + "2" * 64}}})
        drive(lambda s: s.get("stableVersion") == "v2" and s.get("phase") == "Succeeded")
        assert Kube(kube.api_client).audit_records(namespace, "fraud")

        # only the verbs the operator uses: no update, no deleting routes, no reading events
        sa = f"system:serviceaccount:{release_ns}:vigil-operator"
        for verb, resource in [("update", "deployments.apps"), ("delete", "httproutes.gateway.networking.k8s.io"),
                               ("update", "modeldeployments.vigil.dev/status"), ("list", "events"),
                               ("delete", "auditrecords.vigil.dev"), ("update", "auditrecords.vigil.dev")]:
            answer = kube.kubectl("auth", "can-i", verb, resource, "-n", namespace, f"--as={sa}", check=False)
            assert answer.strip() == "no", (verb, resource, answer)
        for verb, resource in [("patch", "httproutes.gateway.networking.k8s.io"), ("create", "auditrecords.vigil.dev")]:
            answer = kube.kubectl("auth", "can-i", verb, resource, "-n", namespace, f"--as={sa}", check=False)
            assert answer.strip() == "yes", (verb, resource, answer)
    finally:
        helm(kube, "uninstall", "vigil", "-n", release_ns, "--wait")
        k8s.CoreV1Api(kube.api_client).delete_namespace(release_ns)


def test_kubectl_apply_get_and_the_vigil_plugin(kube: KubeHandle, namespace: str, tmp_path: Path) -> None:
    examples = REPO_ROOT / "manifests" / "examples"
    out = kube.kubectl("apply", "-n", namespace, "-f", str(examples / "riskpolicy.yaml"),
                       "-f", str(examples / "modeldeployment.yaml"))
    assert "riskpolicy.vigil.dev/high-risk created" in out and "modeldeployment.vigil.dev/fraud created" in out
    table = kube.kubectl("get", "md", "-n", namespace)
    header = table.splitlines()[0].split()
    assert header[:4] == ["NAME", "PHASE", "VERSION", "STABLE"] and "VERDICT" in header
    assert "fraud" in table and "v1" in table

    # an unknown field is rejected by kubectl's strict field validation, naming the field
    bad = yaml.safe_load((examples / "modeldeployment.yaml").read_text())
    bad["spec"]["replicaz"] = 3
    result = subprocess.run(
        [str(ensure_built().kubectl), f"--kubeconfig={kube.kubeconfig}", "apply", "-n", namespace, "-f", "-"],
        input=yaml.safe_dump(bad), capture_output=True, text=True, check=False)
    assert result.returncode != 0 and "replicaz" in result.stderr

    # kubectl finds the plugin `kubectl-vigil` on PATH, as users install it (pip's scripts dir)
    plugin = shutil.which("kubectl-vigil") or str(Path(sys.executable).parent / "kubectl-vigil")
    assert Path(plugin).exists(), "kubectl-vigil is not installed (pip install -e .)"
    env = {**os.environ, "PATH": f"{Path(plugin).parent}:{os.environ['PATH']}", "VIGIL_USER": "mallory",
           "KUBECONFIG": str(kube.kubeconfig)}
    run = subprocess.run([str(ensure_built().kubectl), "vigil", "pause", "fraud", "-n", namespace],
                         capture_output=True, text=True, env=env, check=False)
    assert run.returncode == 0, run.stderr
    md = k8s.CustomObjectsApi(kube.api_client).get_namespaced_custom_object(
        GROUP, VERSION, namespace, "modeldeployments", "fraud")
    ann = md["metadata"]["annotations"]
    # the identity is the one the apiserver authenticated, never a text a user can type
    assert ann["vigil.dev/paused"] == "true" and ann["vigil.dev/requested-by"] == whoami(kube.api_client) != "mallory"
    subprocess.run([str(ensure_built().kubectl), "vigil", "resume", "fraud", "-n", namespace],
                   check=True, capture_output=True, env=env)
    md = k8s.CustomObjectsApi(kube.api_client).get_namespaced_custom_object(
        GROUP, VERSION, namespace, "modeldeployments", "fraud")
    assert "vigil.dev/paused" not in md["metadata"]["annotations"]
