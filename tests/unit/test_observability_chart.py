"""The chart's monitoring objects: off by default, rendered from files/ when enabled, rules valid."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from vigil.dev.binaries import ensure_built

pytestmark = pytest.mark.controlplane  # renders with the helm built by hack/controlplane/build.sh

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "vigil"


def helm_template(*sets: str) -> dict[str, dict]:
    helm = ensure_built().helm  # the pinned helm of hack/controlplane (cached build)
    args = [str(helm), "template", "r", str(CHART), "-n", "vigil-system", "--kube-version", "1.31.0"]
    for s in sets:
        args += ["--set", s]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in yaml.safe_load_all(out) if d}


def test_monitoring_is_off_by_default() -> None:
    kinds = {k.split("/")[0] for k in helm_template()}
    assert not kinds & {"ServiceMonitor", "PrometheusRule"}
    assert "ConfigMap/vigil-operator-dashboard" not in helm_template()


def test_enabled_monitoring_renders_the_files_unchanged() -> None:
    objs = helm_template("monitoring.serviceMonitor.enabled=true", "monitoring.prometheusRule.enabled=true",
                         "monitoring.dashboard.enabled=true", "monitoring.serviceMonitor.labels.release=kps")
    rule = objs["PrometheusRule/vigil-operator"]
    assert rule["spec"] == yaml.safe_load((CHART / "files" / "alerts.yaml").read_text())
    dashboard = objs["ConfigMap/vigil-operator-dashboard"]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["vigil-rollouts.json"]) == json.loads((CHART / "files" / "dashboard.json").read_text())
    monitor = objs["ServiceMonitor/vigil-operator"]
    assert monitor["metadata"]["labels"]["release"] == "kps"
    wanted = monitor["spec"]["selector"]["matchLabels"].items()
    services = [o for k, o in objs.items() if k.startswith("Service/") and wanted <= o["metadata"]["labels"].items()]
    assert len(services) == 1, "the ServiceMonitor must select exactly the chart's metrics Service"
    service = services[0]
    assert monitor["spec"]["endpoints"][0]["port"] in {p["name"] for p in service["spec"]["ports"]}


def test_alert_rules_pass_promtool() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed (Debian package prometheus)", pytrace=False)
    done = subprocess.run([promtool, "check", "rules", str(CHART / "files" / "alerts.yaml")], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    names = {r["alert"] for g in yaml.safe_load((CHART / "files" / "alerts.yaml").read_text())["groups"] for r in g["rules"]}
    assert {"VigilRolloutOverBudget", "VigilRollback", "VigilNoLeader", "VigilAuditWriteFailing"} <= names
