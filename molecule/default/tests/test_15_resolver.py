"""The appliance resolves through its own Unbound: the host's resolv.conf and Postfix's chroot copy name it,
Rspamd's lookups (SPF and DMARC) and Postfix's (a recipient domain's MX) reach it, nobody outside can use it,
and, air-gapped as the fixture site is, an internet name is answered NXDOMAIN at once instead of timing out."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator
from contextlib import contextmanager

from mailprobe import build_message, new_token, smtp_transaction, wait_for_messages, wait_until

RECIPIENT = "alice@alpha.test"


def dig_status(host, name: str, rtype: str = "A") -> str:
    out = host.run("dig +tries=1 +time=5 %s %s", name, rtype)
    status = [line for line in out.stdout.splitlines() if "status:" in line]
    assert status, f"no answer for {name}: {out.stdout}{out.stderr}"
    return status[0].split("status:")[1].split(",")[0].strip()


def test_the_host_and_postfix_resolve_through_unbound_only(host):
    for path in ("/etc/resolv.conf", "/var/spool/postfix/etc/resolv.conf"):
        nameservers = [line.split()[1] for line in host.file(path).content_string.splitlines()
                       if line.startswith("nameserver")]
        assert nameservers == ["127.0.0.1"], f"{path}: {nameservers}"
    assert dig_status(host, "localhost") == "NOERROR"


def test_an_internet_name_is_answered_nxdomain_at_once_when_air_gapped(host):
    # Definite and local: NXDOMAIN from Unbound itself, never SERVFAIL or a timeout after asking the root servers.
    assert dig_status(host, "www.debian.org") == "NXDOMAIN"
    assert dig_status(host, "outside.test", "TXT") == "NXDOMAIN"


def test_unbound_answers_nobody_outside_the_host(appliance):
    query = struct.pack(">HHHHHH", 0x4d41, 0x0100, 1, 0, 0, 0) + b"\x09localhost\x00" + struct.pack(">HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(3)
        client.sendto(query, (appliance.ip, 53))
        try:
            reply = client.recv(512)
        except (TimeoutError, ConnectionRefusedError):
            reply = b""
    assert reply == b"", "Unbound answered a query from outside the host"


@contextmanager
def query_log(host) -> Iterator[float]:
    """Unbound logs every query it receives while the block runs (switched at run time, no restart)."""
    since = time.time()
    assert host.run("unbound-control set_option log-queries: yes").rc == 0
    try:
        yield since
    finally:
        host.run("unbound-control set_option log-queries: no")


def queries_since(host, since: float) -> list[str]:
    out = host.run("journalctl -t unbound --since @%s -o cat --no-pager", str(int(since)))
    # "[pid:thread] info: 127.0.0.1 name. TYPE IN"
    return [line for line in out.stdout.splitlines() if " info: 127.0.0.1 " in line]


def test_rspamd_and_postfix_lookups_go_through_unbound(host, appliance):
    token = new_token()
    # Domains never seen before, so no cache of Rspamd or Postfix can answer for Unbound.
    sender_domain, remote_domain = f"{token}.outside.test", f"{token}.remote.test"
    with query_log(host) as since:
        # Rspamd asks for the SPF and DMARC records of the sender's domain while it scans inbound mail.
        sender = f"probe@{sender_domain}"
        out = smtp_transaction(appliance.ip, 25, sender, [RECIPIENT], build_message(sender, RECIPIENT, token))
        assert out.accepted, out
        assert wait_for_messages(host, token)
        # Postfix's chrooted smtp client asks for the MX of a recipient domain. Air-gapped, the answer is NXDOMAIN,
        # so the message bounces at once; its null sender keeps the bounce from going anywhere.
        sent = host.run("printf '%%s\\n' %s | sendmail -i -f '<>' %s", f"Subject: {token}", f"nobody@{remote_domain}")
        assert sent.rc == 0, sent.stderr
        bounced = wait_until(lambda: host.run("journalctl -u postfix@- --since @%s -o cat --no-pager | grep -F %s",
                                              str(int(since)), f"nobody@{remote_domain}").stdout, timeout=60)
        # The journal takes Unbound's lines asynchronously.
        wait_until(lambda: [q for q in queries_since(host, since) if remote_domain in q], timeout=10)
        queries = queries_since(host, since)
    # NXDOMAIN, a definite answer: "Host not found", never "try again" after a timeout.
    assert "status=bounced" in bounced and "Host not found)" in bounced, bounced
    asked = "\n".join(queries)
    assert f"{sender_domain}. TXT IN" in asked, f"Rspamd's SPF lookup did not reach Unbound:\n{asked}"
    assert f"{remote_domain}. MX IN" in asked, f"Postfix's MX lookup did not reach Unbound:\n{asked}"
