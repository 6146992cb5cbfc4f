"""The compliance archive: every message journaled once, tamper-evident, retained, searchable, provably complete.

It runs on the appliance host with Debian's python3 and python3-cryptography only, and imports nothing else
of mailappliance: the archive role copies this folder to the host. What the milter and the role call:

    archive = Archive(store_path, cold_path)                # create=True only for a new store (the init verb)
    record = archive.ingest(raw_bytes, Envelope(...))       # durable on return, else raises: answer 4xx
    checkpoint(archive, load_signing_key(key_path), operator)
    report = verify(archive, load_public_key(public_path))  # report.ok, report.problems
    python3 -m mailappliance.archive VERB ...               # cli.py
"""

from .errors import ArchiveError
from .keys import load_public_key, load_signing_key
from .log import checkpoint
from .store import Archive, Envelope, Record
from .verify import Report, verify

__all__ = ["Archive", "ArchiveError", "Envelope", "Record", "Report", "checkpoint", "load_public_key",
           "load_signing_key", "verify"]
