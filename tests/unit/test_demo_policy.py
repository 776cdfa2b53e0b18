"""`vigil demo` runs the shipped example policy: only its durations are scaled, by one factor."""

from __future__ import annotations

import copy
from fractions import Fraction

import pytest
import yaml

from vigil.demo.run import EXAMPLE_POLICY, Timing, load_policy, policy_differences, scale_policy


def test_every_duration_is_scaled_by_one_factor_and_nothing_else_changes() -> None:
    before = EXAMPLE_POLICY.read_bytes()
    shipped = load_policy()
    scaled, fields = scale_policy(shipped, Fraction(1, 20))
    assert {f.path: (f.shipped, f.demo) for f in fields} == {
        "shadow.duration": ("10m", "30s"), "bakeTime": ("10m", "30s"), "analysisInterval": ("1m", "3s"),
        "holdback.bakeTime": ("30m", "1m30s"), "budget.maxDuration": ("4h", "12m")}
    assert [f.path for f in fields if not f.from_file] == ["budget.maxDuration"]  # the default, scaled
    # the document differs from the file only at those paths (and the added budget)
    expected = copy.deepcopy(yaml.safe_load(EXAMPLE_POLICY.read_text()))
    expected["spec"]["shadow"]["duration"] = "30s"
    expected["spec"]["bakeTime"] = "30s"
    expected["spec"]["analysisInterval"] = "3s"
    expected["spec"]["holdback"]["bakeTime"] = "1m30s"
    expected["spec"]["budget"] = {"maxDuration": "12m"}
    assert scaled == expected
    assert policy_differences(shipped["spec"], scaled["spec"], Fraction(1, 20)) == []
    assert EXAMPLE_POLICY.read_bytes() == before  # never written


def test_any_other_change_is_a_difference() -> None:
    shipped = load_policy()
    scaled, _ = scale_policy(shipped, Fraction(1, 20))
    loosened = copy.deepcopy(scaled)
    loosened["spec"]["gates"][0]["maxRelativeIncrease"] = 0.5
    assert any("gates" in d for d in policy_differences(shipped["spec"], loosened["spec"], Fraction(1, 20)))
    uneven = copy.deepcopy(scaled)
    uneven["spec"]["bakeTime"] = "10s"  # a different factor for one duration
    assert any(d.startswith("bakeTime") for d in policy_differences(shipped["spec"], uneven["spec"], Fraction(1, 20)))
    fewer = copy.deepcopy(scaled)
    fewer["spec"]["minSamples"] = 100
    assert any(d.startswith("minSamples") for d in policy_differences(shipped["spec"], fewer["spec"], Fraction(1, 20)))


def test_a_factor_must_give_whole_seconds() -> None:
    with pytest.raises(SystemExit, match="whole seconds"):
        scale_policy(load_policy(), Fraction(1, 7))  # 1m -> 8.57 s


def test_the_load_stands_for_a_stated_real_traffic(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VIGIL_DEMO_TIME_SCALE", raising=False)
    monkeypatch.delenv("VIGIL_DEMO_RATE", raising=False)
    for fast in (True, False):
        assert Timing.pick(fast).equivalent_per_minute == pytest.approx(1000)
    # e.g. 100 requests/s at a factor of 1/20: a scaled minute (3 s) carries 300 requests
    monkeypatch.setenv("VIGIL_DEMO_TIME_SCALE", "1/20")
    monkeypatch.setenv("VIGIL_DEMO_RATE", "100")
    assert Timing.pick(True).equivalent_per_minute == pytest.approx(300)
