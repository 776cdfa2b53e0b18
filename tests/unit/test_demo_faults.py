"""Fault specs: what users type on the command line becomes exactly the fault they meant."""

from __future__ import annotations

import pytest

from vigil.demo.faults import (
    DisagreeFault, ErrorFault, FaultSpecError, LatencyFault, UnfairFault, fault_spec,
    faults_from_env, parse_fault, parse_faults,
)


def test_bare_kind_uses_defaults() -> None:
    kind, fault = parse_fault("latency")
    assert kind == "latency"
    assert fault == LatencyFault()


def test_parameters_are_typed() -> None:
    _, fault = parse_fault("unfair:group=a,share=0.25")
    assert fault == UnfairFault(group="a", share=0.25)


def test_several_specs_and_the_later_one_wins() -> None:
    config = parse_faults(["errors:share=0.1;latency:ms=100", "errors:share=0.2"])
    assert config.errors == ErrorFault(share=0.2)
    assert config.latency == LatencyFault(ms=100.0, share=0.05)
    assert config.active() == ["latency", "errors"]
    assert config.drift is None


@pytest.mark.parametrize(
    "spec, complaint",
    [
        ("slow", "unknown fault 'slow'"),
        ("errors:rate=0.1", "expected key=value"),
        ("errors:share=lots", "share='lots' is not a float"),
        ("errors:share=1.5", "within [0, 1]"),
        ("latency:ms=-3", "ms must be >= 0"),
        ("miscalibrated:temperature=0", "temperature must be > 0"),
        ("drift:shift=1", "within (-1, 1)"),
    ],
)
def test_bad_specs_say_what_is_wrong(spec: str, complaint: str) -> None:
    with pytest.raises(FaultSpecError, match=None) as info:
        parse_fault(spec)
    assert complaint in str(info.value)


def test_flags_win_over_environment() -> None:
    env = {"VIGIL_DEMO_FAULTS": "errors:share=0.3;drift", "VIGIL_DEMO_NONDETERMINISM": "0.02"}
    config = faults_from_env(["errors:share=0.01"], None, env)
    assert config.errors == ErrorFault(share=0.01)
    assert config.drift is not None
    assert config.nondeterminism == 0.02
    assert faults_from_env([], 0.0, env).nondeterminism == 0.0


def test_flip_share_combines_disagreement_and_noise() -> None:
    config = parse_faults(["disagree:share=0.05"], nondeterminism=0.01)
    assert config.disagree == DisagreeFault(share=0.05)
    assert config.flip_share == pytest.approx(1 - 0.95 * 0.99)


def test_fault_spec_round_trips() -> None:
    spec = fault_spec("latency", ms=300, share=0.1)
    assert spec == "latency:ms=300,share=0.1"
    assert parse_fault(spec)[1] == LatencyFault(ms=300.0, share=0.1)
