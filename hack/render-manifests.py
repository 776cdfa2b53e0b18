#!/usr/bin/env python3
"""Render manifests/install (plain YAML for `kubectl apply -k`) from the Helm chart.

One source of truth: the chart. This renders it in cluster-wide mode into the namespace
`vigil-system` with its default values, minus the pre-delete hook (plain manifests have no
hooks: run `vigil uninstall` before `kubectl delete -k`, docs/install.md). `make manifests`
runs it; tests/unit/test_chart_manifests.py fails when the files are not current.

    python3 hack/render-manifests.py [--out DIR] [--check]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "charts" / "vigil"
OUT = REPO / "manifests" / "install"
NAMESPACE = "vigil-system"
KUBE_VERSION = "1.33.0"  # only read by capability checks; the chart needs >= 1.30
HEADER = "# Generated from charts/vigil by `make manifests` (hack/render-manifests.py). Do not edit.\n"


def helm_binary() -> str:
    from vigil.dev.binaries import ensure_built  # the helm built with the control plane

    return str(ensure_built().helm)


def render(helm: str | None = None) -> dict[str, str]:
    """File name -> content of manifests/install."""
    helm = helm or helm_binary()
    result = subprocess.run(
        [helm, "template", "vigil", str(CHART), "--namespace", NAMESPACE, "--kube-version", KUBE_VERSION,
         "--include-crds", "--no-hooks", "--set", "uninstall.hook=false",
         # no certificate material in git: the webhook needs Helm (or your own CA), docs/install.md
         "--set", "admission.webhook.enabled=false"],
        capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"helm template failed:\n{result.stderr}")
    crds: list[dict] = []
    rest: list[dict] = []
    for doc in yaml.safe_load_all(result.stdout):
        if doc:
            (crds if doc["kind"] == "CustomResourceDefinition" else rest).append(doc)
    crds.sort(key=lambda d: d["metadata"]["name"])

    def dump(docs: list[dict]) -> str:
        return HEADER + "".join("---\n" + yaml.safe_dump(d, sort_keys=False, width=120) for d in docs)

    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": ["namespace.yaml", "crds.yaml", "vigil.yaml"],
    }
    return {
        "namespace.yaml": dump([namespace]),
        "crds.yaml": dump(crds),
        "vigil.yaml": dump(rest),
        "kustomization.yaml": HEADER + yaml.safe_dump(kustomization, sort_keys=False),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--check", action="store_true", help="exit 1 when the files differ from a fresh render")
    args = p.parse_args(argv)
    files = render()
    if args.check:
        stale = [n for n, text in files.items()
                 if not (args.out / n).exists() or (args.out / n).read_text() != text]
        extra = sorted(p.name for p in args.out.glob("*.yaml") if p.name not in files)
        if stale or extra:
            print(f"{args.out} is not current: {', '.join(stale + extra)}; run `make manifests`", file=sys.stderr)
            return 1
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (args.out / name).write_text(text)
    print(f"wrote {', '.join(sorted(files))} to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
