"""Writing secrets to disk: a key file is created with its final mode, never readable by others
even for a moment (no write-then-chmod)."""

from __future__ import annotations

import os
from pathlib import Path


def write_private(path: Path | str, data: bytes, *, replace: bool = True, mode: int = 0o600) -> None:
    """Create `path` with `mode` and write `data`. With `replace=False` an existing file is an
    error (FileExistsError): a key is never silently overwritten."""
    path = Path(path)
    if replace:
        path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
