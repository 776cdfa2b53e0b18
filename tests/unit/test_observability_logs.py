"""Structured logs: one JSON object per line with the ModelDeployment and its rollout."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from vigil.api.modeldeployment import ModelDeploymentStatus, Phase, StepStatus
from vigil.core.model import Action, Decision, EventSpec
from vigil.observability import logs


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    buf = io.StringIO()
    logs.install(level=logging.INFO, stream=buf)
    try:
        yield buf
    finally:
        root.handlers[:] = saved
        root.setLevel(level)


def lines(buf: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buf.getvalue().splitlines()]


def test_each_line_is_one_json_object_with_the_bound_modeldeployment(captured: io.StringIO) -> None:
    with logs.bound(namespace="risk", name="fraud", rollout_id="3-abcdef", version="v2"):
        logging.getLogger("vigil.reconciler").warning("route changed\nby someone")
    logging.getLogger("vigil.reconciler").info("outside")
    first, second = lines(captured)
    assert first["message"] == "route changed\nby someone" and first["level"] == "WARNING"
    assert (first["namespace"], first["modelDeployment"], first["rolloutId"], first["canaryVersion"]) == \
        ("risk", "fraud", "3-abcdef", "v2")
    assert "modelDeployment" not in second


def test_kopf_object_loggers_name_the_modeldeployment(captured: io.StringIO) -> None:
    ref = {"apiVersion": "vigil.dev/v1alpha1", "kind": "ModelDeployment", "name": "fraud", "namespace": "risk"}
    logging.getLogger("kopf.objects").info("Handler succeeded.", extra={"k8s_ref": ref, "k8s_skip": True})
    (line,) = lines(captured)
    assert line["modelDeployment"] == "fraud" and line["namespace"] == "risk" and "k8s_ref" not in line


def test_decision_log_writes_one_line_per_recorded_decision(captured: io.StringIO) -> None:
    status = ModelDeploymentStatus(phase=Phase.CANARY, canary_version="v2", rollout_id="2-aa",
                                   step=StepStatus(index=1, weight=50), message="step 1 done")
    d = Decision(Action.STEP, status, None, None, (EventSpec("Normal", "StepPassed", "m"),))
    md = {"metadata": {"namespace": "risk", "name": "fraud"}}
    logs.DecisionLog().passed(md, d, 0.25)
    logs.DecisionLog().passed(md, Decision(Action.NONE, status, None, None), 0.1)  # nothing recorded: no line
    logs.DecisionLog().failed("risk", "fraud", "ApiError500")
    step, failed = lines(captured)
    assert step["reason"] == "StepPassed" and step["action"] == "step" and step["weight"] == 50
    assert step["rolloutId"] == "2-aa" and step["canaryVersion"] == "v2" and step["modelDeployment"] == "fraud"
    assert failed["level"] == "ERROR" and failed["reason"] == "ApiError500"


def test_install_twice_keeps_one_handler() -> None:
    root = logging.getLogger()
    saved = list(root.handlers)
    try:
        logs.install(stream=io.StringIO())
        logs.install(stream=io.StringIO())
        assert sum(isinstance(h, logs.VigilJsonHandler) for h in root.handlers) == 1
    finally:
        root.handlers[:] = saved
