"""Settings the operator reads from its environment, checked once, with errors that name the
variable and what is allowed (a typo in the chart's values must stop the pod, not be ignored)."""

from __future__ import annotations

import math
import os


def seconds(var: str, default: float) -> float:
    """A positive, finite number of seconds from `var` (`default` when unset or empty)."""
    raw = os.environ.get(var, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{var} must be a number of seconds > 0, got {raw!r}")
    return value


def port(var: str) -> int | None:
    """A TCP port from `var` (None when unset or empty)."""
    raw = os.environ.get(var, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or not 1 <= int(raw) <= 65535:
        raise ValueError(f"{var} must be a port number 1-65535, got {raw!r}")
    return int(raw)
