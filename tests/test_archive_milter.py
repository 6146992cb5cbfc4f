"""The journaling milter's side of the milter protocol, spoken to it the way Postfix does (the Molecule scenario
then runs it behind a real Postfix)."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import pytest

from mailappliance.archive import milter
from mailappliance.archive.milter import Envelope

ALL_STEPS = 0x1FFFFF


def packet(command: bytes, data: bytes = b"") -> bytes:
    return struct.pack("!I", len(data) + 1) + command + data


def macros(stage: bytes, **values: str) -> bytes:
    return packet(milter.MACRO, stage + b"".join(f"{{{k}}}".encode() + b"\0" + v.encode() + b"\0"
                                                 for k, v in values.items()))


def a_message(queue_id: str = "4XyZ1", offered: int = ALL_STEPS) -> list[bytes]:
    """One SMTP session with one message to two recipients, as Postfix 3.7 sends it."""
    return [
        packet(milter.OPTNEG, struct.pack("!III", 6, 0x1FF, offered)),
        packet(milter.MACRO, b"C" + b"j\0mail.alpha.test\0v\0Postfix 3.7.11 postfix-orders\0"),
        packet(milter.CONNECT, b"client.example\x004\x00\x19192.0.2.7\0"),
        macros(b"M", i=queue_id, auth_authen="shop"),
        packet(milter.MAIL, b"<orders@alpha.test>\0SIZE=120\0"),
        packet(milter.RCPT, b"<jo@example.com>\0"),
        packet(milter.RCPT, b"<hidden@example.net>\0"),
        packet(milter.DATA),
        packet(milter.HEADER, b"Subject\0 An order\0"),
        packet(milter.HEADER, b"To\0 jo@example.com,\n\tsomeone@example.org\0"),
        packet(milter.EOH),
        packet(milter.BODY, b"Line one\r\nLine two\r\n"),
        macros(b"E", i=queue_id),
        packet(milter.BODYEOB),
    ]


async def exchange(packets: list[bytes], journal: Any, expected: int) -> list[tuple[bytes, bytes]]:
    """Send the packets to a milter on a loopback port and read the `expected` replies."""
    server = await asyncio.start_server(lambda r, w: milter.serve(r, w, journal), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"".join(packets))
    await writer.drain()
    replies = []
    for _ in range(expected):
        (length,) = struct.unpack("!I", await asyncio.wait_for(reader.readexactly(4), 5))
        body = await reader.readexactly(length)
        replies.append((body[:1], body[1:]))
    writer.write(packet(milter.QUIT))
    # Nothing more comes: a milter that answered more than expected would show here.
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    server.close()
    await server.wait_closed()
    return replies


def test_the_end_of_a_message_hands_envelope_and_content_to_the_journal() -> None:
    received: list[tuple[bytes, Envelope]] = []
    replies = asyncio.run(exchange(a_message(), lambda raw, env: received.append((raw, env)), expected=2))

    assert replies[0][0] == milter.OPTNEG
    version, actions, steps = struct.unpack("!III", replies[0][1])
    assert (version, actions) == (6, 0)
    assert steps & milter.NR_RCPT and steps & milter.NR_HDR and steps & milter.HDR_LEADSPC
    # Nothing but the end of the message is answered: one round trip per message.
    assert replies[1:] == [(milter.CONTINUE, b"")]

    [(raw, envelope)] = received
    assert raw == (b"Subject: An order\r\nTo: jo@example.com,\r\n\tsomeone@example.org\r\n\r\n"
                   b"Line one\r\nLine two\r\n")
    assert (envelope.instance, envelope.queue_id, envelope.account) == ("postfix-orders", "4XyZ1", "shop")
    assert envelope.sender == "orders@alpha.test"
    assert envelope.recipients == ["jo@example.com", "hidden@example.net"]
    assert envelope.client_address == "192.0.2.7"


def test_a_journal_that_fails_defers_the_message() -> None:
    def broken(raw: bytes, envelope: Envelope) -> None:
        raise OSError(28, "No space left on device")

    replies = asyncio.run(exchange(a_message(), broken, expected=2))
    assert replies[-1] == (milter.REPLYCODE, milter.TEMPFAIL_REPLY.encode() + b"\0")
    assert milter.TEMPFAIL_REPLY.startswith("451 4.")


def test_every_command_is_answered_when_postfix_offers_no_shortcuts() -> None:
    """An MTA that cannot skip replies still gets one for each command, or it would wait forever."""
    received: list[Any] = []
    # option negotiation, then connect, MAIL, 2 x RCPT, DATA, 2 x header, EOH, body, end of message
    replies = asyncio.run(exchange(a_message(offered=0), lambda raw, env: received.append((raw, env)), expected=11))
    assert struct.unpack("!III", replies[0][1])[2] == 0
    assert [command for command, _ in replies[1:]] == [milter.CONTINUE] * 10
    [(raw, _)] = received
    # Without the leading-space step Postfix strips one space of each value (here it sent none extra).
    assert raw.startswith(b"Subject:  An order\r\n")


def test_the_instance_comes_from_the_version_macro() -> None:
    assert milter.instance_of("Postfix 3.7.11") == "postfix"
    assert milter.instance_of("Postfix 3.7.11 postfix-bulk") == "postfix-bulk"
    assert milter.instance_of("") == "postfix"


@pytest.mark.parametrize("length", [0, milter.MAX_PACKET + 1])
def test_a_packet_of_impossible_length_closes_the_connection(length: int) -> None:
    async def run() -> bytes:
        server = await asyncio.start_server(lambda r, w: milter.serve(r, w, lambda raw, env: None), "127.0.0.1", 0)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
        writer.write(struct.pack("!I", length) + b"O")
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 5)
        server.close()
        return data

    assert asyncio.run(run()) == b""
