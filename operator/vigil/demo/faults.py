"""Faults a demo model version can carry, parsed from flags or the environment.

Each fault mimics a regression that a rollout should catch, and several are built so
that HTTP error rates alone would *not* catch them (tail latency, drift, calibration,
fairness, disagreement). The spec syntax is ``kind[:key=value,...]``, several specs
separated by ``;`` in the environment variable ``VIGIL_DEMO_FAULTS``.

    latency:ms=250,share=0.05     extra 250 ms on 5% of requests (p99 up, median same)
    errors:share=0.05             5% of requests answer 503
    drift:shift=0.15              positive-class score shifted up by 0.15
    miscalibrated:temperature=3   logits divided by 3: same classes, lower confidence
    unfair:group=b,share=0.5      half of group b's positive predictions turned negative
    disagree:share=0.05           5% of predictions flipped against the stable model
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from typing import Any, Iterable, Mapping

FAULTS_ENV = "VIGIL_DEMO_FAULTS"
NONDETERMINISM_ENV = "VIGIL_DEMO_NONDETERMINISM"


@dataclass(frozen=True)
class LatencyFault:
    """Extra delay on a share of requests; share < 0.5 moves the tail, not the median."""

    ms: float = 250.0
    share: float = 0.05


@dataclass(frozen=True)
class ErrorFault:
    """A share of requests fail with HTTP 503."""

    share: float = 0.05


@dataclass(frozen=True)
class DriftFault:
    """Every positive-class score moves by ``shift`` (clipped into (0, 1))."""

    shift: float = 0.15


@dataclass(frozen=True)
class MiscalibrationFault:
    """Logits divided by ``temperature``: classes unchanged, confidence distorted.

    temperature > 1 makes the model under-confident, < 1 over-confident.
    """

    temperature: float = 3.0


@dataclass(frozen=True)
class UnfairFault:
    """In one group, a share of positive predictions are turned negative."""

    group: str = "b"
    share: float = 0.5


@dataclass(frozen=True)
class DisagreeFault:
    """A share of predictions are flipped (what a shadow comparison should notice)."""

    share: float = 0.05


FAULT_TYPES: dict[str, type] = {
    "latency": LatencyFault,
    "errors": ErrorFault,
    "drift": DriftFault,
    "miscalibrated": MiscalibrationFault,
    "unfair": UnfairFault,
    "disagree": DisagreeFault,
}


@dataclass(frozen=True)
class FaultConfig:
    """All faults of one server process; ``None`` means the fault is off.

    ``nondeterminism`` is not a fault: it is the natural flip rate of a model that is
    not bit-for-bit reproducible, so that shadow agreement is realistic (about 1%).
    """

    latency: LatencyFault | None = None
    errors: ErrorFault | None = None
    drift: DriftFault | None = None
    miscalibrated: MiscalibrationFault | None = None
    unfair: UnfairFault | None = None
    disagree: DisagreeFault | None = None
    nondeterminism: float = 0.0

    @property
    def flip_share(self) -> float:
        """Probability that a prediction is flipped, from disagreement and noise."""
        disagree = self.disagree.share if self.disagree else 0.0
        return 1.0 - (1.0 - disagree) * (1.0 - self.nondeterminism)

    def active(self) -> list[str]:
        """Names of the faults that are switched on, for logs and /healthz."""
        return [f.name for f in fields(self) if f.name in FAULT_TYPES and getattr(self, f.name)]

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self.active():
            out[name] = dict(vars(getattr(self, name)))
        out["nondeterminism"] = self.nondeterminism
        return out


class FaultSpecError(ValueError):
    """A fault spec that cannot be understood; the message says which part and why."""


def parse_fault(spec: str) -> tuple[str, Any]:
    """Parse one ``kind[:key=value,...]`` spec into (kind, fault dataclass)."""
    kind, _, params = spec.strip().partition(":")
    kind = kind.strip()
    if kind not in FAULT_TYPES:
        raise FaultSpecError(
            f"unknown fault {kind!r} in {spec!r}; known: {', '.join(sorted(FAULT_TYPES))}"
        )
    fault_type = FAULT_TYPES[kind]
    defaults = fault_type()
    known = {f.name: f for f in fields(fault_type)}
    values: dict[str, Any] = {}
    for item in filter(None, (p.strip() for p in params.split(","))):
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or key not in known:
            raise FaultSpecError(
                f"fault {kind!r}: expected key=value with key in {sorted(known)}, got {item!r}"
            )
        current = getattr(defaults, key)
        try:
            values[key] = type(current)(raw.strip())
        except ValueError as exc:
            raise FaultSpecError(f"fault {kind!r}: {key}={raw!r} is not a {type(current).__name__}") from exc
    fault = replace(defaults, **values)
    _validate(kind, fault)
    return kind, fault


def _validate(kind: str, fault: Any) -> None:
    share = getattr(fault, "share", None)
    if share is not None and not 0.0 <= share <= 1.0:
        raise FaultSpecError(f"fault {kind!r}: share must be within [0, 1], got {share}")
    if isinstance(fault, LatencyFault) and fault.ms < 0:
        raise FaultSpecError(f"fault 'latency': ms must be >= 0, got {fault.ms}")
    if isinstance(fault, MiscalibrationFault) and fault.temperature <= 0:
        raise FaultSpecError(f"fault 'miscalibrated': temperature must be > 0, got {fault.temperature}")
    if isinstance(fault, DriftFault) and not -1.0 < fault.shift < 1.0:
        raise FaultSpecError(f"fault 'drift': shift must be within (-1, 1), got {fault.shift}")


def parse_faults(specs: Iterable[str], nondeterminism: float = 0.0) -> FaultConfig:
    """Build a FaultConfig from specs; a later spec of the same kind wins."""
    if not 0.0 <= nondeterminism <= 1.0:
        raise FaultSpecError(f"nondeterminism must be within [0, 1], got {nondeterminism}")
    chosen: dict[str, Any] = {}
    for spec in specs:
        for part in filter(None, (s.strip() for s in spec.split(";"))):
            kind, fault = parse_fault(part)
            chosen[kind] = fault
    return FaultConfig(nondeterminism=nondeterminism, **chosen)


def faults_from_env(
    flag_specs: Iterable[str] = (),
    flag_nondeterminism: float | None = None,
    environ: Mapping[str, str] | None = None,
) -> FaultConfig:
    """Environment specs first, then flag specs (flags win for the same kind)."""
    env = os.environ if environ is None else environ
    specs = [env.get(FAULTS_ENV, "")] + list(flag_specs)
    if flag_nondeterminism is not None:
        nondeterminism = flag_nondeterminism
    else:
        raw = env.get(NONDETERMINISM_ENV, "").strip()
        try:
            nondeterminism = float(raw) if raw else 0.0
        except ValueError as exc:
            raise FaultSpecError(f"{NONDETERMINISM_ENV}={raw!r} is not a number") from exc
    return parse_faults(specs, nondeterminism)


def fault_spec(kind: str, **params: Any) -> str:
    """The spec string for a fault, for callers that start servers (the demo, tests)."""
    if kind not in FAULT_TYPES:
        raise FaultSpecError(f"unknown fault {kind!r}")
    body = ",".join(f"{k}={v}" for k, v in params.items())
    return f"{kind}:{body}" if body else kind


__all__ = [
    "FAULTS_ENV",
    "NONDETERMINISM_ENV",
    "FaultConfig",
    "FaultSpecError",
    "LatencyFault",
    "ErrorFault",
    "DriftFault",
    "MiscalibrationFault",
    "UnfairFault",
    "DisagreeFault",
    "parse_fault",
    "parse_faults",
    "faults_from_env",
    "fault_spec",
]
