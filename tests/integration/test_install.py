"""How users install and drive Vigil: the Helm chart, its RBAC, `kubectl apply`, `kubectl vigil`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
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


def roll_out_v1_then_v2(as_operator: Reconciler, custom: k8s.CustomObjectsApi, namespace: str) -> None:
    """Drive a whole rollout (v1 deployed, then v2 promoted) with the reconciler's credentials."""

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


def can_i(kube: KubeHandle, sa: str, verb: str, resource: str, namespace: str | None) -> bool:
    where = ["-n", namespace] if namespace else []
    answer = kube.kubectl("auth", "can-i", verb, resource, *where, f"--as={sa}", check=False).strip()
    assert answer in ("yes", "no"), answer
    return answer == "yes"


def test_helm_chart_installs_and_its_rbac_is_enough_to_roll_out(kube: KubeHandle, namespace: str) -> None:
    release_ns = f"{namespace}-sys"
    # the admission webhook would call the operator pods, which kwok only pretends to run: the
    # rollout below is driven in-process, and the webhook has its own test (test_admission_policy)
    helm(kube, "install", "vigil", str(REPO_ROOT / "charts" / "vigil"), "-n", release_ns, "--create-namespace",
         "--set", "prometheus.url=http://prometheus.monitoring:9090", "--set", "admission.webhook.enabled=false",
         "--wait", "--timeout", "120s")
    try:
        apps = k8s.AppsV1Api(kube.api_client)
        dep = apps.read_namespaced_deployment("vigil-operator", release_ns)
        assert dep.status.available_replicas == 2  # two replicas, one leader (VIGIL_LEADER_ELECTION)
        assert k8s.PolicyV1Api(kube.api_client).read_namespaced_pod_disruption_budget(
            "vigil-operator", release_ns).spec.min_available == 1
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

        roll_out_v1_then_v2(as_operator, custom, namespace)
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


def test_namespaced_install_rolls_out_in_its_namespaces_and_nowhere_else(kube: KubeHandle, namespace: str) -> None:
    """watchNamespaces: Roles in the watched namespace only, the tier RiskPolicies created there
    (the apiserver checks them against the CRD schema and its CEL rules), and no write access
    anywhere else; the pre-delete hook runs on `helm uninstall`."""
    release_ns = f"{namespace}-sys"
    helm(kube, "install", "vigil", str(REPO_ROOT / "charts" / "vigil"), "-n", release_ns, "--create-namespace",
         "--set", f"watchNamespaces={{{namespace}}}", "--set", "policies.install=true",
         "--set", "admission.webhook.enabled=false",  # its pods only pretend to run here (kwok)
         "--set", f"policies.namespaces={{{namespace}}}", "--set", "monitoring.dashboard.enabled=true",
         "--set", "audit.checkpoint.dir=/var/lib/vigil/checkpoints", "--wait", "--timeout", "120s")
    try:
        custom = k8s.CustomObjectsApi(kube.api_client)
        policies = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "riskpolicies")["items"]
        assert sorted(p["metadata"]["name"] for p in policies) == [
            "critical-risk", "high-risk", "low-risk", "medium-risk"]
        dep = k8s.AppsV1Api(kube.api_client).read_namespaced_deployment("vigil-operator", release_ns)
        assert f"--namespace={namespace}" in dep.spec.template.spec.containers[0].args

        as_operator = Reconciler(Kube(kube.client_as(release_ns, "vigil-operator")), metrics=VersionMetrics(),
                                 analyzer=judge)
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "riskpolicies", policy_body())
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "modeldeployments",
                                               md_body("v1", "gatewayapi"))
        roll_out_v1_then_v2(as_operator, custom, namespace)

        sa = f"system:serviceaccount:{release_ns}:vigil-operator"
        assert can_i(kube, sa, "patch", "deployments.apps", namespace)
        assert can_i(kube, sa, "update", "leases.coordination.k8s.io/vigil-operator", release_ns)
        assert can_i(kube, sa, "get", "secrets/vigil-audit-signing-key", release_ns)
        for verb, resource, where in [("create", "deployments.apps", "kube-system"), ("create", "deployments.apps", "default"),
                                      ("patch", "modeldeployments.vigil.dev", "default"), ("get", "secrets", "kube-system"),
                                      ("get", "secrets/other", release_ns), ("list", "secrets", release_ns),
                                      ("create", "clusterroles.rbac.authorization.k8s.io", None),
                                      ("list", "namespaces", None)]:
            assert not can_i(kube, sa, verb, resource, where), (verb, resource, where)
        hook = f"system:serviceaccount:{release_ns}:vigil-uninstall"
        assert can_i(kube, hook, "patch", "modeldeployments.vigil.dev", namespace)
        assert not can_i(kube, hook, "patch", "modeldeployments.vigil.dev", "default")
        assert not can_i(kube, hook, "patch", "deployments.apps/other", release_ns)
    finally:
        helm(kube, "uninstall", "vigil", "-n", release_ns, "--wait", "--timeout", "120s")
        k8s.CoreV1Api(kube.api_client).delete_namespace(release_ns)
    # the RiskPolicies went with the release; the ModelDeployment (a user's object) stays
    assert not [p for p in custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "riskpolicies")["items"]
                if p["metadata"]["name"].endswith("-risk")]


def test_the_uninstall_hooks_rbac_frees_modeldeployments(kube: KubeHandle, namespace: str) -> None:
    """What the pre-delete Job runs, with the Job's own ServiceAccount: it stops the operator and
    takes kopf's finalizer off (kwok completes Job pods without running them, so the command is
    run here, as the Job would run it)."""
    from vigil.cli.uninstall_cmd import (
        KOPF_FINALIZER,
        UninstallError,
        remove_finalizers,
        remove_webhook,
        stop_operator,
    )

    release_ns = f"{namespace}-sys"
    custom = k8s.CustomObjectsApi(kube.api_client)
    body = md_body("v1", "istio")
    body["metadata"]["finalizers"] = [KOPF_FINALIZER]
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "modeldeployments", body)
    helm(kube, "install", "vigil", str(REPO_ROOT / "charts" / "vigil"), "-n", release_ns, "--create-namespace",
         "--wait", "--timeout", "120s")
    try:
        as_hook = kube.client_as(release_ns, "vigil-uninstall")
        stop_operator(as_hook, release_ns, "vigil-operator", timeout=120)
        assert k8s.AppsV1Api(kube.api_client).read_namespaced_deployment("vigil-operator", release_ns).spec.replicas == 0
        # with the operator gone, the Fail-policy webhook refuses every ModelDeployment update...
        with pytest.raises(UninstallError, match="webhook"):
            remove_finalizers(kube.api_client, [namespace])
        # ...so the hook deletes it first, with its own narrow right
        assert remove_webhook(as_hook, "vigil-policy-rules") is True
        freed = remove_finalizers(as_hook, [namespace])
        assert [(c.namespace, c.name, c.changed) for c in freed] == [(namespace, "fraud", True)]
        md = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "modeldeployments", "fraud")
        assert KOPF_FINALIZER not in (md["metadata"].get("finalizers") or [])
    finally:
        helm(kube, "uninstall", "vigil", "-n", release_ns, "--wait", "--timeout", "120s")
        k8s.CoreV1Api(kube.api_client).delete_namespace(release_ns)


def test_plain_manifests_apply_with_kubectl_kustomize(kube: KubeHandle) -> None:
    install = REPO_ROOT / "manifests" / "install"
    out = kube.kubectl("apply", "-k", str(install))
    try:
        assert "deployment.apps/vigil-operator created" in out
        dep = k8s.AppsV1Api(kube.api_client).read_namespaced_deployment("vigil-operator", "vigil-system")
        assert dep.spec.replicas == 2
        sa = "system:serviceaccount:vigil-system:vigil-operator"
        assert can_i(kube, sa, "patch", "httproutes.gateway.networking.k8s.io", "default")
        assert not can_i(kube, sa, "update", "deployments.apps", "default")
    finally:
        # the CRDs stay (deleting them would delete every Vigil object in the cluster)
        # the admission policies go synchronously: a later test must not meet them still in force
        kube.kubectl("delete", "--wait=true", "-f", str(install / "vigil.yaml"))
        kube.kubectl("delete", "--wait=false", "-f", str(install / "namespace.yaml"))


def test_the_gateway_api_and_istio_examples_apply(kube: KubeHandle, namespace: str) -> None:
    examples = REPO_ROOT / "manifests" / "examples"
    core = k8s.CoreV1Api(kube.api_client)
    for ns in ("istio-system",):
        try:
            core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=ns)))
        except k8s.exceptions.ApiException as err:
            assert err.status == 409, err
    gateway = kube.kubectl("apply", "-f", str(examples / "gateway-api" / "gateway.yaml"))
    assert "gateway.gateway.networking.k8s.io/public-gateway" in gateway
    kube.kubectl("apply", "-n", namespace, "-f", str(examples / "riskpolicy.yaml"),
                 "-f", str(examples / "modeldeployment.yaml"))
    istio_ns = f"{namespace}-istio"
    core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=istio_ns)))
    try:
        out = kube.kubectl("apply", "-f", str(examples / "istio" / "gateway.yaml"))
        assert "gateway.networking.istio.io/public-gateway" in out
        out = kube.kubectl("apply", "-n", istio_ns, "-f", str(examples / "riskpolicy.yaml"),
                           "-f", str(examples / "istio" / "modeldeployment.yaml"))
        assert "modeldeployment.vigil.dev/fraud created" in out
        md = k8s.CustomObjectsApi(kube.api_client).get_namespaced_custom_object(
            GROUP, VERSION, istio_ns, "modeldeployments", "fraud")
        assert md["spec"]["traffic"]["router"] == "istio"
    finally:
        kube.kubectl("delete", "-f", str(examples / "istio" / "gateway.yaml"), "-f",
                     str(examples / "gateway-api" / "gateway.yaml"), "--ignore-not-found", "--wait=false")
        core.delete_namespace(istio_ns)
