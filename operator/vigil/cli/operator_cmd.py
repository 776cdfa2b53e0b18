"""`vigil operator`: run the kopf operator in this process."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any


def cmd_operator(args: argparse.Namespace) -> int:
    import kopf

    from vigil.handlers import operator as handlers  # registers the handlers

    if args.kubeconfig:
        os.environ["KUBECONFIG"] = args.kubeconfig
    if args.leader_elect:
        os.environ["VIGIL_LEADER_ELECTION"] = "true"
    if args.health_port is not None:
        os.environ["VIGIL_HEALTH_PORT"] = str(args.health_port)
    if args.namespace:  # the watch cache lists only where kopf watches (a namespaced install may not list more)
        os.environ["VIGIL_WATCH_NAMESPACES"] = ",".join(args.namespace)
    kopf.configure(verbose=args.verbose)
    try:
        kopf.run(standalone=True, clusterwide=not args.namespace, namespaces=args.namespace or [],
                 liveness_endpoint=args.liveness)
    finally:
        busy = handlers.shutdown()
        if busy:  # a blocking call outlived the grace period: do not wait for it
            print(f"vigil operator: stopping with {len(busy)} reconcile(s) still blocked", file=sys.stderr, flush=True)
            os._exit(0)
    return 0


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"--health-port must be a port number 1-65535, got {text!r}")
    return int(text)


def register(sub: Any) -> None:
    op = sub.add_parser("operator", help="run the operator")
    op.add_argument("--namespace", "-n", action="append", help="watch only these namespaces")
    op.add_argument("--verbose", action="store_true")
    op.add_argument("--liveness", default=None, help="kopf's own liveness endpoint, e.g. http://0.0.0.0:8081/healthz "
                    "(prefer --health-port: its /healthz follows reconcile progress)")
    op.add_argument("--leader-elect", action="store_true",
                    help="only the holder of a coordination.k8s.io Lease acts (also: VIGIL_LEADER_ELECTION=true)")
    op.add_argument("--health-port", type=_port, default=None,
                    help="serve /healthz and /readyz on this port (also: VIGIL_HEALTH_PORT)")
    op.set_defaults(func=cmd_operator)
