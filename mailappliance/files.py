"""Atomic, change-aware file writes, so generated files keep their timestamps when nothing changed."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_if_changed(path: Path, content: bytes, mode: int = 0o644) -> bool:
    """Write `content` to `path` atomically unless it already holds exactly that; return whether it wrote.

    The new content goes to a temporary file in the same folder and is renamed over the old one, so a
    reader (or an interrupted run) never sees half a file.
    """
    try:
        if path.read_bytes() == content:
            if (path.stat().st_mode & 0o777) != mode:
                path.chmod(mode)
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(content)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return True
