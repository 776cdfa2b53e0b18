"""`kubectl vigil status|explain|history`: read-only views for people (not written yet)."""

from __future__ import annotations

from typing import Any


def register(sub: Any) -> None:
    """No view commands yet."""
