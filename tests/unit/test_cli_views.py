"""`kubectl vigil status|explain|history` formatting, from recorded status and audit records."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from vigil.api.gates import MetricKind
from vigil.audit import chain
from vigil.cli import views
from vigil.cli.main import build_parser
from vigil.stats.result import Analysis, Outcome, SampleRatioCheck, Verdict

ANALYSIS = Analysis(Outcome.INCONCLUSIVE, [
    Verdict(MetricKind.ERROR_RATE, Outcome.INCONCLUSIVE, "error ratio 1.02 [0.91, 1.19], tolerance 1.1",
            statistic="rate ratio", effect=1.02, interval=(0.91, 1.19), tolerance=0.1, e_fail=3.2,
            e_pass=6.5, threshold_fail=80.0, threshold_pass=20.0, samples=(9000, 1000)),
    Verdict(MetricKind.LATENCY_P99, Outcome.PASS, "p99 within tolerance", effect=0.98, interval=(0.9, 1.05),
            tolerance=0.1, e_fail=0.4, e_pass=25.0, threshold_fail=80.0, threshold_pass=20.0, samples=(9000, 1000)),
], sample_ratio=SampleRatioCheck(0.1, 0.1, 0.5, 40.0, (9000, 1000))).to_dict()
ANALYSIS["stage"] = "canary"
ANALYSIS["notApplicable"] = [{"metric": "shadowDisagreement", "outcome": "NotApplicable",
                              "explanation": "judged in shadow: Pass"}]

CANARY = {
    "metadata": {"name": "fraud", "namespace": "risk", "uid": "u-1"},
    "status": {
        "phase": "Canary", "stableVersion": "v1", "canaryVersion": "v2", "rolloutId": "4-aaaa",
        "step": {"index": 1, "weight": 50, "startedAt": "2026-01-01T00:10:00Z"}, "verdict": "Inconclusive",
        "plan": {"summary": "~25m to promote", "etaSeconds": 1500, "budgetSeconds": 7000},
        "lastAnalysis": ANALYSIS, "lastAnalysisAt": "2026-01-01T00:12:00Z",
        "message": "holding at 50%: errorRate Inconclusive",
        "conditions": [{"type": "Progressing", "status": "True", "reason": "Inconclusive", "message": "",
                        "lastTransitionTime": "2026-01-01T00:12:00Z"},
                       {"type": "Stalled", "status": "False", "reason": "Healthy", "message": "",
                        "lastTransitionTime": "2026-01-01T00:00:00Z"}],
    },
}
DONE = {"metadata": {"name": "churn", "namespace": "risk", "uid": "u-2"},
        "status": {"phase": "Succeeded", "stableVersion": "v7", "step": {"index": 3, "weight": 100}}}


def chain_of(*actions: str, **extra: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for seq, action in enumerate(actions, start=1):
        out.append(chain.next_record(out[-1]["hash"] if out else None, seq, action=action, phase="Canary",
                                     version="v2", weight=20, actor="vigil", reason="R", message=f"m{seq}",
                                     time=f"2026-01-01T00:{seq:02d}:00Z", **extra))
    return out


def test_status_table_shows_phase_step_weight_verdict_estimate_and_rollbacks() -> None:
    counts = {("risk", "fraud"): views.rollout_counts(chain_of("deployed", "start", "promoted", "start", "rollback"))}
    rows = views.status_rows([DONE, CANARY], counts)
    assert rows[0] == ["NAME", "PHASE", "STEP", "WEIGHT", "VERDICT", "ETA", "ROLLBACKS"]
    assert rows[1] == ["churn", "Succeeded", "-", "-", "-", "-", "0/0"]
    assert rows[2] == ["fraud", "Canary", "2", "50%", "Inconclusive", "~25m to promote", "1/2 (50%)"]
    wide = views.status_rows([CANARY], None, all_namespaces=True, wide=True)
    assert wide[0][0] == "NAMESPACE" and wide[1][:2] == ["risk", "fraud"]
    assert wide[1][7] == "?" and wide[1][10] == "Inconclusive"  # unreadable records; the reason column
    text = views.table(rows)
    assert text.splitlines()[2].split()[:4] == ["fraud", "Canary", "2", "50%"]


def test_rollback_rate_counts_finished_rollouts_and_skips_outcome_records() -> None:
    records = chain_of("deployed", "start", "start", "rollback", "start", "promote", "promoted", "start", "cancel")
    assert views.rollout_counts(records) == views.RolloutCounts(rollbacks=1, finished=4)  # superseded, rb, promoted, cancel
    intent_outcome = chain_of("start") + [
        {"seq": 2, "action": "rollback", "stage": "intent"}, {"seq": 3, "action": "rollback", "stage": "outcome"}]
    assert views.rollout_counts(intent_outcome) == views.RolloutCounts(1, 1)
    abandoned = chain_of("start") + [
        {"seq": 2, "action": "rollback", "stage": "decision"},
        {"seq": 3, "action": "rollback", "stage": "outcome", "of": 2, "result": "abandoned"},
        {"seq": 4, "action": "start", "stage": "intent"}, {"seq": 5, "action": "start", "stage": "outcome", "of": 4,
                                                          "result": "abandoned"},
        {"seq": 6, "action": "pause", "stage": "decision"}]
    assert views.rollout_counts(abandoned) == views.RolloutCounts(0, 0)  # never took effect: the rollout still runs
    assert views.RolloutCounts(1, 3).text() == "1/3 (33%)"


def test_explain_lists_every_gate_with_value_bound_samples_e_values_and_the_reason_in_words() -> None:
    text = views.explain_text(CANARY)
    assert "Decision: Inconclusive: the evidence does not yet show the new version is within tolerance" in text
    row = next(line for line in text.splitlines() if line.startswith("errorRate"))
    for part in ("Inconclusive", "1.02", "[0.91, 1.19]", "tol 0.1", "9000/1000", "3.2 / 80", "6.5 / 20"):
        assert part in row, (part, row)
    assert any(line.startswith("shadowDisagreement") and "NotApplicable" in line for line in text.splitlines())
    assert "~25m to promote" in text and "expected 0.1" in text
    data = views.explanation(CANARY)
    assert [g["gate"] for g in data["gates"]] == ["errorRate", "latencyP99", "shadowDisagreement"]
    assert data["gates"][0]["thresholdFail"] == 80 and data["reason"] == "Inconclusive"
    assert json.loads(views.dump(data, "json")) == yaml.safe_load(views.dump(data, "yaml"))


def test_explain_without_analysis_and_the_stalled_reason_wins() -> None:
    stalled = {"metadata": {"name": "fraud", "namespace": "risk"}, "status": {
        "phase": "Failed", "stableVersion": "v1", "message": "the audit record could not be written (403)",
        "conditions": [{"type": "Progressing", "status": "False", "reason": "AuditWriteFailed"},
                       {"type": "Stalled", "status": "True", "reason": "AuditWriteFailed"}]}}
    text = views.explain_text(stalled)
    assert "Decision: AuditWriteFailed: the audit record could not be written, so nothing moved." in text
    assert "No rollout in progress." in text
    assert views.in_words("SomethingNew") == "SomethingNew"


def test_history_is_a_timeline_with_the_chain_verdict() -> None:
    records = chain_of("deployed", "start", "rollback")
    report = chain.verify(records, expected_head=records[-1]["hash"])
    text = views.history_text(CANARY, records, report)
    lines = text.splitlines()
    assert lines[1].split()[:3] == ["SEQ", "TIME", "ACTION"]
    assert [line.split()[2] for line in lines[2:5]] == ["deployed", "start", "rollback"]
    assert "rolled back: 1" in text and text.endswith(report.summary()) and "Chain verified" in text
    tampered = [dict(r) for r in records]
    tampered[1]["message"] = "edited"
    broken = chain.verify(tampered, expected_head=records[-1]["hash"])
    assert "Chain NOT verified" in views.history_text(CANARY, tampered, broken)
    data = views.history_data(CANARY, records, report)
    assert data["verification"]["ok"] is True and [r["seq"] for r in data["records"]] == [1, 2, 3]


def test_api_errors_are_one_line_and_name_what_is_missing() -> None:
    class Err:
        def __init__(self, status: int, body: str) -> None:
            self.status, self.reason, self.body = status, "x", body

    nf = views.api_error(Err(404, "{}"), 'modeldeployments.vigil.dev "nope"', "risk")
    assert str(nf) == 'Error from server (NotFound): modeldeployments.vigil.dev "nope" not found in namespace "risk"'
    forbidden = views.api_error(Err(403, json.dumps({"message": 'user "bob" cannot list resource'})), "x", "risk")
    assert str(forbidden) == 'Error from server (Forbidden): user "bob" cannot list resource'


def test_parser_follows_kubectl_conventions() -> None:
    p = build_parser("kubectl vigil")
    args = p.parse_args(["status", "-A", "-o", "wide", "--context", "prod"])
    assert args.all_namespaces and args.output == "wide" and args.context == "prod" and args.kubeconfig is None
    args = p.parse_args(["explain", "fraud", "-n", "risk", "-o", "yaml", "--kubeconfig", "/k"])
    assert (args.name, args.namespace, args.output, args.kubeconfig) == ("fraud", "risk", "yaml", "/k")
    with pytest.raises(SystemExit):
        p.parse_args(["history", "fraud", "-o", "wide"])  # wide is for status only
