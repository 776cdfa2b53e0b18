"""`vigil` commands, and `kubectl vigil` (the same code as a kubectl plugin).

    vigil dev up|down|status      the local control plane (etcd, apiserver, controllers, kwok)
    vigil operator                run the operator against $KUBECONFIG
    vigil demo                    the end-to-end demo (see docs/demo.md)
    vigil audit verify NAME       check the audit chain of a ModelDeployment
    vigil pause|resume|promote|abort|approve NAME   manual controls (annotations the apiserver
                                  admits only from the authenticated user, see docs/controls.md)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any, cast

from vigil.api.names import (
    ANN_ABORT,
    ANN_PAUSED,
    ANN_PROMOTE,
    ANN_REQUESTED_BY,
    GROUP,
    PLURAL_MODELDEPLOYMENTS,
    VERSION,
    approval_key,
    approval_value,
)
from vigil.cli import audit_cmd, operator_cmd, uninstall_cmd, views
from vigil.cli.common import api_client as _api


# ------------------------------------------------------------------ dev cluster
def cmd_dev(args: argparse.Namespace) -> int:
    from vigil.dev.cluster import STATE_ROOT, ClusterInfo, LocalCluster

    cluster = LocalCluster(args.name, nodes=args.nodes, detached=True)
    if args.action == "up":
        cluster.up()
        print(f"export KUBECONFIG={cluster.kubeconfig}")
        return 0
    if args.action == "down":
        info = ClusterInfo.load(cluster.state_dir)
        cluster.down()
        print(f"cluster {args.name!r} " + ("stopped and removed" if info else "was not running"))
        return 0
    found = False
    for d in sorted(STATE_ROOT.glob("*")) if STATE_ROOT.is_dir() else []:
        info = ClusterInfo.load(d)
        if info:
            found = True
            state = "running" if info.running() else "stopped (run `vigil dev down`)"
            print(f"{info.name}: {state}  server={info.server}  KUBECONFIG={info.kubeconfig}")
    if not found:
        print("no local clusters")
    return 0


# ------------------------------------------------------------------ manual controls
def _annotate(args: argparse.Namespace, annotations: dict[str, str | None]) -> int:
    from kubernetes import client as k8s

    api = _api(args.kubeconfig)
    body = {"metadata": {"annotations": {**annotations, ANN_REQUESTED_BY: whoami(api)}}}
    k8s.CustomObjectsApi(api).patch_namespaced_custom_object(
        GROUP, VERSION, args.namespace, PLURAL_MODELDEPLOYMENTS, args.name, body)
    print(f"modeldeployment.vigil.dev/{args.name} annotated: {annotations}")
    return 0


def whoami(api: Any) -> str:
    """The user the apiserver authenticates these credentials as (a SelfSubjectReview, as
    `kubectl auth whoami`): the admission policy only admits controls that name that user."""
    from kubernetes import client as k8s

    review = k8s.AuthenticationV1Api(api).create_self_subject_review(k8s.V1SelfSubjectReview())
    return str(review.status.user_info.username)


def _modeldeployment(args: argparse.Namespace) -> dict[str, Any]:
    from kubernetes import client as k8s

    return cast(dict[str, Any], k8s.CustomObjectsApi(_api(args.kubeconfig)).get_namespaced_custom_object(
        GROUP, VERSION, args.namespace, PLURAL_MODELDEPLOYMENTS, args.name))


def cmd_control(args: argparse.Namespace) -> int:
    """Pause and resume apply to whatever rolls out; promote, abort and approve name the digest
    that is rolling out now, so they never act on a version rebuilt after the command."""
    if args.control == "pause":
        return _annotate(args, {ANN_PAUSED: "true"})
    if args.control == "resume":
        return _annotate(args, {ANN_PAUSED: None})
    status = _modeldeployment(args).get("status") or {}
    digest = status.get("canaryDigest")
    if not digest:
        print(f"error: ModelDeployment {args.namespace}/{args.name} has no rollout in progress "
              f"(phase {status.get('phase', 'unknown')})", file=sys.stderr)
        return 1
    if args.control == "promote":
        return _annotate(args, {ANN_PROMOTE: digest})
    if args.control == "abort":
        return _annotate(args, {ANN_ABORT: digest})
    user = whoami(_api(args.kubeconfig))
    return _annotate(args, {approval_key(user): approval_value(user, digest)})


def cmd_demo(args: argparse.Namespace) -> int:
    from vigil.demo.run import main as demo_main

    return demo_main(args)


# ------------------------------------------------------------------ parser
def build_parser(prog: str = "vigil") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    p.add_argument("--kubeconfig", default=None)
    sub = p.add_subparsers(dest="command", required=True)

    dev = sub.add_parser("dev", help="the local control plane")
    dev.add_argument("action", choices=["up", "down", "status"])
    dev.add_argument("--name", default="vigil")
    dev.add_argument("--nodes", type=int, default=3)
    dev.set_defaults(func=cmd_dev)

    operator_cmd.register(sub)
    audit_cmd.register(sub)
    views.register(sub)
    uninstall_cmd.register(sub)

    for control in ("pause", "resume", "promote", "abort", "approve"):
        c = sub.add_parser(control, help=f"{control} the rollout of a ModelDeployment")
        c.add_argument("name")
        c.add_argument("--namespace", "-n", default="default")
        c.set_defaults(func=cmd_control, control=control)

    demo = sub.add_parser("demo", help="run the end-to-end demo")
    demo.add_argument("--scenario", default="drift-latency")
    demo.add_argument("--fast", action="store_true")
    demo.add_argument("--out", default="out/demo")
    demo.set_defaults(func=cmd_demo)
    return p


def _run(argv: list[str] | None, prog: str) -> int:
    args = build_parser(prog).parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except KeyboardInterrupt:
        return 130
    except Exception as err:
        # the dev tooling is an extra (vigil[dev]), absent from the operator's image: its
        # StartError can only come from a command that loaded it
        process = sys.modules.get("vigil.dev.process")
        if process is not None and isinstance(err, process.StartError):
            print(f"error: {err}", file=sys.stderr)
            return 1
        raise


def main(argv: list[str] | None = None) -> int:
    return _run(argv, "vigil")


def kubectl_plugin(argv: list[str] | None = None) -> int:
    """`kubectl vigil ...`: kubectl finds `kubectl-vigil` on PATH."""
    return _run(argv, "kubectl vigil")


if __name__ == "__main__":
    sys.exit(main())
