"""`vigil pause|resume|promote|abort|approve`: the annotations they write, with the names and the
approvals rule from vigil.api.names (the same the core reads)."""

from __future__ import annotations

from typing import Any

import pytest

from vigil.api.names import (
    ANN_ABORT, ANN_APPROVED_BY, ANN_APPROVED_VERSION, ANN_PAUSED, ANN_PROMOTE, ANN_REQUESTED_BY, approvers,
)
from vigil.cli import main as cli


class FakeCustomObjects:
    def __init__(self, md: dict[str, Any]) -> None:
        self.md = md
        self.patches: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def get_namespaced_custom_object(self, *args: Any) -> dict[str, Any]:
        return self.md

    def patch_namespaced_custom_object(self, *args: Any) -> None:
        self.patches.append((args[:-1], args[-1]))


@pytest.fixture()
def api(monkeypatch: pytest.MonkeyPatch) -> FakeCustomObjects:
    fake = FakeCustomObjects({"spec": {"version": "v2"}, "metadata": {"annotations": {
        ANN_APPROVED_BY: "bob, carol", ANN_APPROVED_VERSION: "v2"}}})
    monkeypatch.setattr(cli, "_api", lambda kubeconfig: None)
    monkeypatch.setattr("kubernetes.client.CustomObjectsApi", lambda api_client: fake)
    monkeypatch.setenv("VIGIL_USER", "alice")
    return fake


def run(api: FakeCustomObjects, *argv: str) -> dict[str, Any]:
    assert cli.main([*argv, "fraud", "-n", "demo"]) == 0
    target, body = api.patches[-1]
    assert target == ("vigil.dev", "v1alpha1", "demo", "modeldeployments", "fraud")
    return dict(body["metadata"]["annotations"])


def test_pause_and_resume(api: FakeCustomObjects) -> None:
    assert run(api, "pause") == {ANN_PAUSED: "true", ANN_REQUESTED_BY: "alice"}
    assert run(api, "resume") == {ANN_PAUSED: None, ANN_REQUESTED_BY: "alice"}


def test_promote_and_abort_name_the_spec_version_unless_told(api: FakeCustomObjects) -> None:
    assert run(api, "promote")[ANN_PROMOTE] == "v2"
    assert run(api, "abort", "--version", "v3")[ANN_ABORT] == "v3"


def test_approve_adds_the_user_to_the_approvers_of_that_version(api: FakeCustomObjects) -> None:
    annotations = run(api, "approve")
    assert annotations[ANN_APPROVED_BY] == "alice,bob,carol" and annotations[ANN_APPROVED_VERSION] == "v2"
    assert approvers(annotations, "v2") == {"alice", "bob", "carol"}
    # approvals of another version do not carry over
    assert run(api, "approve", "--version", "v3", "--user", "dave")[ANN_APPROVED_BY] == "dave"


def test_a_cluster_name_that_is_a_path_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["dev", "down", "--name", "/"]) == 1
    assert "a name is not a path" in capsys.readouterr().err
