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


def register(sub: Any) -> None:
    op = sub.add_parser("operator", help="run the operator")
    op.add_argument("--namespace", "-n", action="append", help="watch only these namespaces")
    op.add_argument("--verbose", action="store_true")
    op.add_argument("--liveness", default=None, help="e.g. http://0.0.0.0:8080/healthz")
    op.set_defaults(func=cmd_operator)
