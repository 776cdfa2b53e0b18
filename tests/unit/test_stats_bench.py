"""The benchmark runs, and what it measures is what `analyze` does."""

from __future__ import annotations

import time

import pytest

from bench.analysis_bench import main
from bench.methods import vigil
from bench.scenarios import scenarios
from bench.simulate import simulate
from bench.windows import window
from vigil.api.gates import Gate, MetricKind
from vigil.stats import analyze

CODE = {"Inconclusive": 0, "Pass": 1, "Fail": 2}


@pytest.mark.parametrize("name", [s.name for s in scenarios() if not s.healthy])
def test_vectorised_benchmark_path_agrees_with_analyze(name: str) -> None:
    scenario = next(s for s in scenarios() if s.name == name)
    counts = simulate(scenario, 1000, reps=6, seed=1)
    codes = vigil(scenario.family, counts)
    gate = Gate(metric=MetricKind(scenario.family))
    for rep in range(6):
        for minutes in (5, 15, 40):
            result = analyze([gate], window(counts, rep, minutes, seed=rep), confidence=0.95, min_samples=200)
            assert CODE[result.outcome.value] == codes[rep, minutes - 1], (rep, minutes)


def test_quick_benchmark_prints_every_family_in_under_a_minute(capsys: pytest.CaptureFixture[str]) -> None:
    started = time.perf_counter()
    assert main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert time.perf_counter() - started < 60
    for family in ("errorRate", "latencyP99", "predictionDrift", "calibration", "fairnessGap", "shadowDisagreement"):
        assert f"### {family}" in out
    assert "oracle SPRT" in out and "**Vigil**" in out and "1000 ModelDeployments" in out
