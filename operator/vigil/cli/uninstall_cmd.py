"""`vigil uninstall`: remove what the operator leaves on objects (not written yet)."""

from __future__ import annotations

from typing import Any


def register(sub: Any) -> None:
    """No uninstall command yet."""
