"""The site model: a good site loads into typed data; each kind of mistake gives one exact, located message."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

import certificates
from conftest import MINIMAL_SITE, write_site
from mailappliance.errors import UserError
from mailappliance.site import Alias, Domain, Host, LoginProtection, Mailbox, load_site

DELETE = object()


@pytest.fixture(autouse=True)
def real_certificate(site_dir: Path) -> None:
    """FULL_SITE's provided certificate: a chain naming the hostname and every mta-sts.<domain>, and its key."""
    certificates.write_tls(site_dir)


def site_with(**changes: object) -> dict:
    data = copy.deepcopy(MINIMAL_SITE)
    for key, value in changes.items():
        if value is DELETE:
            data.pop(key)
        else:
            data[key] = value
    return data


def errors_of(directory: Path, data: dict | str) -> list[str]:
    with pytest.raises(UserError) as caught:
        load_site(write_site(directory, data))
    return list(caught.value.lines)


def test_full_site_loads_into_the_model(full_site: Path, site_dir: Path) -> None:
    site = load_site(full_site)
    assert site.name == "molecule"
    assert site.path == site_dir / "site.yml"
    assert site.hostname == "mail.alpha.test"
    assert site.admin_contact == "admin@alpha.test"
    assert site.host == Host(address="192.0.2.10", user="root", port=22, connection="ssh")
    assert site.domains == (Domain("alpha.test", "mail"), Domain("beta.test", "mail"))
    assert site.mailboxes == (
        Mailbox("alice@alpha.test", "1G", 1073741824, "Alice Example"),
        Mailbox("admin@alpha.test", "512M", 536870912, ""),
    )
    assert site.aliases == (
        Alias("sales@alpha.test", ("alice@alpha.test", "partner@outside.example")),
        Alias("@beta.test", ("alice@alpha.test",)),
    )
    assert site.aliases[1].is_catch_all
    assert site.message_size_limit_bytes == 26214400
    assert site.tls.source == "provided"
    assert site.tls.cert == site_dir / "tls" / "cert.pem"
    assert site.tls.key == site_dir / "tls" / "key.pem"
    assert (site.spam.add_header, site.spam.reject) == (6.0, 15.0)
    assert site.antivirus.mirror_url == "http://clamav-mirror.internal/"
    assert site.antivirus.local_databases == (site_dir / "eicar.hdb",)


def test_minimal_site_gets_the_defaults(site_dir: Path) -> None:
    site = load_site(write_site(site_dir, MINIMAL_SITE))
    assert site.host == Host(address="mail.alpha.test", user="root", port=22, connection="ssh")
    assert site.domains[1].dkim_selector == "mail"
    assert site.mailboxes[0].quota_bytes == 1024**3
    assert site.aliases == ()
    assert site.message_size_limit == "25M"
    assert site.tls.source == "self-signed" and site.tls.cert is None
    assert (site.spam.add_header, site.spam.reject) == (6.0, 15.0)
    assert site.antivirus.mirror_url == "" and site.antivirus.local_databases == (site_dir / "eicar.hdb",)


def test_names_and_addresses_are_lower_cased(site_dir: Path) -> None:
    site = load_site(write_site(site_dir, site_with(
        hostname="Mail.Alpha.TEST", domains=[{"name": "Alpha.Test"}], mailboxes=[{"address": "Alice@ALPHA.test"}],
    )))
    assert (site.hostname, site.domains[0].name, site.mailboxes[0].address) == (
        "mail.alpha.test", "alpha.test", "alice@alpha.test")


def test_podman_connection_names_a_container(site_dir: Path) -> None:
    site = load_site(write_site(site_dir, site_with(host={"connection": "podman", "address": "mailappliance-demo"})))
    assert site.host == Host(address="mailappliance-demo", user="root", port=22, connection="podman")


def test_catch_all_and_implicit_addresses_are_valid_alias_targets(site_dir: Path) -> None:
    site = load_site(write_site(site_dir, site_with(aliases=[
        {"address": "@beta.test", "to": ["alice@alpha.test"]},
        {"address": "info@alpha.test", "to": ["anyone@beta.test", "postmaster@alpha.test", "abuse@alpha.test"]},
    ])))
    assert len(site.aliases) == 2


BAD_SITES = [
    pytest.param(
        site_with(domains=[{"name": "alpha.test"}, {"name": "exa mple.com"}]),
        'domains[1].name: "exa mple.com" is not a valid domain name; '
        "use letters, digits and hyphens in dot-separated labels",
        id="domain-syntax",
    ),
    pytest.param(
        site_with(domains=[{"name": "alpha.test"}, {"name": "beta.test"}, {"name": "-beta.test"}]),
        'domains[2].name: "-beta.test" is not a valid domain name; '
        "use letters, digits and hyphens in dot-separated labels",
        id="domain-label-hyphen",
    ),
    pytest.param(
        site_with(domains=[{"name": "alpha.test"}, {"name": "beta.test"}, {"name": "Alpha.test"}]),
        'domains[2].name: "Alpha.test" is already declared at domains[0]; list each domain once',
        id="duplicate-domain",
    ),
    pytest.param(
        site_with(domains=[], mailboxes=DELETE),
        "domains: the list is empty; list the mail domains, e.g. domains: [{name: example.com}]",
        id="no-domains",
    ),
    pytest.param(
        site_with(domains=[{"name": "alpha.test"}, "beta.test"]),
        'domains[1]: expected a mapping, got "beta.test"; write it as - name: example.com',
        id="domain-not-mapping",
    ),
    pytest.param(
        site_with(domains=[{"name": "alpha.test", "selector": "mail"}, {"name": "beta.test"}]),
        "domains[0].selector: unknown key; did you mean dkim_selector? allowed keys are name, dkim_selector",
        id="unknown-nested-key",
    ),
    pytest.param(
        site_with(domains=[{"name": "alpha.test", "dkim_selector": "my key"}, {"name": "beta.test"}]),
        'domains[0].dkim_selector: "my key" is not a valid DKIM selector; '
        "use lowercase letters, digits and hyphens (a single DNS label), e.g. mail",
        id="dkim-selector",
    ),
    pytest.param(
        site_with(hots={"address": "192.0.2.1"}),
        "hots: unknown key; did you mean host? allowed keys are site, hostname, admin_contact, host, domains, "
        "mailboxes, aliases, message_size_limit, tls, spam, antivirus, dns, login_protection, trusted_relays, "
        "outbound, archive",
        id="unknown-top-key",
    ),
    pytest.param(
        site_with(site="My Site"),
        'site: "My Site" is not a valid site name; '
        "use 1-63 lowercase letters, digits and hyphens, starting with a letter, e.g. site: example",
        id="site-name",
    ),
    pytest.param(
        site_with(hostname="mail"),
        'hostname: "mail" is not a fully qualified domain name; '
        "use the appliance's full DNS name, e.g. mail.example.com",
        id="hostname-not-fqdn",
    ),
    pytest.param(
        site_with(hostname=DELETE),
        "hostname: is required; use the appliance's full DNS name, e.g. mail.example.com",
        id="hostname-missing",
    ),
    pytest.param(
        site_with(admin_contact="admin"),
        'admin_contact: "admin" is not a valid email address; use an email address such as postmaster@example.com',
        id="admin-contact-syntax",
    ),
    pytest.param(
        site_with(admin_contact="postmaster@alpha.test"),
        'admin_contact: "postmaster@alpha.test" is in a declared domain but is neither a mailbox nor an alias; '
        "add it to mailboxes or use an address outside the site's domains",
        id="admin-contact-undefined",
    ),
    pytest.param(
        site_with(host={"address": "192.0.2.10", "port": 70000}),
        "host.port: 70000 is not a valid port; use a whole number from 1 to 65535",
        id="host-port",
    ),
    pytest.param(
        site_with(host={"address": "not a host"}),
        'host.address: "not a host" is not a valid host name or IP address; use a DNS name, an IPv4 or an IPv6 address',
        id="host-address",
    ),
    pytest.param(
        site_with(host={"connection": "docker"}),
        'host.connection: "docker" is not supported; use ssh or podman',
        id="host-connection",
    ),
    pytest.param(
        site_with(host={"connection": "podman", "address": "demo", "port": 22}),
        "host.port: is only used with connection ssh; remove it for a podman container",
        id="host-port-with-podman",
    ),
    pytest.param(
        site_with(mailboxes=[{"address": "alice@alpha.test"}, {"address": "ALICE@alpha.test"}]),
        'mailboxes[1].address: "alice@alpha.test" is already declared at mailboxes[0]; list each mailbox once',
        id="duplicate-mailbox",
    ),
    pytest.param(
        site_with(mailboxes=[{"address": "alice@alpha.test"}, {"address": "bob@gamma.test"}]),
        'mailboxes[1].address: "bob@gamma.test" is not in a declared domain; '
        "add gamma.test to domains or use one of the declared domains (alpha.test, beta.test)",
        id="mailbox-undeclared-domain",
    ),
    pytest.param(
        site_with(mailboxes=[{"address": "alice/../x@alpha.test"}]),
        'mailboxes[0].address: "alice/../x@alpha.test" is not a valid mailbox address; '
        "use local-part@domain with letters, digits, dots, hyphens and underscores before the @",
        id="mailbox-address-syntax",
    ),
    pytest.param(
        site_with(mailboxes=[{"address": "alice@alpha.test", "quota": "1GB"}]),
        'mailboxes[0].quota: "1GB" is not a valid size; use a whole number followed by K, M, G or T, from 1M to 1024T, '
        "e.g. 1G",
        id="quota-syntax",
    ),
    pytest.param(
        site_with(mailboxes=[{"address": "alice@alpha.test", "name": "Alice: CEO"}]),
        'mailboxes[0].name: "Alice: CEO" contains a colon; '
        "write the person's name as plain text without : or line breaks, e.g. name: Alice Example",
        id="mailbox-name-colon",
    ),
    pytest.param(
        site_with(message_size_limit=25),
        "message_size_limit: 25 is not a valid size; use a whole number followed by K, M, G or T, from 1M to 511M, "
        "e.g. 25M",
        id="size-without-unit",
    ),
    pytest.param(
        site_with(aliases=[{"address": "sales@gamma.test", "to": ["alice@alpha.test"]}]),
        'aliases[0].address: "sales@gamma.test" is not in a declared domain; '
        "add gamma.test to domains or use one of the declared domains (alpha.test, beta.test)",
        id="alias-undeclared-domain",
    ),
    pytest.param(
        site_with(aliases=[{"address": "sales@alpha.test", "to": ["alice@alpha.test", "partner"]}]),
        'aliases[0].to[1]: "partner" is not a valid email address; use local-part@domain, e.g. alice@example.com',
        id="alias-target-syntax",
    ),
    pytest.param(
        site_with(aliases=[{"address": "sales@alpha.test", "to": []}]),
        "aliases[0].to: the list is empty; list one or more addresses to deliver to, e.g. to: [alice@example.com]",
        id="alias-without-targets",
    ),
    pytest.param(
        site_with(aliases=[{"address": "alice@alpha.test", "to": ["partner@outside.example"]}]),
        'aliases[0].address: "alice@alpha.test" is also a mailbox; '
        "remove the alias or the mailbox (a mailbox already receives its own mail)",
        id="alias-is-mailbox",
    ),
    pytest.param(
        site_with(aliases=[{"address": "sales@alpha.test", "to": ["alice@alpha.test"]},
                           {"address": "sales@alpha.test", "to": ["partner@outside.example"]}]),
        'aliases[1].address: "sales@alpha.test" is already declared at aliases[0]; '
        "list each alias once and put all its targets in its to: list",
        id="duplicate-alias",
    ),
    pytest.param(
        site_with(aliases=[{"address": "sales@alpha.test", "to": ["carol@alpha.test"]}]),
        'aliases[0].to[0]: "carol@alpha.test" is in a declared domain but is neither a mailbox nor an alias; '
        "add that mailbox or alias, or fix the address",
        id="alias-target-undefined-local",
    ),
    pytest.param(
        site_with(spam={"add_header": 10, "reject": 8}),
        "spam.reject: 8 must be greater than spam.add_header (10); raise reject or lower add_header",
        id="spam-reject-below-add-header",
    ),
    pytest.param(
        site_with(spam={"network_checks": "no"}),
        'spam.network_checks: "no" is not true or false; '
        "use true (query DNS blocklists and Rspamd's public services) or false (air-gapped)",
        id="spam-network-checks-not-bool",
    ),
    pytest.param(
        site_with(spam={"add_header": "six"}),
        'spam.add_header: "six" is not a positive score; use a number greater than 0 and at most 1000, e.g. 6',
        id="spam-score-not-number",
    ),
    pytest.param(
        site_with(tls={"source": "letsencrypt"}),
        'tls.source: "letsencrypt" is not a TLS source; use self-signed or provided',
        id="tls-source",
    ),
    pytest.param(
        site_with(tls={"source": "provided", "cert": "tls/missing.pem", "key": "tls/key.pem"}),
        'tls.cert: "tls/missing.pem" does not exist; give a path relative to the site file\'s folder',
        id="tls-cert-missing-file",
    ),
    pytest.param(
        site_with(tls={"source": "provided", "cert": "tls/cert.pem"}),
        "tls.key: is required when source is provided; "
        "give the path of the private key in PEM format, relative to the site file's folder",
        id="tls-key-missing",
    ),
    pytest.param(
        site_with(tls={"source": "provided", "cert": "tls/key.pem", "key": "tls/key.pem"}),
        'tls.cert: "tls/key.pem" is not a PEM certificate; '
        "give the certificate chain (leaf first) in PEM format (-----BEGIN CERTIFICATE-----)",
        id="tls-cert-not-pem",
    ),
    pytest.param(
        site_with(tls={"source": "provided", "cert": "tls", "key": "tls/key.pem"}),
        'tls.cert: "tls" is not a regular file; '
        "give the path of the certificate chain (leaf first) in PEM format, relative to the site file's folder",
        id="tls-cert-directory",
    ),
    pytest.param(
        site_with(tls={"source": "self-signed", "cert": "tls/cert.pem"}),
        "tls.cert: is only used when source is provided; remove it or set source: provided",
        id="tls-cert-with-self-signed",
    ),
    pytest.param(
        site_with(antivirus={"mirror_url": "ftp://mirror.example/"}),
        'antivirus.mirror_url: "ftp://mirror.example/" is not an http(s) URL; use http:// or https://, a host name or '
        "IP address, an optional :port and a path of letters, digits and - . _ ~ % / + = , : @, "
        "e.g. http://clamav-mirror.internal/",
        id="mirror-url",
    ),
    pytest.param(
        site_with(antivirus=DELETE),
        "antivirus: no virus signature source; set antivirus.mirror_url (a private freshclam mirror) or "
        "antivirus.local_databases (database files copied to the appliance)",
        id="no-signature-source",
    ),
    pytest.param(
        site_with(antivirus={"local_databases": []}),
        "antivirus: no virus signature source; set antivirus.mirror_url (a private freshclam mirror) or "
        "antivirus.local_databases (database files copied to the appliance)",
        id="empty-signature-source",
    ),
    pytest.param(
        site_with(antivirus={"local_databases": ["eicar.hdb", "sub/eicar.hdb"]}),
        'antivirus.local_databases[1]: "sub/eicar.hdb" has the same file name as antivirus.local_databases[0]; '
        "rename one of them (all are copied into one folder on the appliance)",
        id="clamav-same-file-name",
    ),
    pytest.param(
        site_with(antivirus={"local_databases": ["tls/cert.pem"]}),
        'antivirus.local_databases[0]: "tls/cert.pem" does not have a ClamAV database extension; use one of '
        ".cat .cdb .cld .crb .cud .cvd .fp .ftm .gdb .hdb .hdu .hsb .hsu .idb .ign .ign2 .imp .ldb .ldu .mdb "
        ".mdu .msb .msu .ndb .ndu .pdb .pwdb .sfp .wdb .yar .yara",
        id="clamav-extension",
    ),
    pytest.param(
        site_with(antivirus={"local_databases": ["eicar.hdb", "missing.ndb"]}),
        'antivirus.local_databases[1]: "missing.ndb" does not exist; give a path relative to the site file\'s folder',
        id="clamav-missing-file",
    ),
    pytest.param(
        "site: molecule\nhostname: mail.alpha.test\nhostname: mail.beta.test\nadmin_contact: a@outside.example\n"
        "domains: [{name: alpha.test}]\nantivirus: {local_databases: [eicar.hdb]}\n",
        'line 3: key "hostname" appears again (first at line 2); keep only one of them',
        id="duplicate-yaml-key",
    ),
    pytest.param(
        "site: molecule\nhostname: mail.alpha.test\n  admin_contact: a@outside.example\n",
        "line 3, column 16: invalid YAML: mapping values are not allowed here; fix the syntax at that position",
        id="yaml-syntax",
    ),
    pytest.param(
        "",
        "(top level): the file is empty; write a site definition, e.g. with `mailappliance site new`",
        id="empty-file",
    ),
    pytest.param(
        "- site: molecule\n",
        '(top level): expected a mapping, got a list; write it as "key: value" lines (site:, hostname:, domains:, ...)',
        id="top-level-list",
    ),
]


@pytest.mark.parametrize(("data", "message"), BAD_SITES)
def test_each_mistake_gives_one_located_message(site_dir: Path, data: dict | str, message: str) -> None:
    assert errors_of(site_dir, data) == [f"site.yml: {message}"]


def test_all_problems_are_reported_in_file_order(site_dir: Path) -> None:
    errors = errors_of(site_dir, site_with(
        site="Bad Name",
        domains=[{"name": "alpha.test"}, {"name": "exa mple.com"}],
        mailboxes=[{"address": "alice@alpha.test", "quota": "lots"}],
        spam={"add_header": 9, "reject": 3},
    ))
    assert [line.split(":")[1].strip() for line in errors] == [
        "site", "domains[1].name", "mailboxes[0].quota", "spam.reject"]


def test_missing_site_file_is_one_line(site_dir: Path) -> None:
    with pytest.raises(UserError) as caught:
        load_site(Path("nowhere.yml"))
    assert caught.value.lines == ("nowhere.yml: no such file; check the path of the site file",)


def test_alias_target_messages_keep_the_written_positions(site_dir: Path) -> None:
    errors = errors_of(site_dir, site_with(aliases=[{"address": "sales@alpha.test", "to": ["bad", "carol@alpha.test"]}]))
    assert errors == [
        'site.yml: aliases[0].to[0]: "bad" is not a valid email address; use local-part@domain, e.g. alice@example.com',
        'site.yml: aliases[0].to[1]: "carol@alpha.test" is in a declared domain but is neither a mailbox nor an alias; '
        "add that mailbox or alias, or fix the address",
    ]


# -- whole values: no line break, control character or surrounding whitespace slips through -----------------

WHOLE_VALUE_MISTAKES = [
    pytest.param(
        site_with(mailboxes=[{"address": "alice@alpha.test\n"}]),
        'mailboxes[0].address: "alice@alpha.test\\n" contains a line break (U+000A); '
        "give the mailbox address, e.g. alice@example.com",
        id="trailing-line-break-is-not-stripped",
    ),
    pytest.param(
        site_with(aliases=[{"address": "sales@alpha.test", "to": ["x\n@example.com"]}]),
        'aliases[0].to[0]: "x\\n@example.com" contains a line break (U+000A); '
        "use local-part@domain, e.g. alice@example.com",
        id="line-break-inside-a-target",
    ),
    pytest.param(
        site_with(hostname=" mail.alpha.test"),
        'hostname: " mail.alpha.test" has whitespace at its start or end; remove it',
        id="surrounding-whitespace",
    ),
    pytest.param(
        site_with(admin_contact="admin@outside.example\u2028"),
        'admin_contact: "admin@outside.example\\u2028" contains a line separator (U+2028); '
        "use an email address such as postmaster@example.com",
        id="unicode-line-separator",
    ),
    pytest.param(
        site_with(mailboxes=[{"address": "alice@alpha.test", "name": "Alice\u202eelpmaxE"}]),
        'mailboxes[0].name: "Alice\\u202eelpmaxE" contains an invisible formatting character (U+202E); '
        "write the person's name as plain text without : or line breaks, e.g. name: Alice Example",
        id="bidi-override-in-a-name",
    ),
    pytest.param(
        site_with(domains=[{"name": "alpha.test", "dkim_selector": "mail\n"}, {"name": "beta.test"}]),
        'domains[0].dkim_selector: "mail\\n" contains a line break (U+000A); '
        "use lowercase letters, digits and hyphens (a single DNS label), e.g. mail",
        id="dkim-selector-line-break",
    ),
    pytest.param(
        site_with(host={"address": "192.0.2.10", "user": "root\n"}),
        'host.user: "root\\n" contains a line break (U+000A); use a login name such as root',
        id="host-user-line-break",
    ),
    pytest.param(
        site_with(host={"address": "fe80::1%eth0"}),
        'host.address: "fe80::1%eth0" is not a valid host name or IP address; '
        "use a DNS name, an IPv4 or an IPv6 address",
        id="ipv6-zone-index",
    ),
    pytest.param(
        site_with(dns={"dmarc_rua": "mailto:alice@alpha.test\r\n"}),
        'dns.dmarc_rua: "mailto:alice@alpha.test\\r\\n" contains a carriage return (U+000D); '
        "give the address that receives the reports, e.g. dmarc-reports@example.com",
        id="report-address-crlf",
    ),
    pytest.param(
        site_with(site="molecule\n"),
        'site: "molecule\\n" contains a line break (U+000A); '
        "use 1-63 lowercase letters, digits and hyphens, starting with a letter, e.g. site: example",
        id="site-name-line-break",
    ),
    pytest.param(
        site_with(mailboxes=[{"address": "alice@alpha.test", "name": "A" * 200}]),
        f'mailboxes[0].name: "{"A" * 60}…" (200 characters) is longer than 128 characters; '
        "write the person's name as plain text without : or line breaks, e.g. name: Alice Example",
        id="long-value-is-quoted-short",
    ),
    pytest.param(
        site_with(antivirus={"local_databases": ["eicar.hdb", "sub/\x00eicar.hdb"]}),
        'antivirus.local_databases[1]: "sub/\\u0000eicar.hdb" contains a NUL character (U+0000); '
        "list ClamAV database files relative to the site file's folder, e.g. [local.hdb]",
        id="nul-in-a-database-path",
    ),
    pytest.param(
        site_with(tls={"source": "provided", "cert": "tls/cert.pem\x00", "key": "tls/key.pem"}),
        'tls.cert: "tls/cert.pem\\u0000" contains a NUL character (U+0000); '
        "give the path of the certificate chain (leaf first) in PEM format, relative to the site file's folder",
        id="nul-in-the-certificate-path",
    ),
]


@pytest.mark.parametrize(("data", "message"), WHOLE_VALUE_MISTAKES)
def test_values_are_checked_whole(site_dir: Path, data: dict, message: str) -> None:
    assert errors_of(site_dir, data) == [f"site.yml: {message}"]


MIRROR_URLS_REFUSED = [
    "http://mirror.internal/ db", "http://mirror.internal/\"x", "http://mirror.internal/#x",
    "http://mirror.internal/;x", "http://mirror.internal/$x", "http://mirror.internal:99999/",
    "http://user:secret@mirror.internal/", "http://mirror.internal/?x=1", "http://mirror.internal/%zz",
    "http://mirror internal/", "http://[fe80::1%25eth0]/", "http://" + "a" * 2050 + ".internal/", "mirror.internal",
]


@pytest.mark.parametrize("url", MIRROR_URLS_REFUSED)
def test_mirror_url_is_a_plain_http_url(site_dir: Path, url: str) -> None:
    errors = errors_of(site_dir, site_with(antivirus={"mirror_url": url}))
    assert len(errors) == 1 and errors[0].startswith("site.yml: antivirus.mirror_url: "), errors


@pytest.mark.parametrize("url", ["http://clamav-mirror.internal/", "https://10.0.0.5:8080/clamav",
                                 "http://[2001:db8::5]/", "http://mirror/db/%41", "https://Mirror.Example"])
def test_plain_mirror_urls_are_kept(site_dir: Path, url: str) -> None:
    assert load_site(write_site(site_dir, site_with(antivirus={"mirror_url": url}))).antivirus.mirror_url == url


def test_user_error_lines_never_span_lines() -> None:
    assert UserError("a\nb", "c\u2028d\x85").lines == ("a\\u000ab", "c\\u2028d\\u0085")


# -- alias loops ----------------------------------------------------------------------------------------------

LOOP_FIX = "make one of them deliver to a mailbox or an outside address"
ALIAS_LOOPS = [
    pytest.param(
        [{"address": "a@alpha.test", "to": ["b@alpha.test"]}, {"address": "b@alpha.test", "to": ["a@alpha.test"]}],
        ["aliases[1].to[0]: alias loop a@alpha.test → b@alpha.test → a@alpha.test"],
        id="two-aliases",
    ),
    pytest.param(
        [{"address": "a@alpha.test", "to": ["alice@alpha.test", "a@alpha.test"]}],
        ["aliases[0].to[1]: alias loop a@alpha.test → a@alpha.test"],
        id="alias-to-itself",
    ),
    pytest.param(
        [{"address": "@beta.test", "to": ["x@beta.test"]}],
        ["aliases[0].to[0]: alias loop @beta.test → x@beta.test (caught by @beta.test)"],
        id="catch-all-back-to-itself",
    ),
    pytest.param(
        [{"address": "@alpha.test", "to": ["x@beta.test"]}, {"address": "@beta.test", "to": ["y@alpha.test"]}],
        ["aliases[1].to[0]: alias loop @alpha.test → x@beta.test (caught by @beta.test) → "
         "y@alpha.test (caught by @alpha.test)"],
        id="two-catch-alls",
    ),
    pytest.param(
        [{"address": "a@alpha.test", "to": ["b@alpha.test"]}, {"address": "b@alpha.test", "to": ["c@alpha.test"]},
         {"address": "c@alpha.test", "to": ["a@alpha.test", "b@alpha.test"]}],
        ["aliases[2].to[0]: alias loop a@alpha.test → b@alpha.test → c@alpha.test → a@alpha.test",
         "aliases[2].to[1]: alias loop b@alpha.test → c@alpha.test → b@alpha.test"],
        id="every-loop-of-a-tangle",
    ),
]


@pytest.mark.parametrize(("aliases", "messages"), ALIAS_LOOPS)
def test_alias_loops_are_named(site_dir: Path, aliases: list, messages: list) -> None:
    assert errors_of(site_dir, site_with(aliases=aliases)) == [f"site.yml: {m}; {LOOP_FIX}" for m in messages]


def test_a_loop_through_postmaster_and_the_admin_contact(site_dir: Path) -> None:
    errors = errors_of(site_dir, site_with(admin_contact="boss@alpha.test",
                                           aliases=[{"address": "boss@alpha.test", "to": ["postmaster@alpha.test"]}]))
    assert errors == [f"site.yml: admin_contact: alias loop boss@alpha.test → postmaster@alpha.test → "
                      f"boss@alpha.test; {LOOP_FIX}"]


def test_chains_that_end_in_a_mailbox_or_outside_are_no_loops(site_dir: Path) -> None:
    site = load_site(write_site(site_dir, site_with(aliases=[
        {"address": "a@alpha.test", "to": ["b@alpha.test", "partner@outside.example"]},
        {"address": "b@alpha.test", "to": ["c@beta.test"]},
        {"address": "@beta.test", "to": ["alice@alpha.test"]},
        {"address": "@alpha.test", "to": ["postmaster@beta.test"]},
    ])))
    assert len(site.aliases) == 4


def test_a_ring_of_a_thousand_aliases_is_one_short_line(site_dir: Path) -> None:
    count = 1000
    ring = [{"address": f"a{n}@alpha.test", "to": [f"a{(n + 1) % count}@alpha.test"]} for n in range(count)]
    assert errors_of(site_dir, site_with(aliases=ring)) == [
        f"site.yml: aliases[{count - 1}].to[0]: alias loop a0@alpha.test → a1@alpha.test → a2@alpha.test → "
        f"… {count - 4} more … → a{count - 1}@alpha.test → a0@alpha.test; {LOOP_FIX}"]


def test_many_loops_are_cut_short(site_dir: Path) -> None:
    pairs = [{"address": f"{p}{n}@alpha.test", "to": [f"{q}{n}@alpha.test"]}
             for n in range(25) for p, q in ("ab", "ba")]
    errors = errors_of(site_dir, site_with(aliases=pairs))
    assert errors[0] == "site.yml: aliases: more alias loops than the 20 shown; fix those and validate again"
    assert len(errors) == 21 and all("alias loop" in line for line in errors[1:])


# -- numbers --------------------------------------------------------------------------------------------------

NUMBER_MISTAKES = [
    pytest.param(site_with(message_size_limit="2G"),
                 'message_size_limit: "2G" is out of range; use a whole number followed by K, M, G or T, '
                 "from 1M to 511M, e.g. 25M", id="size-limit-too-big"),
    pytest.param(site_with(message_size_limit="512K"),
                 'message_size_limit: "512K" is out of range; use a whole number followed by K, M, G or T, '
                 "from 1M to 511M, e.g. 25M", id="size-limit-too-small"),
    pytest.param(site_with(mailboxes=[{"address": "alice@alpha.test", "quota": "99999999999T"}]),
                 'mailboxes[0].quota: "99999999999T" is out of range; use a whole number followed by K, M, G or T, '
                 "from 1M to 1024T, e.g. 1G", id="quota-beyond-int64"),
    pytest.param(site_with(spam={"add_header": float("nan")}),
                 "spam.add_header: .nan is not a positive score; use a number greater than 0 and at most 1000, "
                 "e.g. 6", id="score-nan"),
    pytest.param(site_with(spam={"reject": float("inf")}),
                 "spam.reject: .inf is out of range; use a number greater than 0 and at most 1000, e.g. 15",
                 id="score-inf"),
    pytest.param(site_with(spam={"reject": 1001}),
                 "spam.reject: 1001 is out of range; use a number greater than 0 and at most 1000, e.g. 15",
                 id="score-too-high"),
    pytest.param(site_with(spam={"add_header": True}),
                 "spam.add_header: true is not a positive score; use a number greater than 0 and at most 1000, "
                 "e.g. 6", id="score-bool"),
    pytest.param(site_with(host={"address": "192.0.2.10", "port": True}),
                 "host.port: true is not a valid port; use a whole number from 1 to 65535", id="port-bool"),
    pytest.param(site_with(dns={"ttl": True}),
                 "dns.ttl: true is not a whole number; use a whole number of seconds from 60 to 604800, e.g. 3600",
                 id="ttl-bool"),
    pytest.param(site_with(dns={"ttl": 10**30}),
                 "dns.ttl: a number of more than 20 digits is out of range; "
                 "use a whole number of seconds from 60 to 604800, e.g. 3600", id="ttl-huge"),
]


@pytest.mark.parametrize(("data", "message"), NUMBER_MISTAKES)
def test_numbers_stay_in_range(site_dir: Path, data: dict, message: str) -> None:
    assert errors_of(site_dir, data) == [f"site.yml: {message}"]


# -- provided certificates ------------------------------------------------------------------------------------

PROVIDED = {"source": "provided", "cert": "tls/cert.pem", "key": "tls/key.pem"}
NAMES_FIX = "get a certificate for the hostname and mta-sts.<domain> of every domain"
TLS_MISTAKES = [
    pytest.param(
        certificates.chain_pem(), certificates.other_key_pem(),
        ['tls.key: "tls/key.pem" is not the key of the certificate in tls.cert; '
         "give the private key the first certificate of tls.cert was issued for"],
        id="key-of-another-certificate",
    ),
    pytest.param(
        certificates.chain_pem(certificates.leaf(("mail.alpha.test", "mta-sts.alpha.test"))), None,
        ["tls.cert: the certificate does not name mta-sts.beta.test (its subjectAltName lists mail.alpha.test, "
         f"mta-sts.alpha.test); {NAMES_FIX}"],
        id="a-domain-without-its-mta-sts-name",
    ),
    pytest.param(
        certificates.chain_pem(certificates.leaf(())), None,
        [f"tls.cert: the certificate does not name {name} (its subjectAltName lists no DNS names); {NAMES_FIX}"
         for name in certificates.SITE_NAMES],
        id="no-subject-alternative-names",
    ),
    pytest.param(
        certificates.chain_pem(certificates.leaf(("*.alpha.test", "*.test"))), None,
        ["tls.cert: the certificate does not name mta-sts.beta.test (its subjectAltName lists *.alpha.test, "
         f"*.test); {NAMES_FIX}"],
        id="a-wildcard-covers-one-label",
    ),
    pytest.param(
        certificates.chain_pem(certificates.leaf(not_after=certificates.NOW - certificates.DAY)), None,
        [f"tls.cert: the certificate expired on {(certificates.NOW - certificates.DAY):%Y-%m-%d %H:%M} UTC; "
         "renew it, or give a certificate that is valid now"],
        id="expired",
    ),
    pytest.param(
        certificates.chain_pem(certificates.leaf(not_before=certificates.NOW + certificates.DAY)), None,
        [f"tls.cert: the certificate is not valid before {(certificates.NOW + certificates.DAY):%Y-%m-%d %H:%M} "
         "UTC; renew it, or give a certificate that is valid now (check this computer's clock)"],
        id="not-yet-valid",
    ),
    pytest.param(
        certificates.chain_pem() + certificates.key_pem(), None,
        ['tls.cert: block 3 of "tls/cert.pem" is a PRIVATE KEY, not a certificate; give only CERTIFICATE blocks, '
         "the server's certificate first, then each one's issuer (the key belongs in tls.key)"],
        id="key-inside-the-chain",
    ),
    pytest.param(
        b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", None,
        ['tls.cert: certificate 1 of "tls/cert.pem" cannot be parsed; '
         "give the chain your certificate authority issued, in PEM format"],
        id="armour-around-garbage",
    ),
    pytest.param(
        certificates.pem(certificates._ca()[0], certificates.leaf()), None,
        ["tls.cert: certificate 2 (CN=mail.alpha.test) did not issue certificate 1 (CN=Test CA); give only "
         "CERTIFICATE blocks, the server's certificate first, then each one's issuer"],
        id="chain-in-the-wrong-order",
    ),
    pytest.param(
        None, certificates.key_pem(b"secret"),
        ['tls.key: "tls/key.pem" is protected by a passphrase; give the key without one (Postfix, Dovecot and '
         "nginx read it unattended at start), e.g. openssl pkey -in key.pem -out plain.pem"],
        id="key-with-a-passphrase",
    ),
    pytest.param(
        None, certificates.key_pem() + certificates.other_key_pem(),
        ['tls.key: "tls/key.pem" holds 2 private keys; keep only the key of the certificate in tls.cert'],
        id="two-keys",
    ),
]


@pytest.mark.parametrize(("cert", "key", "messages"), TLS_MISTAKES)
def test_provided_certificate_fits_its_key_the_names_and_the_date(site_dir: Path, cert: bytes | None,
                                                                   key: bytes | None, messages: list[str]) -> None:
    certificates.write_tls(site_dir, cert, key)
    assert errors_of(site_dir, site_with(tls=PROVIDED)) == [f"site.yml: {m}" for m in messages]


def test_a_provided_certificate_that_fits_loads(site_dir: Path) -> None:
    certificates.write_tls(site_dir, certificates.chain_pem(certificates.leaf(("*.alpha.test", "mta-sts.beta.test"))))
    site = load_site(write_site(site_dir, site_with(tls=PROVIDED)))
    assert site.tls.cert == site_dir / "tls" / "cert.pem"


# -- login protection and trusted relays --------------------------------------------------------------------

NETWORK_FIX = "write an address (192.0.2.50, 2001:db8::50) or a network (192.0.2.0/24)"
PROTECTION_MISTAKES = [
    pytest.param(site_with(login_protection={"max_failures": 0}),
                 ["login_protection.max_failures: 0 is out of range; use a whole number of failed logins from 1 to "
                  "100, e.g. 5"], id="no-failures"),
    pytest.param(site_with(login_protection={"ban_time": 5}),
                 ["login_protection.ban_time: 5 is out of range; use a whole number of seconds from 10 to 31536000, "
                  "e.g. 3600"], id="ban-too-short"),
    pytest.param(site_with(login_protection={"find_time": "10m"}),
                 ['login_protection.find_time: "10m" is not a whole number; use a whole number of seconds from 60 to '
                  "86400, e.g. 600"], id="find-time-text"),
    pytest.param(site_with(login_protection={"bantime": 60}),
                 ["login_protection.bantime: unknown key; did you mean ban_time? allowed keys are max_failures, "
                  "find_time, ban_time, allow"], id="unknown-key"),
    pytest.param(site_with(login_protection={"allow": ["monitor.example"]}),
                 [f'login_protection.allow[0]: "monitor.example" is not an IP address or network; {NETWORK_FIX}'],
                 id="allow-name"),
    pytest.param(site_with(login_protection={"allow": ["::/0"]}),
                 ['login_protection.allow[0]: "::/0" is every address; name the hosts or networks you mean; the '
                  "whole internet cannot be trusted"], id="allow-everything"),
    pytest.param(site_with(trusted_relays=["192.0.2.1\n@alpha.test"]),
                 ['trusted_relays[0]: "192.0.2.1\\n@alpha.test" contains a line break (U+000A); list the '
                  "gateways that relay mail for the hosted domains, e.g. [192.0.2.25]"], id="relay-injection"),
    pytest.param(site_with(trusted_relays="192.0.2.1"),
                 ['trusted_relays: expected a list, got "192.0.2.1"; list the gateways that relay mail for the '
                  "hosted domains, e.g. [192.0.2.25]"], id="relays-not-a-list"),
]


@pytest.mark.parametrize(("data", "messages"), PROTECTION_MISTAKES)
def test_login_protection_and_trusted_relays_are_checked(site_dir: Path, data: dict, messages: list[str]) -> None:
    assert errors_of(site_dir, data) == [f"site.yml: {message}" for message in messages]


def test_login_protection_and_trusted_relays_load(site_dir: Path) -> None:
    data = site_with(login_protection={"max_failures": 3, "ban_time": 600, "allow": ["192.0.2.50", "2001:db8::/48"]},
                     trusted_relays=["198.51.100.7/24"])
    site = load_site(write_site(site_dir, data))
    assert site.login_protection == LoginProtection(max_failures=3, find_time=600, ban_time=600,
                                                    allow=("192.0.2.50/32", "2001:db8::/48"))
    assert site.trusted_relays == ("198.51.100.0/24",)
    assert load_site(write_site(site_dir, site_with())).login_protection == LoginProtection()
