"""The processes of the local control plane, as a table: name, command line, readiness.

`LocalCluster` starts them in this order and waits for each one's readiness check before
the next (the apiserver needs etcd; the others need the apiserver and only report through
it). Adding a component means adding a row, not another block of start-up code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests

from vigil.dev.binaries import ControlPlaneBinaries
from vigil.dev.pki import Pki

KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"


@dataclass(frozen=True)
class Layout:
    """Everything the command lines are made of: binaries, state directory, certificates, ports."""

    bins: ControlPlaneBinaries
    state_dir: Path
    certs: Pki
    kubeconfig: Path
    etcd_port: int
    etcd_peer_port: int
    apiserver_port: int
    free_port: Callable[[], int]

    @property
    def etcd_url(self) -> str:
        return f"http://127.0.0.1:{self.etcd_port}"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"

    def apiserver_get(self, path: str, timeout: float = 2.0) -> requests.Response:
        """GET on the apiserver as the admin (client certificate)."""
        return requests.get(f"{self.server}{path}", cert=(str(self.certs.admin_cert), str(self.certs.admin_key)),
                            verify=str(self.certs.ca_cert), timeout=timeout)


@dataclass(frozen=True)
class Component:
    """One control-plane process: how to run it and, if it has one, how to tell it is ready."""

    name: str
    argv: Callable[[Layout], list[str]]
    ready: Callable[[Layout], bool] | None = None
    ready_what: str = ""
    ready_timeout: float | None = None  # None: the cluster's start-up timeout
    poll_seconds: float = 0.2


def _etcd(x: Layout) -> list[str]:
    peer = f"http://127.0.0.1:{x.etcd_peer_port}"
    return [
        str(x.bins.etcd), "--name", "vigil", "--data-dir", str(x.state_dir / "etcd"),
        "--listen-client-urls", x.etcd_url, "--advertise-client-urls", x.etcd_url,
        "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
        "--initial-cluster", f"vigil={peer}", "--unsafe-no-fsync", "--log-level", "warn",
    ]


def _apiserver(x: Layout) -> list[str]:
    c = x.certs
    return [
        str(x.bins.kube_apiserver), f"--etcd-servers={x.etcd_url}",
        "--bind-address=127.0.0.1", f"--secure-port={x.apiserver_port}",
        "--advertise-address=127.0.0.1", "--endpoint-reconciler-type=none",
        f"--tls-cert-file={c.serving_cert}", f"--tls-private-key-file={c.serving_key}",
        f"--client-ca-file={c.ca_cert}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={c.sa_public}", f"--service-account-signing-key-file={c.sa_private}",
        "--service-cluster-ip-range=10.96.0.0/16",
        "--authorization-mode=RBAC", "--allow-privileged=true", "--profiling=false", "--event-ttl=1h",
    ]


def _kube_flags(x: Layout) -> list[str]:
    """What controller-manager and scheduler share: the admin kubeconfig, a free port, no election."""
    return [
        f"--kubeconfig={x.kubeconfig}", f"--authentication-kubeconfig={x.kubeconfig}",
        f"--authorization-kubeconfig={x.kubeconfig}", "--bind-address=127.0.0.1",
        f"--secure-port={x.free_port()}", "--leader-elect=false",
        "--kube-api-qps=200", "--kube-api-burst=400",
    ]


def _controller_manager(x: Layout) -> list[str]:
    return [
        str(x.bins.kube_controller_manager), *_kube_flags(x),
        f"--service-account-private-key-file={x.certs.sa_private}", f"--root-ca-file={x.certs.ca_cert}",
        "--use-service-account-credentials=false", "--controllers=*,-nodeipam",
        "--concurrent-deployment-syncs=10", "--concurrent-replicaset-syncs=10",
    ]


def _scheduler(x: Layout) -> list[str]:
    return [str(x.bins.kube_scheduler), *_kube_flags(x)]


def _kwok(x: Layout) -> list[str]:
    return [
        str(x.bins.kwok), f"--kubeconfig={x.kubeconfig}", f"--config={x.bins.crds / 'kwok-stages.yaml'}",
        "--manage-all-nodes=false", f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake",
        f"--server-address=127.0.0.1:{x.free_port()}", "--node-ip=127.0.0.1",
        "--cidr=10.244.0.1/16", "--node-lease-duration-seconds=40",
    ]


COMPONENTS: tuple[Component, ...] = (
    Component("etcd", _etcd, ready=lambda x: requests.get(f"{x.etcd_url}/health", timeout=1).ok,
              ready_what="etcd /health", ready_timeout=30),
    Component("kube-apiserver", _apiserver, ready=lambda x: x.apiserver_get("/readyz").ok,
              ready_what="kube-apiserver /readyz", poll_seconds=0.5),
    Component("kube-controller-manager", _controller_manager),
    Component("kube-scheduler", _scheduler),
    Component("kwok", _kwok),
)
