"""Manual controls and approvals through the real admission path, with users impersonated.

The ValidatingAdmissionPolicy of charts/vigil/templates/admission.yaml is applied to the real
apiserver; requests are made as alice, bob and carol (Impersonate-User), whose rights come from
ordinary RBAC Roles. Then the operator (kopf, real apiserver) shows that approvals count once
per user and only for the digest they name.
"""

from __future__ import annotations

import json
from typing import Any, Iterator

import pytest
from kopf.testing import KopfRunner
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from vigil.api.names import GROUP, PLURAL_MODELDEPLOYMENTS, VERSION, approval_key, approval_value
from vigil.dev.binaries import REPO_ROOT

from ..conftest import KubeHandle, wait_for
from .test_operator import Cluster, md_body, operator, policy_body  # noqa: F401  (fixtures)

ADMISSION = REPO_ROOT / "charts" / "vigil" / "templates" / "admission.yaml"
EDIT = {"apiGroups": [GROUP], "resources": [PLURAL_MODELDEPLOYMENTS], "verbs": ["get", "list", "watch", "patch", "update"]}


@pytest.fixture(scope="module")
def admission(kube: KubeHandle) -> Iterator[None]:
    kube.kubectl("apply", "-f", str(ADMISSION))
    yield
    kube.kubectl("delete", "-f", str(ADMISSION), "--ignore-not-found")


def grant(kube: KubeHandle, namespace: str, user: str, *extra_verbs: str) -> None:
    rbac = k8s.RbacAuthorizationV1Api(kube.api_client)
    rules = [EDIT] + ([{"apiGroups": [GROUP], "resources": [PLURAL_MODELDEPLOYMENTS], "verbs": list(extra_verbs)}]
                      if extra_verbs else [])
    rbac.create_namespaced_role(namespace, {"metadata": {"name": user}, "rules": rules})
    rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": user}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": user},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]})


def as_user(kube: KubeHandle, user: str) -> k8s.CustomObjectsApi:
    api = k8s_config.new_client_from_config(config_file=str(kube.kubeconfig))
    api.set_default_header("Impersonate-User", user)
    return k8s.CustomObjectsApi(api)


def annotate(api: k8s.CustomObjectsApi, namespace: str, annotations: dict[str, Any]) -> None:
    api.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL_MODELDEPLOYMENTS, "fraud",
                                       {"metadata": {"annotations": annotations}})


def refused(api: k8s.CustomObjectsApi, namespace: str, annotations: dict[str, Any]) -> str:
    with pytest.raises(ApiException) as err:
        annotate(api, namespace, annotations)
    assert err.value.status in (403, 422), err.value
    return str(json.loads(err.value.body)["message"])


DIGEST = "sha256:" + "2" * 64


@pytest.fixture
def users(kube: KubeHandle, namespace: str, admission: None) -> dict[str, k8s.CustomObjectsApi]:
    grant(kube, namespace, "alice", "approve")
    grant(kube, namespace, "bob", "approve", "promote")
    grant(kube, namespace, "carol")
    k8s.CustomObjectsApi(kube.api_client).create_namespaced_custom_object(
        GROUP, VERSION, namespace, "riskpolicies", policy_body())
    admin = k8s.CustomObjectsApi(kube.api_client)
    admin.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL_MODELDEPLOYMENTS, md_body("v1"))
    wait_for(lambda: policy_enforced(admin, namespace), timeout=30, what="the admission policy in force")
    return {u: as_user(kube, u) for u in ("alice", "bob", "carol")}


def policy_enforced(api: k8s.CustomObjectsApi, namespace: str) -> bool:
    """The apiserver loads a new policy asynchronously: probe with a dry run it must deny."""
    try:
        api.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL_MODELDEPLOYMENTS, "fraud",
            {"metadata": {"annotations": {"vigil.dev/paused": "true", "vigil.dev/requested-by": "nobody-at-all"}}},
            dry_run="All")
    except ApiException as err:
        return err.status in (403, 422)
    return False


def test_a_control_must_name_the_authenticated_user(users, namespace: str) -> None:
    annotate(users["alice"], namespace, {"vigil.dev/paused": "true", "vigil.dev/requested-by": "alice"})
    message = refused(users["alice"], namespace, {"vigil.dev/paused": None, "vigil.dev/requested-by": "bob"})
    assert "vigil.dev/requested-by" in message and '"alice"' in message
    # clearing a control is a control too, and needs the writer's own name
    annotate(users["carol"], namespace, {"vigil.dev/paused": None, "vigil.dev/requested-by": "carol"})


def test_approvals_are_in_ones_own_name_and_need_the_approve_right(users, namespace: str) -> None:
    annotate(users["alice"], namespace, {approval_key("alice"): approval_value("alice", DIGEST)})
    message = refused(users["alice"], namespace, {approval_key("bob"): approval_value("bob", DIGEST)})
    assert "approved.vigil.dev" in message and "your own name" in message
    message = refused(users["carol"], namespace, {approval_key("carol"): approval_value("carol", DIGEST)})
    assert 'verb "approve"' in message


def test_manual_promote_is_a_right_of_its_own(users, namespace: str) -> None:
    message = refused(users["alice"], namespace, {"vigil.dev/promote": DIGEST, "vigil.dev/requested-by": "alice"})
    assert 'verb "promote"' in message
    annotate(users["bob"], namespace, {"vigil.dev/promote": DIGEST, "vigil.dev/requested-by": "bob"})


def test_one_user_approving_three_times_counts_once(kube: KubeHandle, users, namespace: str,
                                                    operator: KopfRunner) -> None:  # noqa: F811  (the fixture)
    c = Cluster(kube, namespace)
    custom = k8s.CustomObjectsApi(kube.api_client)
    custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, "riskpolicies", "policy",
                                          {"spec": {"requiredApprovals": 2}})
    wait_for(lambda: c.phase_is("Succeeded"), timeout=60, what="v1 deployed")
    c.set_version("v2")
    wait_for(lambda: "approval" in c.status().get("message", ""), timeout=60, what="waiting for approvals")
    digest = c.status()["canaryDigest"]
    # alice approves three times under three keys, and once for another digest
    annotate(users["alice"], namespace, {approval_key("alice"): approval_value("alice", digest),
                                         "approved.vigil.dev/again": approval_value("alice", digest),
                                         "approved.vigil.dev/third": approval_value("alice", digest)})
    annotate(users["bob"], namespace, {approval_key("bob"): approval_value("bob", "sha256:" + "9" * 64)})
    wait_for(lambda: "1 so far" in c.status().get("message", ""), timeout=30, what="one approval counted")
    assert c.status()["stableVersion"] == "v1"
    annotate(users["bob"], namespace, {approval_key("bob"): approval_value("bob", digest)})
    wait_for(lambda: c.status().get("stableVersion") == "v2" and c.phase_is("Succeeded"), timeout=90, what="v2 promoted after two approvals")
    promote = next(r for r in c.kube.audit_records(namespace, "fraud") if r["action"] == "promote")
    assert promote["evidence"]["approvals"] == ["alice", "bob"]
