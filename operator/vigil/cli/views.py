"""`kubectl vigil status|explain|history`: read-only views that answer "why is it holding?" and
"what did it decide, and on what evidence?".

They follow kubectl's conventions: `-n/--namespace` (default: the context's namespace), `-A`
(status), `-o json|yaml|wide`, `--context`. An unknown name or a missing permission is one line
on stderr and exit code 1; a broken audit chain in `history` is exit code 3. The formatting
functions are pure (status and record dicts in, text out), so they are tested without a cluster.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from vigil.api.names import (
    GROUP,
    LABEL_MD,
    LABEL_UID,
    PLURAL_AUDITRECORDS,
    PLURAL_MODELDEPLOYMENTS,
    VERSION,
)

EXIT_ERROR, EXIT_BROKEN_CHAIN = 1, 3
ENDS_ROLLOUT = {"rollback": "rolled_back", "promoted": "promoted", "complete": "promoted", "cancel": "cancelled"}

# The decision reasons (condition and Event reasons), in words.
REASONS: dict[str, str] = {
    "Deployed": "the version is deployed and serves all traffic",
    "Serving": "the desired version serves all traffic",
    "RolloutStarted": "a new version started its rollout",
    "NewVersionMidRollout": "a newer version replaced the one rolling out; the analysis restarts",
    "WaitingForPods": "the new version's pods are not ready yet, so no traffic moves",
    "WaitingForSamples": "not enough requests yet for the gates to judge",
    "Baking": "every gate is fine so far; the step waits out its bake time",
    "Inconclusive": "the evidence does not yet show the new version is within tolerance, nor that it regressed",
    "Suspected": "the evidence leans toward a regression: the canary takes no more traffic until it is clear",
    "NoData": "the metrics needed by a gate are missing",
    "AwaitingApproval": "the analysis passed; promotion waits for the approvals the policy requires",
    "FreezeWindow": "a freeze window of the policy forbids moving traffic now",
    "StepPassed": "a step passed every gate and its bake time; the canary got more traffic",
    "ShadowPassed": "shadow traffic passed; the canary now takes real traffic",
    "Promoting": "every gate passed; the new version is being promoted",
    "Holdback": "promoted, with a holdback share kept on the previous version for a last comparison",
    "Promoted": "the new version is promoted and serves all traffic",
    "AnalysisFailed": "a gate failed: the new version was rolled back",
    "RolledBack": "the failed version gets no traffic; the previous version serves everything",
    "Aborted": "an authorised user aborted the rollout",
    "Paused": "an authorised user paused the rollout",
    "Resumed": "an authorised user resumed the rollout",
    "RolloutCancelled": "the spec went back to the stable version; the rollout was withdrawn",
    "BudgetExceeded": "the rollout used up its time budget (policy budget.maxDuration) without a decision",
    "PromoteRefused": "a manual promote was refused (freeze window or missing right)",
    "SampleRatioMismatch": "the canary's share of requests differs from what the router should send",
    "AuditWriteFailed": "the audit record could not be written, so nothing moved",
    "AuditConflict": "another record already sits where this decision's record belongs; nothing moved",
    "RouteConflict": "the route was changed by someone else or is not owned by this ModelDeployment",
    "PolicyNotFound": "the RiskPolicy named by spec.policyRef does not exist",
    "InvalidPolicy": "the RiskPolicy is invalid",
    "InvalidSpec": "the ModelDeployment's spec is invalid",
    "Unblocked": "the blocking problem is gone; the rollout continues",
}


class ViewError(Exception):
    """A one-line error for the user (unknown name, forbidden, unreachable apiserver)."""


# ================================================================ pure formatting
def _get(d: Mapping[str, Any] | None, *path: str) -> Any:
    for key in path:
        if not isinstance(d, Mapping):
            return None
        d = d.get(key)
    return d


def reason_of(status: Mapping[str, Any]) -> str:
    """The reason of the last decision: the Progressing condition's (Stalled's when stalled)."""
    conds = {c.get("type"): c for c in status.get("conditions") or [] if isinstance(c, Mapping)}
    stalled = conds.get("Stalled") or {}
    if stalled.get("status") == "True":
        return str(stalled.get("reason") or "")
    return str((conds.get("Progressing") or conds.get("Ready") or {}).get("reason") or "")


def in_words(reason: str) -> str:
    return REASONS.get(reason, reason or "no decision yet")


@dataclass(frozen=True)
class RolloutCounts:
    """Rollouts that ended, from an audit chain: the rollback rate's numerator and denominator."""

    rollbacks: int = 0
    finished: int = 0

    def text(self) -> str:
        if self.finished == 0:
            return "0/0"
        return f"{self.rollbacks}/{self.finished} ({self.rollbacks / self.finished:.0%})"


def rollout_counts(records: Iterable[Mapping[str, Any]]) -> RolloutCounts:
    """Walk a chain in order; outcome records (stage=outcome) repeat their intent and are skipped,
    and so is a record an outcome closed as abandoned (it never took effect). A start while a
    rollout runs ends that rollout as superseded (as vigil_rollouts_completed_total)."""
    rollbacks = finished = 0
    running = False
    ordered = sorted(records, key=lambda r: int(r.get("seq", 0)))
    abandoned = {r.get("of") for r in ordered if r.get("stage") == "outcome" and r.get("result") == "abandoned"}
    for rec in ordered:
        if rec.get("stage") == "outcome" or rec.get("seq") in abandoned:
            continue
        action = rec.get("action")
        if action == "start":
            finished += running
            running = True
        elif action in ENDS_ROLLOUT:
            finished += 1
            rollbacks += action == "rollback"
            running = False
    return RolloutCounts(rollbacks, finished)


def _step(status: Mapping[str, Any]) -> str:
    phase, index = status.get("phase"), _get(status, "step", "index")
    if phase in ("Shadow", "Holdback"):
        return phase.lower()
    return "-" if index is None or index < 0 or not status.get("canaryVersion") else str(index + 1)


def _weight(status: Mapping[str, Any]) -> str:
    weight = _get(status, "step", "weight")
    if not status.get("canaryVersion") or weight is None or status.get("phase") == "Succeeded":
        return "-"
    return f"{weight}%"


def _eta(status: Mapping[str, Any]) -> str:
    plan = status.get("plan") or {}
    if plan.get("summary"):
        return str(plan["summary"])
    eta = plan.get("etaSeconds")
    return f"~{duration_text(eta)} to promote" if isinstance(eta, (int, float)) else "-"


def duration_text(seconds: float) -> str:
    s = int(max(seconds, 0))
    if s < 90:
        return f"{s}s"
    if s < 5400:
        return f"{round(s / 60)}m"
    if s < 172800:
        return f"{s / 3600:.1f}h"
    return f"{s / 86400:.1f}d"


def status_rows(mds: Sequence[Mapping[str, Any]], counts: Mapping[tuple[str, str], RolloutCounts] | None,
                *, all_namespaces: bool = False, wide: bool = False) -> list[list[str]]:
    """The table of `kubectl vigil status`, header first. `counts` None: the audit records
    could not be read (the column shows ?)."""
    header = (["NAMESPACE"] if all_namespaces else []) + ["NAME", "PHASE", "STEP", "WEIGHT", "VERDICT", "ETA",
                                                           "ROLLBACKS"]
    if wide:
        header += ["STABLE", "CANARY", "REASON", "MESSAGE"]
    rows = [header]
    for md in sorted(mds, key=lambda m: (m["metadata"].get("namespace", ""), m["metadata"]["name"])):
        meta, s = md["metadata"], md.get("status") or {}
        key = (meta.get("namespace", ""), meta["name"])
        row = ([key[0]] if all_namespaces else []) + [
            meta["name"], s.get("phase") or "Pending", _step(s), _weight(s), s.get("verdict") or "-", _eta(s),
            "?" if counts is None else counts.get(key, RolloutCounts()).text(),
        ]
        if wide:
            row += [s.get("stableVersion") or "-", s.get("canaryVersion") or "-", reason_of(s) or "-",
                    (s.get("message") or "")[:80]]
        rows.append(row)
    return rows


def table(rows: Sequence[Sequence[str]]) -> str:
    """kubectl's plain table: columns padded to the widest cell, three spaces apart."""
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("   ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def _num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _bound(interval: Any) -> str:
    if isinstance(interval, list) and len(interval) == 2:
        return f"[{_num(interval[0])}, {_num(interval[1])}]"
    return "-"


def _limit(v: Mapping[str, Any]) -> str:
    if v.get("tolerance") is not None:
        return f"tol {_num(v['tolerance'])}"
    if v.get("regression") is not None:
        return f"reg {_num(v['regression'])}"
    return "-"


def explanation(md: Mapping[str, Any]) -> dict[str, Any]:
    """What `explain` shows, as data (`-o json|yaml` prints it as is)."""
    s = md.get("status") or {}
    analysis = s.get("lastAnalysis") or {}
    reason = reason_of(s)
    gates = []
    for v in list(analysis.get("verdicts") or []) + list(analysis.get("notApplicable") or []):
        if not isinstance(v, Mapping):
            continue
        gates.append({
            "gate": v.get("metric"), "outcome": v.get("outcome"), "statistic": v.get("statistic"),
            "value": v.get("effect"), "bound": v.get("interval"), "tolerance": v.get("tolerance"),
            "regression": v.get("regression"),
            "samples": v.get("samples"), "eFail": v.get("eFail"), "thresholdFail": v.get("thresholdFail"),
            "ePass": v.get("ePass"), "thresholdPass": v.get("thresholdPass"),
            "explanation": v.get("explanation"),
        })
    return {
        "name": md["metadata"]["name"], "namespace": md["metadata"].get("namespace"),
        "phase": s.get("phase") or "Pending", "stableVersion": s.get("stableVersion"),
        "canaryVersion": s.get("canaryVersion"), "rolloutId": s.get("rolloutId"),
        "weight": _get(s, "step", "weight"), "verdict": s.get("verdict"),
        "reason": reason, "reasonInWords": in_words(reason), "message": s.get("message") or "",
        "analysedAt": s.get("lastAnalysisAt"), "stage": analysis.get("stage"),
        "summary": analysis.get("summary"), "plan": s.get("plan"),
        "sampleRatio": analysis.get("sampleRatio"), "alphaFail": analysis.get("alphaFail"),
        "alphaPass": analysis.get("alphaPass"), "gates": gates,
    }


def explain_text(md: Mapping[str, Any]) -> str:
    e = explanation(md)
    lines = [
        f"ModelDeployment {e['namespace']}/{e['name']}: {e['phase']}"
        + (f", {e['canaryVersion']} at {e['weight']}% beside {e['stableVersion']}" if e["canaryVersion"]
           else f", {e['stableVersion'] or 'nothing'} serving"),
        f"Decision: {e['reason'] or '-'}: {e['reasonInWords']}.",
    ]
    if e["message"]:
        lines.append(f"Message:  {e['message']}")
    plan = e["plan"] or {}
    if plan.get("summary"):
        lines.append(f"Estimate: {plan['summary']}")
    if not e["gates"]:
        lines.append("No analysis yet in this rollout." if e["canaryVersion"] else "No rollout in progress.")
        return "\n".join(lines)
    lines.append(f"Last analysis ({e['stage'] or '?'} stage, {e['analysedAt'] or '?'}): {e['summary'] or e['verdict']}")
    rows = [["GATE", "OUTCOME", "VALUE", "BOUND", "LIMIT", "SAMPLES (base/canary)", "E-FAIL / THRESHOLD",
             "E-PASS / THRESHOLD"]]
    for g in e["gates"]:
        samples = g["samples"] or {}
        rows.append([
            str(g["gate"]), str(g["outcome"]), _num(g["value"]), _bound(g["bound"]), _limit(g),
            f"{samples.get('baseline', '-')}/{samples.get('canary', '-')}" if samples else "-",
            f"{_num(g['eFail'], 3)} / {_num(g['thresholdFail'], 3)}",
            f"{_num(g['ePass'], 3)} / {_num(g['thresholdPass'], 3)}",
        ])
    lines += ["", table(rows), ""]
    for g in e["gates"]:
        if g["explanation"]:
            lines.append(f"  {g['gate']}: {g['explanation']}")
    srm = e["sampleRatio"] or {}
    if srm:
        lines.append(f"  traffic split: canary got {_num(srm.get('observedShare'))} of requests, expected "
                     f"{_num(srm.get('expectedShare'))}" + (" (MISMATCH)" if srm.get("mismatch") else ""))
    return "\n".join(lines).rstrip()


def history_data(md: Mapping[str, Any], records: Sequence[Mapping[str, Any]], report: Any) -> dict[str, Any]:
    ordered = sorted(records, key=lambda r: int(r.get("seq", 0)))
    counts = rollout_counts(ordered)
    return {
        "name": md["metadata"]["name"], "namespace": md["metadata"].get("namespace"),
        "uid": md["metadata"].get("uid"),
        "verification": {"ok": bool(report.ok), "records": int(report.records), "head": report.head,
                         "problems": list(report.problems), "summary": report.summary()},
        "rollbacks": counts.rollbacks, "rolloutsFinished": counts.finished, "records": list(ordered),
    }


def history_text(md: Mapping[str, Any], records: Sequence[Mapping[str, Any]], report: Any) -> str:
    h = history_data(md, records, report)
    lines = [f"Audit trail of ModelDeployment {h['namespace']}/{h['name']} (uid {h['uid']})"]
    rows = [["SEQ", "TIME", "ACTION", "PHASE", "VERSION", "WEIGHT", "ACTOR", "REASON / MESSAGE"]]
    for r in h["records"]:
        action = str(r.get("action") or "")
        stage = r.get("stage")
        if stage in ("intent", "outcome"):
            action += f" ({stage}{', ' + str(r['result']) if r.get('result') else ''})"
        weight = r.get("weight")
        rows.append([str(r.get("seq")), str(r.get("time") or ""), action, str(r.get("phase") or ""),
                     str(r.get("version") or "-"), "-" if weight is None else f"{weight}%", str(r.get("actor") or "-"),
                     f"{r.get('reason') or ''}: {(r.get('message') or '')[:90]}"])
    lines.append(table(rows) if len(rows) > 1 else "(no audit records)")
    lines.append(f"Rollouts finished: {h['rolloutsFinished']}, rolled back: {h['rollbacks']}")
    lines.append(("Chain verified: " if h["verification"]["ok"] else "Chain NOT verified: ")
                 + h["verification"]["summary"])
    return "\n".join(lines)


def dump(data: Any, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(data, indent=2, sort_keys=False, default=str)
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False).rstrip()


# ================================================================ reading the cluster
def _client(args: argparse.Namespace) -> Any:
    from kubernetes import config as k8s_config

    try:
        return k8s_config.new_client_from_config(config_file=args.kubeconfig or os.environ.get("KUBECONFIG"),
                                                 context=args.context)
    except (k8s_config.ConfigException, OSError) as err:
        raise ViewError(f"error: cannot load the kubeconfig{f' context {args.context!r}' if args.context else ''}: "
                        f"{err}") from None


def _namespace(args: argparse.Namespace) -> str:
    """-n, else the context's namespace, else default (as kubectl)."""
    if args.namespace:
        return str(args.namespace)
    from kubernetes import config as k8s_config

    try:
        contexts, current = k8s_config.list_kube_config_contexts(
            config_file=args.kubeconfig or os.environ.get("KUBECONFIG"))
    except (k8s_config.ConfigException, OSError):
        return "default"
    chosen = next((c for c in contexts if c["name"] == args.context), None) if args.context else current
    return str(((chosen or {}).get("context") or {}).get("namespace") or "default")


def api_error(err: Any, what: str, namespace: str | None) -> ViewError:
    """One line, as kubectl words it, for an ApiException."""
    where = f' in namespace "{namespace}"' if namespace else ""
    try:
        message = json.loads(err.body).get("message") or err.reason
    except (TypeError, ValueError, AttributeError):
        message = err.reason
    if err.status == 404:
        return ViewError(f'Error from server (NotFound): {what} not found{where}')
    if err.status in (401, 403):
        return ViewError(f"Error from server (Forbidden): {message}")
    return ViewError(f"Error from server ({err.status} {err.reason}): {message}")


class Reader:
    """The few reads the views need, with errors turned into ViewError."""

    def __init__(self, api_client: Any) -> None:
        from kubernetes import client as k8s

        self.custom = k8s.CustomObjectsApi(api_client)

    def _call(self, what: str, namespace: str | None, fn: Any, *args: Any, **kwargs: Any) -> Any:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            return fn(*args, **kwargs)
        except ApiException as err:
            raise api_error(err, what, namespace) from None
        except HTTPError as err:
            raise ViewError(f"error: the apiserver could not be reached: {err}") from None

    def modeldeployment(self, namespace: str, name: str) -> dict[str, Any]:
        return dict(self._call(f'modeldeployments.{GROUP} "{name}"', namespace,
                               self.custom.get_namespaced_custom_object, GROUP, VERSION, namespace,
                               PLURAL_MODELDEPLOYMENTS, name))

    def modeldeployments(self, namespace: str | None) -> list[dict[str, Any]]:
        if namespace is None:
            out = self._call(f"modeldeployments.{GROUP}", None, self.custom.list_cluster_custom_object,
                             GROUP, VERSION, PLURAL_MODELDEPLOYMENTS)
        else:
            out = self._call(f"modeldeployments.{GROUP}", namespace, self.custom.list_namespaced_custom_object,
                             GROUP, VERSION, namespace, PLURAL_MODELDEPLOYMENTS)
        return list(out.get("items") or [])

    def audit_records(self, namespace: str | None, selector: str | None = None) -> list[dict[str, Any]]:
        """Whole objects (metadata and spec), of one namespace or of all (namespace None)."""
        if namespace is None:
            out = self._call(f"auditrecords.{GROUP}", None, self.custom.list_cluster_custom_object,
                             GROUP, VERSION, PLURAL_AUDITRECORDS, label_selector=selector)
        else:
            out = self._call(f"auditrecords.{GROUP}", namespace, self.custom.list_namespaced_custom_object,
                             GROUP, VERSION, namespace, PLURAL_AUDITRECORDS, label_selector=selector)
        return list(out.get("items") or [])


def chain_counts(mds: Sequence[Mapping[str, Any]], records: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], RolloutCounts]:
    """Rollback counts per ModelDeployment, from the records of its current UID only."""
    by_uid: dict[str, list[Mapping[str, Any]]] = {}
    for rec in records:
        uid = _get(rec, "metadata", "labels", LABEL_UID)
        if uid:
            by_uid.setdefault(uid, []).append(rec.get("spec") or {})
    return {(md["metadata"].get("namespace", ""), md["metadata"]["name"]):
            rollout_counts(by_uid.get(md["metadata"].get("uid", ""), [])) for md in mds}


# ================================================================ commands
def cmd_status(args: argparse.Namespace) -> int:
    reader = Reader(_client(args))
    namespace = None if args.all_namespaces else _namespace(args)
    mds = reader.modeldeployments(namespace)
    if args.output in ("json", "yaml"):
        print(dump({"apiVersion": "v1", "kind": "List", "items": mds}, args.output))
        return 0
    if not mds:
        print("No ModelDeployments found" + (f" in {namespace} namespace." if namespace else "."), file=sys.stderr)
        return 0
    try:
        counts: dict[tuple[str, str], RolloutCounts] | None = chain_counts(mds, reader.audit_records(namespace))
    except ViewError as err:
        print(f"warning: rollback counts unavailable: {err}", file=sys.stderr)
        counts = None
    print(table(status_rows(mds, counts, all_namespaces=namespace is None, wide=args.output == "wide")))
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    reader = Reader(_client(args))
    md = reader.modeldeployment(_namespace(args), args.name)
    print(dump(explanation(md), args.output) if args.output in ("json", "yaml") else explain_text(md))
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    from vigil.audit import chain

    namespace = _namespace(args)
    reader = Reader(_client(args))
    md = reader.modeldeployment(namespace, args.name)
    uid = md["metadata"]["uid"]
    records = [r.get("spec") or {} for r in
               reader.audit_records(namespace, f"{LABEL_MD}={args.name},{LABEL_UID}={uid}")]
    report = chain.verify(records, expected_head=(md.get("status") or {}).get("auditHead"))
    if args.output in ("json", "yaml"):
        print(dump(history_data(md, records, report), args.output))
    else:
        print(history_text(md, records, report))
    return 0 if report.ok else EXIT_BROKEN_CHAIN


def _guarded(func: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            return int(func(args))
        except ViewError as err:
            print(str(err), file=sys.stderr)
            return EXIT_ERROR

    run.__doc__ = func.__doc__
    return run


def _common(p: argparse.ArgumentParser, outputs: Sequence[str]) -> None:
    p.add_argument("-n", "--namespace", default=None, help="namespace (default: the context's namespace)")
    p.add_argument("-o", "--output", choices=list(outputs), default=None, help="output format")
    p.add_argument("--context", default=None, help="the kubeconfig context to use")
    p.add_argument("--kubeconfig", default=argparse.SUPPRESS, help="path to the kubeconfig file")


def register(sub: Any) -> None:
    status = sub.add_parser("status", help="table of ModelDeployments: phase, step, weight, verdict, estimate, rollbacks")
    _common(status, ("json", "yaml", "wide"))
    status.add_argument("-A", "--all-namespaces", action="store_true", help="every namespace")
    status.set_defaults(func=_guarded(cmd_status))

    explain = sub.add_parser("explain", help="every gate of the last analysis and the decision's reason, in words")
    explain.add_argument("name")
    _common(explain, ("json", "yaml"))
    explain.set_defaults(func=_guarded(cmd_explain))

    history = sub.add_parser("history", help="the audit records of a ModelDeployment as a verified timeline")
    history.add_argument("name")
    _common(history, ("json", "yaml"))
    history.set_defaults(func=_guarded(cmd_history))
