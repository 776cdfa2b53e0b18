"""The prometheus-operator CRDs (ServiceMonitor, PrometheusRule), for applying the chart's
monitoring objects to the real apiserver. Taken from the project's Go module through the Go
module proxy (the only route to them here), cached in the Go module cache after the first use."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

MODULE = "github.com/prometheus-operator/prometheus-operator"
VERSION = "v0.85.0"
CRDS = ("monitoring.coreos.com_servicemonitors.yaml", "monitoring.coreos.com_prometheusrules.yaml")


def crd_files() -> list[Path]:
    print(f"prometheus-operator CRDs: go mod download {MODULE}@{VERSION} (cached after the first run)", flush=True)
    out = subprocess.run(["go", "mod", "download", "-json", f"{MODULE}@{VERSION}"], capture_output=True,
                         text=True, check=False, timeout=600)
    info = json.loads(out.stdout or "{}")
    if out.returncode != 0 or "Dir" not in info:
        raise RuntimeError(f"cannot fetch {MODULE}@{VERSION}: {info.get('Error') or out.stderr.strip()}")
    folder = Path(info["Dir"]) / "example" / "prometheus-operator-crd"
    return [folder / name for name in CRDS]
