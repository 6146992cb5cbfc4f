"""TLS on the implicit-TLS ports: the certificate names the host, TLS 1.2 and 1.3 work, and the
server itself refuses TLS 1.0 and 1.1 (the client is set up to offer them)."""

from __future__ import annotations

import ssl

import pytest

from mailprobe import HOSTNAME, insecure_context, tls_handshake, tls_refusal, verifying_context

TLS_PORTS = [465, 993]
CERT_PATH = "/etc/mailappliance/tls/cert.pem"
# The server's side of a refused handshake: Postfix logs a "warning: TLS library problem", Dovecot
# an "SSL_accept() failed: error:..." line. Both are the outcome these tests ask for.
REFUSED_TLS_LOG = r"SSL routines::(unsupported protocol|version too low)"


@pytest.mark.parametrize("port", TLS_PORTS)
def test_certificate_names_the_host(host, appliance, port):
    pem = host.file(CERT_PATH).content_string
    assert "BEGIN CERTIFICATE" in pem, f"{CERT_PATH} holds no certificate"
    assert tls_handshake(appliance.ip, port, verifying_context(pem), server_hostname=HOSTNAME)


@pytest.mark.parametrize("port", TLS_PORTS)
@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1], ids=["TLSv1.0", "TLSv1.1"])
def test_legacy_tls_is_refused(appliance, log_allowances, port, version):
    with log_allowances.expect(REFUSED_TLS_LOG, f"{version.name} offered on purpose to port {port}"):
        refusal = tls_refusal(appliance.ip, port, insecure_context(version))
    assert refusal is not None, f"port {port} completed a {version.name} handshake"


@pytest.mark.parametrize("port", TLS_PORTS)
@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3], ids=["TLSv1.2", "TLSv1.3"])
def test_current_tls_is_accepted(appliance, port, version):
    expected = {ssl.TLSVersion.TLSv1_2: "TLSv1.2", ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[version]
    assert tls_handshake(appliance.ip, port, insecure_context(version)) == expected
