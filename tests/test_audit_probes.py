"""The live probes against small TLS, SMTP and HTTPS servers started here on loopback: they tell a server that
accepts TLS 1.0 from one that refuses it, see STARTTLS, AUTH and an open relay as an outside client would, and
fetch the MTA-STS policy the way a sending MTA does."""

from __future__ import annotations

import datetime
import http.server
import socket
import socketserver
import ssl
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mailappliance.audit import probes
from mailappliance.audit.judge_probes import judge_mta_sts, judge_port, judge_smtp
from mailappliance.site.mta_sts import mta_sts_policy

NAME = "mx.audit.test"
DOMAIN = "audit.test"
POLICY_HOST = f"mta-sts.{DOMAIN}"
POLICY = mta_sts_policy("enforce", NAME, 604800)
NOW = datetime.datetime.now(datetime.UTC)


def _write_cert(folder: Path, names: list[str]) -> tuple[Path, Path]:
    """A self-signed EC certificate for `names` (EC keeps generation fast)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(NOW - datetime.timedelta(days=1))
            .not_valid_after(NOW + datetime.timedelta(days=90))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name) for name in names]), critical=False)
            .sign(key, hashes.SHA256()))
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    return folder / "cert.pem", folder / "key.pem"


@pytest.fixture(scope="module")
def cert_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """For NAME only, like the mail ports' certificate."""
    return _write_cert(tmp_path_factory.mktemp("tls"), [NAME])


@pytest.fixture(scope="module")
def web_cert_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """For NAME and the policy host, as the appliance's certificate will be once it serves MTA-STS."""
    return _write_cert(tmp_path_factory.mktemp("web-tls"), [NAME, POLICY_HOST])


def server_context(cert_files: tuple[Path, Path], minimum: ssl.TLSVersion) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*cert_files)
    # SECLEVEL 0 so that the minimum version alone decides whether TLS 1.0 is spoken.
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.0 is enabled on purpose
        ctx.minimum_version = minimum
    return ctx


@dataclass
class SmtpBehaviour:
    auth_before_tls: bool = False
    open_relay: bool = False


class _ImapsHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        try:
            with self.server.ctx.wrap_socket(self.request, server_side=True) as tls:  # type: ignore[attr-defined]
                tls.sendall(b"* OK [CAPABILITY IMAP4rev1] ready.\r\n")
        except (ssl.SSLError, OSError):
            pass


class _SmtpHandler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        behaviour: SmtpBehaviour = self.server.behaviour  # type: ignore[attr-defined]
        conn, reader, tls = self.request, self.rfile, False

        def send(text: str) -> None:
            conn.sendall(text.encode() + b"\r\n")

        send(f"220 {NAME} ESMTP")
        try:
            while line := reader.readline().decode().strip():
                verb = line.split()[0].upper()
                if verb == "EHLO":
                    features = ["PIPELINING"] + ([] if tls else ["STARTTLS"])
                    if tls or behaviour.auth_before_tls:
                        features.append("AUTH PLAIN")
                    send("\r\n".join([f"250-{NAME}"] + [f"250-{f}" for f in features[:-1]] + [f"250 {features[-1]}"]))
                elif verb == "STARTTLS" and not tls:
                    send("220 2.0.0 Ready to start TLS")
                    conn = self.server.ctx.wrap_socket(conn, server_side=True)  # type: ignore[attr-defined]
                    reader, tls = conn.makefile("rb"), True
                elif verb == "MAIL":
                    send("250 2.1.0 Ok")
                elif verb == "RCPT":
                    send("250 2.1.5 Ok" if behaviour.open_relay else "554 5.7.1 Relay access denied")
                elif verb == "QUIT":
                    send("221 2.0.0 Bye")
                    return
                else:
                    send("250 2.0.0 Ok")
        except (ssl.SSLError, OSError):
            pass


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def _serve(server: socketserver.BaseServer, ctx: ssl.SSLContext, behaviour: object) -> Iterator[int]:
    """Run `server` in a thread for the duration of the loop body; its handlers read ctx and behaviour."""
    server.ctx = ctx  # type: ignore[attr-defined]
    server.behaviour = behaviour  # type: ignore[attr-defined]
    # A short poll interval: shutdown() waits for the loop to notice, half a second by default.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _serve_mail(handler: type, ctx: ssl.SSLContext, behaviour: SmtpBehaviour | None = None) -> Iterator[int]:
    yield from _serve(_Server(("127.0.0.1", 0), handler), ctx, behaviour or SmtpBehaviour())


@pytest.mark.parametrize("minimum,verdict", [(ssl.TLSVersion.TLSv1, "fail"), (ssl.TLSVersion.TLSv1_2, "pass")],
                         ids=["TLS1.0-enabled", "TLS1.2-minimum"])
def test_implicit_tls_probe_tells_legacy_tls_apart(cert_files: tuple[Path, Path], minimum: ssl.TLSVersion,
                                                   verdict: str) -> None:
    for port_number in _serve_mail(_ImapsHandler, server_context(cert_files, minimum)):
        seen = probes.probe_port("127.0.0.1", probes.Port(port_number, probes.IMAP_TLS), NAME)
        assert seen["versions"]["TLSv1"]["accepted"] is (verdict == "fail")
        assert seen["versions"]["TLSv1.2"]["accepted"] and seen["versions"]["TLSv1.3"]["accepted"]
        assert seen["greeting"] == "* OK [CAPABILITY IMAP4rev1] ready."
        controls = {c.id.replace(str(port_number), "N"): c for c in judge_port(seen, NAME, NOW)}
        assert controls["TLS-N-PROTOCOLS"].status == verdict
        assert controls["TLS-N-CERT-NAME"].status == "pass"
        assert controls["TLS-N-CERT-EXPIRY"].status == "pass"
        chain = controls["TLS-N-CERT-CHAIN"]
        assert chain.status == "warn" and "not publicly trusted" in chain.evidence


def test_starttls_probe_and_smtp_policy_of_a_well_behaved_server(cert_files: tuple[Path, Path]) -> None:
    for port_number in _serve_mail(_SmtpHandler, server_context(cert_files, ssl.TLSVersion.TLSv1_2)):
        seen = probes.probe_port("127.0.0.1", probes.Port(port_number, probes.SMTP_STARTTLS), NAME)
        assert seen["greeting"] == f"{NAME} ESMTP"
        assert not seen["versions"]["TLSv1.1"]["accepted"] and seen["versions"]["TLSv1.2"]["accepted"]
        policy = probes.smtp_policy("127.0.0.1", NAME, mx_port=port_number, submission_port=port_number)
        statuses = {c.id: c.status for c in judge_smtp(policy, {"993": {"greeting": "* OK ready."}}, NAME)}
        assert statuses == {"SMTP-25-STARTTLS": "pass", "SMTP-587-STARTTLS": "pass", "SMTP-25-NO-AUTH": "fail",
                            "SMTP-587-NO-AUTH-BEFORE-TLS": "pass", "SMTP-OPEN-RELAY": "pass",
                            "SMTP-BANNER": "pass", "IMAP-GREETING": "pass"}
        # The fake server offers AUTH after STARTTLS, as submission does; port 25 must not.
        assert policy["587"]["auth_after_tls"] == ["PLAIN"]


def test_smtp_policy_catches_auth_before_tls_and_an_open_relay(cert_files: tuple[Path, Path]) -> None:
    behaviour = SmtpBehaviour(auth_before_tls=True, open_relay=True)
    for port_number in _serve_mail(_SmtpHandler, server_context(cert_files, ssl.TLSVersion.TLSv1_2), behaviour):
        policy = probes.smtp_policy("127.0.0.1", NAME, mx_port=port_number, submission_port=port_number)
        statuses = {c.id: c.status for c in judge_smtp(policy, {}, NAME)}
        assert statuses["SMTP-587-NO-AUTH-BEFORE-TLS"] == "fail"
        assert statuses["SMTP-OPEN-RELAY"] == "fail"
        # The attempt stops at RCPT: no DATA is ever sent.
        assert [step["command"].split(":")[0] for step in policy["relay"]["steps"]] == ["MAIL FROM", "RCPT TO"]


def test_a_closed_port_is_reported_not_raised() -> None:
    with _Server(("127.0.0.1", 0), _ImapsHandler) as server:
        closed = server.server_address[1]
    seen = probes.probe_port("127.0.0.1", probes.Port(closed, probes.IMAP_TLS), NAME)
    assert seen["reachable"] is False and seen["error"]


@dataclass
class WebBehaviour:
    status: int = 200
    content_type: str = "text/plain"
    body: bytes = POLICY.encode()
    headers: dict[str, str] = field(default_factory=dict)
    # What the server saw, for the test to check the probe asked like a sender does.
    requests: list[tuple[str, str, str]] = field(default_factory=list)
    server_names: list[str | None] = field(default_factory=list)


class _PolicyHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # http.server dispatches on this name
        behaviour: WebBehaviour = self.server.behaviour  # type: ignore[attr-defined]
        behaviour.requests.append((self.command, self.path, self.headers.get("Host", "")))
        self.send_response(behaviour.status)
        self.send_header("Content-Type", behaviour.content_type)
        self.send_header("Content-Length", str(len(behaviour.body)))
        for name, value in behaviour.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(behaviour.body)

    def log_message(self, format: str, *args: object) -> None:  # quiet: pytest shows failures, not access logs
        pass


class _HTTPSServer(http.server.ThreadingHTTPServer):
    """The TLS handshake runs in the request's thread, so a refused handshake never stalls the server."""

    daemon_threads = True

    def finish_request(self, request: socket.socket, client_address: tuple) -> None:  # type: ignore[override]
        try:
            tls = self.ctx.wrap_socket(request, server_side=True)  # type: ignore[attr-defined]
        except (ssl.SSLError, OSError):
            return
        with tls:
            self.RequestHandlerClass(tls, client_address, self)


def _serve_https(cert: tuple[Path, Path], behaviour: WebBehaviour,
                 minimum: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2) -> Iterator[int]:
    ctx = server_context(cert, minimum)
    ctx.sni_callback = lambda _sock, name, _ctx: behaviour.server_names.append(name)  # type: ignore[assignment]
    yield from _serve(_HTTPSServer(("127.0.0.1", 0), _PolicyHandler), ctx, behaviour)


def test_mta_sts_probe_fetches_the_policy_as_a_sender_would(web_cert_files: tuple[Path, Path]) -> None:
    behaviour = WebBehaviour()
    for port_number in _serve_https(web_cert_files, behaviour):
        seen = probes.fetch_mta_sts_policy("127.0.0.1", DOMAIN, port_number)
    assert behaviour.requests == [("GET", "/.well-known/mta-sts.txt", POLICY_HOST)]
    # SNI names the policy host on the fetch and on the trust check, though the probe connects to an address.
    assert behaviour.server_names == [POLICY_HOST, POLICY_HOST]
    assert (seen["status"], seen["content_type"], seen["body"]) == (200, "text/plain", POLICY)
    assert seen["tls_version"] == "TLSv1.3" and seen["certificate"]["dns_names"] == [NAME, POLICY_HOST]
    assert seen["trust"]["verified"] is False and seen["trust"]["verify_code"] == 18
    control = judge_mta_sts({DOMAIN: seen}, POLICY)
    # Self-signed: served as planned, but senders would not trust the policy host.
    assert control.status == "warn" and "serves the planned policy" in control.evidence


SERVED_WRONG = {
    "not-found": (WebBehaviour(status=404, body=b"not found"), "HTTP 404 Not Found"),
    "redirect": (WebBehaviour(status=302, body=b"", headers={"Location": "https://www.audit.test/"}),
                 "(a redirect to https://www.audit.test/, which senders do not follow)"),
    "content-type": (WebBehaviour(content_type="text/html"), "Content-Type text/html, not text/plain"),
    "testing-mode": (WebBehaviour(body=POLICY.replace("enforce", "testing").encode()),
                     ("body differs from the plan's policy: line 2 is 'mode: testing' where the plan has "
                      "'mode: enforce'")),
    "crlf": (WebBehaviour(body=POLICY.replace("\n", "\r\n").encode()),
             "body differs from the plan's policy: CRLF line endings where the plan has LF"),
}


@pytest.mark.parametrize("case", sorted(SERVED_WRONG))
def test_mta_sts_policy_served_wrong_fails(web_cert_files: tuple[Path, Path], case: str) -> None:
    behaviour, reason = SERVED_WRONG[case]
    for port_number in _serve_https(web_cert_files, behaviour):
        seen = probes.fetch_mta_sts_policy("127.0.0.1", DOMAIN, port_number)
    control = judge_mta_sts({DOMAIN: seen}, POLICY)
    assert control.status == "fail" and reason in control.evidence, control.evidence


def test_mta_sts_policy_host_missing_from_the_certificate_fails(cert_files: tuple[Path, Path]) -> None:
    for port_number in _serve_https(cert_files, WebBehaviour()):
        seen = probes.fetch_mta_sts_policy("127.0.0.1", DOMAIN, port_number)
    control = judge_mta_sts({DOMAIN: seen}, POLICY)
    assert control.status == "fail"
    assert f"the certificate does not name {POLICY_HOST} (subjectAltName: {NAME})" in control.evidence


def test_mta_sts_policy_host_unreachable_fails() -> None:
    with _Server(("127.0.0.1", 0), _ImapsHandler) as server:
        closed = server.server_address[1]
    seen = probes.fetch_mta_sts_policy("127.0.0.1", DOMAIN, closed)
    assert seen["reachable"] is False
    control = judge_mta_sts({DOMAIN: seen}, POLICY)
    assert control.status == "fail" and f"127.0.0.1:{closed}: unreachable: " in control.evidence


@pytest.mark.parametrize("minimum,verdict", [(ssl.TLSVersion.TLSv1, "fail"), (ssl.TLSVersion.TLSv1_2, "pass")],
                         ids=["TLS1.0-enabled", "TLS1.2-minimum"])
def test_web_port_is_judged_for_protocol_versions_only(web_cert_files: tuple[Path, Path], minimum: ssl.TLSVersion,
                                                       verdict: str) -> None:
    for port_number in _serve_https(web_cert_files, WebBehaviour(), minimum):
        seen = probes.probe_port("127.0.0.1", probes.Port(port_number, probes.HTTPS), POLICY_HOST)
    assert seen["reachable"] and seen["greeting"] == ""
    assert seen["versions"]["TLSv1"]["accepted"] is (verdict == "fail")
    controls = judge_port(seen, NAME, NOW)
    assert [(c.id, c.status) for c in controls] == [(f"TLS-{port_number}-PROTOCOLS", verdict)]
    assert "nginx (ssl_protocols TLSv1.2 TLSv1.3)" in controls[0].remediation
