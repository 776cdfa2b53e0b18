"""The rules of a RiskPolicy and the AuditRecord write rule, through the real admission path.

The ValidatingWebhookConfiguration and the ValidatingAdmissionPolicy are rendered from the chart
with `helm template` and applied to the real apiserver; the webhook is served by the operator
(kopf, `vigil.handlers.admission`) on a free port of 127.0.0.1, with the CA it makes itself and
publishes into the configuration's caBundle. Both are bound to namespaces carrying this
module's label only, so other tests in the session are not affected. Users are impersonated.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from kopf.testing import KopfRunner
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from vigil.admission.rules import ANN_EMERGENCY
from vigil.api.names import GROUP, PLURAL_AUDITRECORDS, VERSION
from vigil.cli.main import whoami
from vigil.dev.binaries import REPO_ROOT, ensure_built
from vigil.handlers.config import configure

from ..conftest import KubeHandle, wait_for
from .test_controls_admission import as_user
from .test_operator import Cluster, VersionMetrics, judge, md_body, policy_body

RUN = uuid.uuid4().hex[:8]
LABEL = "vigil.dev/admission-test"
SELECTOR = {"matchLabels": {LABEL: RUN}}
WEBHOOK_CONFIG = f"vigil-policy-rules-{RUN}"
AUDIT_POLICY = f"vigil-audit-records-{RUN}"
MD = "modeldeployments"


def render(kube: KubeHandle, template: str, values: dict[str, Any], release_ns: str, tmp: Path) -> str:
    values_file = tmp / f"values-{uuid.uuid4().hex[:6]}.yaml"
    values_file.write_text(yaml.safe_dump(values))
    result = subprocess.run(
        [str(ensure_built().helm), "template", "vigil", str(REPO_ROOT / "charts" / "vigil"), "-n", release_ns,
         "--kube-version", "1.37.0", "-f", str(values_file), "--show-only", f"templates/{template}"],
        capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def refusal(call: Any) -> str:
    with pytest.raises(ApiException) as err:
        call()
    assert err.value.status in (403, 422), err.value
    return str(json.loads(err.value.body)["message"])


def labelled_namespace(kube: KubeHandle, name: str, **labels: str) -> str:
    k8s.CoreV1Api(kube.api_client).create_namespace(
        k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name, labels={LABEL: RUN, **labels})))
    return name


# ------------------------------------------------------------------ the webhook
@pytest.fixture(scope="module")
def webhook(kube: KubeHandle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KopfRunner]:
    tmp = tmp_path_factory.mktemp("webhook")
    port = free_port()
    manifest = render(kube, "webhook.yaml", {"admission": {"webhook": {
        "enabled": True, "url": f"https://127.0.0.1:{port}", "configurationName": WEBHOOK_CONFIG,
        "namespaceSelector": SELECTOR}}}, "default", tmp)
    kube.kubectl("apply", "-f", "-", input=manifest)
    env = {"VIGIL_WEBHOOK_PORT": str(port), "VIGIL_WEBHOOK_ADDR": "127.0.0.1", "VIGIL_WEBHOOK_HOSTS": "127.0.0.1",
           "VIGIL_WEBHOOK_CERT_DIR": str(tmp / "certs"), "VIGIL_WEBHOOK_CONFIGURATION": WEBHOOK_CONFIG,
           "KUBECONFIG": str(kube.kubeconfig)}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    configure(api_client=kube.client_for(), metrics=VersionMetrics(), analyzer=judge)
    try:
        with KopfRunner(["run", "-m", "vigil.handlers.operator", "-m", "vigil.handlers.admission",
                         "--standalone", "--all-namespaces"]) as runner:
            probe = labelled_namespace(kube, f"probe-{RUN}")
            wait_for(lambda: webhook_in_force(kube, probe), timeout=60, what="the webhook in force")
            k8s.CoreV1Api(kube.api_client).delete_namespace(probe)
            yield runner
        assert runner.exception is None, runner.exception
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        kube.kubectl("delete", "validatingwebhookconfiguration", WEBHOOK_CONFIG, "--ignore-not-found")


def webhook_in_force(kube: KubeHandle, namespace: str) -> bool:
    """The apiserver loads the configuration (and our caBundle) asynchronously: probe with a dry run."""
    try:
        k8s.CustomObjectsApi(kube.api_client).create_namespaced_custom_object(
            GROUP, VERSION, namespace, MD, md_body("v1", policy="nowhere"), dry_run="All")
    except ApiException as err:
        return "PolicyExists" in (err.body or "")
    return False


@pytest.fixture
def ns(kube: KubeHandle, webhook: KopfRunner) -> Iterator[str]:
    name = labelled_namespace(kube, f"t-{uuid.uuid4().hex[:8]}", team="ml")
    yield name
    k8s.CoreV1Api(kube.api_client).delete_namespace(name)


def test_the_policy_reference_must_exist(kube: KubeHandle, ns: str) -> None:
    c = Cluster(kube, ns)
    message = refusal(lambda: c.create(MD, md_body("v1", policy="missing")))
    assert "spec.policyRef.name" in message and 'RiskPolicy "missing" does not exist' in message
    c.create("riskpolicies", policy_body())
    c.create(MD, md_body("v1"))


def test_an_unpinned_artifact_is_refused(kube: KubeHandle, ns: str) -> None:
    """spec.artifact.digest must be sha256:<64 hex>: the CRD schema refuses any other value for every
    tier before the webhook is asked (the webhook's PinnedDigest rule is the second line)."""
    c = Cluster(kube, ns)
    c.create("riskpolicies", policy_body(riskTier="critical"))
    body = md_body("v1")
    body["spec"]["artifact"]["digest"] = "latest"
    assert "spec.artifact.digest" in refusal(lambda: c.create(MD, body))
    c.create(MD, md_body("v1"))


def test_own_steps_stay_within_the_policy(kube: KubeHandle, ns: str) -> None:
    c = Cluster(kube, ns)
    c.create("riskpolicies", policy_body(allowStepOverrides=True))
    body = md_body("v1")
    body["spec"]["steps"] = [20, 80]
    message = refusal(lambda: c.create(MD, body))
    assert "spec.steps" in message and "maxWeight 50" in message
    body["spec"]["steps"] = [10, 50]
    c.create(MD, body)


def kubectl_as(kube: KubeHandle, user: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(ensure_built().kubectl), f"--kubeconfig={kube.kubeconfig}", f"--as={user}", *args],
                          capture_output=True, text=True, check=False)


def grant_md_edit(kube: KubeHandle, namespace: str, user: str) -> None:
    rbac = k8s.RbacAuthorizationV1Api(kube.api_client)
    rbac.create_namespaced_role(namespace, {"metadata": {"name": user}, "rules": [
        {"apiGroups": [GROUP], "resources": [MD, "riskpolicies"], "verbs": ["get", "list", "patch", "update", "create"]}]})
    rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": user}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": user},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]})


def test_a_version_change_in_a_freeze_window_needs_a_recorded_emergency(kube: KubeHandle, ns: str) -> None:
    c = Cluster(kube, ns)
    now = datetime.now(UTC)
    window = {"start": (now - timedelta(hours=1)).isoformat(), "end": (now + timedelta(hours=1)).isoformat(),
              "reason": "quarter close"}
    c.create("riskpolicies", policy_body(freezeWindows=[window], allowEmergencyPromotion=True))
    c.create(MD, md_body("v1"))  # a first deploy is not a version change
    grant_md_edit(kube, ns, "alice")
    v2 = {"spec": {"version": "v2", "artifact": {"uri": "s3://models/fraud/v2", "digest": "sha256:" + "2" * 64}}}
    refused = kubectl_as(kube, "alice", "patch", "md", "fraud", "-n", ns, "--type=merge", "-p", json.dumps(v2))
    assert refused.returncode != 0
    assert "spec.version" in refused.stderr and "quarter close" in refused.stderr and ANN_EMERGENCY in refused.stderr
    emergency = {**v2, "metadata": {"annotations": {ANN_EMERGENCY: "CVE-2030-0001 in v1"}}}
    admitted = kubectl_as(kube, "alice", "patch", "md", "fraud", "-n", ns, "--type=merge", "-p", json.dumps(emergency))
    assert admitted.returncode == 0, admitted.stderr
    assert "Warning" in admitted.stderr and "emergency" in admitted.stderr and "alice" in admitted.stderr
    assert c.md()["spec"]["version"] == "v2"


def test_no_loosening_while_a_rollout_under_the_policy_runs(kube: KubeHandle, ns: str) -> None:
    c = Cluster(kube, ns)
    c.create("riskpolicies", policy_body(bakeTime="1h"))
    c.create(MD, md_body("v1"))
    wait_for(lambda: c.phase_is("Succeeded"), timeout=90, what="v1 deployed")
    # at rest the policy may change either way
    c.custom.patch_namespaced_custom_object(GROUP, VERSION, ns, "riskpolicies", "policy", {"spec": {"minSamples": 2}})
    c.set_version("v2")
    wait_for(lambda: c.phase_is("Canary"), timeout=90, what="v2 in canary")
    message = refusal(lambda: c.custom.patch_namespaced_custom_object(
        GROUP, VERSION, ns, "riskpolicies", "policy", {"spec": {"maxWeight": 80, "steps": [20, 80]}}))
    assert "spec.maxWeight" in message and "50 -> 80" in message and "fraud" in message
    assert "spec.steps" in message
    message = refusal(lambda: c.custom.delete_namespaced_custom_object(GROUP, VERSION, ns, "riskpolicies", "policy"))
    assert "cannot be deleted while rollouts under it run" in message
    # tightening is always allowed
    c.custom.patch_namespaced_custom_object(GROUP, VERSION, ns, "riskpolicies", "policy", {"spec": {"minSamples": 50}})


def test_hostnames_follow_the_gateways_allowed_routes(kube: KubeHandle, ns: str) -> None:
    infra = f"infra-{uuid.uuid4().hex[:6]}"
    core = k8s.CoreV1Api(kube.api_client)
    core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=infra)))
    try:
        k8s.CustomObjectsApi(kube.api_client).create_namespaced_custom_object(
            "gateway.networking.k8s.io", "v1", infra, "gateways", {
                "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "metadata": {"name": "shared"},
                "spec": {"gatewayClassName": "any", "listeners": [
                    {"name": "models", "protocol": "HTTP", "port": 80, "hostname": "*.models.example.com",
                     "allowedRoutes": {"namespaces": {"from": "Selector",
                                                      "selector": {"matchLabels": {"team": "ml"}}}}},
                    {"name": "pay", "protocol": "HTTP", "port": 8080, "hostname": "pay.example.com",
                     "allowedRoutes": {"namespaces": {"from": "Same"}}}]}})
        c = Cluster(kube, ns)
        c.create("riskpolicies", policy_body())
        body = md_body("v1")
        body["spec"]["traffic"] = {"router": "gatewayapi", "gatewayRef": {"name": "shared", "namespace": infra},
                                   "hostnames": ["pay.example.com"]}
        message = refusal(lambda: c.create(MD, body))
        assert "spec.traffic.hostnames" in message and "pay.example.com" in message
        body["spec"]["traffic"]["hostnames"] = ["fraud.models.example.com"]
        c.create(MD, body)
        # the namespace loses the label the listener selects: no new claim is admitted
        core.patch_namespace(ns, {"metadata": {"labels": {"team": None}}})
        message = refusal(lambda: c.custom.patch_namespaced_custom_object(
            GROUP, VERSION, ns, MD, "fraud", {"spec": {"traffic": {"hostnames": ["risk.models.example.com"]}}}))
        assert "spec.traffic.gatewayRef" in message and "allowedRoutes" in message
    finally:
        core.delete_namespace(infra)


# ------------------------------------------------------------------ who writes AuditRecords
def audit_body(name: str) -> dict:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "AuditRecord", "metadata": {"name": name},
            "spec": {"modelDeployment": "fraud", "seq": 1, "time": "2030-01-01T00:00:00Z", "action": "deployed",
                     "phase": "Succeeded", "prevHash": "", "hash": "sha256:" + "0" * 64}}


@pytest.fixture
def audit_ns(kube: KubeHandle, tmp_path: Path) -> Iterator[str]:
    name = labelled_namespace(kube, f"a-{uuid.uuid4().hex[:8]}")
    core = k8s.CoreV1Api(kube.api_client)
    core.create_namespaced_service_account(name, {"metadata": {"name": "vigil-operator"}})
    rbac = k8s.RbacAuthorizationV1Api(kube.api_client)
    every = {"apiGroups": [GROUP], "resources": [PLURAL_AUDITRECORDS],
             "verbs": ["get", "list", "create", "update", "patch", "delete"]}
    rbac.create_namespaced_role(name, {"metadata": {"name": "audit"}, "rules": [every]})
    rbac.create_namespaced_role_binding(name, {
        "metadata": {"name": "audit"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "audit"},
        "subjects": [{"kind": "ServiceAccount", "name": "vigil-operator", "namespace": name},
                     {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "mallory"}]})
    # the local control plane's namespace controller runs as the admin user (not its own ServiceAccount)
    controller = whoami(kube.api_client)
    manifest = render(kube, "audit-admission.yaml", {"admission": {"auditRecords": {
        "policyName": AUDIT_POLICY, "namespaceSelector": SELECTOR, "namespaceDeleters": [controller]}}}, name, tmp_path)
    kube.kubectl("apply", "-f", "-", input=manifest)
    try:
        wait_for(lambda: audit_rule_in_force(kube, name), timeout=30, what="the AuditRecord policy in force")
        yield name
    finally:
        kube.kubectl("delete", "-f", "-", "--ignore-not-found", input=manifest)
        try:
            core.delete_namespace(name)
        except ApiException as err:
            if err.status != 404:
                raise


def audit_rule_in_force(kube: KubeHandle, namespace: str) -> bool:
    try:
        k8s.CustomObjectsApi(kube.api_client).create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL_AUDITRECORDS, audit_body("probe"), dry_run="All")
    except ApiException as err:
        return err.status == 403
    return False


def test_only_the_operator_creates_audit_records_and_nobody_edits_or_deletes_them(kube: KubeHandle,
                                                                                  audit_ns: str) -> None:
    ns = audit_ns
    operator = k8s.CustomObjectsApi(kube.client_as(ns, "vigil-operator"))
    admin = k8s.CustomObjectsApi(kube.api_client)
    mallory = as_user(kube, "mallory")
    operator.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL_AUDITRECORDS, audit_body("fraud-1"))

    message = refusal(lambda: mallory.create_namespaced_custom_object(
        GROUP, VERSION, ns, PLURAL_AUDITRECORDS, audit_body("planted")))
    assert f"system:serviceaccount:{ns}:vigil-operator" in message and '"mallory"' in message
    refusal(lambda: admin.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL_AUDITRECORDS, audit_body("x")))

    for who in (operator, admin, mallory):
        message = refusal(lambda who=who: who.patch_namespaced_custom_object(
            GROUP, VERSION, ns, PLURAL_AUDITRECORDS, "fraud-1", {"metadata": {"labels": {"edited": "yes"}}}))
        assert "immutable" in message
        message = refusal(lambda who=who: who.delete_namespaced_custom_object(GROUP, VERSION, ns, PLURAL_AUDITRECORDS, "fraud-1"))
        assert "never deleted one by one" in message
    assert admin.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL_AUDITRECORDS, "fraud-1")["spec"]["seq"] == 1

    # deleting the whole namespace still completes: the namespace controller may remove its records
    core = k8s.CoreV1Api(kube.api_client)
    core.delete_namespace(ns)

    def gone() -> bool:
        try:
            core.read_namespace(ns)
        except ApiException as err:
            return err.status == 404
        return False

    wait_for(gone, timeout=180, interval=1, what="the namespace and its records deleted")
