"""Client side of the appliance tests: builds probe messages, talks SMTP/IMAP/TLS to the container the
way an outside client does, looks into mailboxes and the Postfix queue through testinfra, checks DKIM."""

from __future__ import annotations

import base64
import datetime
import imaplib
import json
import re
import smtplib
import socket
import ssl
import time
import uuid
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.utils import format_datetime
from typing import Any, TypeVar

import dkim
from cryptography.hazmat.primitives import serialization

GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"

# Facts of the fixture site (../site/site.yml) that the tests rely on.
HOSTNAME = "mail.alpha.test"
ALICE = "alice@alpha.test"
ADMIN = "admin@alpha.test"
CATCHALL = "catchall@alpha.test"
BOB = "bob@beta.test"
TINY = "tiny@beta.test"

# The name our client gives in EHLO; it is outside every domain the appliance serves.
CLIENT_HELO = "client.outside.test"
VMAIL_ROOT = "/var/vmail"
DELIVERY_TIMEOUT = 120.0
SMTP_TIMEOUT = 90.0

T = TypeVar("T")


def new_token() -> str:
    """A unique marker used as Subject and in the Message-ID, so a probe can be found again."""
    return f"probe-{uuid.uuid4().hex}"


def outside_sender(token: str) -> str:
    """A unique envelope sender per probe, so its queue entries can be told apart from others."""
    return f"{token}@outside.test"


def mailbox_dir(address: str) -> str:
    """Where Dovecot keeps a mailbox (single-dbox: one file u.<UID> per message)."""
    local, domain = address.split("@")
    return f"{VMAIL_ROOT}/{domain}/{local}/sdbox"


def build_message(
    sender: str,
    recipient: str,
    token: str,
    body: str | None = None,
    attachment: tuple[str, bytes] | None = None,
) -> bytes:
    """A well-formed message (CRLF line ends, Date, Message-ID) whose Subject is `token`."""
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = sender
    msg["To"] = recipient
    msg["Subject"] = token
    msg["Date"] = format_datetime(datetime.datetime.now(datetime.timezone.utc))
    msg["Message-ID"] = f"<{token}@{CLIENT_HELO}>"
    msg.set_content(
        body
        if body is not None
        else (
            "Hello,\n\nthis message checks that mail reaches its mailbox.\n"
            f"Reference: {token}\n\nRegards,\nthe test suite\n"
        )
    )
    if attachment is not None:
        filename, data = attachment
        msg.add_attachment(data, maintype="application", subtype="octet-stream", filename=filename)
    return msg.as_bytes()


def gtube_message(sender: str, recipient: str, token: str) -> bytes:
    return build_message(sender, recipient, token, body=f"Spam test pattern follows.\n\n{GTUBE}\n")


def eicar_message(sender: str, recipient: str, token: str) -> bytes:
    return build_message(sender, recipient, token, attachment=("eicar.com", EICAR))


def attachment_message(sender: str, recipient: str, token: str) -> bytes:
    """A message with a harmless, never-seen-before attachment, so the virus scanner must be asked."""
    return build_message(sender, recipient, token, attachment=("notes.bin", f"{token}\n".encode() * 8))


@dataclass(frozen=True)
class SmtpOutcome:
    """Where an SMTP transaction ended: `stage` is the command that got a non-success reply,
    or "accepted" when the server took the message after DATA."""

    stage: str
    code: int
    text: str

    @property
    def accepted(self) -> bool:
        return self.stage == "accepted"

    def __str__(self) -> str:
        return f"{self.stage}: {self.code} {self.text}"


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply


def insecure_context(version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    """A client context that accepts any certificate; `version` pins both ends of the version range.

    For TLS 1.0/1.1 the cipher list drops to security level 0, because OpenSSL 3 otherwise refuses
    those versions on the client side and the test would prove nothing about the server.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if version is not None:
        with warnings.catch_warnings():
            # Python deprecates TLS 1.0/1.1 in clients; offering them is the point of the test.
            warnings.simplefilter("ignore", DeprecationWarning)
            if version in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
                ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
            ctx.minimum_version = version
            ctx.maximum_version = version
    return ctx


def verifying_context(ca_pem: str) -> ssl.SSLContext:
    """A client context that trusts only the appliance's own certificate and checks the host name."""
    ctx = ssl.create_default_context(cadata=ca_pem)
    ctx.check_hostname = True
    return ctx


def open_smtp(ip: str, port: int, *, implicit_tls: bool = False) -> tuple[smtplib.SMTP, int, str]:
    """Connect and return the client with the banner's code and text (smtplib raises on non-220 only
    when connecting in the constructor, so connect separately to see the banner whatever it is)."""
    client: smtplib.SMTP
    if implicit_tls:
        client = smtplib.SMTP_SSL(local_hostname=CLIENT_HELO, timeout=SMTP_TIMEOUT, context=insecure_context())
    else:
        client = smtplib.SMTP(local_hostname=CLIENT_HELO, timeout=SMTP_TIMEOUT)
    # smtplib remembers the host (for STARTTLS's server_hostname) only when given to the constructor.
    client._host = ip
    code, banner = client.connect(ip, port)
    return client, code, _text(banner)


def close_smtp(client: smtplib.SMTP) -> None:
    try:
        client.quit()
    except (smtplib.SMTPException, OSError):
        client.close()


def smtp_transaction(
    ip: str,
    port: int,
    sender: str,
    recipients: Sequence[str],
    message: bytes,
    *,
    starttls: bool = False,
    implicit_tls: bool = False,
    login: tuple[str, str] | None = None,
    mail_options: Sequence[str] = (),
) -> SmtpOutcome:
    """Run one complete SMTP transaction and report the first refusal, or acceptance after DATA.

    A server that drops the connection is reported with code 0 at the stage where it happened.
    """
    stage = "connect"
    client, code, text = open_smtp(ip, port, implicit_tls=implicit_tls)
    try:
        if code != 220:
            return SmtpOutcome(stage, code, text)
        stage = "ehlo"
        code, reply = client.ehlo()
        if code != 250:
            return SmtpOutcome(stage, code, _text(reply))
        if starttls:
            stage = "starttls"
            code, reply = client.starttls(context=insecure_context())
            if code != 220:
                return SmtpOutcome(stage, code, _text(reply))
            stage = "ehlo"
            code, reply = client.ehlo()
            if code != 250:
                return SmtpOutcome(stage, code, _text(reply))
        if login is not None:
            stage = "auth"
            try:
                client.login(*login)
            except smtplib.SMTPAuthenticationError as err:
                return SmtpOutcome(stage, err.smtp_code, _text(err.smtp_error))
        stage = "mail"
        code, reply = client.mail(sender, list(mail_options))
        if code != 250:
            return SmtpOutcome(stage, code, _text(reply))
        stage = "rcpt"
        for recipient in recipients:
            code, reply = client.rcpt(recipient)
            if code not in (250, 251):
                return SmtpOutcome(stage, code, _text(reply))
        stage = "data"
        try:
            code, reply = client.data(message)
        except smtplib.SMTPDataError as err:
            return SmtpOutcome(stage, err.smtp_code, _text(err.smtp_error))
        if code != 250:
            return SmtpOutcome(stage, code, _text(reply))
        return SmtpOutcome("accepted", code, _text(reply))
    except smtplib.SMTPServerDisconnected as err:
        return SmtpOutcome(stage, 0, f"server disconnected: {err}")
    finally:
        close_smtp(client)


def ehlo_keywords(ip: str, port: int, *, implicit_tls: bool = False, starttls: bool = False) -> dict[str, str]:
    """The EHLO extensions offered on a port (after STARTTLS when asked), keyed in lower case."""
    client, code, text = open_smtp(ip, port, implicit_tls=implicit_tls)
    try:
        assert code == 220, f"banner on port {port}: {code} {text}"
        client.ehlo()
        if starttls:
            assert client.has_extn("starttls"), f"port {port} offers no STARTTLS: {client.esmtp_features}"
            client.starttls(context=insecure_context())
            client.ehlo()
        return dict(client.esmtp_features)
    finally:
        close_smtp(client)


def tls_handshake(ip: str, port: int, ctx: ssl.SSLContext, server_hostname: str | None = None) -> str:
    """Complete an implicit-TLS handshake and return the negotiated version."""
    with socket.create_connection((ip, port), timeout=30) as raw:
        with ctx.wrap_socket(raw, server_hostname=server_hostname) as tls:
            return tls.version() or ""


# Reasons OpenSSL gives when the *client* cannot even offer what it was asked to; a test that sees
# one of these has not reached the server's policy at all.
CLIENT_SIDE_TLS_REASONS = frozenset(
    {"NO_PROTOCOLS_AVAILABLE", "NO_CIPHERS_AVAILABLE", "NO_SUITABLE_SIGNATURE_ALGORITHM"}
)


def tls_refusal(ip: str, port: int, ctx: ssl.SSLContext, server_hostname: str | None = None) -> str | None:
    """Try an implicit-TLS handshake (with SNI when `server_hostname` is given): None when the server
    completes it, else how it refused.

    The TCP connection itself must succeed (a closed port is no refusal of a TLS version), and an
    error OpenSSL raises on the client's own side fails the test instead of passing it.
    """
    raw = socket.create_connection((ip, port), timeout=30)
    try:
        with ctx.wrap_socket(raw, server_hostname=server_hostname) as tls:
            tls.version()
            return None
    except ssl.SSLError as err:
        if err.reason in CLIENT_SIDE_TLS_REASONS:
            raise AssertionError(f"the client could not offer what the test asked for: {err}") from err
        return str(err.reason or err)
    except (ConnectionResetError, BrokenPipeError) as err:
        return f"connection dropped: {err}"
    finally:
        raw.close()


def wait_until(probe: Callable[[], T], timeout: float, interval: float = 1.0) -> T:
    """Call `probe` until it returns something truthy or `timeout` seconds pass; return the last result."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result or time.monotonic() >= deadline:
            return result
        time.sleep(interval)


def wait_for_port(ip: str, port: int, timeout: float = 120.0) -> bool:
    def connects() -> bool:
        try:
            with socket.create_connection((ip, port), timeout=5):
                return True
        except OSError:
            return False

    return wait_until(connects, timeout)


# --- inside the container, through a testinfra host -------------------------------------------


def find_messages(host: Any, token: str, root: str = VMAIL_ROOT) -> list[str]:
    """Message files under `root` (only sdbox's dbox-Mails/u.<UID>, not Dovecot's indexes) containing `token`."""
    out = host.run("find %s -type f -path '*/dbox-Mails/u.*' -exec grep -lF -e %s {} +", root, token)
    return sorted(line for line in out.stdout.splitlines() if line.strip())


def wait_for_messages(host: Any, token: str, root: str = VMAIL_ROOT, timeout: float = DELIVERY_TIMEOUT) -> list[str]:
    return wait_until(lambda: find_messages(host, token, root), timeout, interval=2.0)


def message_bytes(host: Any, path: str) -> bytes:
    """The message stored in the sdbox file `path` as Dovecot hands it out (without the dbox framing), through
    doveadm fetch: <home>/sdbox/mailboxes/<mailbox>/dbox-Mails/u.<UID> of <local>@<domain>."""
    relative = path[len(VMAIL_ROOT) + 1:]
    domain, local, _, _, rest = relative.split("/", 4)
    mailbox, _, name = rest.rpartition("/dbox-Mails/")
    out = host.run("doveadm fetch -u %s text mailbox %s uid %s | base64 -w0", f"{local}@{domain}", mailbox,
                   name.removeprefix("u."))
    assert out.rc == 0, f"cannot fetch {path}: {out.stderr}"
    return base64.b64decode(out.stdout.strip()).removeprefix(b"text:\n")


def read_bytes(host: Any, path: str) -> bytes:
    """A file's exact bytes; base64 in transit because command output loses trailing newlines."""
    out = host.run("base64 -w0 -- %s", path)
    assert out.rc == 0, f"cannot read {path}: {out.stderr}"
    return base64.b64decode(out.stdout.strip())


def queue_entries(host: Any) -> list[dict[str, Any]]:
    """Every message in the Postfix queues (maildrop, incoming, active, deferred, hold)."""
    out = host.run("postqueue -j")
    assert out.rc == 0, f"postqueue -j failed: {out.stderr}"
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def queued_from(host: Any, sender: str) -> list[dict[str, Any]]:
    return [entry for entry in queue_entries(host) if entry.get("sender") == sender]


def wait_for_local_port(host: Any, port: int, timeout: float = 300.0) -> bool:
    """Whether something inside the container accepts TCP on 127.0.0.1:`port` within `timeout`."""
    return wait_until(
        lambda: host.run("timeout 3 bash -c %s", f"exec 3<>/dev/tcp/127.0.0.1/{port}").rc == 0,
        timeout,
        interval=2.0,
    )


# --- IMAP --------------------------------------------------------------------------------------


def imap_fetch_by_subject(
    ip: str, user: str, password: str, subject: str, timeout: float = DELIVERY_TIMEOUT
) -> bytes | None:
    """Log in over IMAPS, wait for a message in INBOX with `subject` and return it, or None."""
    with imaplib.IMAP4_SSL(ip, 993, ssl_context=insecure_context(), timeout=30) as imap:
        imap.login(user, password)

        def search() -> list[bytes]:
            imap.select("INBOX", readonly=True)
            status, data = imap.search(None, "SUBJECT", f'"{subject}"')
            assert status == "OK", f"IMAP SEARCH failed: {data}"
            return data[0].split()

        ids = wait_until(search, timeout, interval=2.0)
        if not ids:
            return None
        status, data = imap.fetch(ids[0], "(BODY.PEEK[])")
        assert status == "OK", f"IMAP FETCH failed: {data}"
        return bytes(data[0][1])


# --- DKIM --------------------------------------------------------------------------------------


def dkim_txt_from_zone_snippet(text: str) -> bytes:
    """The TXT record from a `.pub` file as rspamadm writes it (a zone snippet of quoted strings);
    a file holding just the bare record is accepted as well."""
    parts = re.findall(r'"([^"]*)"', text)
    record = "".join(parts) if parts else text.strip()
    return record.encode()


def dkim_txt_from_private_key(pem: bytes) -> bytes:
    """The TXT record that publishes the public half of an RSA private key."""
    key = serialization.load_pem_private_key(pem, password=None)
    spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return b"v=DKIM1; k=rsa; p=" + base64.b64encode(spki)


def dkim_public_key(txt: bytes) -> bytes:
    """The p= tag of a DKIM TXT record, for comparing records that differ only in spacing."""
    tags = dict((k.strip(), v.strip()) for k, _, v in (part.partition(b"=") for part in txt.split(b";")) if k.strip())
    return re.sub(rb"\s", b"", tags.get(b"p", b""))


def dkim_signature_tags(message: bytes) -> list[dict[str, str]]:
    """The tags of every DKIM-Signature header, in header order."""
    parsed = BytesHeaderParser(policy=policy.compat32).parsebytes(message)
    result = []
    for value in parsed.get_all("DKIM-Signature") or []:
        flat = re.sub(r"\s+", "", str(value))
        result.append({k: v for k, _, v in (t.partition("=") for t in flat.split(";")) if k})
    return result


def dkim_failure(message: bytes, domain: str, selector: str, txt: bytes) -> str | None:
    """None when the message carries a valid signature by `domain`/`selector` under the key in
    `txt`, else why not. DNS is replaced by a function that knows exactly that one record."""
    wanted = f"{selector}._domainkey.{domain}".encode()

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes | None:
        return txt if name.rstrip(b".").lower() == wanted else None

    crlf = re.sub(rb"(?<!\r)\n", b"\r\n", message)
    for index, sig in enumerate(dkim_signature_tags(crlf)):
        if sig.get("d", "").lower() == domain and sig.get("s", "") == selector:
            try:
                valid = dkim.DKIM(crlf).verify(idx=index, dnsfunc=dnsfunc)
            except dkim.DKIMException as err:
                return f"{type(err).__name__}: {err}"
            return None if valid else "the signature does not verify"
    return f"no DKIM-Signature with d={domain} s={selector}"


# --- logins from a chosen source address --------------------------------------------------------

LOGIN_PORTS = {"imap": 993, "pop3": 995, "sieve": 4190, "smtp": 587}


class Blocked(Exception):
    """The TCP connection itself was refused or timed out: the source address is blocked."""


def _connect_from(ip: str, port: int, source: str, timeout: float) -> socket.socket:
    try:
        return socket.create_connection((ip, port), timeout=timeout, source_address=(source, 0))
    except (ConnectionRefusedError, TimeoutError, socket.timeout) as err:
        raise Blocked(f"{source} -> {ip}:{port}: {err!r}") from err


class _SourceIMAP(imaplib.IMAP4_SSL):
    def __init__(self, ip: str, source: str, timeout: float) -> None:
        self._source = source
        super().__init__(ip, LOGIN_PORTS["imap"], ssl_context=insecure_context(), timeout=timeout)

    def _create_socket(self, timeout: float | None) -> socket.socket:
        raw = _connect_from(self.host, self.port, self._source, timeout or 30)
        return self.ssl_context.wrap_socket(raw, server_hostname=self.host)


def _sieve_line(tls: ssl.SSLSocket | socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = tls.recv(1)
        if not chunk:
            raise ConnectionError("ManageSieve server closed the connection")
        data += chunk
    return data


def _sieve_response(conn: ssl.SSLSocket | socket.socket) -> bytes:
    """Lines up to and including the OK/NO/BYE that ends a ManageSieve response."""
    while True:
        line = _sieve_line(conn)
        if line.split(b" ", 1)[0].upper() in (b"OK", b"NO", b"BYE"):
            return line


def login(ip: str, protocol: str, user: str, password: str, source: str, timeout: float = 30) -> bool:
    """Log in over `protocol` from `source`: True if accepted, False if refused; Blocked if the address
    cannot connect at all."""
    port = LOGIN_PORTS[protocol]
    if protocol == "imap":
        try:
            with _SourceIMAP(ip, source, timeout) as imap:
                imap.login(user, password)
                return True
        except imaplib.IMAP4.error:
            return False
    if protocol == "pop3":
        raw = _connect_from(ip, port, source, timeout)
        with insecure_context().wrap_socket(raw, server_hostname=ip) as conn:
            reader = conn.makefile("rb")
            reader.readline()
            conn.sendall(f"USER {user}\r\n".encode())
            reader.readline()
            conn.sendall(f"PASS {password}\r\n".encode())
            return reader.readline().startswith(b"+OK")
    if protocol == "sieve":
        raw = _connect_from(ip, port, source, timeout)
        try:
            _sieve_response(raw)
            raw.sendall(b"STARTTLS\r\n")
            _sieve_response(raw)
            with insecure_context().wrap_socket(raw, server_hostname=ip) as conn:
                _sieve_response(conn)
                token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
                conn.sendall(f'AUTHENTICATE "PLAIN" "{token}"\r\n'.encode())
                return _sieve_response(conn).upper().startswith(b"OK")
        finally:
            raw.close()
    if protocol == "smtp":
        try:
            client = smtplib.SMTP(local_hostname=CLIENT_HELO, timeout=timeout, source_address=(source, 0))
            client._host = ip
            client.connect(ip, port)
        except (ConnectionRefusedError, TimeoutError, socket.timeout) as err:
            raise Blocked(f"{source} -> {ip}:{port}: {err!r}") from err
        try:
            client.ehlo()
            client.starttls(context=insecure_context())
            client.ehlo()
            try:
                client.login(user, password)
                return True
            except smtplib.SMTPAuthenticationError:
                return False
        finally:
            close_smtp(client)
    raise ValueError(f"unknown protocol {protocol}")


def is_blocked(ip: str, protocol: str, source: str) -> bool:
    """Whether `source` cannot even open a connection to the login port of `protocol`."""
    try:
        _connect_from(ip, LOGIN_PORTS[protocol], source, timeout=5).close()
        return False
    except Blocked:
        return True
