"""The validating admission webhook for the rules of a RiskPolicy, served by the operator.

kopf serves it (`@kopf.on.validate`) when $VIGIL_WEBHOOK_PORT is set; the rules themselves are
the pure functions of `vigil.admission.rules`. This module only reads what they need through
the API (short timeouts) and turns violations into an admission refusal. A read that fails
refuses the request: the webhook is registered with failurePolicy Fail, and a rule that could
not be checked is not passed (docs/admission.md).

Run with `kopf run -m vigil.handlers.operator -m vigil.handlers.admission`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any, cast

import kopf
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from vigil.admission import certs
from vigil.admission.rules import Review, review_modeldeployment, review_riskpolicy
from vigil.admission.webhook import WebhookSettings, publish_ca_bundle
from vigil.api.names import GROUP, PLURAL_MODELDEPLOYMENTS, PLURAL_RISKPOLICIES, VERSION
from vigil.handlers.config import reconciler

log = logging.getLogger("vigil.admission")
TIMEOUT = (2, 3)  # connect, read: the apiserver waits for us (timeoutSeconds 10 in the chart)
MD_HOOK, POLICY_HOOK = "vigil-modeldeployment", "vigil-riskpolicy"  # URL paths: /<id>


class Unreadable(RuntimeError):
    """Something a rule needs could not be read: refuse rather than admit unchecked."""


class _NoWebhook:
    """An admission "server" that serves nothing: the webhook is off ($VIGIL_WEBHOOK_PORT unset)."""

    async def __call__(self, fn: Any) -> AsyncIterator[Any]:
        await asyncio.Event().wait()
        yield  # pragma: no cover  (never reached; makes this an async generator)


@kopf.on.startup()
def _webhook_server(settings: kopf.OperatorSettings, **_: Any) -> None:
    config = WebhookSettings.from_env()
    if config is None:
        settings.admission.server = _NoWebhook()
        return
    made = certs.ensure(config.cert_dir, config.hosts)
    settings.admission.server = kopf.WebhookServer(
        addr=config.addr, port=config.port, host=config.hosts[0],
        certfile=str(made.cert), pkeyfile=str(made.key), cafile=str(made.ca_cert))
    if config.configuration:
        count = publish_ca_bundle(_api(), config.configuration, made.ca_pem())
        log.info("admission webhook on :%d; caBundle set on %d webhooks of %s", config.port, count,
                 config.configuration)


def _api() -> k8s.ApiClient:
    return reconciler().kube.api_client


def _plain(obj: Any) -> Any:
    """kopf hands out read-only views; the rules take plain JSON."""
    if isinstance(obj, Mapping):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def _get_custom(group: str, version: str, namespace: str, plural: str, name: str) -> dict | None:
    try:
        return cast(dict, k8s.CustomObjectsApi(_api()).get_namespaced_custom_object(
            group, version, namespace, plural, name, _request_timeout=TIMEOUT))
    except ApiException as err:
        if err.status == 404:
            return None
        raise Unreadable(f"{plural} {namespace}/{name}: HTTP {err.status} {err.reason}") from err
    except (HTTPError, OSError) as err:
        raise Unreadable(f"{plural} {namespace}/{name}: {err}") from err


def _namespace_labels(namespace: str) -> dict[str, str]:
    try:
        ns = k8s.CoreV1Api(_api()).read_namespace(namespace, _request_timeout=TIMEOUT)
    except (ApiException, HTTPError, OSError) as err:
        raise Unreadable(f"namespace {namespace}: {err}") from err
    return dict((ns.metadata.labels if ns.metadata else None) or {})


def _modeldeployments(namespace: str) -> list[dict]:
    try:
        found = cast(dict, k8s.CustomObjectsApi(_api()).list_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL_MODELDEPLOYMENTS, _request_timeout=TIMEOUT))
    except (ApiException, HTTPError, OSError) as err:
        raise Unreadable(f"modeldeployments in {namespace}: {err}") from err
    return list(found.get("items") or [])


def _refuse_or_warn(review: Review, warnings: list[str], what: str) -> None:
    for text in review.warnings:
        log.warning("%s admitted with a warning: %s", what, text)
        warnings.append(text)
    if not review.allowed:
        raise kopf.AdmissionError(review.message(), code=422)


def _spec_unchanged(new: Mapping[str, Any] | None, old: Mapping[str, Any] | None) -> bool:
    return old is not None and new is not None and new.get("spec") == old.get("spec")


@kopf.on.validate(GROUP, VERSION, PLURAL_MODELDEPLOYMENTS, id=MD_HOOK, operations=["CREATE", "UPDATE"],
                  persistent=True)
def validate_modeldeployment(warnings: list[str], **kwargs: Any) -> None:
    """The policy's rules for a ModelDeployment. Updates that leave the spec alone (status,
    annotations, finalizers, deletion) are not the policy's business and pass."""
    new, old, userinfo = kwargs["new"], kwargs.get("old"), kwargs.get("userinfo") or {}
    md, before = _plain(new), _plain(old) if old is not None else None
    if _spec_unchanged(md, before) or (md.get("metadata") or {}).get("deletionTimestamp"):
        return
    namespace = md["metadata"]["namespace"]
    spec = md.get("spec") or {}
    traffic = spec.get("traffic") or {}
    try:
        policy = _get_custom(GROUP, VERSION, namespace, PLURAL_RISKPOLICIES, (spec.get("policyRef") or {}).get("name", ""))
        gateway, labels = None, {}
        ref = traffic.get("gatewayRef") or {}
        if traffic.get("router", "gatewayapi") == "gatewayapi" and ref.get("name"):
            gateway = _get_custom("gateway.networking.k8s.io", "v1", ref.get("namespace") or namespace,
                                  "gateways", ref["name"])
            labels = _namespace_labels(namespace)
    except Unreadable as err:
        raise kopf.AdmissionError(f"the RiskPolicy rules could not be checked, so the change is refused: {err}",
                                  code=503) from err
    review = review_modeldeployment(md, before, policy=policy, gateway=gateway, namespace_labels=labels,
                                    now=datetime.now(UTC), user=str(userinfo.get("username", "")))
    _refuse_or_warn(review, warnings, f"ModelDeployment {namespace}/{md['metadata'].get('name')}")


@kopf.on.validate(GROUP, VERSION, PLURAL_RISKPOLICIES, id=POLICY_HOOK, operations=["UPDATE", "DELETE"],
                  persistent=True)
def validate_riskpolicy(warnings: list[str], **kwargs: Any) -> None:
    """No loosening (or deleting) of a RiskPolicy while a rollout under it runs."""
    new, old = kwargs.get("new"), kwargs["old"]
    policy, before = (_plain(new) if new is not None else None), _plain(old)
    if _spec_unchanged(policy, before) or (policy and (policy.get("metadata") or {}).get("deletionTimestamp")):
        return
    namespace = before["metadata"]["namespace"]
    try:
        mds = _modeldeployments(namespace)
    except Unreadable as err:
        raise kopf.AdmissionError(f"the RiskPolicy rules could not be checked, so the change is refused: {err}",
                                  code=503) from err
    review = review_riskpolicy(policy, before, modeldeployments=mds, now=datetime.now(UTC))
    _refuse_or_warn(review, warnings, f"RiskPolicy {namespace}/{before['metadata'].get('name')}")
