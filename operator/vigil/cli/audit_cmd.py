"""`vigil audit verify|list NAME`: the audit chain of a ModelDeployment."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from vigil.cli.common import api_client


def cmd_audit(args: argparse.Namespace) -> int:
    from vigil.audit import chain
    from vigil.kube.client import Kube

    kube = Kube(api_client(args.kubeconfig))
    md = kube.get_modeldeployment(args.namespace, args.name)
    if md is None:
        print(f"ModelDeployment {args.namespace}/{args.name} not found", file=sys.stderr)
        return 2
    records = kube.audit_records(args.namespace, args.name, uid=md["metadata"]["uid"])  # this object's chain only
    head = (md.get("status") or {}).get("auditHead")
    report = chain.verify(records, expected_head=head)
    if args.action == "list":
        for r in sorted(records, key=lambda r: r["seq"]):
            print(f"{r['seq']:>4} {r['time']} {r['action']:<12} {r['phase']:<12} {r.get('version') or '':<10} "
                  f"w={r.get('weight')} {r.get('actor')}: {r.get('message', '')[:100]}")
    print(report.summary())
    return 0 if report.ok else 1


def register(sub: Any) -> None:
    audit = sub.add_parser("audit", help="audit records of a ModelDeployment")
    audit.add_argument("action", choices=["verify", "list"])
    audit.add_argument("name")
    audit.add_argument("--namespace", "-n", default="default")
    audit.set_defaults(func=cmd_audit)
