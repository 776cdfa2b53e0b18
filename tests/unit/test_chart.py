"""The Helm chart as a platform team renders it: `helm lint`, the cluster-wide and the namespaced
mode, leader election, probes, metrics, the audit key, the tier policies and bad values.

helm is the binary built with the control plane (`vigil.dev.binaries.ensure_built`), the same
one the integration tests install the chart with.
"""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
import yaml
from vigil.api.policy import RiskPolicySpec
from vigil.dev.binaries import REPO_ROOT, ensure_built

pytestmark = pytest.mark.controlplane  # renders with the helm built by hack/controlplane/build.sh

CHART = REPO_ROOT / "charts" / "vigil"
RELEASE_NS = "vigil-system"
KUBE_VERSION = "1.33.0"
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection", "*"}


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(ensure_built().helm), *args], capture_output=True, text=True, check=False)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def render(*sets: str, hooks: bool = True) -> list[dict[str, Any]]:
    args = ["template", "vigil", str(CHART), "-n", RELEASE_NS, "--kube-version", KUBE_VERSION]
    args += [] if hooks else ["--no-hooks"]
    for s in sets:
        args += ["--set", s]
    return [d for d in yaml.safe_load_all(helm(*args).stdout) if d]


def one(docs: list[dict[str, Any]], kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name
             and (namespace is None or d["metadata"].get("namespace") == namespace)]
    assert len(found) == 1, f"{kind} {namespace}/{name}: found {len(found)}"
    return found[0]


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return one(docs, "Deployment", "vigil-operator")["spec"]["template"]["spec"]["containers"][0]


def env(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(docs)["env"]}


def cluster_rules(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for d in docs if d["kind"] == "ClusterRole" for r in d.get("rules") or []]


@pytest.mark.parametrize("sets", [(), ("watchNamespaces={a,b}",), ("policies.install=true",),
                                  ("replicas=1", "leaderElection.enabled=false")])
def test_helm_lint_is_clean(sets: tuple[str, ...]) -> None:
    args = ["lint", "--strict", str(CHART), "--kube-version", KUBE_VERSION]
    for s in sets:
        args += ["--set", s]
    result = helm(*args)
    assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout, result.stdout


def test_cluster_wide_mode_binds_a_cluster_role_and_watches_everything() -> None:
    docs = render()
    assert not [a for a in container(docs)["args"] if a.startswith("--namespace")]
    binding = one(docs, "ClusterRoleBinding", f"vigil-operator-{RELEASE_NS}")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "vigil-operator", "namespace": RELEASE_NS}]
    rules = one(docs, "ClusterRole", f"vigil-operator-{RELEASE_NS}")["rules"]
    assert any("deployments" in r["resources"] and "patch" in r["verbs"] for r in rules)
    assert not any(d["kind"] == "Role" and d["metadata"]["name"] == "vigil-operator" for d in docs)


def test_namespaced_mode_gives_roles_per_namespace_and_no_cluster_write() -> None:
    docs = render("watchNamespaces={a,b}")
    assert [a for a in container(docs)["args"] if a.startswith("--namespace")] == ["--namespace=a", "--namespace=b"]
    for ns in ("a", "b"):
        role = one(docs, "Role", "vigil-operator", ns)
        assert any("modeldeployments" in r["resources"] for r in role["rules"])
        binding = one(docs, "RoleBinding", "vigil-operator", ns)
        assert binding["subjects"][0]["namespace"] == RELEASE_NS and binding["roleRef"]["kind"] == "Role"
    writes = [r for r in cluster_rules(docs) if set(r["verbs"]) & WRITE_VERBS]
    # the uninstall hook's ClusterRole exists only in cluster-wide mode; in namespaced mode
    # nothing cluster-scoped may write, apart from the webhook's own configuration (its caBundle,
    # by the operator; its deletion, by the uninstall hook), named
    assert all(r["resources"] == ["validatingwebhookconfigurations"] and r["resourceNames"] == ["vigil-policy-rules"]
               for r in writes), writes
    namespaces = {d["metadata"].get("namespace") for d in docs
                  if d["kind"] in {"Role", "RoleBinding"}}
    assert namespaces == {"a", "b", RELEASE_NS}


def test_leader_election_two_replicas_and_a_disruption_budget() -> None:
    docs = render()
    dep = one(docs, "Deployment", "vigil-operator")
    assert dep["spec"]["replicas"] == 2
    e = env(docs)
    assert e["VIGIL_LEADER_ELECTION"] == "true"
    assert e["VIGIL_POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert e["VIGIL_POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    role = one(docs, "Role", "vigil-operator-self", RELEASE_NS)
    lease_verbs = {v for r in role["rules"] if r["apiGroups"] == ["coordination.k8s.io"] for v in r["verbs"]}
    assert lease_verbs == {"get", "create", "update"}
    pdb = one(docs, "PodDisruptionBudget", "vigil-operator", RELEASE_NS)
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]

    single = render("replicas=1")
    assert not [d for d in single if d["kind"] == "PodDisruptionBudget"]  # it would block every drain


def test_several_replicas_without_leader_election_is_refused_naming_the_fields() -> None:
    result = helm("template", "v", str(CHART), "--kube-version", KUBE_VERSION,
                  "--set", "replicas=3", "--set", "leaderElection.enabled=false", check=False)
    assert result.returncode != 0
    assert "replicas: 3 needs leaderElection.enabled=true" in result.stderr


def test_a_watch_namespace_that_is_not_a_name_is_refused() -> None:
    result = helm("template", "v", str(CHART), "--kube-version", KUBE_VERSION,
                  "--set", "watchNamespaces={Prod_1}", check=False)
    assert result.returncode != 0 and 'watchNamespaces: "Prod_1" is not a namespace name' in result.stderr


def test_probes_and_the_metrics_port() -> None:
    docs = render()
    c = container(docs)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"health": 8080, "metrics": 9102, "webhook": 9443}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    assert env(docs)["VIGIL_HEALTH_PORT"] == "8080" and env(docs)["VIGIL_METRICS_PORT"] == "9102"
    assert not [a for a in c["args"] if a.startswith("--liveness")]  # /healthz is the operator's own now
    svc = one(docs, "Service", "vigil-operator-metrics", RELEASE_NS)
    assert svc["spec"]["ports"] == [{"name": "metrics", "port": 9102, "targetPort": "metrics", "protocol": "TCP"}]
    assert svc["spec"]["selector"] == one(docs, "Deployment", "vigil-operator")["spec"]["selector"]["matchLabels"]


def test_the_pod_runs_as_65532_with_a_read_only_root() -> None:
    docs = render()
    pod = one(docs, "Deployment", "vigil-operator")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == 65532 and pod["securityContext"]["runAsNonRoot"] is True
    assert container(docs)["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"name": "tmp", "mountPath": "/tmp"} in container(docs)["volumeMounts"]
    assert container(docs)["image"] == f"ghcr.io/vigil-dev/vigil-operator:{yaml.safe_load((CHART / 'Chart.yaml').read_text())['appVersion']}"


def test_prometheus_url_and_auth() -> None:
    docs = render("prometheus.url=https://prom.monitoring:9090", "prometheus.bearerTokenSecret=prom-token",
                  "prometheus.caSecret=prom-ca")
    e = env(docs)
    assert e["VIGIL_PROMETHEUS_URL"] == "https://prom.monitoring:9090"
    assert e["VIGIL_PROMETHEUS_TOKEN"] == {"secretKeyRef": {"name": "prom-token", "key": "token"}}
    assert e["VIGIL_PROMETHEUS_CA"] == "/var/run/vigil/prometheus-ca/ca.crt"
    assert {"name": "prometheus-ca", "mountPath": "/var/run/vigil/prometheus-ca", "readOnly": True} \
        in container(docs)["volumeMounts"]


def test_the_audit_signing_key_is_optional_and_the_only_secret_readable() -> None:
    docs = render()
    assert env(docs)["VIGIL_AUDIT_KEY_FILE"] == "/var/run/vigil/audit/private.pem"
    pod = one(docs, "Deployment", "vigil-operator")["spec"]["template"]["spec"]
    vol = next(v for v in pod["volumes"] if v["name"] == "audit-signing-key")
    assert vol["secret"]["secretName"] == "vigil-audit-signing-key" and vol["secret"]["optional"] is True
    assert {"name": "audit-signing-key", "mountPath": "/var/run/vigil/audit", "readOnly": True} \
        in container(docs)["volumeMounts"]
    secret_rules = [(d["kind"], d["metadata"]["name"], r) for d in docs if d["kind"] in {"Role", "ClusterRole"}
                    for r in d.get("rules") or [] if "secrets" in r["resources"]]
    assert secret_rules == [("Role", "vigil-operator-self",
                             {"apiGroups": [""], "resources": ["secrets"],
                              "resourceNames": ["vigil-audit-signing-key"], "verbs": ["get"]})]
    assert "VIGIL_AUDIT_CHECKPOINT_DIR" not in env(docs)

    with_dir = render("audit.checkpoint.dir=/var/lib/vigil/checkpoints")
    assert env(with_dir)["VIGIL_AUDIT_CHECKPOINT_DIR"] == "/var/lib/vigil/checkpoints"
    assert {"name": "audit-checkpoints", "mountPath": "/var/lib/vigil/checkpoints"} in container(with_dir)["volumeMounts"]


def test_tier_policies_are_valid_riskpolicies_in_each_namespace() -> None:
    assert not [d for d in render() if d["kind"] == "RiskPolicy"]  # an option, off by default
    docs = render("policies.install=true", "policies.namespaces={ml,fraud}")
    policies = {(d["metadata"]["namespace"], d["metadata"]["name"]): d for d in docs if d["kind"] == "RiskPolicy"}
    tiers = ["low", "medium", "high", "critical"]
    assert set(policies) == {(ns, f"{t}-risk") for ns in ("ml", "fraud") for t in tiers}
    specs = [RiskPolicySpec.model_validate(policies[("ml", f"{t}-risk")]["spec"]) for t in tiers]
    assert [s.risk_tier.value for s in specs] == tiers
    # stricter with the tier: confidence never falls, the first step never grows
    assert [s.confidence for s in specs] == sorted(s.confidence for s in specs)
    assert [s.steps[0] for s in specs] == sorted((s.steps[0] for s in specs), reverse=True)
    assert specs[3].require_pass_each_step and specs[3].required_approvals >= 1 and specs[3].shadow.enabled
    assert specs[2].pins_digest and specs[3].pins_digest
    default_ns = render("policies.install=true")
    assert {d["metadata"]["namespace"] for d in default_ns if d["kind"] == "RiskPolicy"} == {RELEASE_NS}


def test_uninstall_hook_stops_the_operator_then_frees_modeldeployments() -> None:
    docs = render("watchNamespaces={a,b}")
    job = one(docs, "Job", "vigil-uninstall", RELEASE_NS)
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-delete"
    spec = job["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == "vigil-uninstall"
    (c,) = spec["containers"]
    assert c["image"] == container(docs)["image"]
    assert c["args"][:2] == ["uninstall", f"--stop-operator={RELEASE_NS}/vigil-operator"]
    assert [a for a in c["args"] if a.startswith("--namespace")] == ["--namespace=a", "--namespace=b"]
    for ns in ("a", "b"):
        assert one(docs, "Role", "vigil-uninstall", ns)["rules"] == [
            {"apiGroups": ["vigil.dev"], "resources": ["modeldeployments"], "verbs": ["get", "list", "patch"]}]
    own = one(docs, "Role", "vigil-uninstall", RELEASE_NS)["rules"]
    assert own[0]["resourceNames"] == ["vigil-operator"]
    assert not [d for d in render("uninstall.hook=false") if d["metadata"]["name"] == "vigil-uninstall"]
    assert not [d for d in render(hooks=False) if d["kind"] == "Job"]
