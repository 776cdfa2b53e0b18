"""Where the webhook listens and how the apiserver learns to trust it (from the environment).

    VIGIL_WEBHOOK_PORT           serve the admission webhook on this port (unset: no webhook)
    VIGIL_WEBHOOK_ADDR           listen address (default 0.0.0.0)
    VIGIL_WEBHOOK_HOSTS          names in the serving certificate, comma-separated; the first is
                                 the one the apiserver dials (the chart: <service>.<namespace>.svc)
    VIGIL_WEBHOOK_CERT_DIR       where the CA and serving certificate live (default
                                 /tmp/vigil-webhook; a mounted Secret with ca.crt, tls.crt and
                                 tls.key is used as is while it is valid)
    VIGIL_WEBHOOK_CONFIGURATION  the ValidatingWebhookConfiguration whose caBundle Vigil sets
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client as k8s

DEFAULT_CERT_DIR = "/tmp/vigil-webhook"


@dataclass(frozen=True)
class WebhookSettings:
    port: int
    addr: str
    hosts: tuple[str, ...]
    cert_dir: Path
    configuration: str | None

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> WebhookSettings | None:
        """None when no webhook is wanted; a clear error naming the variable when it is wrong."""
        raw = env.get("VIGIL_WEBHOOK_PORT", "").strip()
        if not raw:
            return None
        try:
            port = int(raw)
        except ValueError:
            port = 0
        if not 1 <= port <= 65535:
            raise ValueError(f"VIGIL_WEBHOOK_PORT must be a port number 1..65535, got {raw!r}")
        hosts = tuple(h.strip() for h in env.get("VIGIL_WEBHOOK_HOSTS", "localhost,127.0.0.1").split(",") if h.strip())
        if not hosts:
            raise ValueError("VIGIL_WEBHOOK_HOSTS must name at least one host (DNS name or IP)")
        return cls(port=port, addr=env.get("VIGIL_WEBHOOK_ADDR", "0.0.0.0"), hosts=hosts,
                   cert_dir=Path(env.get("VIGIL_WEBHOOK_CERT_DIR", DEFAULT_CERT_DIR)),
                   configuration=env.get("VIGIL_WEBHOOK_CONFIGURATION") or None)


def publish_ca_bundle(api_client: k8s.ApiClient, configuration: str, ca_pem: bytes) -> int:
    """Set `caBundle` on every webhook of the ValidatingWebhookConfiguration `configuration`
    (a JSON patch that first tests each webhook's name, so a concurrent edit fails instead of
    patching the wrong entry). Returns how many webhooks now trust the CA."""
    api = k8s.AdmissionregistrationV1Api(api_client)
    current = api.read_validating_webhook_configuration(configuration, _request_timeout=(3, 5))
    bundle = base64.b64encode(ca_pem).decode()
    ops: list[dict] = []
    for i, hook in enumerate(current.webhooks or []):
        ops.append({"op": "test", "path": f"/webhooks/{i}/name", "value": hook.name})
        ops.append({"op": "add", "path": f"/webhooks/{i}/clientConfig/caBundle", "value": bundle})
    if ops:
        api.patch_validating_webhook_configuration(configuration, ops, _request_timeout=(3, 5))
    return len(current.webhooks or [])
