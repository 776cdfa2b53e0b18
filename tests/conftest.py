"""Shared fixtures. Integration fixtures start the real servers and FAIL (never skip) when they
cannot: a run that did not talk to a real apiserver must not look green."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from vigil.dev.cluster import LocalCluster, reap_stale, temporary_state_dir
from vigil.dev.process import StartError

pytest_plugins = ["tests.fixtures_prometheus"] if (Path(__file__).parent / "fixtures_prometheus.py").exists() else []


LONGEST_MODULES = ("tests/integration/test_demo.py", "tests/integration/test_operator.py", "tests/unit/test_fuzz.py")
"""The modules that take longest (about 7, 2 and 2 minutes of a 20-minute serial run). `make test`
runs modules on parallel workers (pytest-xdist, `--dist loadfile`); started first, they do not
leave one worker finishing alone at the end."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
            if item.get_closest_marker("prometheus_only") is None:
                item.add_marker(pytest.mark.controlplane)

    def rank(item: pytest.Item) -> int:
        path = str(item.fspath)
        return next((i for i, name in enumerate(LONGEST_MODULES) if path.endswith(name)), len(LONGEST_MODULES))

    items.sort(key=rank)  # stable: the order within and among the other modules is kept


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

    def client_as(self, namespace: str, service_account: str) -> k8s.ApiClient:
        """An API client that authenticates with a token of `service_account` only."""
        token = k8s.CoreV1Api(self.api_client).create_namespaced_service_account_token(
            service_account, namespace,
            k8s.AuthenticationV1TokenRequest(spec=k8s.V1TokenRequestSpec(audiences=[])),
        ).status.token
        cfg = k8s.Configuration()
        cfg.host = self.api_client.configuration.host
        cfg.ssl_ca_cert = self.api_client.configuration.ssl_ca_cert
        cfg.api_key = {"authorization": f"Bearer {token}"}
        return k8s.ApiClient(cfg)


def wait_for(check: Callable[[], Any], timeout: float = 60, interval: float = 0.2, what: str = "condition") -> Any:
    """Poll `check` until it returns something truthy; fail with the last value it returned."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}; last: {last}")


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
