"""Backend name -> local URL, because the demo has no cluster network.

A real gateway resolves a Service name to endpoints; the splitter resolves it through
this map instead. Entries come from ``--backend key=url`` flags and, optionally, a file
(``key=url`` lines or a JSON object) that is re-read when it changes, so the demo can
start a new model version and point a Service name at it without restarting the
splitter.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

from vigil.demo.routes import BackendRef

log = logging.getLogger("vigil.demo.backends")


class BackendMapError(ValueError):
    """A mapping entry that cannot be used; says which one."""


def parse_entry(entry: str) -> tuple[str, str]:
    """``key=http://127.0.0.1:8081`` -> (key, url)."""
    key, sep, url = entry.partition("=")
    key, url = key.strip(), url.strip().rstrip("/")
    if not sep or not key or not url.startswith(("http://", "https://")):
        raise BackendMapError(f"backend entry {entry!r}: expected NAME=http://HOST:PORT")
    return key, url


def parse_entries(entries: Iterable[str]) -> dict[str, str]:
    return dict(parse_entry(e) for e in entries)


def parse_file_text(text: str) -> dict[str, str]:
    """A JSON object {key: url}, or ``key=url`` lines (blank lines and # comments ok)."""
    stripped = text.strip()
    if stripped.startswith("{"):
        data = json.loads(stripped)
        if not isinstance(data, dict):
            raise BackendMapError("backend file: JSON must be an object of name -> url")
        return parse_entries(f"{k}={v}" for k, v in data.items())
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return parse_entries(line for line in lines if line)


def write_backend_file(path: Path, mapping: Mapping[str, str]) -> None:
    """Atomically replace a backend file (the demo calls this when a version starts)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(dict(mapping), indent=2, sort_keys=True))
    os.replace(tmp, path)


@dataclass
class BackendMap:
    """Static entries plus a reloadable file; file entries win over flags."""

    static: dict[str, str]
    file: Path | None = None
    _from_file: dict[str, str] | None = None
    _file_stamp: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        self._from_file = {}
        self.reload_if_changed()

    @property
    def entries(self) -> dict[str, str]:
        return {**self.static, **(self._from_file or {})}

    def resolve(self, ref: BackendRef) -> str | None:
        """URL for a backend, trying its most specific key first."""
        entries = self.entries
        for key in ref.keys():
            if key in entries:
                return entries[key]
        return None

    def resolve_label(self, label: str) -> str | None:
        """URL for a backend pinned by name (the label the splitter reports)."""
        return self.entries.get(label)

    def reload_if_changed(self) -> bool:
        """Re-read the file if its mtime or size changed; keep the old map on errors."""
        if self.file is None:
            return False
        try:
            stat = self.file.stat()
        except FileNotFoundError:
            return False
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._file_stamp:
            return False
        try:
            loaded = parse_file_text(self.file.read_text())
        except (OSError, ValueError) as exc:
            log.warning("backend file %s not loaded, keeping the previous map: %s", self.file, exc)
            return False
        self._file_stamp = stamp
        changed = loaded != self._from_file
        self._from_file = loaded
        if changed:
            log.info("backend map now %s", self.entries)
        return changed
