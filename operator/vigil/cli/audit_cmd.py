"""`vigil audit ...`: the audit chain of a ModelDeployment.

    vigil audit verify NAME [-n NS] [--public-key PEM] [--checkpoints DIR]   against the cluster
    vigil audit list NAME [-n NS]                                            the records, then verify
    vigil audit export NAME [-n NS] [--out FILE]                             JSON lines for a reviewer
    vigil audit verify --offline FILE --public-key PEM [--checkpoints DIR]   no cluster access
    vigil audit keygen --out DIR                                             a new Ed25519 signing key

Exit codes: 0 the chain verifies, 1 it does not, 2 bad input (the message says which).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from typing import TYPE_CHECKING, Any

from vigil.cli.common import api_client

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from vigil.audit.checkpoint import Checkpoint


class UsageError(ValueError):
    """Bad arguments or unreadable inputs: printed, exit code 2."""


def _public_key(args: argparse.Namespace) -> Ed25519PublicKey | None:
    from vigil.audit.signing import SigningKeyError, load_public_key

    if args.checkpoints and not args.public_key:
        raise UsageError("--checkpoints needs --public-key PEM: a checkpoint is only trusted when its signature verifies")
    if not args.public_key:
        return None
    try:
        return load_public_key(args.public_key)
    except SigningKeyError as err:
        raise UsageError(f"--public-key: {err}") from err


def _checkpoints(args: argparse.Namespace, uid: str) -> list[Checkpoint]:
    from vigil.audit.checkpoint import FileSink

    if not args.checkpoints:
        return []
    try:
        return FileSink(args.checkpoints).read(uid)
    except (OSError, ValueError) as err:
        raise UsageError(f"--checkpoints {args.checkpoints}: {err}") from err


def _online(args: argparse.Namespace) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    from vigil.kube.client import Kube

    if not args.name:
        hint = " (or --offline FILE to verify an export)" if args.action == "verify" else ""
        raise UsageError(f"`vigil audit {args.action}` needs the ModelDeployment NAME{hint}")
    kube = Kube(api_client(args.kubeconfig))
    md = kube.get_modeldeployment(args.namespace, args.name)
    if md is None:
        raise UsageError(f"ModelDeployment {args.namespace}/{args.name} not found")
    return md, kube.audit_records(args.namespace, args.name, uid=md["metadata"]["uid"])  # this object's chain only


def cmd_verify(args: argparse.Namespace) -> int:
    from vigil.audit import chain
    from vigil.audit.export import ExportError, read_export, verify_export

    if args.offline:
        if args.name:
            raise UsageError("give either NAME (verify against the cluster) or --offline FILE, not both")
        key = _public_key(args)
        if key is None:
            raise UsageError("--offline needs --public-key PEM: without the operator's public key anyone who can "
                             "edit the file can recompute its hashes")
        try:
            export = read_export(args.offline)
        except ExportError as err:
            raise UsageError(str(err)) from err
        report = verify_export(export, key, _checkpoints(args, export.header["uid"]))
    else:
        key = _public_key(args)
        md, records = _online(args)
        status = md.get("status") or {}
        report = chain.verify(records, expected_head=status.get("auditHead"), expected_seq=status.get("auditSeq"),
                              uid=md["metadata"]["uid"], model_deployment=md["metadata"]["name"], public_key=key,
                              checkpoints=_checkpoints(args, md["metadata"]["uid"]))
    print(report.summary())
    return 0 if report.ok else 1


def cmd_list(args: argparse.Namespace) -> int:
    from vigil.audit import chain

    md, records = _online(args)
    for r in sorted(records, key=lambda r: r["seq"]):
        print(f"{r['seq']:>4} {r['time']} {r['action']:<12} {r['phase']:<12} {r.get('version') or '':<10} "
              f"w={r.get('weight')} {r.get('actor')}: {r.get('message', '')[:100]}")
    status = md.get("status") or {}
    report = chain.verify(records, expected_head=status.get("auditHead"), expected_seq=status.get("auditSeq"),
                          uid=md["metadata"]["uid"], model_deployment=md["metadata"]["name"])
    print(report.summary())
    return 0 if report.ok else 1


def cmd_export(args: argparse.Namespace) -> int:
    from vigil.audit.export import build_export, write_export
    from vigil.core.timefmt import iso

    md, records = _online(args)
    export = build_export(md, records, iso(dt.datetime.now(dt.UTC)))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            write_export(export, f)
        print(f"wrote {len(export.records)} records of {args.namespace}/{args.name} to {args.out}", file=sys.stderr)
    else:
        write_export(export, sys.stdout)
    return 0


def cmd_keygen(args: argparse.Namespace) -> int:
    from vigil.audit.signing import SigningKeyError, generate

    try:
        files = generate(args.out)
    except (SigningKeyError, OSError) as err:
        raise UsageError(f"--out: {err}") from err
    print(f"wrote {files.private} (mode 0600) and {files.public}; key id {files.key_id}")
    print("store the private key where only the operator's ServiceAccount can read it:")
    print(f"  kubectl create secret generic {args.secret_name} -n {args.secret_namespace} "
          f"--from-file=private.pem={files.private}")
    print(f"then delete {files.private}, and give {files.public} to the reviewers who verify exports.")
    return 0


def _run(func: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            return int(func(args))
        except UsageError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    return run


def register(sub: Any) -> None:
    audit = sub.add_parser("audit", help="audit records of a ModelDeployment: verify, list, export, keygen")
    actions = audit.add_subparsers(dest="action", required=True)

    verify = actions.add_parser("verify", help="verify a chain, in the cluster (NAME) or offline (--offline FILE)")
    verify.add_argument("name", nargs="?")
    verify.add_argument("--offline", metavar="FILE", help="an export written by `vigil audit export`")
    verify.set_defaults(func=_run(cmd_verify))

    listing = actions.add_parser("list", help="list the records, then verify the chain")
    listing.add_argument("name")
    listing.set_defaults(func=_run(cmd_list))

    export = actions.add_parser("export", help="write the chain as JSON lines for offline verification")
    export.add_argument("name")
    export.add_argument("--out", metavar="FILE", help="default: standard output")
    export.set_defaults(func=_run(cmd_export))

    for p in (verify, listing, export):
        p.add_argument("--namespace", "-n", default="default")
    verify.add_argument("--public-key", metavar="PEM", help="every record must be signed by this Ed25519 key")
    verify.add_argument("--checkpoints", metavar="DIR", help="a checkpoint directory (FileSink) to check against")

    keygen = actions.add_parser("keygen", help="create an Ed25519 key pair for signing audit records")
    keygen.add_argument("--out", metavar="DIR", required=True)
    keygen.add_argument("--secret-name", default="vigil-audit-signing-key")  # the chart's audit.signingKeySecret
    keygen.add_argument("--secret-namespace", default="vigil-system")
    keygen.set_defaults(func=_run(cmd_keygen))
