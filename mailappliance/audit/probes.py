"""Live probes from the controller, as an outside client sees the appliance: TLS per port, SMTP policy, banners,
and the MTA-STS policy its web server serves.

Probes only read: they never send a message (an open-relay attempt stops after RCPT) and never log in.
Client contexts allow every protocol version and cipher the local OpenSSL still knows, so when TLS 1.0 is
refused, it is the server that refused it. Results are plain data for the report's evidence section.
"""

from __future__ import annotations

import hashlib
import http.client
import smtplib
import socket
import ssl
import warnings
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

TIMEOUT = 10.0
CLIENT_HELO = "audit-probe.mailappliance.invalid"
# The relay attempt: a sender and a recipient in two domains the appliance does not serve (RFC 2606 names).
RELAY_SENDER = "audit-probe@relay-test-sender.example"
RELAY_RECIPIENT = "audit-probe@relay-test-recipient.example.net"

VERSIONS = {
    "TLSv1": ssl.TLSVersion.TLSv1,
    "TLSv1.1": ssl.TLSVersion.TLSv1_1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}
SMTP_STARTTLS, SMTP_TLS, IMAP_TLS, POP3_TLS, SIEVE_STARTTLS, HTTPS = (
    "smtp-starttls", "smtp-tls", "imap-tls", "pop3-tls", "sieve-starttls", "https")
HTTPS_PORT = 443
MTA_STS_PATH = "/.well-known/mta-sts.txt"
# Senders may cap how much of a policy they read (RFC 8461 section 3.3); a policy is a few lines, so reading stops
# here and anything longer is reported as broken.
MTA_STS_MAX_BYTES = 64 * 1024
USER_AGENT = "mailappliance-audit"


@dataclass(frozen=True)
class Port:
    number: int
    kind: str
    # An optional service (ManageSieve) that is closed is "not applicable", not a failure.
    required: bool = True


PORTS = (
    Port(25, SMTP_STARTTLS), Port(587, SMTP_STARTTLS), Port(465, SMTP_TLS), Port(993, IMAP_TLS),
    Port(995, POP3_TLS), Port(4190, SIEVE_STARTTLS, required=False), Port(HTTPS_PORT, HTTPS),
)


class ProbeError(Exception):
    """The service could not be spoken to (closed port, no STARTTLS, unexpected reply)."""


def client_context(version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    """A context that verifies nothing and offers `version` only (or every version), down to SECLEVEL 0."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    # Offering deprecated versions is the point of the probe: Python's warning about them is expected.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        if version is None:
            ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
            ctx.maximum_version = ssl.TLSVersion.MAXIMUM_SUPPORTED
        else:
            ctx.minimum_version = ctx.maximum_version = version
    return ctx


def verifying_context() -> ssl.SSLContext:
    """The system's trust store, as a mail client uses it; the host name is matched separately."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    return ctx


def _read_line(sock: socket.socket | ssl.SSLSocket) -> str:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            break
        data += chunk
    return data.decode("utf-8", "replace").rstrip("\r\n")


def _sieve_starttls(sock: socket.socket) -> list[str]:
    lines = []
    while True:
        line = _read_line(sock)
        if not line:
            raise ProbeError("ManageSieve closed the connection during its greeting")
        lines.append(line)
        if line.startswith(("OK", "NO", "BYE")):
            break
    if not any(line.upper().startswith('"STARTTLS"') for line in lines):
        raise ProbeError("ManageSieve does not offer STARTTLS")
    sock.sendall(b"STARTTLS\r\n")
    reply = _read_line(sock)
    if not reply.upper().startswith("OK"):
        raise ProbeError(f"STARTTLS refused: {reply}")
    return lines


def _starttls(client: smtplib.SMTP, ctx: ssl.SSLContext, server_name: str) -> None:
    """smtplib's starttls() with the server name given here (smtplib only knows it when it connected itself)."""
    code, reply = client.docmd("STARTTLS")
    if code != 220:
        raise ProbeError(f"STARTTLS refused: {code} {reply.decode('utf-8', 'replace')}")
    assert client.sock is not None
    client.sock = ctx.wrap_socket(client.sock, server_hostname=server_name)
    client.file = None
    client.helo_resp = client.ehlo_resp = None
    client.esmtp_features = {}
    client.does_esmtp = False


def tls_session(address: str, port: Port, ctx: ssl.SSLContext, server_name: str) -> tuple[ssl.SSLSocket, str]:
    """Open a TLS session on `port` (after STARTTLS where the port needs it); return it and the greeting."""
    greeting = ""
    if port.kind == SMTP_STARTTLS:
        client = smtplib.SMTP(timeout=TIMEOUT)
        try:
            _, banner = client.connect(address, port.number)
            greeting = banner.decode("utf-8", "replace")
            client.ehlo(CLIENT_HELO)
            if not client.has_extn("starttls"):
                raise ProbeError("STARTTLS is not offered")
            _starttls(client, ctx, server_name)
            tls = client.sock
            # The session now belongs to the caller; smtplib must not close it.
            client.sock = client.file = None
            assert isinstance(tls, ssl.SSLSocket)
            return tls, greeting
        except (smtplib.SMTPException, OSError) as exc:
            client.close()
            if isinstance(exc, ssl.SSLError):
                raise
            raise ProbeError(f"SMTP: {exc}") from exc
    sock = socket.create_connection((address, port.number), timeout=TIMEOUT)
    try:
        if port.kind == SIEVE_STARTTLS:
            greeting = "\n".join(_sieve_starttls(sock))
        tls = ctx.wrap_socket(sock, server_hostname=server_name)
    except BaseException:
        sock.close()
        raise
    # HTTPS has no greeting: the server speaks only when asked.
    if port.kind in (IMAP_TLS, POP3_TLS, SMTP_TLS):
        try:
            greeting = _read_line(tls)
        except OSError:
            tls.close()
            raise
    return tls, greeting


def _handshake(address: str, port: Port, ctx: ssl.SSLContext, server_name: str) -> tuple[str | None, str]:
    """Negotiated version, or None with the reason the handshake failed."""
    try:
        tls, _ = tls_session(address, port, ctx, server_name)
    except ssl.SSLError as exc:
        return None, exc.reason or str(exc)
    except (OSError, ProbeError) as exc:
        return None, str(exc)
    with tls:
        return tls.version(), ""


def probe_port(address: str, port: Port, server_name: str) -> dict[str, Any]:
    """TLS evidence of one port: reachability, versions accepted, certificate, trust, greeting."""
    result: dict[str, Any] = {"port": port.number, "kind": port.kind, "required": port.required}
    try:
        tls, greeting = tls_session(address, port, client_context(), server_name)
    except (OSError, ProbeError) as exc:
        result["reachable"] = False
        result["error"] = str(exc)
        return result
    with tls:
        result["reachable"] = True
        result["greeting"] = greeting
        result["negotiated"] = tls.version()
        result["cipher"] = (tls.cipher() or ("",))[0]
        der = tls.getpeercert(binary_form=True)
    result["certificate"] = describe_certificate(der) if der else None
    versions: dict[str, Any] = {}
    for name, version in VERSIONS.items():
        negotiated, reason = _handshake(address, port, client_context(version), server_name)
        versions[name] = {"accepted": negotiated == name, "reason": reason}
    result["versions"] = versions
    result["trust"] = _trust(address, port, server_name)
    return result


def _trust(address: str, port: Port, server_name: str) -> dict[str, Any]:
    try:
        tls, _ = tls_session(address, port, verifying_context(), server_name)
    except ssl.SSLCertVerificationError as exc:
        return {"verified": False, "verify_code": exc.verify_code, "verify_message": exc.verify_message}
    except (OSError, ProbeError) as exc:
        return {"verified": False, "verify_code": None, "verify_message": str(exc)}
    tls.close()
    return {"verified": True, "verify_code": 0, "verify_message": "ok"}


def describe_certificate(der: bytes) -> dict[str, Any]:
    cert = x509.load_der_x509_certificate(der)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = san.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = []
    common = [attr.value for attr in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "self_signed": cert.subject == cert.issuer,
        "dns_names": list(names),
        "common_names": [str(name) for name in common],
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "serial": format(cert.serial_number, "x"),
        "sha256": cert.fingerprint(hashes.SHA256()).hex(),
    }


def smtp_policy(address: str, server_name: str, mx_port: int = 25, submission_port: int = 587) -> dict[str, Any]:
    """EHLO keywords on 25 and 587 before and after STARTTLS, the banner, and an open-relay attempt on 25.

    Results are keyed by the standard port numbers; other numbers are for test servers.
    """
    return {
        "25": _ehlo_both_sides(address, mx_port, server_name),
        "587": _ehlo_both_sides(address, submission_port, server_name),
        "relay": _relay_attempt(address, mx_port),
    }


def _ehlo_both_sides(address: str, number: int, server_name: str) -> dict[str, Any]:
    client = smtplib.SMTP(timeout=TIMEOUT)
    try:
        _, banner = client.connect(address, number)
        client.ehlo(CLIENT_HELO)
        seen: dict[str, Any] = {"reachable": True, "banner": banner.decode("utf-8", "replace"),
                                "before_tls": sorted(client.esmtp_features)}
        if client.has_extn("starttls"):
            _starttls(client, client_context(), server_name)
            client.ehlo(CLIENT_HELO)
            seen["after_tls"] = sorted(client.esmtp_features)
            seen["auth_after_tls"] = client.esmtp_features.get("auth", "").split()
        client.quit()
        return seen
    except (smtplib.SMTPException, OSError, ProbeError) as exc:
        return {"reachable": False, "error": str(exc)}
    finally:
        client.close()


def _relay_attempt(address: str, port: int) -> dict[str, Any]:
    client = smtplib.SMTP(timeout=TIMEOUT)
    steps: list[dict[str, Any]] = []
    try:
        client.connect(address, port)
        client.ehlo(CLIENT_HELO)
        for command in (f"MAIL FROM:<{RELAY_SENDER}>", f"RCPT TO:<{RELAY_RECIPIENT}>"):
            verb, _, arg = command.partition(" ")
            code, reply = client.docmd(verb, arg)
            steps.append({"command": command, "code": code, "reply": reply.decode("utf-8", "replace")})
            if code >= 400:
                break
        # Never DATA: the attempt must not leave a message anywhere, even on an open relay.
        client.docmd("RSET")
        client.quit()
        return {"reachable": True, "steps": steps}
    except (smtplib.SMTPException, OSError) as exc:
        return {"reachable": False, "error": str(exc), "steps": steps}
    finally:
        client.close()


def fetch_mta_sts_policy(address: str, domain: str, port: int = HTTPS_PORT) -> dict[str, Any]:
    """GET https://mta-sts.<domain>/.well-known/mta-sts.txt from `address`, as a sending MTA would fetch it.

    The request goes to `address` with SNI and Host set to the policy host, which may not resolve to the
    appliance yet (or at all, from the controller). Redirects are not followed (RFC 8461 section 3.3 forbids
    it), so a 3xx is evidence like any other status.
    """
    host = f"mta-sts.{domain}"
    web = Port(port, HTTPS)
    seen: dict[str, Any] = {"domain": domain, "host": host, "url": f"https://{host}{MTA_STS_PATH}",
                            "address": address, "port": port}
    connection = http.client.HTTPConnection(address, port, timeout=TIMEOUT)
    try:
        # A connection that already has its socket sends on it instead of connecting again.
        tls, _ = tls_session(address, web, client_context(), host)
        connection.sock = tls
        connection.request("GET", MTA_STS_PATH, headers={"Host": host, "User-Agent": USER_AGENT,
                                                         "Accept": "text/plain", "Connection": "close"})
        der = tls.getpeercert(binary_form=True)
        seen["tls_version"] = tls.version()
        seen["certificate"] = describe_certificate(der) if der else None
        response = connection.getresponse()
        body = response.read(MTA_STS_MAX_BYTES + 1)
    except (OSError, http.client.HTTPException) as exc:
        seen["reachable"] = False
        seen["error"] = str(exc) or type(exc).__name__
        return seen
    finally:
        connection.close()
    seen.update({
        "reachable": True,
        "status": response.status,
        "reason": response.reason,
        "content_type": response.getheader("Content-Type") or "",
        "location": response.getheader("Location") or "",
        "body": body.decode("utf-8", "replace"),
        "body_bytes": len(body),
        "body_sha256": hashlib.sha256(body).hexdigest(),
    })
    seen["trust"] = _trust(address, web, host)
    return seen


def probe_all(address: str, server_name: str, domains: list[str], ports: tuple[Port, ...] = PORTS) -> dict[str, Any]:
    """Every probe; the web port is greeted with the first domain's policy host name, which it serves."""
    web_name = f"mta-sts.{domains[0]}" if domains else server_name
    return {
        "address": address,
        "server_name": server_name,
        "ports": {str(port.number): probe_port(address, port, web_name if port.kind == HTTPS else server_name)
                  for port in ports},
        "smtp": smtp_policy(address, server_name),
        "mta_sts": {domain: fetch_mta_sts_policy(address, domain) for domain in domains},
    }
