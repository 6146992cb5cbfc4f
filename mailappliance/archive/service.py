"""The journaling service on the appliance: the milter every Postfix instance calls at the end of each message.

Each message is journaled once, where it enters the appliance: inbound mail on port 25, mail submitted on 587
and 465 by the mailboxes, mail of the dedicated channels at their own listeners, and mail without SMTP
(`sendmail`, cron, Postfix's own bounces). The channels hand mail for hosted domains to the staff instance on a
listener without milters, so that mail is not journaled a second time there.

`on_failure` decides what happens when the store cannot take a message (full, unmounted, broken):
- defer: the milter answers 451 and the client keeps the message; nothing is accepted unarchived;
- queue: the message and its envelope go to a local spool (made durable before the 250), and a thread moves
  them into the store once it takes them again. The audit warns while the spool holds anything.

Standard library (and this package) only: it runs with Debian's python3 on the appliance.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from . import milter
from .errors import ArchiveError
from .store import Archive, Envelope

# systemd's socket activation hands listening sockets over from this descriptor on (sd_listen_fds(3)).
SD_LISTEN_FDS_START = 3
SPOOL_RETRY_SECONDS = 30


@dataclass(frozen=True)
class Settings:
    store: Path
    cold_store: Path | None
    on_failure: str
    spool: Path
    hosted_domains: frozenset[str]
    # What the audit verb reads besides (the role writes both; None in a file without them).
    public_key: Path | None = None
    retention: Path | None = None

    @classmethod
    def load(cls, path: Path) -> Settings:
        data = json.loads(path.read_text(encoding="utf-8"))
        on_failure = data.get("on_failure", "defer")
        if on_failure not in ("defer", "queue"):
            raise ArchiveError(f"{path}: on_failure must be defer or queue, not {on_failure!r}")
        return cls(store=Path(data["store"]), cold_store=Path(data["cold_store"]) if data.get("cold_store") else None,
                   on_failure=on_failure, spool=Path(data.get("spool") or "/var/spool/mailappliance-archive"),
                   hosted_domains=frozenset(d.lower() for d in data.get("hosted_domains", [])),
                   public_key=Path(data["public_key"]) if data.get("public_key") else None,
                   retention=Path(data["retention"]) if data.get("retention") else None)


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()


def direction(envelope: milter.Envelope, hosted: frozenset[str]) -> str:
    """local: no SMTP (sendmail, bounces); outbound or internal: sent by a login (mailbox or account), to any
    outside recipient or only hosted ones; inbound: everything else, mail from the world."""
    # {daemon_port} (in milter_connect_macros) is the SMTP listener's port; for mail without SMTP (sendmail, its
    # own bounces) Postfix's cleanup makes up a connection from 127.0.0.1 with port "0" (or none at all).
    if envelope.daemon_port in ("", "0"):
        return "local"
    if envelope.account:
        outside = any(domain_of(rcpt) not in hosted for rcpt in envelope.recipients)
        return "outbound" if outside else "internal"
    return "inbound"


def channel_of(instance: str) -> str:
    return instance.removeprefix("postfix-") if instance.startswith("postfix-") else "staff"


def to_store_envelope(envelope: milter.Envelope, hosted: frozenset[str], received: datetime) -> Envelope:
    return Envelope(queue_id=envelope.queue_id, sender=envelope.sender, recipients=list(envelope.recipients),
                    direction=direction(envelope, hosted), channel=channel_of(envelope.instance),
                    account=envelope.account, client_address=envelope.client_address, received=received,
                    instance=envelope.instance)


class Journal:
    """What the milter calls with each message; raises when the message is neither archived nor spooled."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.lock = threading.Lock()
        self._archive: Archive | None = None

    def archive(self) -> Archive:
        # Opened on first use and again after a failure: a store whose disk was unmounted and mounted again
        # is found again without a restart.
        if self._archive is None:
            self._archive = Archive(self.settings.store, self.settings.cold_store)
        return self._archive

    def drop_archive(self) -> None:
        if self._archive is not None:
            self._archive.close()
            self._archive = None

    def __call__(self, raw: bytes, envelope: milter.Envelope) -> None:
        stored = to_store_envelope(envelope, self.settings.hosted_domains, datetime.now(timezone.utc))
        try:
            self.archive().ingest(raw, stored)
        except Exception:
            self.drop_archive()
            if self.settings.on_failure != "queue":
                raise
            self.spool(raw, stored)

    # --- the spool of on_failure: queue -----------------------------------------------------------------

    def spool(self, raw: bytes, envelope: Envelope) -> None:
        """Keep the message and its envelope in the spool, durably, before Postfix answers 250."""
        self.settings.spool.mkdir(mode=0o700, parents=True, exist_ok=True)
        name = f"{time.time_ns()}-{os.getpid()}-{threading.get_ident()}"
        meta = {"queue_id": envelope.queue_id, "sender": envelope.sender, "recipients": list(envelope.recipients),
                "direction": envelope.direction, "channel": envelope.channel, "account": envelope.account,
                "client_address": envelope.client_address, "instance": envelope.instance,
                "received": envelope.received.isoformat() if envelope.received else ""}
        # The message first, then its envelope: a spool entry exists once its .json is there.
        for suffix, data in ((".eml", raw), (".json", json.dumps(meta).encode())):
            tmp = self.settings.spool / f".{name}{suffix}"
            with open(tmp, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.rename(tmp, self.settings.spool / f"{name}{suffix}")
        directory = os.open(self.settings.spool, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        milter.log(f"spooled {envelope.instance}/{envelope.queue_id or '?'}: the store did not take it")

    def drain_spool(self) -> int:
        """Move spooled messages into the store, oldest first; stops at the first failure. How many moved."""
        moved = 0
        if not self.settings.spool.is_dir():
            return 0
        for meta_path in sorted(self.settings.spool.glob("*.json")):
            eml_path = meta_path.with_suffix(".eml")
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            received = datetime.fromisoformat(meta.pop("received")) if meta.get("received") else None
            envelope = Envelope(**meta, received=received)
            try:
                with self.lock:
                    self.archive().ingest(eml_path.read_bytes(), envelope)
            except Exception as error:  # noqa: BLE001 - the store still refuses; try again later
                self.drop_archive()
                milter.log(f"spool: {meta_path.name} stays spooled: {type(error).__name__}: {error}")
                break
            meta_path.unlink()
            eml_path.unlink()
            moved += 1
        return moved


def inherited_sockets() -> list[socket.socket]:
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return []
    count = int(os.environ.get("LISTEN_FDS", "0"))
    return [socket.socket(fileno=SD_LISTEN_FDS_START + n) for n in range(count)]


async def run(journal: Journal, listen: list[str]) -> None:
    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await milter.serve(reader, writer, journal)

    servers = [await asyncio.start_server(client, sock=sock) for sock in inherited_sockets()]
    for address in listen:
        host, _, port = address.rpartition(":")
        servers.append(await asyncio.start_server(client, host=host, port=int(port)))
    if not servers:
        raise ArchiveError("no socket to serve: start through the systemd socket unit, or give --listen")
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    milter.log(f"journaling into {journal.settings.store} (on failure: {journal.settings.on_failure}), "
               f"{len(servers)} sockets")
    drainer = asyncio.create_task(drain_forever(journal)) if journal.settings.on_failure == "queue" else None
    await stop.wait()
    if drainer:
        drainer.cancel()
    for server in servers:
        server.close()


async def drain_forever(journal: Journal) -> None:
    loop = asyncio.get_running_loop()
    while True:
        moved = await loop.run_in_executor(None, journal.drain_spool)
        if moved:
            milter.log(f"spool: {moved} messages moved into the store")
        await asyncio.sleep(SPOOL_RETRY_SECONDS)


def main(config: Path, listen: list[str]) -> int:
    try:
        journal = Journal(Settings.load(config))
    except (OSError, ValueError, KeyError, ArchiveError) as error:
        print(f"mailappliance-archive milter: {error}", file=sys.stderr)
        return 2
    asyncio.run(run(journal, listen))
    return 0
