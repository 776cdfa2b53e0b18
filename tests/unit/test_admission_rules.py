"""The admission rules of a RiskPolicy, as pure functions: each rule's accepted case, its
rejected case, and a message that names the field."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from vigil.admission.hostnames import hostnames_intersect, selector_matches
from vigil.admission.loosening import loosenings
from vigil.admission.rules import (
    ANN_EMERGENCY,
    review_modeldeployment,
    review_riskpolicy,
)
from vigil.api.policy import RiskPolicySpec

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
DIGEST = "sha256:" + "a" * 64


def md(**spec: Any) -> dict:
    base = {"model": "fraud", "version": "v1", "artifact": {"uri": "s3://m/v1", "digest": DIGEST},
            "server": {"image": "example/server:1"}, "policyRef": {"name": "policy"},
            "traffic": {"router": "gatewayapi", "gatewayRef": {"name": "gw"}}}
    return {"metadata": {"name": "fraud", "namespace": "team-a", "annotations": {}}, "spec": {**base, **spec}}


def policy(name: str = "policy", **spec: Any) -> dict:
    return {"metadata": {"name": name, "namespace": "team-a"}, "spec": spec}


def gateway(*listeners: dict, namespace: str = "team-a") -> dict:
    return {"metadata": {"name": "gw", "namespace": namespace}, "spec": {"listeners": list(listeners)}}


SAME = {"name": "http", "protocol": "HTTP", "port": 80}


def review(obj: dict, old: dict | None = None, *, pol: dict | None = None, gw: dict | None = None,
           labels: dict | None = None, now: datetime = NOW):
    return review_modeldeployment(obj, old, policy=policy() if pol is None else pol,
                                  gateway=gateway(SAME) if gw is None else gw,
                                  namespace_labels=labels or {}, now=now, user="alice")


def only(result, field: str, rule: str) -> str:
    assert [(v.field, v.rule) for v in result.violations] == [(field, rule)], result.violations
    text = str(result.violations[0])
    assert field in text
    return text


def test_a_plain_modeldeployment_is_admitted() -> None:
    assert review(md()).allowed


# ---------------------------------------------------------------- policy reference
def test_a_missing_policy_is_refused_naming_policyref() -> None:
    result = review_modeldeployment(md(), None, policy=None, gateway=gateway(SAME), namespace_labels={}, now=NOW)
    text = only(result, "spec.policyRef.name", "PolicyExists")
    assert '"policy"' in text and "team-a" in text


# ---------------------------------------------------------------- pinned digest
@pytest.mark.parametrize("tier", ["high", "critical"])
def test_high_tiers_require_a_sha256_digest(tier: str) -> None:
    unpinned = md(artifact={"uri": "s3://m/v1", "digest": "latest"})
    text = only(review(unpinned, pol=policy(riskTier=tier)), "spec.artifact.digest", "PinnedDigest")
    assert "sha256:<64" in text and tier in text
    assert review(md(), pol=policy(riskTier=tier)).allowed


def test_low_tiers_do_not_require_a_digest_unless_the_policy_says_so() -> None:
    unpinned = md(artifact={"uri": "s3://m/v1", "digest": "sha256:short"})
    assert review(unpinned, pol=policy(riskTier="low")).allowed
    only(review(unpinned, pol=policy(riskTier="low", requirePinnedDigest=True)), "spec.artifact.digest", "PinnedDigest")
    assert review(unpinned, pol=policy(riskTier="critical", requirePinnedDigest=False)).allowed


# ---------------------------------------------------------------- steps and maxWeight
def test_own_steps_need_the_policy_to_allow_overrides() -> None:
    text = only(review(md(steps=[10, 20])), "spec.steps", "StepOverrides")
    assert "allowStepOverrides" in text


def test_own_steps_stay_within_max_weight_and_the_first_step() -> None:
    pol = policy(steps=[10, 25, 50], maxWeight=50, allowStepOverrides=True)
    assert review(md(steps=[5, 10, 30, 50]), pol=pol).allowed
    text = only(review(md(steps=[10, 50, 80]), pol=pol), "spec.steps", "MaxWeight")
    assert "[80]" in text and "maxWeight 50" in text
    text = only(review(md(steps=[40, 50]), pol=pol), "spec.steps", "FirstStep")
    assert "40%" in text and "10%" in text


# ---------------------------------------------------------------- freeze windows
FROZEN = {"freezeWindows": [{"start": "2030-06-01T00:00:00Z", "end": "2030-06-02T00:00:00Z", "reason": "quarter end"}]}


def changed(obj: dict, version: str = "v2", emergency: str | None = None) -> dict:
    new = copy.deepcopy(obj)
    new["spec"]["version"] = version
    new["spec"]["artifact"] = {"uri": f"s3://m/{version}", "digest": "sha256:" + "b" * 64}
    if emergency is not None:
        new["metadata"]["annotations"][ANN_EMERGENCY] = emergency
    return new


def test_a_version_change_in_a_freeze_window_is_refused() -> None:
    old = md()
    text = only(review(changed(old), old, pol=policy(**FROZEN)), "spec.version", "FreezeWindow")
    assert "quarter end" in text and "allowEmergencyPromotion" in text
    # outside the window, or without a version change, it is admitted
    assert review(changed(old), old, pol=policy(**FROZEN), now=NOW + timedelta(days=2)).allowed
    scaled = copy.deepcopy(old)
    scaled["spec"]["replicas"] = 5
    assert review(scaled, old, pol=policy(**FROZEN)).allowed
    # a new digest under the same version string is a version change too
    rebuilt = copy.deepcopy(old)
    rebuilt["spec"]["artifact"]["digest"] = "sha256:" + "c" * 64
    only(review(rebuilt, old, pol=policy(**FROZEN)), "spec.version", "FreezeWindow")


def test_an_emergency_is_admitted_with_a_warning_only_when_the_policy_allows_it() -> None:
    old = md()
    pol = policy(**FROZEN, allowEmergencyPromotion=True)
    result = review(changed(old, emergency="CVE-2030-1 in v1"), old, pol=pol)
    assert result.allowed and "CVE-2030-1" in result.warnings[0] and "alice" in result.warnings[0]
    text = only(review(changed(old), old, pol=pol), "spec.version", "FreezeWindow")
    assert ANN_EMERGENCY in text
    text = only(review(changed(old, emergency="CVE"), old, pol=policy(**FROZEN)), "spec.version", "FreezeWindow")
    assert "allowEmergencyPromotion: false" in text


def test_a_leftover_emergency_annotation_is_not_a_new_emergency() -> None:
    pol = policy(**FROZEN, allowEmergencyPromotion=True)
    old = changed(md(), "v2", emergency="CVE-2030-1")
    text = only(review(changed(old, "v3"), old, pol=pol), "spec.version", "FreezeWindow")
    assert "earlier change" in text


# ---------------------------------------------------------------- hostnames on the Gateway
def with_hosts(*hosts: str, gw_ns: str | None = None) -> dict:
    ref = {"name": "gw", **({"namespace": gw_ns} if gw_ns else {})}
    return md(traffic={"router": "gatewayapi", "gatewayRef": ref, "hostnames": list(hosts)})


def test_same_namespace_listener_admits_only_its_own_namespace() -> None:
    shared = gateway({**SAME, "hostname": "*.example.com"}, namespace="infra")
    text = only(review(with_hosts("fraud.example.com", gw_ns="infra"), gw=shared),
                "spec.traffic.gatewayRef", "AllowedRoutes")
    assert '"team-a"' in text
    assert review(with_hosts("fraud.example.com"), gw=gateway({**SAME, "hostname": "*.example.com"})).allowed


def test_selector_listener_follows_the_namespace_labels() -> None:
    listener = {**SAME, "hostname": "*.models.example.com",
                "allowedRoutes": {"namespaces": {"from": "Selector", "selector": {"matchLabels": {"team": "ml"}}}}}
    gw = gateway(listener, namespace="infra")
    assert review(with_hosts("fraud.models.example.com", gw_ns="infra"), gw=gw, labels={"team": "ml"}).allowed
    only(review(with_hosts("fraud.models.example.com", gw_ns="infra"), gw=gw, labels={"team": "web"}),
         "spec.traffic.gatewayRef", "AllowedRoutes")


def test_a_hostname_outside_the_listeners_is_refused() -> None:
    all_ns = {"allowedRoutes": {"namespaces": {"from": "All"}}}
    gw = gateway({**SAME, **all_ns, "hostname": "*.models.example.com"},
                 {**SAME, **all_ns, "name": "pay", "hostname": "pay.example.com", "allowedRoutes":
                  {"namespaces": {"from": "Same"}}}, namespace="infra")
    assert review(with_hosts("a.b.models.example.com", gw_ns="infra"), gw=gw).allowed
    text = only(review(with_hosts("pay.example.com", "x.models.example.com", gw_ns="infra"), gw=gw),
                "spec.traffic.hostnames", "AllowedHostnames")
    assert "pay.example.com" in text and "x.models" not in text


def test_a_missing_gateway_refuses_hostnames_it_cannot_check() -> None:
    result = review_modeldeployment(with_hosts("a.example.com"), None, policy=policy(), gateway=None,
                                    namespace_labels={}, now=NOW)
    only(result, "spec.traffic.gatewayRef", "GatewayExists")


def test_listener_kinds_and_protocols() -> None:
    tcp = gateway({"name": "tcp", "protocol": "TCP", "port": 9000})
    only(review(with_hosts("a.example.com"), gw=tcp), "spec.traffic.gatewayRef", "AllowedRoutes")
    grpc_only = gateway({**SAME, "allowedRoutes": {"kinds": [{"kind": "GRPCRoute"}]}})
    only(review(with_hosts("a.example.com"), gw=grpc_only), "spec.traffic.gatewayRef", "AllowedRoutes")


@pytest.mark.parametrize("listener,route,ok", [
    (None, "a.example.com", True),
    ("a.example.com", "a.example.com", True),
    ("A.Example.com", "a.example.COM", True),
    ("*.example.com", "a.example.com", True),
    ("*.example.com", "a.b.example.com", True),
    ("*.example.com", "example.com", False),
    ("*.example.com", "a.example.org", False),
    ("*.example.com", "*.a.example.com", True),
    ("*.a.example.com", "*.example.com", True),
    ("a.example.com", "*.example.com", True),
    ("a.example.com", "b.example.com", False),
    ("example.com", "*.example.com", False),
])
def test_hostname_intersection_follows_gateway_api(listener: str | None, route: str, ok: bool) -> None:
    assert hostnames_intersect(listener, route) is ok


def test_label_selector_semantics() -> None:
    labels = {"team": "ml", "env": "prod"}
    assert selector_matches({}, labels)
    assert selector_matches({"matchExpressions": [{"key": "env", "operator": "In", "values": ["prod"]}]}, labels)
    assert not selector_matches({"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["prod"]}]}, labels)
    assert not selector_matches({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, labels)
    assert selector_matches({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}, labels)
    assert not selector_matches({"matchExpressions": [{"key": "env", "operator": "Gt", "values": ["1"]}]}, labels)


# ---------------------------------------------------------------- loosening a policy in use
def spec(**kw: Any) -> RiskPolicySpec:
    return RiskPolicySpec.model_validate(kw)


@pytest.mark.parametrize("old,new,field", [
    ({}, {"maxWeight": 80}, "spec.maxWeight"),
    ({"steps": [10, 25, 50]}, {"steps": [25, 50]}, "spec.steps"),
    ({"steps": [10, 25, 50]}, {"steps": [10, 30, 50]}, "spec.steps"),
    ({}, {"bakeTime": "1m"}, "spec.bakeTime"),
    ({"shadow": {"enabled": True}}, {"shadow": {"enabled": False}}, "spec.shadow.enabled"),
    ({"shadow": {"enabled": True, "duration": "10m"}}, {"shadow": {"enabled": True, "duration": "5m"}},
     "spec.shadow.duration"),
    ({}, {"minSamples": 10}, "spec.minSamples"),
    ({}, {"analysisInterval": "5m"}, "spec.analysisInterval"),
    ({}, {"promotionConfidence": 0.8}, "spec.promotionConfidence"),
    ({"requiredApprovals": 2}, {"requiredApprovals": 1}, "spec.requiredApprovals"),
    ({}, {"allowEmergencyPromotion": True}, "spec.allowEmergencyPromotion"),
    ({}, {"gates": [{"metric": "errorRate"}]}, "spec.gates[metric=latencyP99]"),
    ({}, {"gates": [{"metric": "errorRate", "maxRelativeIncrease": 0.3}, {"metric": "latencyP99"}]},
     "spec.gates[metric=errorRate].tolerance"),
    ({}, {"failureLimit": 3}, "spec.failureLimit"),
    ({"noData": {"action": "rollback"}}, {"noData": {"action": "hold"}}, "spec.noData.action"),
    ({}, {"budget": {"onExpiry": "promote"}}, "spec.budget.onExpiry"),
    ({"holdback": {"weight": 5}}, {}, "spec.holdback"),
    ({"riskTier": "high"}, {"riskTier": "high", "requirePinnedDigest": False}, "spec.requirePinnedDigest"),
    ({"riskTier": "high"}, {"riskTier": "medium"}, "spec.riskTier"),
    ({}, {"allowStepOverrides": True}, "spec.allowStepOverrides"),
    (FROZEN, {}, "spec.freezeWindows"),
    (FROZEN, {"freezeWindows": [{"start": "2030-06-01T00:00:00Z", "end": "2030-06-01T18:00:00Z"}]},
     "spec.freezeWindows"),
])
def test_each_loosening_is_named(old: dict, new: dict, field: str) -> None:
    assert field in [f.field for f in loosenings(spec(**old), spec(**new), NOW)]


@pytest.mark.parametrize("old,new", [
    ({}, {}),
    ({}, {"maxWeight": 40, "steps": [5, 10, 25, 40]}),
    ({}, {"bakeTime": "30m", "minSamples": 1000, "requiredApprovals": 1, "confidence": 0.9}),
    ({}, {"gates": [{"metric": "errorRate", "maxRelativeIncrease": 0.05}, {"metric": "latencyP99"},
                    {"metric": "latencyP50"}]}),
    ({}, FROZEN),
    # a window that is over already may go
    ({"freezeWindows": [{"start": "2030-01-01T00:00:00Z", "end": "2030-01-02T00:00:00Z"}]}, {}),
])
def test_tightening_and_neutral_changes_are_not_loosenings(old: dict, new: dict) -> None:
    assert loosenings(spec(**old), spec(**new), NOW) == []


def running(phase: str, policy_name: str = "policy") -> dict:
    obj = md(policyRef={"name": policy_name})
    obj["status"] = {"phase": phase}
    return obj


def test_loosening_a_policy_under_a_running_rollout_is_refused() -> None:
    old, new = policy(maxWeight=50), policy(maxWeight=80)
    result = review_riskpolicy(new, old, modeldeployments=[running("Canary")], now=NOW)
    text = only(result, "spec.maxWeight", "NoLooseningDuringRollout")
    assert "50 -> 80" in text and "fraud" in text
    # at rest, or under another policy, it is admitted; tightening always is
    assert review_riskpolicy(new, old, modeldeployments=[running("Succeeded")], now=NOW).allowed
    assert review_riskpolicy(new, old, modeldeployments=[running("Canary", "other")], now=NOW).allowed
    assert review_riskpolicy(policy(maxWeight=40, steps=[10, 25, 40]), old,
                             modeldeployments=[running("Canary")], now=NOW).allowed


@pytest.mark.parametrize("phase", ["Shadow", "Canary", "Promoting", "Holdback", "Paused", "RollingBack"])
def test_every_running_phase_counts(phase: str) -> None:
    assert not review_riskpolicy(policy(bakeTime="1s"), policy(), modeldeployments=[running(phase)], now=NOW).allowed


def test_deleting_a_policy_under_a_running_rollout_is_refused() -> None:
    result = review_riskpolicy(None, policy(), modeldeployments=[running("Canary")], now=NOW)
    only(result, "metadata.name", "PolicyInUse")
    assert review_riskpolicy(None, policy(), modeldeployments=[running("RolledBack")], now=NOW).allowed


# ---------------------------------------------------------------- the webhook's certificates
def test_webhook_certificates_are_private_reused_and_renewed(tmp_path) -> None:
    import stat

    from cryptography import x509
    from vigil.admission.certs import ensure

    made = ensure(tmp_path / "certs", ["vigil-operator-webhook.vigil.svc", "127.0.0.1"], now=NOW)
    assert stat.S_IMODE(made.key.stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate(made.cert.read_bytes())
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(made.ca_cert.read_bytes()))
    first = made.ca_pem()
    assert ensure(tmp_path / "certs", ["127.0.0.1"], now=NOW).ca_pem() == first  # still good: kept
    assert ensure(tmp_path / "certs", ["other.svc"], now=NOW).ca_pem() != first  # new name: new CA
    renewed = ensure(tmp_path / "certs", ["other.svc"], now=NOW + timedelta(days=340))
    assert x509.load_pem_x509_certificate(renewed.cert.read_bytes()).not_valid_after_utc > NOW + timedelta(days=400)


def test_webhook_settings_name_the_bad_variable() -> None:
    from vigil.admission.webhook import WebhookSettings

    assert WebhookSettings.from_env({}) is None
    with pytest.raises(ValueError, match="VIGIL_WEBHOOK_PORT"):
        WebhookSettings.from_env({"VIGIL_WEBHOOK_PORT": "http"})
    config = WebhookSettings.from_env({"VIGIL_WEBHOOK_PORT": "9443", "VIGIL_WEBHOOK_HOSTS": "a.svc, 10.0.0.1"})
    assert config is not None and config.hosts == ("a.svc", "10.0.0.1") and config.configuration is None


def test_weakening_the_error_budget_or_the_artifact_report_is_looser() -> None:
    import datetime as _dt

    from vigil.admission.loosening import loosenings
    from vigil.api.policy import RiskPolicySpec as _Spec

    now = _dt.datetime(2026, 12, 1, tzinfo=_dt.timezone.utc)
    strict = _Spec.model_validate({"errorBudget": {"objective": 0.999}, "requireArtifactReport": True})
    fields = {x.field for x in loosenings(strict, _Spec(), now)}
    assert {"spec.errorBudget", "spec.requireArtifactReport"} <= fields
    lower = _Spec.model_validate({"errorBudget": {"objective": 0.99}, "requireArtifactReport": True})
    assert [x.field for x in loosenings(strict, lower, now)] == ["spec.errorBudget.objective"]
    faster = _Spec.model_validate({"errorBudget": {"objective": 0.999, "windows": [
        {"long": "1h", "short": "5m", "factor": 20}, {"long": "6h", "short": "30m", "factor": 6}]},
        "requireArtifactReport": True})
    assert [x.field for x in loosenings(strict, faster, now)] == ["spec.errorBudget.windows[1h/5m].factor"]
    assert loosenings(_Spec(), strict, now) == []  # tightening is always allowed
