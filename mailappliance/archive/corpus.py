"""Generated mail for timing search and measuring storage: reproducible from a seed, shaped like real traffic
(a few hundred correspondents, replies, newsletters in HTML, some attachments, Bcc recipients)."""

from __future__ import annotations

import base64
import random
from datetime import datetime, timedelta, timezone

from .store import Archive, Envelope

BATCH = 2000
WORDS = ("invoice order delivery shipment payment contract meeting report budget forecast audit quarter "
         "customer supplier warehouse inventory pricing discount approval review schedule deadline project "
         "proposal agreement renewal account balance transfer statement receipt refund claim policy compliance "
         "retail store branch region manager team update summary figures sales margin stock return").split()
FILLER = "the of and to in is for that on with as at by this be are from or have an you we our please".split()
DOMAINS = ("acme.example", "orders.acme.example", "partner.example", "supplier.example", "bank.example",
           "customer.example", "news.example")


def _sentence(rng: random.Random, length: int) -> str:
    return " ".join(rng.choice(WORDS) if rng.random() < 0.35 else rng.choice(FILLER) for _ in range(length))


def generate_message(rng: random.Random, number: int, received: datetime) -> tuple[bytes, Envelope]:
    people = [f"{name}{n}@{domain}" for n in range(40) for name, domain in (("staff", "acme.example"),
                                                                               ("contact", rng.choice(DOMAINS)))]
    sender = rng.choice(people)
    recipients = rng.sample(people, rng.randint(1, 3))
    bcc = [rng.choice(people)] if rng.random() < 0.1 else []
    inbound = not sender.endswith("@acme.example")
    subject = (("Re: " if rng.random() < 0.3 else "") + _sentence(rng, rng.randint(3, 8))).capitalize()
    text = "\r\n\r\n".join(_sentence(rng, rng.randint(15, 60)) for _ in range(rng.randint(1, 5)))
    headers = (f"Received: from mx.{sender.split('@')[1]} by mail.acme.example with ESMTPS id Q{number:08X}\r\n"
               f"From: {sender.split('@')[0].capitalize()} <{sender}>\r\nTo: {', '.join(recipients)}\r\n"
               f"Subject: {subject}\r\nDate: {received.strftime('%a, %d %b %Y %H:%M:%S +0000')}\r\n"
               f"Message-ID: <{number}.{rng.getrandbits(48):x}@{sender.split('@')[1]}>\r\nMIME-Version: 1.0\r\n")
    kind = rng.random()
    if kind < 0.6:
        body = f"Content-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n"
    else:
        rows = "".join(f"<tr><td style=\"font-family:Arial\">{_sentence(rng, 20)}</td></tr>" for _ in range(5))
        parts = [f"--b{number}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n",
                 f"--b{number}\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body><table>{rows}"
                 "</table></body></html>\r\n"]
        if kind > 0.9:
            data = base64.encodebytes(rng.randbytes(rng.randint(2000, 20000))).decode().replace("\n", "\r\n")
            parts.append(f"--b{number}\r\nContent-Type: application/pdf; name=\"{rng.choice(WORDS)}.pdf\"\r\n"
                         f"Content-Disposition: attachment; filename=\"{rng.choice(WORDS)}-{number}.pdf\"\r\n"
                         f"Content-Transfer-Encoding: base64\r\n\r\n{data}")
        body = f"Content-Type: multipart/mixed; boundary=\"b{number}\"\r\n\r\n" + "".join(parts) + f"--b{number}--\r\n"
    envelope = Envelope(queue_id=f"G{number:010X}", sender=sender, recipients=tuple(recipients + bcc),
                        direction="inbound" if inbound else "outbound", received=received,
                        client_address=f"192.0.2.{rng.randint(1, 254)}")
    return (headers + body).encode(), envelope


def generate_corpus(archive: Archive, n: int, seed: int = 0, days: int = 365,
                    end: datetime | None = None) -> int:
    """Ingest n generated messages received over the `days` days before `end` (default now); returns n."""
    rng = random.Random(seed)
    end = end or datetime.now(timezone.utc)
    start = end - timedelta(days=days)
    batch = []
    for number in range(n):
        received = start + timedelta(seconds=(days * 86400) * number / max(n, 1))
        batch.append(generate_message(rng, number, received))
        if len(batch) == BATCH:
            archive.ingest_batch(batch)
            batch = []
    if batch:
        archive.ingest_batch(batch)
    return n
