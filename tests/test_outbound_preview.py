"""The offline preview of a site with an outbound: section (README's example): each instance's main.cf and
master.cf, the transport tables with their fallbacks, TLS policies and logins per carrier, VERP Return-Paths, the
accounts' logins and limits, the channels' DKIM keys, and direct delivery with and without MTA-STS. Two renders for
the module, of about four seconds each."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest
import yaml

import certificates
from clirunner import run_cli
from conftest import EICAR_HDB, OUTBOUND_SITE, OVERSEAS_LIST
from mailappliance import vault

RELAY_PASSWORD = "relay pass: with spaces"
MTA_STS_LINE = "      mta_sts: true\n"
MTA_STS_MAP = "socketmap:inet:127.0.0.1:8461:postfix"


@pytest.fixture(scope="module")
def preview(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render_example(tmp_path_factory.mktemp("outbound"), OUTBOUND_SITE)


@pytest.fixture(scope="module")
def preview_without_mta_sts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same site with its direct carrier's `mta_sts: true` left out (about four seconds more)."""
    assert OUTBOUND_SITE.count(MTA_STS_LINE) == 1
    return render_example(tmp_path_factory.mktemp("outbound-no-sts"), OUTBOUND_SITE.replace(MTA_STS_LINE, ""))


def render_example(root: Path, site: str) -> Path:
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        patch.delenv("MAILAPPLIANCE_INVENTORY_ROOT", raising=False)
        patch.delenv("MAILAPPLIANCE_BUILD_ROOT", raising=False)
        certificates.write_tls(root)
        (root / "eicar.hdb").write_text(EICAR_HDB)
        (root / "overseas.txt").write_text(OVERSEAS_LIST)
        (root / "site.yml").write_text(site)
        first = run_cli("render", "site.yml")
        assert first.exit_code != 0 and "isp1 log in but have no password" in first.output, first.output
        add_relay_password(root / "inventories/acme")
        result = run_cli("render", "site.yml")
        assert result.exit_code == 0, result.output
        assert RELAY_PASSWORD not in result.output
    return root / "build/acme/preview/mail.acme.example"


def add_relay_password(inventory: Path) -> None:
    vault_file, password_file = inventory / "group_vars/all/vault.yml", inventory / ".vault-pass"
    password = password_file.read_bytes().strip()
    data = yaml.safe_load(vault.decrypt(vault_file.read_bytes(), password, vault_file, password_file))
    data["mailappliance__outbound_carrier_passwords"] = {"isp1": RELAY_PASSWORD}
    vault_file.write_bytes(vault.encrypt(yaml.safe_dump(data), password))


def settings(text: str) -> dict[str, str]:
    return {name.strip(): value.strip() for name, _, value in
            (line.partition("=") for line in text.splitlines() if line and not line[0].isspace() and line[0] != "#")}


def table(text: str) -> list[tuple[str, str]]:
    return [tuple(line.split(None, 1)) for line in text.splitlines() if line and not line.startswith("#")]


def service(master_cf: str, name: str) -> list[str]:
    """The -o options of one master.cf service."""
    lines = master_cf.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:1] == [name])
    options = []
    for line in lines[start + 1:]:
        if not line.startswith("  -o "):
            break
        options.append(line.removeprefix("  -o "))
    return options


def test_the_staff_transport_table_keeps_hosted_mail_here_and_routes_the_rest(preview):
    assert table((preview / "etc/postfix/transport").read_text()) == [
        ("acme.example", "lmtp:unix:private/dovecot-lmtp"),
        ("news.acme.example", "lmtp:unix:private/dovecot-lmtp"),
        ("mail.acme.example", "error:5.1.1 mailbox unavailable"),
        # The overseas list (*.de, *.fr, *.co.uk and one name) through isp2, then isp1.
        (".de", "route1:[relay.isp2.example]:2525"),
        (".fr", "route1:[relay.isp2.example]:2525"),
        (".co.uk", "route1:[relay.isp2.example]:2525"),
        ("partner.example.net", "route1:[relay.isp2.example]:2525"),
        # Staff mail has no "*" route of its own: direct delivery, as without an outbound: section.
        ("*", "route3:"),
    ]


def test_a_channel_hands_hosted_mail_to_the_staff_instance_and_routes_the_rest(preview):
    rows = table((preview / "etc/postfix-orders/transport").read_text())
    assert rows[:2] == [("acme.example", "staff:[127.0.0.1]:10026"), ("news.acme.example", "staff:[127.0.0.1]:10026")]
    assert rows[-1] == ("*", "route2:[smtp.isp1.example]:587")


def test_each_route_transport_falls_back_to_its_next_carriers_with_the_primarys_identity(preview):
    master = (preview / "etc/postfix/master.cf").read_text()
    assert service(master, "route1") == [
        "syslog_name=postfix/route1", "smtp_fallback_relay=[smtp.isp1.example]:587", "smtp_connect_timeout=10s",
        "smtp_helo_timeout=30s", "smtp_connection_reuse_time_limit=5s", "smtp_helo_name=mail.acme.example",
        "smtp_sasl_auth_enable=yes", "smtp_sasl_security_options=noanonymous",
        "smtp_sasl_tls_security_options=noanonymous"]
    route3 = service(master, "route3")
    assert "smtp_bind_address=192.0.2.11" in route3 and "smtp_helo_name=out.acme.example" in route3
    assert not any(option.startswith(("smtp_fallback_relay", "smtp_sasl")) for option in route3)
    orders = (preview / "etc/postfix-orders/master.cf").read_text()
    assert service(orders, "route2")[0] == "syslog_name=postfix-orders/route2"


def test_limits_follow_the_primary_carrier(preview):
    main = settings((preview / "etc/postfix/main.cf").read_text())
    assert main["route2_destination_concurrency_limit"] == "10"
    # 30 messages a minute: one delivery every 2 s.
    assert main["route2_destination_rate_delay"] == "2s"
    assert "route1_destination_rate_delay" not in main


def test_every_relay_is_held_to_verified_tls_and_only_isp1_gets_a_login(preview):
    assert table((preview / "etc/postfix/tls_policy").read_text()) == [
        ("[smtp.isp1.example]:587", "verify"), ("[relay.isp2.example]:2525", "verify")]
    logins = preview / "etc/postfix/carrier_logins"
    assert table(logins.read_text()) == [("[smtp.isp1.example]:587", f"acme-relay:{RELAY_PASSWORD}")]
    assert stat.S_IMODE(logins.stat().st_mode) == 0o600


def test_the_staff_instance_names_the_channel_instances(preview):
    main = settings((preview / "etc/postfix/main.cf").read_text())
    assert main["multi_instance_directories"] == "/etc/postfix-orders /etc/postfix-bulk"
    assert main["multi_instance_wrapper"] == "${command_directory}/postmulti -p --"
    assert main["transport_maps"] == "texthash:${config_directory}/transport"
    # The site's Unbound validates DNSSEC (the default), so direct delivery uses DANE, in every instance.
    for instance in ("postfix", "postfix-orders"):
        tls = settings((preview / "etc" / instance / "main.cf").read_text())
        assert (tls["smtp_tls_security_level"], tls["smtp_dns_support_level"]) == ("dane", "dnssec")


def test_a_channel_instance_has_its_own_queue_listener_limits_and_account_checks(preview):
    main = settings((preview / "etc/postfix-bulk/main.cf").read_text())
    assert main["queue_directory"] == "/var/spool/postfix-bulk"
    assert main["data_directory"] == "/var/lib/postfix-bulk"
    assert main["multi_instance_name"] == "postfix-bulk"
    assert main["default_process_limit"] == "200"
    assert main["authorized_submit_users"] == ""
    assert main["smtpd_end_of_data_restrictions"].startswith("check_policy_service unix:/run/")
    assert main["smtpd_milters"] == "inet:127.0.0.1:11332"
    master = (preview / "etc/postfix-bulk/master.cf").read_text()
    listeners = [line.split()[0] for line in master.splitlines() if re.match(r"^\S+\s+inet\s", line)]
    assert listeners == ["2588"]
    assert "smtpd_sasl_auth_enable=yes" in service(master, "2588")


def test_each_account_sends_only_its_senders_with_a_verp_return_path(preview):
    assert table((preview / "etc/postfix-orders/sender_logins").read_text()) == [
        ("orders@acme.example", "shop"), ("invoices@acme.example", "shop")]
    assert table((preview / "etc/postfix-bulk/return_paths").read_text()) == [
        ("@news.acme.example", "bounces+newsletter@news.acme.example")]
    aliases = table((preview / "etc/postfix/virtual_aliases").read_text())
    assert ("bounces@acme.example", "postmaster@acme.example") in aliases


def test_accounts_log_in_through_dovecot_and_are_counted_by_the_policy_service(preview):
    accounts = (preview / "etc/dovecot/accounts").read_text()
    assert [line.split(":", 1)[0] for line in accounts.splitlines() if not line.startswith("#")] == [
        "shop", "newsletter"]
    assert "/etc/dovecot/accounts" in (preview / "etc/dovecot/dovecot.conf").read_text()
    assert (preview / "etc/mailappliance/accounts.json").read_text().strip() == (
        '{"accounts": {"newsletter": {"channel": "bulk", "daily_quota": 2000000, "rate_per_minute": 6000}, '
        '"shop": {"channel": "orders", "daily_quota": 50000, "rate_per_minute": 600}}}')


def test_channel_senders_are_signed_with_the_channels_key(preview):
    text = (preview / "etc/rspamd/local.d/dkim_signing.conf").read_text()
    assert '"orders@acme.example channel-orders"' in text
    assert '"channel-bulk news.acme.example:bulk2026:/var/lib/rspamd/dkim/news.acme.example.bulk2026.key"' in text
    # The channel's entries come before the domain's own, since the first match wins.
    assert text.index('"*@news.acme.example channel-bulk"') < text.index('"*@news.acme.example news.acme.example"')


def policy_maps(master_cf: str, name: str) -> list[str]:
    return [option for option in service(master_cf, name) if option.startswith("smtp_tls_policy_maps=")]


def test_direct_delivery_asks_the_mta_sts_resolver_after_the_relays_table(preview):
    # route3 is the direct carrier's (staff mail's "*"); every instance defines every route transport.
    for instance in ("postfix", "postfix-orders", "postfix-bulk"):
        master = (preview / "etc" / instance / "master.cf").read_text()
        assert policy_maps(master, "route3") == [
            f"smtp_tls_policy_maps=texthash:/etc/{instance}/tls_policy,{MTA_STS_MAP}"]
        # Relay routes keep to their table alone, and main.cf too: the channels' hand-over to staff and every
        # relay next hop never wait for the resolver.
        assert policy_maps(master, "route1") == policy_maps(master, "route2") == []
        main = settings((preview / "etc" / instance / "main.cf").read_text())
        assert main["smtp_tls_policy_maps"] == "texthash:${config_directory}/tls_policy"
        assert main["smtp_tls_security_level"] == "dane"
    assert policy_maps((preview / "etc/postfix-orders/master.cf").read_text(), "staff") == []


def test_the_mta_sts_resolver_listens_on_the_loopback_and_keeps_policies(preview):
    daemon = yaml.safe_load((preview / "etc/mta-sts-daemon.yml").read_text())
    assert (daemon["host"], daemon["port"]) == ("127.0.0.1", 8461)
    assert daemon["cache"] == {"type": "sqlite", "options": {"filename": "/var/lib/mta-sts/cache.db"}}
    # Testing-mode policies are only reported on by their senders, never enforced.
    assert daemon["default_zone"]["strict_testing"] is False
    assert "resolver" not in daemon and "proxy" not in daemon


def test_without_mta_sts_direct_delivery_has_dane_alone_and_no_resolver(preview, preview_without_mta_sts):
    for instance in ("postfix", "postfix-orders", "postfix-bulk"):
        master = (preview_without_mta_sts / "etc" / instance / "master.cf").read_text()
        assert [policy_maps(master, name) for name in ("route1", "route2", "route3")] == [[], [], []]
        main = settings((preview_without_mta_sts / "etc" / instance / "main.cf").read_text())
        assert main == settings((preview / "etc" / instance / "main.cf").read_text())
    assert not (preview_without_mta_sts / "etc/mta-sts-daemon.yml").exists()
