"""The site model: a good site loads into typed data; each kind of mistake gives one exact, located message."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from conftest import MINIMAL_SITE, write_site
from mailappliance.errors import UserError
from mailappliance.site import Alias, Domain, Host, Mailbox, load_site

DELETE = object()


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
        "mailboxes, aliases, message_size_limit, tls, spam, antivirus, dns",
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
        'mailboxes[0].quota: "1GB" is not a valid size; use a whole number followed by K, M, G or T, e.g. 512M or 2G',
        id="quota-syntax",
    ),
    pytest.param(
        site_with(mailboxes=[{"address": "alice@alpha.test", "name": "Alice: CEO"}]),
        'mailboxes[0].name: "Alice: CEO" contains a colon or a control character; '
        "use plain text without : or line breaks",
        id="mailbox-name-colon",
    ),
    pytest.param(
        site_with(message_size_limit=25),
        "message_size_limit: 25 is not a valid size; use a whole number followed by K, M, G or T, e.g. 512M or 2G",
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
        'spam.add_header: "six" is not a positive score; use a number greater than 0, e.g. 6',
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
        'antivirus.mirror_url: "ftp://mirror.example/" is not an http(s) URL; use e.g. http://clamav-mirror.internal/',
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
