"""The hot store: each distinct message once, gzip-compressed, at objects/ab/cd/<sha256>.gz.

Hot files are written while Postfix waits at end of DATA, so the compressor must be fast: gzip level 6
(zlib) compresses mail at 35-80 MB/s on one core of the project's 2-core machine, where xz (lzma) managed 2-18
MB/s at presets 0-6, for about the same ratio on a single message (0.59 vs 0.60 stored/received on
text mail, 0.50 vs 0.49 on HTML mail, 0.75 for both on mail with attachments, which are already compressed
before base64). xz gains only across many messages at once, which is what the cold packs do (packs.py).
gzip rather than raw zlib: `zcat` reads a file on the host without our code.

A file is written to a temporary name in its final directory, fsync'd, renamed into place and the directory
fsync'd, so after a crash a file is either absent or complete, never half-written under its real name.
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SUFFIX = ".gz"
TEMP_PREFIX = ".tmp-"
LEVEL = 6


def path_for(objects_dir: Path, sha256: str) -> Path:
    return objects_dir / sha256[:2] / sha256[2:4] / f"{sha256}{SUFFIX}"


def compress(raw: bytes) -> bytes:
    # mtime=0: the same message always gives the same file.
    return gzip.compress(raw, compresslevel=LEVEL, mtime=0)


def decompress(data: bytes) -> bytes:
    """The message in a stored file; ValueError when the file is not a complete gzip stream."""
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as error:
        raise ValueError(str(error) or type(error).__name__) from None


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs(path: Path, top: Path, *, sync: bool = True) -> None:
    """Create path's missing folders below top, each made durable in its parent unless sync=False."""
    missing = []
    current = path
    while not current.is_dir() and current != top:
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        if sync:
            fsync_dir(folder.parent)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


@contextmanager
def durable_file(path: Path, top: Path, *, sync: bool = True) -> Iterator[int]:
    """A new file at path, written through the descriptor yielded: under a temporary name in its folder, then
    (sync=True) fsync'd, renamed into place and the folder fsync'd once the block ends without error. After a
    crash the file is absent or complete; a block that raises leaves nothing behind."""
    make_dirs(path.parent, top, sync=sync)
    temp = path.parent / f"{TEMP_PREFIX}{path.name}.{os.getpid()}.{os.urandom(4).hex()}"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    try:
        yield fd
        if sync:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        temp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(temp, path)
    if sync:
        fsync_dir(path.parent)


def write_durable(path: Path, data: bytes, top: Path, *, sync: bool = True) -> None:
    """Write data at path atomically; durable on return unless sync=False (the caller then syncs)."""
    with durable_file(path, top, sync=sync) as fd:
        write_all(fd, data)


def store(objects_dir: Path, sha256: str, raw: bytes, *, sync: bool = True) -> int:
    """Make sure the message is in the hot store; the size of its file. An existing file is kept: content
    addressing means it holds the same message (verify checks that it still does)."""
    path = path_for(objects_dir, sha256)
    try:
        return path.stat().st_size
    except FileNotFoundError:
        pass
    data = compress(raw)
    write_durable(path, data, objects_dir, sync=sync)
    return len(data)


def read(objects_dir: Path, sha256: str) -> bytes:
    return decompress(path_for(objects_dir, sha256).read_bytes())


def remove(objects_dir: Path, sha256: str) -> None:
    path = path_for(objects_dir, sha256)
    try:
        path.unlink()
    except FileNotFoundError:
        return
    fsync_dir(path.parent)
