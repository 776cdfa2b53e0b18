"""Uninstalling leaves no stuck namespace: once the operator is gone, kopf's finalizer would keep
every ModelDeployment (and so its namespace) in Terminating; `vigil uninstall` takes it off."""

from __future__ import annotations

import os
import uuid

from kopf.testing import KopfRunner
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from vigil.api.names import GROUP, VERSION
from vigil.cli.main import main as vigil
from vigil.cli.uninstall_cmd import KOPF_FINALIZER, remove_finalizers
from vigil.handlers.config import configure

from ..conftest import KubeHandle, wait_for
from .test_operator import VersionMetrics, judge, md_body, policy_body


def _md(kube: KubeHandle, namespace: str) -> dict | None:
    try:
        return k8s.CustomObjectsApi(kube.api_client).get_namespaced_custom_object(
            GROUP, VERSION, namespace, "modeldeployments", "fraud")
    except ApiException as err:
        if err.status == 404:
            return None
        raise


def _namespace_gone(kube: KubeHandle, name: str) -> bool:
    try:
        k8s.CoreV1Api(kube.api_client).read_namespace(name)
    except ApiException as err:
        return err.status == 404
    return False


def test_after_vigil_uninstall_a_namespace_with_modeldeployments_goes_away(kube: KubeHandle, capsys) -> None:
    ns = f"u-{uuid.uuid4().hex[:8]}"
    core, custom = k8s.CoreV1Api(kube.api_client), k8s.CustomObjectsApi(kube.api_client)
    core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=ns)))
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, "riskpolicies", policy_body())
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, "modeldeployments", md_body("v1", "istio"))

    # the real operator runs until it has put its finalizer on the ModelDeployment, then goes
    os.environ["KUBECONFIG"] = str(kube.kubeconfig)
    configure(api_client=kube.client_for(), metrics=VersionMetrics(), analyzer=judge)
    with KopfRunner(["run", "-m", "vigil.handlers.operator", "--standalone", "--namespace", ns]) as runner:
        wait_for(lambda: KOPF_FINALIZER in ((_md(kube, ns) or {}).get("metadata", {}).get("finalizers") or []),
                 what="the operator's finalizer")
    assert runner.exception is None

    # the operator is gone: the ModelDeployment cannot be deleted, it only gets a deletionTimestamp
    custom.delete_namespaced_custom_object(GROUP, VERSION, ns, "modeldeployments", "fraud")
    stuck = _md(kube, ns)
    assert stuck is not None and stuck["metadata"].get("deletionTimestamp")
    core.delete_namespace(ns)
    assert core.read_namespace(ns).status.phase == "Terminating"

    # a dry run changes nothing
    assert remove_finalizers(kube.api_client, [ns], dry_run=True)[0].changed
    assert KOPF_FINALIZER in _md(kube, ns)["metadata"]["finalizers"]

    assert vigil(["--kubeconfig", str(kube.kubeconfig), "uninstall", "--namespace", ns]) == 0
    out = capsys.readouterr().out
    assert f"modeldeployment.vigil.dev/fraud in {ns}: removed finalizer {KOPF_FINALIZER}" in out
    wait_for(lambda: _md(kube, ns) is None, timeout=60, what="the ModelDeployment deleted")
    wait_for(lambda: _namespace_gone(kube, ns), timeout=120, what=f"namespace {ns} deleted")


def test_uninstall_leaves_other_finalizers_and_says_what_it_lacks(kube: KubeHandle, namespace: str, capsys) -> None:
    custom = k8s.CustomObjectsApi(kube.api_client)
    body = md_body("v1", "istio")
    body["metadata"]["finalizers"] = ["example.com/keep", KOPF_FINALIZER]
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "modeldeployments", body)
    assert vigil(["--kubeconfig", str(kube.kubeconfig), "uninstall", "-n", namespace]) == 0
    assert _md(kube, namespace)["metadata"]["finalizers"] == ["example.com/keep"]
    custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, "modeldeployments", "fraud",
                                          {"metadata": {"finalizers": None}})

    # a caller without the rights gets an error naming what is missing, not a stack trace
    sa = "nobody"
    k8s.CoreV1Api(kube.api_client).create_namespaced_service_account(namespace, {"metadata": {"name": sa}})
    from vigil.cli import uninstall_cmd

    try:
        uninstall_cmd.remove_finalizers(kube.client_as(namespace, sa), [namespace])
    except uninstall_cmd.UninstallError as err:
        assert "forbidden" in str(err) and "list and patch on modeldeployments.vigil.dev" in str(err)
    else:
        raise AssertionError("a ServiceAccount without rights listed ModelDeployments")
