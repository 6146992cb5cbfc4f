"""Cold packs: many messages in one file, compressed together, still readable one at a time.

Messages going cold are old and read rarely, and nobody waits while they are packed, so here the ratio counts
more than the CPU: xz (lzma, preset 6) over chunks of about 1 MiB of consecutive messages. Compressing many
messages together finds what they share (headers, signatures, quoted text, HTML boilerplate): on generated
mail it stored 0.32 byte per byte received for text and 0.28 for HTML, against 0.59 and 0.50 for one message
at a time (attachments stay at 0.75 whatever is done). A chunk of 1 MiB keeps reading one message cheap.

File layout, self-describing so a pack can be read without the database:
    b"MAPACK1\n"
    chunk, chunk, ...                each a complete .xz stream (with its own CRC-64)
    index                            canonical JSON: {"format": ..., "members": [[sha256, chunk_offset,
                                     chunk_length, member_offset, length], ...]}
    trailer (24 bytes)               index offset and index length (8-byte big-endian each), b"MAPACKIX"
"""

from __future__ import annotations

import hashlib
import json
import lzma
import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .objects import durable_file, write_all

MAGIC = b"MAPACK1\n"
TRAILER_MAGIC = b"MAPACKIX"
TRAILER = struct.Struct(">QQ8s")
INDEX_FORMAT = "mailappliance-archive-pack/1"
CHUNK_TARGET = 1024 * 1024
PRESET = 6
SUFFIX = ".pack"


@dataclass(frozen=True)
class Member:
    sha256: str
    chunk_offset: int
    chunk_length: int
    member_offset: int
    length: int


@dataclass(frozen=True)
class PackInfo:
    name: str
    sha256: str
    size: int
    members: tuple[Member, ...]


class _HashingWriter:
    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.offset = 0
        self.digest = hashlib.sha256()

    def write(self, data: bytes) -> None:
        write_all(self.fd, data)
        self.digest.update(data)
        self.offset += len(data)


def write_pack(cold_root: Path, name: str, messages: Iterable[tuple[str, bytes]]) -> PackInfo:
    """Write the messages (sha256, raw) as the pack cold_root/name; durable when it returns."""
    members: list[Member] = []
    with durable_file(cold_root / name, cold_root) as fd:
        out = _HashingWriter(fd)
        out.write(MAGIC)
        pending: list[tuple[str, bytes]] = []
        pending_size = 0

        def flush() -> None:
            nonlocal pending, pending_size
            if not pending:
                return
            chunk = lzma.compress(b"".join(raw for _, raw in pending), format=lzma.FORMAT_XZ,
                                  check=lzma.CHECK_CRC64, preset=PRESET)
            offset = out.offset
            member_offset = 0
            for sha256, raw in pending:
                members.append(Member(sha256, offset, len(chunk), member_offset, len(raw)))
                member_offset += len(raw)
            out.write(chunk)
            pending, pending_size = [], 0

        for sha256, raw in messages:
            pending.append((sha256, raw))
            pending_size += len(raw)
            if pending_size >= CHUNK_TARGET:
                flush()
        flush()
        index = json.dumps({"format": INDEX_FORMAT, "members": [
            [m.sha256, m.chunk_offset, m.chunk_length, m.member_offset, m.length] for m in members]},
            sort_keys=True, separators=(",", ":")).encode("ascii")
        index_offset = out.offset
        out.write(index)
        out.write(TRAILER.pack(index_offset, len(index), TRAILER_MAGIC))
    return PackInfo(name, out.digest.hexdigest(), out.offset, tuple(members))


def read_chunk(path: Path, chunk_offset: int, chunk_length: int) -> bytes:
    """One decompressed chunk; ValueError when it is damaged."""
    with path.open("rb") as pack:
        pack.seek(chunk_offset)
        data = pack.read(chunk_length)
    try:
        return lzma.decompress(data, format=lzma.FORMAT_XZ)
    except lzma.LZMAError as error:
        raise ValueError(f"chunk at offset {chunk_offset}: {error}") from None


def read_member(path: Path, member: Member) -> bytes:
    return PackReader(path).member(member)


class PackReader:
    """Members of one pack; the last chunk read is kept, so members read in order decompress each chunk once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._chunk: tuple[tuple[int, int], bytes] | None = None

    def member(self, member: Member) -> bytes:
        key = (member.chunk_offset, member.chunk_length)
        if self._chunk is None or self._chunk[0] != key:
            self._chunk = (key, read_chunk(self.path, *key))
        return self._chunk[1][member.member_offset:member.member_offset + member.length]


def read_index(path: Path) -> tuple[Member, ...]:
    """The members a pack lists in itself; ValueError when the trailer or index is damaged."""
    with path.open("rb") as pack:
        pack.seek(0, os.SEEK_END)
        size = pack.tell()
        if size < len(MAGIC) + TRAILER.size:
            raise ValueError("too short to be a pack")
        pack.seek(size - TRAILER.size)
        index_offset, index_length, magic = TRAILER.unpack(pack.read(TRAILER.size))
        if magic != TRAILER_MAGIC or index_offset + index_length + TRAILER.size != size:
            raise ValueError("trailer damaged")
        pack.seek(index_offset)
        try:
            index = json.loads(pack.read(index_length))
            return tuple(Member(*row) for row in index["members"])
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"index damaged: {error}") from None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as pack:
        while block := pack.read(1024 * 1024):
            digest.update(block)
    return digest.hexdigest()
