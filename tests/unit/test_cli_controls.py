"""`vigil pause|resume|promote|abort|approve`: the annotations they write, with the names and the
approvals rule from vigil.api.names (the same the core reads)."""

from __future__ import annotations

from typing import Any

import pytest

from vigil.api.names import ANN_ABORT, ANN_PAUSED, ANN_PROMOTE, ANN_REQUESTED_BY, approval_key, approvers
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
    fake = FakeCustomObjects({"spec": {"version": "v2"}, "status": {"phase": "Canary", "canaryDigest": DIGEST},
                              "metadata": {"annotations": {}}})
    monkeypatch.setattr(cli, "_api", lambda kubeconfig: None)
    monkeypatch.setattr("kubernetes.client.CustomObjectsApi", lambda api_client: fake)
    monkeypatch.setattr(cli, "whoami", lambda api: "alice")  # the apiserver's answer (SelfSubjectReview)
    monkeypatch.setenv("VIGIL_USER", "mallory")  # a text a user can type is never the identity
    return fake


DIGEST = "sha256:" + "2" * 64


def run(api: FakeCustomObjects, *argv: str) -> dict[str, Any]:
    assert cli.main([*argv, "fraud", "-n", "demo"]) == 0
    target, body = api.patches[-1]
    assert target == ("vigil.dev", "v1alpha1", "demo", "modeldeployments", "fraud")
    return dict(body["metadata"]["annotations"])


def test_pause_and_resume(api: FakeCustomObjects) -> None:
    assert run(api, "pause") == {ANN_PAUSED: "true", ANN_REQUESTED_BY: "alice"}
    assert run(api, "resume") == {ANN_PAUSED: None, ANN_REQUESTED_BY: "alice"}


def test_promote_and_abort_name_the_digest_rolling_out(api: FakeCustomObjects) -> None:
    assert run(api, "promote") == {ANN_PROMOTE: DIGEST, ANN_REQUESTED_BY: "alice"}
    assert run(api, "abort")[ANN_ABORT] == DIGEST


def test_approve_writes_the_authenticated_users_own_approval_of_that_digest(api: FakeCustomObjects) -> None:
    annotations = run(api, "approve")
    assert annotations[approval_key("alice")] == f"alice {DIGEST}"
    assert approvers(annotations, DIGEST) == {"alice"} and approvers(annotations, "sha256:other") == set()


def test_controls_refuse_when_nothing_rolls_out(api: FakeCustomObjects, capsys: pytest.CaptureFixture[str]) -> None:
    api.md["status"] = {"phase": "Succeeded"}
    assert cli.main(["promote", "fraud", "-n", "demo"]) == 1
    assert "no rollout in progress" in capsys.readouterr().err and not api.patches


def test_a_cluster_name_that_is_a_path_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["dev", "down", "--name", "/"]) == 1
    assert "a name is not a path" in capsys.readouterr().err
