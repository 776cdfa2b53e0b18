"""The main job, end to end: `vigil demo --fast` on real servers, its report in a real browser,
and the guarantee that an unreachable Prometheus never promotes a model."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from matplotlib import image as mpimg

import yaml

from vigil.api.common import parse_duration
from vigil.api.names import GROUP, PLURAL_MODELDEPLOYMENTS, VERSION
from vigil.api.policy import RiskPolicySpec
from vigil.audit import chain
from vigil.demo.run import EXAMPLE_POLICY, MODEL, NS, Demo, Timing

DURATIONS = [("shadow", "duration"), ("bakeTime",), ("analysisInterval",), ("holdback", "bakeTime"),
             ("budget", "maxDuration")]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[subprocess.CompletedProcess, Path]]:
    out = tmp_path_factory.mktemp("demo")
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "vigil", "demo", "--fast", "--out", str(out)],
                          capture_output=True, text=True, timeout=900, check=False)
    print(f"demo took {time.monotonic() - started:.0f}s")
    yield proc, out


def _seconds(wire: dict, path: tuple[str, ...]) -> float:
    for key in path:
        wire = wire[key]
    return parse_duration(wire).total_seconds()  # type: ignore[arg-type]


def test_fast_demo_runs_the_shipped_example_policy_with_only_time_scaled(demo_run) -> None:
    proc, out = demo_run
    summary = json.loads((out / "summary.json").read_text())
    scale = summary["time_scale"]
    factor = float(Fraction(scale["factor"]))
    assert Fraction(scale["factor"]) == Timing.pick(fast=True).scale
    shipped = RiskPolicySpec.model_validate(yaml.safe_load(EXAMPLE_POLICY.read_text())["spec"]).to_wire()
    in_force = RiskPolicySpec.model_validate(summary["policy_in_force"]).to_wire()
    # every duration is the shipped one times the factor ...
    for path in DURATIONS:
        assert _seconds(in_force, path) == _seconds(shipped, path) * factor, path
    # ... and nothing else differs: gates, margins, confidences, steps, minSamples, noData, ...
    for wire in (shipped, in_force):
        for path in DURATIONS:
            node = wire
            for key in path[:-1]:
                node = node[key]
            del node[path[-1]]
    assert in_force == shipped
    assert summary["policy_differences_beyond_time"] == []
    assert [f["field"] for f in scale["scaled"]] == [".".join(p) for p in DURATIONS]
    # the start says what was scaled, by how much, and that nothing else changed
    assert f"time scale {scale['factor']}" in proc.stdout
    assert "nothing else changed" in proc.stdout
    assert "shadow.duration: 10m -> " in proc.stdout and "bakeTime: 10m -> " in proc.stdout
    assert scale["requests_per_scaled_minute"] == pytest.approx(scale["rate_per_second"] * 60 * factor)
    assert f"real rollout at {scale['requests_per_scaled_minute']:.0f} requests/min" in proc.stdout


def test_fast_demo_promotes_good_and_rolls_back_bad(demo_run) -> None:
    proc, out = demo_run
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    summary = json.loads((out / "summary.json").read_text())
    outcomes = {r["version"]: r["outcome"] for r in summary["rollouts"]}
    assert outcomes == {"v2": "promoted", "v3": "rolled back"}
    # at the end the stable v2 takes all traffic; the bad v3 none
    assert summary["final_route_weights"] == {"fraud-v2": 100}
    status = summary["final_status"]
    assert status["phase"] == "RolledBack" and status["stableVersion"] == "v2" and status["canaryVersion"] == "v3"
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions["Stalled"] == "True" and conditions["Ready"] == "False"
    reasons = {e["reason"] for e in summary["events"]}
    assert {"RolloutStarted", "ShadowPassed", "StepPassed", "Promoted", "RolledBack"} <= reasons
    # the bad version was stopped before full exposure, with evidence from the real analysis
    records = json.loads((out / "audit.json").read_text())
    assert chain.verify(records).ok
    rollback = next(r for r in records if r["action"] == "rollback")
    failed = [v for v in rollback["evidence"]["analysis"]["verdicts"] if v["outcome"] == "Fail"]
    assert failed and all(v["samples"]["canary"] > 0 for v in failed)
    assert rollback["weight"] == 0 or rollback["weight"] is None or rollback["weight"] < 100
    v3 = next(r for r in summary["rollouts"] if r["version"] == "v3")
    assert v3["seconds_to_decision"] < 150
    # the default scenario's regression is caught in shadow: no user request reached v3
    assert v3["rollback_phase"] == "Shadow" and v3["requests_served_by_version"] == 0
    v2 = next(r for r in summary["rollouts"] if r["version"] == "v2")
    assert v2["seconds_to_promote_decision"] is not None
    assert v2["seconds_to_promote_decision"] < v2["seconds_to_decision"]  # then the holdback
    promote = next(r for r in records if r["action"] == "promote")
    assert promote["evidence"]["analysis"]["outcome"] == "Pass"
    # the operator defers the plans of decided gates between decisions; every record is completed:
    # a whole plan always says in words what it found (a deferred one has no note, and records leave
    # out empty values)
    judged = [v for r in records for v in ((r.get("evidence") or {}).get("analysis") or {}).get("verdicts", [])
              if v["outcome"] != "NoData"]
    assert judged and all(v["plan"].get("note") for v in judged)
    assert all("timeToPassSeconds" in v["plan"] for v in promote["evidence"]["analysis"]["verdicts"])
    assert "OK: good version promoted" in proc.stdout


def test_report_renders_in_headless_chromium(demo_run, tmp_path: Path) -> None:
    _, out = demo_run
    html = out / "report.html"
    assert html.exists()
    assert Path(CHROMIUM).exists(), "chromium is not installed (hack/setup.sh installs Debian's chromium)"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]
    shot = tmp_path / "report.png"
    subprocess.run([CHROMIUM, *flags, f"--screenshot={shot}", "--window-size=1280,2400", html.as_uri()],
                   capture_output=True, timeout=120, check=True)
    dom = subprocess.run([CHROMIUM, *flags, "--dump-dom", html.as_uri()],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    for plot in ("plot-weights", "plot-error-rate", "plot-latency-p99", "plot-drift"):
        assert f'id="{plot}"' in dom, f"{plot} missing from the rendered page"
    assert dom.count('class="decision-marker') >= 4
    assert "rollback" in dom.lower() and "promote" in dom.lower()
    pixels = mpimg.imread(str(shot))
    assert pixels.shape[0] > 1000 and float(np.std(pixels)) > 0.05, "the screenshot is blank"


def test_prometheus_down_mid_rollout_never_promotes(tmp_path: Path) -> None:
    demo = Demo(argparse.Namespace(scenario="drift-latency", fast=True, out=str(tmp_path)))
    with demo.stack:
        demo.start()
        demo.custom.patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL_MODELDEPLOYMENTS, MODEL, {
            "spec": {"version": "v2", "artifact": {"uri": "s3://models/fraud/v2",
                                                   "digest": "sha256:" + "2" * 64}}})
        assert demo.wait_phase(lambda s: s.get("phase") == "Shadow", 60, "shadow")
        demo.prom.stop()
        # The shipped policy says noData: rollback after 10 analyses without data. Without metrics
        # the rollout holds (and may roll back); it never promotes.
        deadline = time.monotonic() + 60
        seen, no_data = set(), None
        while time.monotonic() < deadline:
            s = demo.status()
            seen.add((s.get("phase"), s.get("verdict")))
            if s.get("verdict") == "NoData":
                no_data = s.get("lastAnalysis")
            assert s.get("stableVersion") == "v1", f"promoted without metrics: {s}"
            assert s.get("phase") in ("Shadow", "Canary", "RollingBack", "RolledBack"), s
            if s.get("phase") == "RolledBack":
                break
            time.sleep(1)
        assert ("Shadow", "NoData") in seen or ("Canary", "NoData") in seen, seen
        assert "unreach" in json.dumps(no_data).lower() or "connect" in json.dumps(no_data).lower(), no_data


def _descendants(root: int) -> set[int]:
    """Every process below `root`, from /proc (children first found by their parent pid)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - found
        found |= frontier
    return found


def test_ctrl_c_stops_everything_cleanly(tmp_path: Path) -> None:
    import signal

    from vigil.dev.process import pid_alive

    proc = subprocess.Popen([sys.executable, "-m", "vigil", "demo", "--fast", "--out", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "sending" in line and "requests/s" in line:
                break
        children = _descendants(proc.pid)
        names = {Path(f"/proc/{p}/comm").read_text().strip() for p in children if Path(f"/proc/{p}/comm").exists()}
        assert {"etcd", "kube-apiserver", "prometheus"} <= names, names
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
    time.sleep(1)
    left = [p for p in children if pid_alive(p)]
    assert not left, f"still running after Ctrl-C: {left}"
