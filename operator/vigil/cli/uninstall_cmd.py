"""`vigil uninstall`: take the operator's finalizer off every ModelDeployment.

kopf puts a finalizer on each ModelDeployment (its daemon must be stopped before the object
goes). Once the operator is removed nobody takes it off, so deleting a ModelDeployment, or its
namespace, hangs in Terminating forever. This command removes that finalizer, and only that
one; the Deployments, Services and routes Vigil created are owned by their ModelDeployment and
go with it through garbage collection. The CRDs and AuditRecords are left alone.

A running operator puts the finalizer back at its next watch event, so stop it first:
`--stop-operator NAMESPACE/NAME` scales its Deployment to zero and waits until its pods are
gone. The chart's pre-delete hook runs exactly that.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from vigil.api.names import API_VERSION

# kopf's default finalizer (kopf.OperatorSettings().persistence.finalizer); the operator
# does not change it. Spelled here so that `vigil uninstall` does not import kopf.
KOPF_FINALIZER = "kopf.zalando.org/KopfFinalizerMarker"
CONFLICT_RETRIES = 5


class UninstallError(Exception):
    """Something the user must fix (permissions, a name that does not exist)."""


@dataclass(frozen=True)
class Cleared:
    namespace: str
    name: str
    changed: bool  # False: it carried no operator finalizer


def _dynamic(api_client: Any) -> Any:
    from kubernetes.dynamic import DynamicClient

    return DynamicClient(api_client)


def _explain(err: Exception, what: str) -> UninstallError:
    status = getattr(err, "status", None)
    if status == 403:
        return UninstallError(f"forbidden: {what} (needs {_needs(what)}); {getattr(err, 'reason', '')}".rstrip("; "))
    if status == 404:
        return UninstallError(f"not found: {what}")
    return UninstallError(f"{what} failed: {err}")


def _needs(what: str) -> str:
    if what.startswith("scaling"):
        return "get and patch on deployments.apps, list on pods, in the operator's namespace"
    return "list and patch on modeldeployments.vigil.dev"


def stop_operator(api_client: Any, namespace: str, name: str, timeout: float = 120.0) -> None:
    """Scale the operator's Deployment to zero and wait until none of its pods is left, so no
    replica can put a finalizer back."""
    from kubernetes.client import exceptions as k8s_errors

    dyn = _dynamic(api_client)
    deployments = dyn.resources.get(api_version="apps/v1", kind="Deployment")
    pods = dyn.resources.get(api_version="v1", kind="Pod")
    what = f"scaling deployment {namespace}/{name} to 0"
    try:
        dep = deployments.get(name=name, namespace=namespace).to_dict()
        deployments.patch(name=name, namespace=namespace, body={"spec": {"replicas": 0}},
                          content_type="application/merge-patch+json")
        labels = (dep["spec"].get("selector") or {}).get("matchLabels") or {}
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        deadline = time.monotonic() + timeout
        while True:
            left = pods.get(namespace=namespace, label_selector=selector).to_dict().get("items") or []
            if not left:
                return
            if time.monotonic() > deadline:
                names = ", ".join(p["metadata"]["name"] for p in left)
                raise UninstallError(f"{what}: pods still running after {timeout:.0f}s: {names}")
            time.sleep(1.0)
    except k8s_errors.ApiException as err:
        raise _explain(err, what) from err


def _modeldeployments(api_client: Any, namespaces: Sequence[str]) -> Iterator[dict[str, Any]]:
    from kubernetes.client import exceptions as k8s_errors

    res = _dynamic(api_client).resources.get(api_version=API_VERSION, kind="ModelDeployment")
    where_all: list[str | None] = list(namespaces) or [None]  # None: every namespace
    for ns in where_all:
        where = f"namespace {ns}" if ns else "all namespaces"
        try:
            items = res.get(namespace=ns).to_dict().get("items") or []
        except k8s_errors.ApiException as err:
            raise _explain(err, f"listing modeldeployments in {where}") from err
        yield from items


def remove_finalizers(api_client: Any, namespaces: Sequence[str] = (), dry_run: bool = False) -> list[Cleared]:
    """Remove kopf's finalizer from every ModelDeployment in `namespaces` (all when empty).

    Each patch carries the resourceVersion it read, so a concurrent writer causes a re-read,
    never a lost finalizer of someone else."""
    from kubernetes.client import exceptions as k8s_errors

    res = _dynamic(api_client).resources.get(api_version=API_VERSION, kind="ModelDeployment")
    done: list[Cleared] = []
    for md in _modeldeployments(api_client, namespaces):
        ns, name = md["metadata"]["namespace"], md["metadata"]["name"]
        for _attempt in range(CONFLICT_RETRIES):
            finalizers = md["metadata"].get("finalizers") or []
            if KOPF_FINALIZER not in finalizers:
                done.append(Cleared(ns, name, changed=False))
                break
            if dry_run:
                done.append(Cleared(ns, name, changed=True))
                break
            body = {"metadata": {"resourceVersion": md["metadata"]["resourceVersion"],
                                 "finalizers": [f for f in finalizers if f != KOPF_FINALIZER]}}
            try:
                res.patch(name=name, namespace=ns, body=body, content_type="application/merge-patch+json")
                done.append(Cleared(ns, name, changed=True))
                break
            except k8s_errors.ApiException as err:
                if err.status == 404:  # it went away meanwhile: nothing left to free
                    break
                if err.status != 409:
                    raise _explain(err, f"patching modeldeployment {ns}/{name}") from err
                md = res.get(name=name, namespace=ns).to_dict()
        else:
            raise UninstallError(f"modeldeployment {ns}/{name} kept changing; run `vigil uninstall` again")
    return done


def _namespaced_name(value: str) -> tuple[str, str]:
    ns, sep, name = value.partition("/")
    if not sep or not ns or not name or "/" in name:
        raise argparse.ArgumentTypeError(f"--stop-operator must be NAMESPACE/NAME, got {value!r}")
    return ns, name


def remove_webhook(api_client: Any, name: str) -> bool:
    """Delete the operator's ValidatingWebhookConfiguration first: its failurePolicy is Fail, so
    with the operator stopped every ModelDeployment update (removing a finalizer included) would
    be refused. Returns False when it was already gone."""
    from kubernetes import client as k8s
    from kubernetes.client.exceptions import ApiException

    try:
        k8s.AdmissionregistrationV1Api(api_client).delete_validating_webhook_configuration(name)
    except ApiException as err:
        if err.status == 404:
            return False
        raise _explain(err, f"delete validatingwebhookconfiguration {name}") from err
    return True


def cmd_uninstall(args: argparse.Namespace) -> int:
    from vigil.cli.common import api_client

    api = api_client(args.kubeconfig)
    try:
        if args.stop_operator:
            ns, name = args.stop_operator
            stop_operator(api, ns, name, timeout=args.timeout)
            print(f"deployment.apps/{name} in {ns} scaled to 0, no operator pod left")
        if args.remove_webhook and not args.dry_run:
            gone = remove_webhook(api, args.remove_webhook)
            print(f"validatingwebhookconfiguration/{args.remove_webhook} {'deleted' if gone else 'was already gone'}")
        cleared = remove_finalizers(api, args.namespace or [], dry_run=args.dry_run)
    except UninstallError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    verb = "would remove" if args.dry_run else "removed"
    for c in cleared:
        if c.changed:
            print(f"modeldeployment.vigil.dev/{c.name} in {c.namespace}: {verb} finalizer {KOPF_FINALIZER}")
    changed = sum(c.changed for c in cleared)
    print(f"{changed} of {len(cleared)} ModelDeployment(s) {'to free' if args.dry_run else 'freed'}; "
          "CRDs, ModelDeployments and AuditRecords are kept")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("uninstall", help="remove the operator's finalizers so ModelDeployments and namespaces can go",
                       description=__doc__.split("\n\n")[1])
    p.add_argument("--namespace", "-n", action="append",
                   help="only ModelDeployments in this namespace (repeatable; default: all namespaces)")
    p.add_argument("--stop-operator", type=_namespaced_name, metavar="NAMESPACE/NAME",
                   help="first scale this operator Deployment to zero and wait for its pods to go")
    p.add_argument("--remove-webhook", metavar="NAME", default=None,
                   help="first delete this ValidatingWebhookConfiguration (the chart's: vigil-policy-rules)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the operator's pods (default 120)")
    p.add_argument("--dry-run", action="store_true", help="only list what would be changed")
    p.set_defaults(func=cmd_uninstall)
