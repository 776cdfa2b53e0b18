"""Shared fixtures. Integration fixtures start the real servers and FAIL (never skip) when they
cannot: a run that did not talk to a real apiserver must not look green."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from vigil.dev.cluster import LocalCluster, reap_stale, temporary_state_dir
from vigil.dev.process import StartError

pytest_plugins = ["tests.fixtures_prometheus"] if (Path(__file__).parent / "fixtures_prometheus.py").exists() else []


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@dataclass
class KubeHandle:
    """The `kube` fixture: a running local cluster and an API client for it."""

    cluster: LocalCluster
    kubeconfig: Path
    api_client: k8s.ApiClient

    def kubectl(self, *args: str, check: bool = True, input: str | None = None) -> str:
        return self.cluster.kubectl(*args, check=check, input=input)

    def client_for(self) -> k8s.ApiClient:
        """A fresh API client (for threads that must not share one)."""
        return k8s_config.new_client_from_config(config_file=str(self.kubeconfig))


@pytest.fixture(scope="session")
def kube() -> Iterator[KubeHandle]:
    reap_stale()
    cluster = LocalCluster(name="vigil-test", state_dir=temporary_state_dir())
    try:
        cluster.up()
    except StartError as err:
        pytest.fail(f"the local control plane did not start: {err}", pytrace=False)
    api = k8s_config.new_client_from_config(config_file=str(cluster.kubeconfig))
    try:
        yield KubeHandle(cluster, cluster.kubeconfig, api)
    finally:
        api.close()
        cluster.down()


@pytest.fixture
def namespace(kube: KubeHandle) -> Iterator[str]:
    """A fresh namespace per test, deleted afterwards."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    core = k8s.CoreV1Api(kube.api_client)
    core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)
