"""The journaling milter: Postfix hands every message to it at the end of DATA, before it answers the client.

Postfix speaks the milter protocol (version 6) to it for each SMTP session and for each message that arrives
without SMTP (`sendmail`, bounces): `smtpd_milters` and `non_smtpd_milters` of every instance name it, after
Rspamd, so a message Rspamd refuses never reaches it. At the end of a message it has the envelope (sender,
every recipient, Bcc included, the SASL login), the headers and the body, and calls the journal. Only when the
journal has the message durably does it answer "continue", and only then does Postfix answer 250; if the
journal raises, it answers 451 and the client keeps the message and retries: never accepted unarchived.

The protocol is small: each packet is a 4-byte big-endian length, a command byte and its data. This module
asks Postfix not to wait for replies to the commands it only records (connect, MAIL, RCPT, headers, body), so
a message costs Postfix one round trip here, at the end.

Standard library only: it runs with Debian's python3 on the appliance.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# Commands from Postfix.
ABORT, BODY, CONNECT, MACRO, BODYEOB, HELO, QUIT_NC, HEADER, MAIL, EOH, OPTNEG, QUIT, RCPT, DATA, UNKNOWN = (
    b"A", b"B", b"C", b"D", b"E", b"H", b"K", b"L", b"M", b"N", b"O", b"Q", b"R", b"T", b"U")
# Replies.
CONTINUE, REPLYCODE = b"c", b"y"

VERSION = 6
# Protocol steps Postfix may leave out or not wait for (libmilter's SMFIP_* bits).
NOHELO = 0x2
NOUNKNOWN = 0x100
NR_CONN, NR_HELO, NR_MAIL, NR_RCPT, NR_DATA, NR_UNKN, NR_EOH, NR_BODY = (
    0x1000, 0x2000, 0x4000, 0x8000, 0x10000, 0x20000, 0x40000, 0x80000)
NR_HDR = 0x80
HDR_LEADSPC = 0x100000
WANTED_STEPS = (NOHELO | NOUNKNOWN | NR_CONN | NR_MAIL | NR_RCPT | NR_DATA | NR_EOH | NR_BODY | NR_HDR
                | HDR_LEADSPC)

# The "no reply" bit of each command that gets a reply unless that bit was agreed.
NO_REPLY_BIT = {CONNECT: NR_CONN, HELO: NR_HELO, MAIL: NR_MAIL, RCPT: NR_RCPT, DATA: NR_DATA, UNKNOWN: NR_UNKN,
                EOH: NR_EOH, BODY: NR_BODY, HEADER: NR_HDR}

# A packet larger than this is not Postfix (it sends bodies in chunks of at most 64 KiB).
MAX_PACKET = 1024 * 1024

TEMPFAIL_REPLY = "451 4.3.0 The message could not be archived; try again later"


class ProtocolError(Exception):
    """Postfix sent something this milter cannot read; the connection is closed (Postfix then applies
    milter_default_action, which the postfix role sets to tempfail)."""


@dataclass
class Envelope:
    """What Postfix tells about one message, besides its content."""

    instance: str = "postfix"
    queue_id: str = ""
    sender: str = ""
    recipients: list[str] = field(default_factory=list)
    account: str = ""
    client_address: str = ""
    client_name: str = ""
    daemon_port: str = ""
    daemon_name: str = ""
    macros: dict[str, str] = field(default_factory=dict)


def strip_brackets(address: str) -> str:
    address = address.strip()
    return address[1:-1] if address.startswith("<") and address.endswith(">") else address


def split_nul(data: bytes) -> list[str]:
    """NUL-terminated strings; bytes that are not UTF-8 are kept as surrogates, never an error."""
    parts = data.split(b"\0")
    if parts and parts[-1] == b"":
        parts.pop()
    return [part.decode("utf-8", "surrogateescape") for part in parts]


def instance_of(version_macro: str) -> str:
    """The Postfix instance from the `v` macro, which the postfix role sets per instance to
    "$mail_name $mail_version $multi_instance_name"; Postfix's own instance has no name there."""
    words = version_macro.split()
    return words[2] if len(words) >= 3 else "postfix"


class Session:
    """One connection from Postfix: an SMTP session or one message without SMTP; possibly several messages."""

    def __init__(self, journal: Callable[[bytes, Envelope], Any]) -> None:
        self.journal = journal
        self.macros: dict[str, str] = {}
        self.connect: dict[str, str] = {}
        self.steps = 0
        self.reset()

    def reset(self) -> None:
        self.envelope = Envelope()
        self.headers: list[bytes] = []
        self.body: list[bytes] = []

    async def handle(self, command: bytes, data: bytes) -> list[tuple[bytes, bytes]] | None:
        """The replies to one packet (None: close the connection)."""
        replies = await self.dispatch(command, data)
        bit = NO_REPLY_BIT.get(command)
        if replies == [] and bit is not None and not self.steps & bit:
            return [(CONTINUE, b"")]
        return replies

    async def dispatch(self, command: bytes, data: bytes) -> list[tuple[bytes, bytes]] | None:
        if command == OPTNEG:
            if len(data) < 12:
                raise ProtocolError("short option negotiation")
            version, actions, steps = struct.unpack("!III", data[:12])
            if version < 6:
                raise ProtocolError(f"milter protocol version {version}; Postfix 2.6 and later speak 6")
            self.steps = WANTED_STEPS & steps
            return [(OPTNEG, struct.pack("!III", VERSION, 0, self.steps))]
        if command == MACRO:
            # One command letter, then name/value pairs.
            pairs = split_nul(data[1:])
            for name, value in zip(pairs[::2], pairs[1::2]):
                self.macros[name.strip("{}")] = value
            return []
        if command == CONNECT:
            parts = data.split(b"\0", 1)
            self.connect = {"name": parts[0].decode("utf-8", "surrogateescape")}
            rest = parts[1] if len(parts) > 1 else b""
            if rest[:1] in (b"4", b"6") and len(rest) >= 3:
                self.connect["address"] = rest[3:].rstrip(b"\0").decode("ascii", "replace")
            return []
        if command == MAIL:
            self.reset()
            args = split_nul(data)
            self.envelope.sender = strip_brackets(args[0]) if args else ""
            return []
        if command == RCPT:
            args = split_nul(data)
            if args:
                self.envelope.recipients.append(strip_brackets(args[0]))
            return []
        if command == HEADER:
            name, _, value = data.partition(b"\0")
            value = value.rstrip(b"\0")
            if not self.steps & HDR_LEADSPC:
                # Without that step agreed, Postfix drops the space after the colon; put the usual one back.
                value = b" " + value
            # Folded values come with bare LF between lines; the message is stored with CRLF like the body.
            value = value.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            self.headers.append(name + b":" + value + b"\r\n")
            return []
        if command == BODY:
            self.body.append(data)
            return []
        if command == BODYEOB:
            if data:
                self.body.append(data)
            return [await self.end_of_message()]
        if command == ABORT:
            self.reset()
            return []
        if command in (QUIT,):
            return None
        if command == QUIT_NC:
            self.macros.clear()
            self.connect = {}
            self.reset()
            return []
        if command in (HELO, DATA, EOH, UNKNOWN):
            return []
        raise ProtocolError(f"unknown milter command {command!r}")

    async def end_of_message(self) -> tuple[bytes, bytes]:
        envelope = self.envelope
        macros = dict(self.macros)
        envelope.macros = macros
        envelope.instance = instance_of(macros.get("v", ""))
        envelope.queue_id = macros.get("i", "")
        envelope.account = macros.get("auth_authen", "")
        envelope.client_address = self.connect.get("address", macros.get("client_addr", ""))
        envelope.client_name = self.connect.get("name", "")
        envelope.daemon_port = macros.get("daemon_port", "")
        envelope.daemon_name = macros.get("daemon_name", "")
        raw = b"".join(self.headers) + b"\r\n" + b"".join(self.body)
        self.reset()
        try:
            await asyncio.get_running_loop().run_in_executor(None, self.journal, raw, envelope)
        except Exception as error:  # noqa: BLE001 - whatever failed, the message must be deferred, not lost
            log(f"deferred {envelope.instance}/{envelope.queue_id or '?'}: {type(error).__name__}: {error}")
            return REPLYCODE, TEMPFAIL_REPLY.encode() + b"\0"
        return CONTINUE, b""


async def read_packet(reader: asyncio.StreamReader) -> tuple[bytes, bytes] | None:
    try:
        head = await reader.readexactly(4)
    except asyncio.IncompleteReadError:
        return None
    (length,) = struct.unpack("!I", head)
    if length < 1 or length > MAX_PACKET:
        raise ProtocolError(f"packet of {length} bytes")
    packet = await reader.readexactly(length)
    return packet[:1], packet[1:]


def encode_packet(command: bytes, data: bytes = b"") -> bytes:
    return struct.pack("!I", len(data) + 1) + command + data


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                journal: Callable[[bytes, Envelope], Any]) -> None:
    session = Session(journal)
    try:
        while (packet := await read_packet(reader)) is not None:
            replies = await session.handle(*packet)
            if replies is None:
                break
            for command, data in replies:
                writer.write(encode_packet(command, data))
            if replies:
                await writer.drain()
    except (ProtocolError, asyncio.IncompleteReadError, ConnectionError) as error:
        log(f"milter connection closed: {error}")
    finally:
        writer.close()


def log(text: str) -> None:
    import sys

    print(text, file=sys.stderr, flush=True)
