"""Real processes, real HTTP: model servers + splitter + load generator on loopback.

The route comes from a file here (the apiserver-backed watch has its own test in
test_demo_parts_kube_route.py); what is checked is that real traffic splits by the
weights, mirrors as asked, and that every server's /metrics matches what was sent.
"""

from __future__ import annotations

import json
import math
import time
import urllib.request
from typing import Any, Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from vigil.demo.backends import write_backend_file
from vigil.demo.metrics import CONTRACT_LABELS
from vigil.demo.processes import DemoProcesses
from vigil.dev.process import ManagedProcess

pytestmark = pytest.mark.integration


def route_doc(weights: dict[str, int], mirror: tuple[str, int] | None = None) -> str:
    rule: dict[str, Any] = {"backendRefs": [{"name": n, "port": 80, "weight": w} for n, w in weights.items()]}
    if mirror:
        rule["filters"] = [{"type": "RequestMirror", "requestMirror": {
            "backendRef": {"name": mirror[0], "port": 80}, "percent": mirror[1]}}]
    return json.dumps({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                       "metadata": {"name": "iris", "namespace": "demo"}, "spec": {"rules": [rule]}})


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()


def values(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """All samples of a /metrics page, keyed by (name, sorted labels)."""
    out = {}
    for family in text_string_to_metric_families(get(url + "/metrics")):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def total(samples: dict[Any, float], name: str, **labels: str) -> float:
    return sum(v for (n, labs), v in samples.items()
               if n == name and all(dict(labs).get(k) == want for k, want in labels.items()))


def wait_until(check: Any, timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def parts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    workdir = tmp_path_factory.mktemp("demo-parts")
    with DemoProcesses(workdir) as procs:
        servers = {
            "iris-v1": procs.start_model_server("iris", "v1", namespace="demo", wait=False),
            "iris-v2": procs.start_model_server("iris", "v2", namespace="demo", wait=False,
                                                faults=["errors:share=0.1"]),
            "iris-v3": procs.start_model_server("iris", "v3", namespace="demo", wait=False,
                                                faults=["disagree:share=0.2"]),
        }
        for server in servers.values():
            server.wait_ready(timeout=60)
        route = workdir / "route.json"
        route.write_text(route_doc({"iris-v1": 75, "iris-v2": 25}, ("iris-v3", 50)))
        backend_file = workdir / "backends.json"
        write_backend_file(backend_file, {name: s.url for name, s in servers.items()})  # type: ignore[misc]
        splitter = procs.start_splitter(route_file=route, backend_file=backend_file, seed=3)
        yield {"procs": procs, "servers": servers, "splitter": splitter, "route": route,
               "backend_file": backend_file, "workdir": workdir}
    leftovers = [s.pid for s in servers.values() if s.is_running()] + (
        [splitter.pid] if splitter.is_running() else [])
    assert leftovers == []


def run_load(parts: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    procs: DemoProcesses = parts["procs"]
    load: ManagedProcess = procs.start_loadgen(parts["splitter"].url, **kwargs)
    return load.wait_summary(timeout=120)


def test_traffic_splits_by_weight_and_metrics_match_it(parts: dict[str, Any]) -> None:
    servers: dict[str, ManagedProcess] = parts["servers"]
    summary = run_load(parts, rate=150, count=800, feedback_delay=(0.2, 0.6), seed=1)
    n = summary["sent"]
    assert n == 800 and summary["unreachable"] == 0
    by_backend = summary["by_backend"]
    assert set(by_backend) == {"iris-v1", "iris-v2"}  # the mirror never answers a client
    assert abs(by_backend["iris-v2"] - 0.25 * n) < 3 * math.sqrt(n * 0.25 * 0.75)

    split = values(parts["splitter"].url)
    for backend, count in by_backend.items():
        assert total(split, "vigil_splitter_requests_total", backend=backend, routing="weighted") == count
    assert total(split, "vigil_splitter_backend_weight", backend="iris-v2") == 25

    v1, v2, v3 = (values(servers[f"iris-v{i}"].url) for i in (1, 2, 3))
    # Each server counted exactly the requests the splitter sent it.
    assert total(v1, "vigil_model_requests_total") == by_backend["iris-v1"]
    assert total(v2, "vigil_model_requests_total") == by_backend["iris-v2"]
    assert total(v1, "vigil_model_requests_total", outcome="error") == 0
    errors = total(v2, "vigil_model_requests_total", outcome="error")
    assert errors == summary["server_errors"]
    assert abs(errors - 0.1 * by_backend["iris-v2"]) < 3 * math.sqrt(by_backend["iris-v2"] * 0.09) + 1
    assert total(v1, "vigil_model_request_duration_seconds_count") == by_backend["iris-v1"]
    assert total(v1, "vigil_model_prediction_score_count") == total(v1, "vigil_model_predictions_total")
    assert summary["by_version"] == {"v1": by_backend["iris-v1"], "v2": by_backend["iris-v2"] - errors}

    # Every answered request got its label, at the version that answered it.
    assert summary["feedback_sent"] == summary["answered"]
    assert total(v1, "vigil_model_label_feedback_total") == summary["by_version"]["v1"]
    assert total(v2, "vigil_model_label_feedback_total") == summary["by_version"]["v2"]
    assert total(v3, "vigil_model_label_feedback_total") == 0
    correct = total(v1, "vigil_model_label_feedback_total", correct="true") + \
        total(v2, "vigil_model_label_feedback_total", correct="true")
    assert correct == summary["correct"]

    # Half the requests were mirrored to v3, which compared with the answering version.
    mirrored = wait_until(lambda: total(values(parts["splitter"].url),
                                        "vigil_splitter_mirrored_requests_total") or None,
                          what="mirrored requests")
    assert abs(mirrored - 0.5 * n) < 3 * math.sqrt(n * 0.25)
    v3 = values(servers["iris-v3"].url)
    assert total(v3, "vigil_model_requests_total") == mirrored
    compared = total(v3, "vigil_model_shadow_comparisons_total")
    assert 0 < compared <= mirrored  # a 503 from v2 has no prediction to compare with
    disagree = total(v3, "vigil_model_shadow_comparisons_total", outcome="disagree")
    assert abs(disagree / compared - 0.2) < 3 * math.sqrt(0.2 * 0.8 / compared)
    assert total(v1, "vigil_model_shadow_comparisons_total") == 0
    # the live control: every mirrored request the answering version served, it scored twice
    control = total(v1, "vigil_model_shadow_control_comparisons_total") + \
        total(values(servers["iris-v2"].url), "vigil_model_shadow_control_comparisons_total")
    assert compared <= control <= mirrored
    assert total(v3, "vigil_model_shadow_control_comparisons_total") == 0


def test_real_process_exposes_exactly_the_contract(parts: dict[str, Any]) -> None:
    text = get(parts["servers"]["iris-v1"].url + "/metrics")
    families = {f.name: f for f in text_string_to_metric_families(text)}
    expected = {name.removesuffix("_total") for name in CONTRACT_LABELS}
    assert set(families) == expected  # no _created, no process collectors
    for family in families.values():
        for sample in family.samples:
            assert sample.labels["namespace"] == "demo" and sample.labels["model"] == "iris"


def test_weight_and_backend_changes_apply_without_restart(parts: dict[str, Any]) -> None:
    procs: DemoProcesses = parts["procs"]
    parts["route"].write_text(route_doc({"iris-v1": 0, "iris-v2": 100}))
    wait_until(lambda: json.loads(get(parts["splitter"].url + "/_splitter/route"))["weights"]
               == {"iris-v1": 0, "iris-v2": 100}, what="new weights")
    summary = run_load(parts, rate=200, count=60, feedback_delay=(0, 0), seed=2)
    assert summary["by_backend"] == {"iris-v2": 60}

    v4 = procs.start_model_server("iris", "v4", namespace="demo")
    write_backend_file(parts["backend_file"], {**{n: s.url for n, s in parts["servers"].items()},
                                               "iris-v4": v4.url})
    parts["route"].write_text(route_doc({"iris-v4": 1}))
    wait_until(lambda: json.loads(get(parts["splitter"].url + "/_splitter/route"))["weights"]
               == {"iris-v4": 1}, what="route to v4")
    wait_until(lambda: "iris-v4" in json.loads(get(parts["splitter"].url + "/_splitter/route"))["backends"],
               what="backend map with v4")
    summary = run_load(parts, rate=200, count=40, feedback_delay=(0, 0), seed=3)
    assert summary["by_version"] == {"v4": 40}
    assert total(values(v4.url), "vigil_model_label_feedback_total") == 40
    procs.stop(v4)
