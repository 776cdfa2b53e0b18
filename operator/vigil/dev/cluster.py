"""A real, local Kubernetes control plane: etcd, apiserver, controller-manager, scheduler, kwok.

Everything listens on free loopback ports and lives in one state directory: data, certificates,
logs, the admin kubeconfig and `cluster.json` (which processes belong to it). `down()` stops
them all and removes the directory; `reap_stale()` cleans up after a run that crashed.

kwok plays the kubelet: it makes a few simulated nodes Ready and moves Pods scheduled on them
to Running/Ready, so Deployments become Available as in a real cluster.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import requests
import yaml

from vigil.dev import pki as pki_mod
from vigil.dev.binaries import REPO_ROOT, ControlPlaneBinaries, ensure_built
from vigil.dev.process import (
    Managed,
    StartError,
    ensure_port_free,
    free_port,
    pid_alive,
    start,
    stop_group,
    wait_until,
)

STATE_ROOT = Path(os.environ.get("VIGIL_STATE_DIR", Path.home() / ".local" / "state" / "vigil"))
VIGIL_CRDS = REPO_ROOT / "crds"
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"


def _log(msg: str) -> None:
    print(f"[vigil dev] {msg}", file=sys.stderr, flush=True)


@dataclass
class ClusterInfo:
    """What `cluster.json` records: enough for `down` or another process to find the cluster."""

    name: str
    state_dir: str
    kubeconfig: str
    server: str
    pids: dict[str, int] = field(default_factory=dict)
    owner_pid: int | None = None  # set when the cluster dies with its starter (tests)

    @classmethod
    def load(cls, state_dir: Path) -> ClusterInfo | None:
        path = state_dir / "cluster.json"
        if not path.exists():
            return None
        return cls(**json.loads(path.read_text()))

    def save(self) -> None:
        Path(self.state_dir, "cluster.json").write_text(json.dumps(asdict(self), indent=2))

    def running(self) -> bool:
        return bool(self.pids) and all(pid_alive(p) for p in self.pids.values())


class LocalCluster:
    """Start and stop the local control plane.

    `detached=True` (the CLI) keeps the processes running after this Python process exits;
    otherwise (tests) they die with it.
    """

    def __init__(
        self,
        name: str = "vigil",
        *,
        state_dir: Path | None = None,
        nodes: int = 3,
        detached: bool = False,
        apiserver_port: int | None = None,
        install_vigil_crds: bool = True,
    ) -> None:
        self.name = name
        self.state_dir = Path(state_dir) if state_dir else STATE_ROOT / name
        self.nodes = nodes
        self.detached = detached
        self.apiserver_port = apiserver_port
        self.install_vigil_crds = install_vigil_crds
        self.procs: list[Managed] = []
        self.bins: ControlPlaneBinaries | None = None
        self.info: ClusterInfo | None = None

    # ---------------------------------------------------------------- paths
    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def server(self) -> str:
        assert self.info is not None, "cluster not started"
        return self.info.server

    # ---------------------------------------------------------------- lifecycle
    def up(self, timeout: float = 120.0) -> LocalCluster:
        """Start everything and wait until the API is ready and CRDs and nodes exist."""
        t0 = time.monotonic()
        self._refuse_or_clear_existing()
        try:
            if self.apiserver_port is not None:
                ensure_port_free(self.apiserver_port, "kube-apiserver")
            self.bins = ensure_built()
            self.state_dir.mkdir(parents=True, exist_ok=True)
            self._start_all(timeout)
        except BaseException as err:
            kept = self._keep_logs()
            self.down()
            if isinstance(err, StartError) and kept:
                raise StartError(f"{err}\n(all logs kept in {kept})") from None
            raise
        _log(f"cluster {self.name!r} ready in {time.monotonic() - t0:.1f}s; "
             f"export KUBECONFIG={self.kubeconfig}")
        return self

    def _keep_logs(self) -> Path | None:
        """Copy the logs of a failed start somewhere `down()` will not remove."""
        logs = self.state_dir / "logs"
        if not logs.is_dir():
            return None
        kept = Path(tempfile.mkdtemp(prefix=f"vigil-{self.name}-failed-logs-"))
        shutil.copytree(logs, kept, dirs_exist_ok=True)
        return kept

    def _refuse_or_clear_existing(self) -> None:
        info = ClusterInfo.load(self.state_dir)
        if info and info.running():
            raise StartError(
                f"a cluster named {self.name!r} is already running (KUBECONFIG={info.kubeconfig}); "
                f"run `vigil dev down --name {self.name}` first or pick another --name"
            )
        if self.state_dir.exists():
            if info:
                _log(f"removing the stale state of a stopped cluster in {self.state_dir}")
                _stop_pids(info.pids)
            elif any(self.state_dir.iterdir()):
                raise StartError(
                    f"{self.state_dir} exists and is not a Vigil cluster directory; "
                    "remove it or pass another --state-dir"
                )
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def _start_all(self, timeout: float) -> None:
        assert self.bins is not None
        bins = self.bins
        d = self.state_dir
        logs = d / "logs"
        certs = pki_mod.generate(d / "pki")
        port = self.apiserver_port or free_port()
        server = f"https://127.0.0.1:{port}"
        self._write_kubeconfig(certs, server)
        self.info = ClusterInfo(
            name=self.name, state_dir=str(d), kubeconfig=str(self.kubeconfig), server=server,
            owner_pid=None if self.detached else os.getpid(),
        )
        self.info.save()

        etcd_port, etcd_peer = free_port(), free_port()
        etcd = self._start("etcd", [
            str(bins.etcd), "--name", "vigil", "--data-dir", str(d / "etcd"),
            "--listen-client-urls", f"http://127.0.0.1:{etcd_port}",
            "--advertise-client-urls", f"http://127.0.0.1:{etcd_port}",
            "--listen-peer-urls", f"http://127.0.0.1:{etcd_peer}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{etcd_peer}",
            "--initial-cluster", f"vigil=http://127.0.0.1:{etcd_peer}",
            "--unsafe-no-fsync", "--log-level", "warn",
        ], logs)
        wait_until(lambda: requests.get(f"http://127.0.0.1:{etcd_port}/health", timeout=1).ok,
                   timeout=30, what="etcd /health", proc=etcd)

        apiserver = self._start("kube-apiserver", [
            str(bins.kube_apiserver),
            f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            "--bind-address=127.0.0.1", f"--secure-port={port}",
            "--advertise-address=127.0.0.1", "--endpoint-reconciler-type=none",
            f"--tls-cert-file={certs.serving_cert}", f"--tls-private-key-file={certs.serving_key}",
            f"--client-ca-file={certs.ca_cert}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={certs.sa_public}",
            f"--service-account-signing-key-file={certs.sa_private}",
            "--service-cluster-ip-range=10.96.0.0/16",
            "--authorization-mode=RBAC", "--allow-privileged=true", "--profiling=false",
            "--event-ttl=1h",
        ], logs)
        wait_until(lambda: self._get("/readyz").ok, timeout=timeout, what="kube-apiserver /readyz",
                   proc=apiserver, interval=0.5)

        self._start("kube-controller-manager", [
            str(bins.kube_controller_manager), f"--kubeconfig={self.kubeconfig}",
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            "--bind-address=127.0.0.1", f"--secure-port={free_port()}", "--leader-elect=false",
            f"--service-account-private-key-file={certs.sa_private}",
            f"--root-ca-file={certs.ca_cert}", "--use-service-account-credentials=false",
            "--controllers=*,-nodeipam",
            "--concurrent-deployment-syncs=10", "--concurrent-replicaset-syncs=10",
            "--kube-api-qps=200", "--kube-api-burst=400",
        ], logs)
        self._start("kube-scheduler", [
            str(bins.kube_scheduler), f"--kubeconfig={self.kubeconfig}",
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            "--bind-address=127.0.0.1", f"--secure-port={free_port()}", "--leader-elect=false",
            "--kube-api-qps=200", "--kube-api-burst=400",
        ], logs)
        self._start("kwok", [
            str(bins.kwok), f"--kubeconfig={self.kubeconfig}", f"--config={bins.crds / 'kwok-stages.yaml'}",
            "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake",
            f"--server-address=127.0.0.1:{free_port()}", "--node-ip=127.0.0.1",
            "--cidr=10.244.0.1/16", "--node-lease-duration-seconds=40",
        ], logs)

        self._apply(bins.crds / "gateway-api-standard.yaml")
        self._apply(bins.crds / "istio-crds.yaml")
        if self.install_vigil_crds and VIGIL_CRDS.is_dir() and any(VIGIL_CRDS.glob("*.yaml")):
            self._apply(VIGIL_CRDS)
        self._create_nodes()
        wait_until(self._namespace_default_ready, timeout=60,
                   what="the default ServiceAccount (made by kube-controller-manager)", proc=apiserver)
        for proc in self.procs:
            if not proc.alive():
                raise StartError(f"{proc.name} exited with code {proc.proc.returncode}; "
                                 f"log {proc.log}:\n{proc.log_tail()}")

    def down(self) -> None:
        """Stop every process of this cluster and remove its state directory."""
        info = self.info or ClusterInfo.load(self.state_dir)
        for proc in reversed(self.procs):
            proc.stop()
        if info:
            _stop_pids(info.pids)
        self.procs = []
        shutil.rmtree(self.state_dir, ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.down()

    # ---------------------------------------------------------------- helpers
    def _start(self, name: str, argv: list[str], logs: Path) -> Managed:
        proc = start(name, argv, logs / f"{name}.log", detached=self.detached)
        self.procs.append(proc)
        assert self.info is not None
        self.info.pids[name] = proc.pid
        self.info.save()
        return proc

    def _get(self, path: str) -> requests.Response:
        d = self.state_dir / "pki"
        return requests.get(f"{self.server}{path}", cert=(str(d / "admin.crt"), str(d / "admin.key")),
                            verify=str(d / "ca.crt"), timeout=2)

    def kubectl(self, *args: str, check: bool = True, input: str | None = None) -> str:
        """Run the built kubectl against this cluster and return its stdout."""
        assert self.bins is not None
        result = subprocess.run(
            [str(self.bins.kubectl), f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True, text=True, input=input, check=False,
        )
        if check and result.returncode != 0:
            raise StartError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def _apply(self, path: Path) -> None:
        self.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))
        self.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")

    def _create_nodes(self) -> None:
        docs = [
            {
                "apiVersion": "v1", "kind": "Node",
                "metadata": {
                    "name": f"kwok-node-{i}",
                    "annotations": {KWOK_NODE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
                    "labels": {"kubernetes.io/hostname": f"kwok-node-{i}", "type": "kwok",
                               "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"},
                },
                "status": {
                    "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "1000"},
                    "capacity": {"cpu": "64", "memory": "256Gi", "pods": "1000"},
                },
            }
            for i in range(self.nodes)
        ]
        self.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))

    def _namespace_default_ready(self) -> bool:
        dead = [p for p in self.procs if not p.alive()]
        if dead:
            raise StartError(f"{dead[0].name} exited with code {dead[0].proc.returncode}; "
                             f"log {dead[0].log}:\n{dead[0].log_tail()}")
        return self._get("/api/v1/namespaces/default/serviceaccounts/default").ok

    def _write_kubeconfig(self, certs: pki_mod.Pki, server: str) -> None:
        def b64(p: Path) -> str:
            return base64.b64encode(p.read_bytes()).decode()

        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": self.name,
            "clusters": [{"name": self.name, "cluster": {
                "server": server, "certificate-authority-data": b64(certs.ca_cert)}}],
            "users": [{"name": "admin", "user": {
                "client-certificate-data": b64(certs.admin_cert),
                "client-key-data": b64(certs.admin_key)}}],
            "contexts": [{"name": self.name, "context": {"cluster": self.name, "user": "admin"}}],
        }
        self.kubeconfig.write_text(yaml.safe_dump(config))
        self.kubeconfig.chmod(0o600)


def _stop_pids(pids: dict[str, int]) -> None:
    for pid in reversed(list(pids.values())):
        stop_group(pid)


def reap_stale(root: Path = STATE_ROOT) -> list[str]:
    """Stop and remove clusters whose owning process died (a crashed test run)."""
    reaped = []
    if not root.is_dir():
        return reaped
    for state_dir in root.iterdir():
        info = ClusterInfo.load(state_dir) if state_dir.is_dir() else None
        if info and info.owner_pid and not pid_alive(info.owner_pid):
            _stop_pids(info.pids)
            shutil.rmtree(state_dir, ignore_errors=True)
            reaped.append(info.name)
    return reaped


def temporary_state_dir(prefix: str = "vigil-test-") -> Path:
    """A fresh state dir under the state root, so `reap_stale` can find it after a crash."""
    STATE_ROOT.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=STATE_ROOT))
