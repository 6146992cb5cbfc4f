"""MTA-STS (RFC 8461) as a sending server fetches it: https://mta-sts.<domain>/.well-known/mta-sts.txt for each
fixture domain, with the certificate checked against that name, answers with exactly the policy text whose
hash `mailappliance dns plan` publishes as the id; nothing else is served, TLS below 1.2 is refused and the
Server header names no version."""

from __future__ import annotations

import http.client
import socket
import ssl
from dataclasses import dataclass

import pytest

from conftest import PROJECT_DIR
from mailappliance.site.mta_sts import mta_sts_policy
from mailappliance.site import Site, load_site
from mailprobe import insecure_context, tls_refusal, verifying_context, wait_for_port

FIXTURE = PROJECT_DIR / "molecule" / "default" / "site" / "site.yml"
DOMAINS = ["alpha.test", "beta.test"]
HTTPS_PORT = 443
POLICY_PATH = "/.well-known/mta-sts.txt"
CERT_PATH = "/etc/mailappliance/tls/cert.pem"
NGINX_LOG_COMMAND = "journalctl -u nginx --no-pager -n 50; tail -n 50 /var/log/nginx/error.log"


@dataclass(frozen=True)
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes


def https_get(ip: str, name: str, path: str, ctx: ssl.SSLContext) -> Reply:
    """GET `path` from the container's address as a client of `name` would: SNI, certificate name and Host."""
    with socket.create_connection((ip, HTTPS_PORT), timeout=30) as raw:
        with ctx.wrap_socket(raw, server_hostname=name) as tls:
            tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode("ascii"))
            response = http.client.HTTPResponse(tls, method="GET")
            response.begin()
            try:
                return Reply(response.status, response.headers, response.read())
            finally:
                response.close()


def nginx_log(host) -> str:
    out = host.run(NGINX_LOG_COMMAND)
    return f"\n{NGINX_LOG_COMMAND}:\n{out.stdout}{out.stderr}"


@pytest.fixture(scope="module")
def site() -> Site:
    return load_site(FIXTURE)


@pytest.fixture(scope="module")
def policy(site: Site) -> bytes:
    """The text `dns plan` hashes into the published id, computed here from the fixture site file."""
    return mta_sts_policy(site.dns.mta_sts_mode, site.hostname, site.dns.mta_sts_max_age).encode()


@pytest.fixture(scope="module")
def web(appliance) -> str:
    assert wait_for_port(appliance.ip, HTTPS_PORT), f"port {HTTPS_PORT} on {appliance.ip} accepts no connections"
    return appliance.ip


@pytest.fixture(scope="module")
def trusting(host) -> ssl.SSLContext:
    """Trusts only the deployed certificate, and checks that it names the host asked for."""
    pem = host.file(CERT_PATH).content_string
    assert "BEGIN CERTIFICATE" in pem, f"{CERT_PATH} holds no certificate"
    return verifying_context(pem)


def test_fixture_site_has_the_tested_domains(site: Site) -> None:
    assert [domain.name for domain in site.domains] == DOMAINS


@pytest.mark.parametrize("domain", DOMAINS)
def test_policy_is_served_byte_for_byte(host, web, trusting, policy, domain):
    name = f"mta-sts.{domain}"
    reply = https_get(web, name, POLICY_PATH, trusting)
    assert reply.status == 200, f"https://{name}{POLICY_PATH} answered {reply.status}{nginx_log(host)}"
    content_type = reply.headers.get("Content-Type", "")
    assert content_type.split(";")[0].strip() == "text/plain", f"Content-Type is {content_type!r}"
    assert reply.body == policy, f"served {reply.body!r}, the plan's policy is {policy!r}"


@pytest.mark.parametrize("domain", DOMAINS)
@pytest.mark.parametrize("path", ["/", "/.well-known/", "/.well-known/mta-sts.txt.bak", "/mta-sts.txt"])
def test_nothing_else_is_served(web, trusting, domain, path):
    reply = https_get(web, f"mta-sts.{domain}", path, trusting)
    assert reply.status == 404, f"https://mta-sts.{domain}{path} answered {reply.status}: {reply.body[:200]!r}"


def test_other_names_get_no_policy(web, trusting, site):
    """The appliance's own name is in the certificate too, but it is no MTA-STS policy host."""
    reply = https_get(web, site.hostname, POLICY_PATH, trusting)
    assert reply.status == 404, f"https://{site.hostname}{POLICY_PATH} answered {reply.status}"


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1], ids=["TLSv1.0", "TLSv1.1"])
def test_legacy_tls_is_refused(web, version):
    refusal = tls_refusal(web, HTTPS_PORT, insecure_context(version), "mta-sts.alpha.test")
    assert refusal is not None, f"port {HTTPS_PORT} completed a {version.name} handshake"


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3], ids=["TLSv1.2", "TLSv1.3"])
def test_current_tls_is_accepted(web, version):
    assert tls_refusal(web, HTTPS_PORT, insecure_context(version), "mta-sts.alpha.test") is None


def test_server_header_names_no_version(web, trusting):
    reply = https_get(web, "mta-sts.alpha.test", POLICY_PATH, trusting)
    server = reply.headers.get("Server", "")
    assert not any(char.isdigit() for char in server), f"Server header {server!r} names a version"
