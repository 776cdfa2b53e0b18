"""Deployments and Services for each model version, as plain manifests (pure functions).

One Deployment + Service per version (and one for a fresh baseline), named
`<modeldeployment>-<version>`; the pod template never carries the role, so promoting a canary
to stable changes no pod.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from vigil.api.modeldeployment import ModelDeploymentSpec, workload_name
from vigil.api.names import ANN_MANIFEST_HASH
from vigil.core.model import Arm, DesiredWorkload, Track
from vigil.kube.client import (
    ANN_DIGEST,
    ANN_ROLE,
    ANN_VERSION,
    LABEL_MANAGED,
    LABEL_MD,
    LABEL_TRACK,
    LABEL_VERSION,
    owner_reference,
)


def service_name(md_name: str, arm: Arm) -> str:
    """Deployment and Service name of an arm: `<md>-<version>`, `-baseline` for a fresh baseline."""
    return workload_name(md_name, arm.version, "-baseline" if arm.track is Track.BASELINE else "")


def _label_value(version: str) -> str:
    return version[:63]


def manifests(md: dict[str, Any], spec: ModelDeploymentSpec, want: DesiredWorkload) -> list[dict[str, Any]]:
    """Deployment and Service serving `want.version`, owned by the ModelDeployment."""
    md_name, ns = md["metadata"]["name"], md["metadata"]["namespace"]
    track = want.arm.track.value
    name = service_name(md_name, want.arm)
    selector = {LABEL_MD: md_name, LABEL_VERSION: _label_value(want.version), LABEL_TRACK: track}
    labels = {**selector, LABEL_MANAGED: "vigil", "app.kubernetes.io/name": spec.model}
    meta = {
        "name": name, "namespace": ns, "labels": labels,
        "annotations": {ANN_DIGEST: want.digest, ANN_ROLE: want.role.value, ANN_VERSION: want.version},
        "ownerReferences": [owner_reference(md)],
    }
    server = spec.server
    env = [{"name": k, "value": v} for k, v in sorted(server.env.items())] + [
        {"name": "VIGIL_MODEL", "value": spec.model},
        {"name": "VIGIL_MODEL_VERSION", "value": want.version},
        {"name": "VIGIL_ARTIFACT_DIGEST", "value": want.digest},
        {"name": "VIGIL_NAMESPACE", "value": ns},
        {"name": "VIGIL_TRACK", "value": track},  # "baseline" on fresh-baseline pods
    ]
    container: dict[str, Any] = {
        "name": "model-server", "image": server.image, "args": list(server.args), "env": env,
        "ports": [{"name": "http", "containerPort": server.port}],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 5},
    }
    if server.resources:
        container["resources"] = server.resources
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
        "spec": {
            "replicas": want.replicas,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": labels, "annotations": {
                    ANN_DIGEST: want.digest, "prometheus.io/scrape": "true",
                    "prometheus.io/port": str(server.port)}},
                "spec": {"containers": [container]},
            },
        },
    }
    service = {
        "apiVersion": "v1", "kind": "Service", "metadata": meta,
        "spec": {"selector": selector, "ports": [{"name": "http", "port": spec.traffic.port, "targetPort": "http"}]},
    }
    return [stamped(deployment), stamped(service)]


def stamped(body: dict[str, Any]) -> dict[str, Any]:
    """`body` with a hash of itself in an annotation, so an unchanged object is not re-applied."""
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]
    body["metadata"]["annotations"] = {**body["metadata"]["annotations"], ANN_MANIFEST_HASH: digest}
    return body


def manifest_hash(body: dict[str, Any] | None) -> str | None:
    return ((body or {}).get("metadata", {}).get("annotations") or {}).get(ANN_MANIFEST_HASH)
