"""The chart's ServiceMonitor, PrometheusRule and dashboard ConfigMap applied to the real
apiserver, validated by the real prometheus-operator CRD schemas (not only rendered)."""

from __future__ import annotations

import subprocess
import uuid

import yaml

from vigil.dev.binaries import ensure_built

from ..conftest import KubeHandle, wait_for
from ..prometheus_operator import crd_files
from .test_install import REPO_ROOT


def test_monitoring_objects_are_accepted_by_the_prometheus_operator_schemas(kube: KubeHandle) -> None:
    for crd in crd_files():
        kube.kubectl("apply", "--server-side", "-f", str(crd))
    wait_for(lambda: "servicemonitors" in kube.kubectl("api-resources", "--api-group=monitoring.coreos.com"),
             timeout=60, what="the monitoring.coreos.com CRDs served")
    release_ns = f"mon-{uuid.uuid4().hex[:8]}"
    rendered = subprocess.run(
        [str(ensure_built().helm), "template", "vigil", str(REPO_ROOT / "charts" / "vigil"), "-n", release_ns,
         "--kube-version", "1.37.0", "--show-only", "templates/monitoring.yaml",
         "--set", "monitoring.serviceMonitor.enabled=true", "--set", "monitoring.prometheusRule.enabled=true",
         "--set", "monitoring.dashboard.enabled=true"],
        capture_output=True, text=True, check=True).stdout
    kinds = sorted(d["kind"] for d in yaml.safe_load_all(rendered) if d)
    assert kinds == ["ConfigMap", "PrometheusRule", "Service", "ServiceMonitor"], kinds
    kube.kubectl("create", "namespace", release_ns)
    try:
        out = kube.kubectl("apply", "-n", release_ns, "-f", "-", input=rendered)
        assert "servicemonitor.monitoring.coreos.com/" in out and "prometheusrule.monitoring.coreos.com/" in out
        rules = yaml.safe_load(kube.kubectl("get", "prometheusrules", "-n", release_ns, "-o", "yaml"))["items"]
        alerts = {r["alert"] for item in rules for g in item["spec"]["groups"] for r in g["rules"] if "alert" in r}
        assert {"VigilNoLeader"} <= alerts, alerts
    finally:
        kube.kubectl("delete", "namespace", release_ns, "--wait=false")
