"""What `dns apply` and `dns check` read from the command line: TSIG key files (never echoed) and HOST[:PORT]."""

from __future__ import annotations

from pathlib import Path

import dns.name
import pytest

import dnsfixtures
from clirunner import assert_clean_failure, run_cli
from mailappliance import exit_codes
from mailappliance.dns.servers import Server, parse_server
from mailappliance.dns.tsig import read_tsig_key
from mailappliance.errors import UserError

SECRET = dnsfixtures.TSIG_SECRET


def test_bind_key_file(tmp_path: Path) -> None:
    key = read_tsig_key(dnsfixtures.tsig_key_file(tmp_path / "k.key"))
    assert key.name == dns.name.from_text("mailappliance-test")
    assert key.algorithm == dns.name.from_text("hmac-sha256")
    assert key.secret == b"0123456789abcdef0123456789abcdef"


def test_knot_key_file(tmp_path: Path) -> None:
    path = tmp_path / "k.yml"
    path.write_text(f"# hmac-sha512:update:{SECRET}\nkey:\n  - id: update\n    algorithm: hmac-sha512\n"
                    f"    secret: {SECRET}\n")
    key = read_tsig_key(path)
    assert (key.name, key.algorithm) == (dns.name.from_text("update"), dns.name.from_text("hmac-sha512"))


@pytest.mark.parametrize(("content", "message"), [
    pytest.param(None, "no such TSIG key file; write it as `tsig-keygen NAME > FILE` does: "
                       'key "NAME" { algorithm hmac-sha256; secret "BASE64"; };', id="missing"),
    pytest.param(f"secret {SECRET}\n", "no TSIG key found; write it as `tsig-keygen NAME > FILE` does: "
                                       'key "NAME" { algorithm hmac-sha256; secret "BASE64"; };', id="garbage"),
    pytest.param(f'key "k" {{ algorithm hmac-sha3; secret "{SECRET}"; }};',
                 "key 'k' uses the unknown algorithm 'hmac-sha3'; use one of hmac-sha256, hmac-sha384, "
                 "hmac-sha512, hmac-sha224, hmac-sha1, hmac-md5", id="algorithm"),
    pytest.param('key "k" { algorithm hmac-sha256; secret "abc"; };',
                 "key 'k' has a secret that is not base64 or a name that is not a DNS name; generate the key again",
                 id="secret"),
])
def test_bad_key_files_are_named_never_shown(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "k.key"
    if content is not None:
        path.write_text(content)
    with pytest.raises(UserError) as caught:
        read_tsig_key(path)
    assert caught.value.lines == (f"{path}: {message}",)
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize(("text", "server"), [
    ("192.0.2.53", Server("192.0.2.53", 53)),
    ("192.0.2.53:5353", Server("192.0.2.53", 5353)),
    ("2001:db8::53", Server("2001:db8::53", 53)),
    ("[2001:DB8::53]:5353", Server("2001:db8::53", 5353)),
    ("localhost:5300", Server("127.0.0.1", 5300)),
])
def test_server_addresses(text: str, server: Server) -> None:
    assert parse_server(text, "--server") == server


@pytest.mark.parametrize(("text", "names_allowed", "message"), [
    ("192.0.2.53:0", True, "--server: '192.0.2.53:0' has no valid port; give a host name or an IP address and "
                           "optionally a port, e.g. 192.0.2.53, 192.0.2.53:5353 or [2001:db8::53]:53"),
    ("ns.example:53", False, "--nameserver: 'ns.example:53' is not an IP address; give an IP address and "
                             "optionally a port, e.g. 192.0.2.53, 192.0.2.53:5353 or [2001:db8::53]:53"),
    ("[2001:db8::53]5353", True, "--server: '[2001:db8::53]5353' is not HOST[:PORT]; give a host name or an IP "
                                 "address and optionally a port, e.g. 192.0.2.53, 192.0.2.53:5353 or "
                                 "[2001:db8::53]:53"),
])
def test_bad_server_addresses(text: str, names_allowed: bool, message: str) -> None:
    option = "--server" if names_allowed else "--nameserver"
    with pytest.raises(UserError) as caught:
        parse_server(text, option, names_allowed=names_allowed)
    assert caught.value.lines == (message,)


def test_apply_needs_a_key_unless_dry_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    dnsfixtures.write_site(tmp_path / "inventories")
    result = run_cli("--inventory-root", "inventories", "dns", "apply", "dnstest", "--server", "127.0.0.1")
    assert assert_clean_failure(result, exit_codes.EXIT_CODE_USER_ERROR) == [
        "--tsig-key: is required to send an update; give the key file the server trusts for updates, or add "
        "--dry-run to only see the difference"]
