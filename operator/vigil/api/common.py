"""Types shared by the Vigil resources: camelCase models, durations, object references."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

DURATION_PATTERN = r"^([0-9]+h)?([0-9]+m)?([0-9]+s)?$"
_DURATION_RE = re.compile(r"^(?:(?P<h>[0-9]+)h)?(?:(?P<m>[0-9]+)m)?(?:(?P<s>[0-9]+)s)?$")

Duration = Annotated[
    str,
    Field(
        pattern=DURATION_PATTERN,
        min_length=2,
        description="A duration such as 90s, 5m or 1h30m (hours, minutes, seconds).",
    ),
]

DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DnsLabel = Annotated[str, Field(pattern=DNS_LABEL_PATTERN, min_length=1, max_length=63)]


def parse_duration(text: str) -> timedelta:
    """Parse a `Duration` string ("1h30m", "90s"); raises ValueError naming what is allowed."""
    match = _DURATION_RE.match(text or "")
    if not text or not match:
        raise ValueError(f"{text!r} is not a duration: use hours/minutes/seconds such as 90s, 5m, 1h30m")
    parts = {k: int(v) for k, v in match.groupdict().items() if v}
    return timedelta(hours=parts.get("h", 0), minutes=parts.get("m", 0), seconds=parts.get("s", 0))


STEPS_INCREASING_CEL = "self.steps.isSorted() && self.steps.all(x, self.steps.exists_one(y, y == x))"


def check_steps(steps: list[int]) -> list[int]:
    """Canary weights: percentages in 1..100, strictly increasing (the same rule as the CEL)."""
    outside = [w for w in steps if not 1 <= w <= 100]
    if outside:
        raise ValueError(f"steps: {outside} are not percentages in 1..100")
    if any(b <= a for a, b in zip(steps, steps[1:])):
        raise ValueError(f"steps must be strictly increasing, got {steps}")
    return steps


class CamelModel(BaseModel):
    """Base for CR fields: camelCase on the wire, snake_case in Python, unknown fields rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )

    def to_wire(self) -> dict:
        """The JSON shape stored in Kubernetes (camelCase, defaults included, no nulls)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class LocalObjectReference(CamelModel):
    """A reference to an object in the same namespace."""

    name: DnsLabel = Field(description="Name of the object, in the same namespace.")
