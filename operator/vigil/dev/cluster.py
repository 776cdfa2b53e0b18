"""A real, local Kubernetes control plane: etcd, apiserver, controller-manager, scheduler, kwok.

Everything listens on free loopback ports and lives in one state directory: data, certificates,
logs, the admin kubeconfig and `cluster.json` (which processes belong to it, with their start
times). The processes are the rows of `vigil.dev.components.COMPONENTS`, run by the one
supervisor of `vigil.dev.process`. `down()` stops them all and removes the directory;
`reap_stale()` cleans up after a run that crashed. A saved PID is signalled only while it is
still the process that was started.

kwok plays the kubelet: it makes a few simulated nodes Ready and moves Pods scheduled on them
to Running/Ready, so Deployments become Available as in a real cluster.
"""

from __future__ import annotations

import base64
import json
import os
import re
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
from vigil.dev.components import COMPONENTS, KWOK_NODE_ANNOTATION, Layout
from vigil.dev.process import (
    ManagedProcess,
    ProcessRecord,
    ProcessSupervisor,
    StartError,
    ensure_port_free,
    free_port,
    pid_alive,
    stop_records,
    wait_until,
)
from vigil.files import write_private

STATE_ROOT = Path(os.environ.get("VIGIL_STATE_DIR", Path.home() / ".local" / "state" / "vigil"))
VIGIL_CRDS = REPO_ROOT / "crds"
CLUSTER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")


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
    started: dict[str, float] = field(default_factory=dict)  # process start times: is a PID still ours?

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

    def records(self) -> list[ProcessRecord]:
        """The saved processes, newest first, each signalled later only while it is still the same."""
        return [ProcessRecord(pid, self.started.get(name)) for name, pid in reversed(self.pids.items())]


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
        if not CLUSTER_NAME.fullmatch(name) or name in (".", ".."):
            raise StartError(f"cluster name {name!r}: use 1-63 letters, digits, '-', '_' or '.', "
                             "starting with a letter or digit (a name is not a path)")
        self.name = name
        self.state_dir = Path(state_dir) if state_dir else STATE_ROOT / name
        self.nodes = nodes
        self.detached = detached
        self.apiserver_port = apiserver_port
        self.install_vigil_crds = install_vigil_crds
        self.supervisor: ProcessSupervisor | None = None
        self.bins: ControlPlaneBinaries | None = None
        self.info: ClusterInfo | None = None
        self.layout: Layout | None = None

    # ---------------------------------------------------------------- paths
    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def procs(self) -> list[ManagedProcess]:
        """The processes this object started (none after `down()`)."""
        return list(self.supervisor.processes) if self.supervisor else []

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
                stop_records(info.records())
            elif any(self.state_dir.iterdir()):
                raise StartError(
                    f"{self.state_dir} exists and is not a Vigil cluster directory; "
                    "remove it or pass another --state-dir"
                )
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def _start_all(self, timeout: float) -> None:
        """Start the COMPONENTS in order, each ready before the next; then CRDs, nodes, namespace."""
        assert self.bins is not None
        d = self.state_dir
        certs = pki_mod.generate(d / "pki")
        layout = Layout(bins=self.bins, state_dir=d, certs=certs, kubeconfig=self.kubeconfig,
                        etcd_port=free_port(), etcd_peer_port=free_port(),
                        apiserver_port=self.apiserver_port or free_port(), free_port=free_port)
        self._write_kubeconfig(certs, layout.server)
        self.info = ClusterInfo(
            name=self.name, state_dir=str(d), kubeconfig=str(self.kubeconfig), server=layout.server,
            owner_pid=None if self.detached else os.getpid(),
        )
        self.info.save()
        self.supervisor = ProcessSupervisor(d / "logs", detached=self.detached)
        apiserver: ManagedProcess | None = None
        for component in COMPONENTS:
            proc = self._start(component.name, component.argv(layout))
            if component.name == "kube-apiserver":
                apiserver = proc
            if component.ready is not None:
                check, what = component.ready, component.ready_what
                wait_until(lambda: check(layout), timeout=component.ready_timeout or timeout,
                           what=what, proc=proc, interval=component.poll_seconds)

        self.layout = layout
        self._apply(self.bins.crds / "gateway-api-standard.yaml")
        self._apply(self.bins.crds / "istio-crds.yaml")
        if self.install_vigil_crds and VIGIL_CRDS.is_dir() and any(VIGIL_CRDS.glob("*.yaml")):
            self._apply(VIGIL_CRDS)
        self._create_nodes()
        wait_until(self._namespace_default_ready, timeout=60,
                   what="the default ServiceAccount (made by kube-controller-manager)", proc=apiserver)
        self._fail_if_one_died()

    def restart_apiserver(self, timeout: float = 120.0) -> None:
        """Stop kube-apiserver (SIGTERM, as an upgrade does) and start it again on the same port
        and etcd: clients see refused connections, dropped watches and 429s while it comes back.
        For fault tests. Call it from a thread that outlives the cluster: the control plane's
        processes die with the thread that started them (pdeathsig is per thread on Linux)."""
        assert self.supervisor is not None and self.layout is not None
        layout = self.layout
        component = next(c for c in COMPONENTS if c.name == "kube-apiserver")
        old = next(p for p in self.supervisor.processes if p.name == component.name)
        self.supervisor.stop(old)
        proc = self._start(component.name, component.argv(layout))
        if component.ready is not None:
            check = component.ready
            wait_until(lambda: check(layout), timeout=component.ready_timeout or timeout,
                       what=component.ready_what, proc=proc, interval=component.poll_seconds)

    def compact_etcd(self) -> int:
        """Compact etcd's history up to its current revision and return that revision. After the
        next apiserver restart, a watch from an older resourceVersion is answered 410 Gone, as on a
        long-running cluster; for tests of the clients' re-list."""
        assert self.layout is not None
        url = self.layout.etcd_url
        revision = int(requests.post(f"{url}/v3/kv/range", json={"key": "AA=="}, timeout=10).json()["header"]["revision"])
        answer = requests.post(f"{url}/v3/kv/compaction", json={"revision": revision, "physical": True}, timeout=30)
        answer.raise_for_status()
        return revision

    def down(self) -> None:
        """Stop every process of this cluster and remove its state directory."""
        info = self.info or ClusterInfo.load(self.state_dir)
        if self.supervisor is not None:
            self.supervisor.close()
            self.supervisor = None
        if info:
            stop_records(info.records())
        shutil.rmtree(self.state_dir, ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.down()

    # ---------------------------------------------------------------- helpers
    def _start(self, name: str, argv: list[str]) -> ManagedProcess:
        assert self.supervisor is not None and self.info is not None
        proc = self.supervisor.start(name, argv)
        self.info.pids[name] = proc.pid
        if proc.record.started is not None:
            self.info.started[name] = proc.record.started
        self.info.save()
        return proc

    def _fail_if_one_died(self) -> None:
        dead = [p for p in self.procs if not p.is_running()]
        if dead:
            raise StartError(f"{dead[0].name} exited with code {dead[0].returncode}; "
                             f"log {dead[0].log_path}:\n{dead[0].log_tail()}")

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
        self._fail_if_one_died()
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
        write_private(self.kubeconfig, yaml.safe_dump(config).encode())


def reap_stale(root: Path = STATE_ROOT) -> list[str]:
    """Stop and remove clusters whose owning process died (a crashed test run)."""
    reaped: list[str] = []
    if not root.is_dir():
        return reaped
    for state_dir in root.iterdir():
        info = ClusterInfo.load(state_dir) if state_dir.is_dir() else None
        if info and info.owner_pid and not pid_alive(info.owner_pid):
            stop_records(info.records())
            shutil.rmtree(state_dir, ignore_errors=True)
            reaped.append(info.name)
    return reaped


def temporary_state_dir(prefix: str = "vigil-test-") -> Path:
    """A fresh state dir under the state root, so `reap_stale` can find it after a crash."""
    STATE_ROOT.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=STATE_ROOT))
