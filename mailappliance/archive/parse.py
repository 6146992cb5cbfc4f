"""What the index needs from a message: decoded headers, addresses, text of the bodies, attachment names.

Mail arrives malformed all the time, and a message that cannot be indexed must still be archived: nothing
here raises. Each part that cannot be read adds a line to `problems` and the rest is indexed. Text is bounded
(BODY_LIMIT characters per message) so one huge message cannot swell the index.
"""

from __future__ import annotations

import codecs
import email.errors
import email.utils
import re
from dataclasses import dataclass, field
from email.header import decode_header
from email.message import Message
from email.parser import BytesHeaderParser, BytesParser
from email.policy import compat32
from html.parser import HTMLParser

BODY_LIMIT = 1024 * 1024
HEADERS_LIMIT = 64 * 1024
FIELD_LIMIT = 4096
MAX_PARTS = 1000
MAX_ADDRESSES = 1000
MAX_PROBLEMS = 50
# Signatures and trace headers full of base64 are noise for a word search.
UNINDEXED_HEADERS = frozenset({"dkim-signature", "arc-seal", "arc-message-signature", "x-google-dkim-signature"})
_UNSAFE = re.compile("[\x00\ud800-\udfff]")
_FOLD = re.compile(r"\r?\n[ \t]")


def clean(text: str, limit: int = FIELD_LIMIT) -> str:
    """Text SQLite and FTS5 store as given: no NUL, no lone surrogates; at most limit characters."""
    return _UNSAFE.sub("\ufffd", text[:limit])


@dataclass
class Parsed:
    header_from: str = ""
    header_to: str = ""
    header_cc: str = ""
    subject: str = ""
    message_id: str = ""
    date_header: str = ""
    addresses: dict[str, list[str]] = field(default_factory=lambda: {"from": [], "to": [], "cc": []})
    headers: str = ""
    body: str = ""
    attachments: str = ""
    problems: list[str] = field(default_factory=list)


def decode_words(value: str) -> str:
    """A header value with RFC 2047 encoded words decoded and folding undone; 8-bit bytes read as UTF-8."""
    if not value.isascii():
        value = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    if "\n" in value or "\r" in value:
        value = _FOLD.sub(" ", value).replace("\r", "").replace("\n", "")
    if "=?" not in value:
        return value
    try:
        pieces = decode_header(value)
    except (email.errors.HeaderParseError, ValueError, LookupError):
        return value
    out = []
    for piece, charset in pieces:
        if isinstance(piece, str):
            out.append(piece)
            continue
        out.append(decode_bytes(piece, charset or "ascii"))
    return "".join(out)


def decode_bytes(data: bytes, charset: str | None) -> str:
    try:
        codecs.lookup(charset or "utf-8")
    except LookupError:
        charset = "utf-8"
    try:
        return data.decode(charset or "utf-8", "replace")
    except (LookupError, ValueError, TypeError):
        return data.decode("utf-8", "replace")


class _TextOfHtml(HTMLParser):
    SKIP = frozenset({"script", "style", "head", "title"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self.skipping += 1
        self.out.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP and self.skipping:
            self.skipping -= 1
        self.out.append(" ")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.out.append(data)


def html_text(html: str) -> str:
    parser = _TextOfHtml()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # noqa: BLE001 - html.parser may trip on broken markup; keep what it read
        pass
    return re.sub(r"\s+", " ", "".join(parser.out)).strip()


def parse(raw: bytes) -> Parsed:
    parsed = Parsed()
    try:
        message = BytesParser(policy=compat32).parsebytes(raw)
    except Exception as error:  # noqa: BLE001 - e.g. RecursionError on absurd nesting
        parsed.problems.append(f"MIME structure unreadable ({type(error).__name__}); headers and raw text indexed")
        try:
            message = BytesHeaderParser(policy=compat32).parsebytes(raw)
        except Exception:  # noqa: BLE001
            message = Message()
        _headers(message, parsed)
        head, _, body = raw.partition(b"\r\n\r\n") if b"\r\n\r\n" in raw else raw.partition(b"\n\n")
        parsed.body = clean(body.decode("utf-8", "replace"), BODY_LIMIT)
        return parsed
    _headers(message, parsed)
    _bodies(message, parsed)
    for defect in message.defects:
        parsed.problems.append(f"{message.get_content_type()} part: {type(defect).__name__}")
    parsed.problems = list(dict.fromkeys(parsed.problems))[:MAX_PROBLEMS]
    return parsed


def _headers(message: Message, parsed: Parsed) -> None:
    indexed: list[str] = []
    size = 0
    for name, raw_value in message.raw_items():
        try:
            value = decode_words(str(raw_value))
        except Exception as error:  # noqa: BLE001
            parsed.problems.append(f"header {clean(name, 80)!r}: {type(error).__name__}")
            continue
        key = name.lower()
        if key == "subject" and not parsed.subject:
            parsed.subject = clean(value)
        elif key == "message-id" and not parsed.message_id:
            parsed.message_id = clean(value.strip())
        elif key == "date" and not parsed.date_header:
            parsed.date_header = clean(value.strip())
        elif key in ("from", "to", "cc"):
            current = getattr(parsed, f"header_{key}")
            setattr(parsed, f"header_{key}", clean(f"{current}, {value}" if current else value))
            parsed.addresses[key].extend(_addresses(value, parsed))
        if key not in UNINDEXED_HEADERS and size < HEADERS_LIMIT:
            indexed.append(f"{name}: {value}")
            size += len(indexed[-1])
    parsed.headers = clean("\n".join(indexed), HEADERS_LIMIT)
    for key in parsed.addresses:
        parsed.addresses[key] = parsed.addresses[key][:MAX_ADDRESSES]


def _addresses(value: str, parsed: Parsed) -> list[str]:
    try:
        pairs = email.utils.getaddresses([value])
    except Exception as error:  # noqa: BLE001
        parsed.problems.append(f"addresses unreadable in {clean(value, 80)!r}: {type(error).__name__}")
        return []
    return [clean(address.strip().lower(), 320) for _, address in pairs if "@" in address]


def _bodies(message: Message, parsed: Parsed) -> None:
    texts: list[str] = []
    names: list[str] = []
    budget = BODY_LIMIT
    stack = [message]
    seen = 0
    while stack and seen < MAX_PARTS:
        part = stack.pop()
        seen += 1
        if part.is_multipart():
            payload = part.get_payload()
            if isinstance(payload, list):
                stack.extend(reversed(payload))
            continue
        try:
            text = _part_text(part, names, budget, parsed)
        except Exception as error:  # noqa: BLE001 - one unreadable part must not hide the others
            parsed.problems.append(f"MIME part unreadable: {type(error).__name__}")
            continue
        if text:
            texts.append(text[:budget])
            budget -= len(texts[-1])
    if stack:
        parsed.problems.append(f"more than {MAX_PARTS} MIME parts; the rest not indexed")
    parsed.body = clean("\n".join(texts), BODY_LIMIT)
    parsed.attachments = clean(" ".join(names), HEADERS_LIMIT)


def _part_text(part: Message, names: list[str], budget: int, parsed: Parsed) -> str:
    """The text of one leaf part for the index (empty for attachments and non-text), its file name noted."""
    filename = part.get_filename()
    if filename:
        names.append(decode_words(str(filename)))
    content_type = part.get_content_type()
    disposition = str(part.get("content-disposition", "")).lower()
    if budget <= 0 or content_type not in ("text/plain", "text/html") or disposition.startswith("attachment"):
        return ""
    data = part.get_payload(decode=True) or b""
    if not isinstance(data, bytes):
        data = str(data).encode("utf-8", "surrogateescape")
    for defect in part.defects:
        parsed.problems.append(f"{content_type} part: {type(defect).__name__}")
    # A character takes at most 4 bytes: enough bytes for the remaining budget, never the whole of a huge part.
    text = decode_bytes(data[:budget * 4], part.get_content_charset())
    return html_text(text) if content_type == "text/html" else text


def envelope_domain(address: str) -> str:
    return address.rpartition("@")[2].lower() if "@" in address else ""
