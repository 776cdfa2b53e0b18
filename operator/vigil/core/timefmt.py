"""RFC 3339 times as status stores them (whole seconds, UTC, "Z")."""

from __future__ import annotations

from datetime import datetime, timedelta


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def since(now: datetime, text: str | None) -> timedelta:
    """Time elapsed since a stored timestamp (zero when there is none)."""
    return now - parse_iso(text) if text else timedelta(0)
