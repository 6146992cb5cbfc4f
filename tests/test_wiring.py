"""playbooks/site.yml wires the roles, and playbooks/render.yml previews through that same play: a second role's
Postfix settings arrive in main.cf through postfix__dependent_maincf, a name given twice is refused, and the
render playbook refuses to run as a deployment. Each case runs ansible-playbook on this machine (seconds)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from conftest import PROJECT_DIR
from test_preview_action import HOST, inventory, run_playbook

# What a second role (the archive's milter, say) would export beside Rspamd's milter settings.
SECOND_EXPORT = [{"name": "smtpd_proxy_timeout", "value": "120s", "comment": "Set by a second role."},
                 {"name": "header_checks", "value": ["pcre:/etc/postfix/a", "pcre:/etc/postfix/b"]}]


def render(site_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return run_playbook(PROJECT_DIR / "playbooks/render.yml", inventory(site_dir), PROJECT_DIR / "roles", *extra)


def preview_args(site_dir: Path, **variables: object) -> list[str]:
    """A preview run as `mailappliance render` makes it, with `variables` as extra variables on top."""
    return ["--tags", "preview", "-e", f"mailappliance__preview_dir={site_dir / 'preview'}",
            "-e", json.dumps(variables)]


def test_a_second_roles_postfix_settings_follow_rspamds_in_main_cf(site_dir: Path, full_site: Path) -> None:
    dependent = "{{ rspamd__postfix__dependent_maincf + " + json.dumps(SECOND_EXPORT) + " }}"
    result = render(site_dir, *preview_args(site_dir, postfix__dependent_maincf=dependent))
    assert result.returncode == 0, result.stdout + result.stderr
    main_cf = (site_dir / "preview" / HOST / "etc/postfix/main.cf").read_text()
    section = ("milter_protocol = 6\n# Set by a second role.\nsmtpd_proxy_timeout = 120s\n"
               "header_checks = pcre:/etc/postfix/a, pcre:/etc/postfix/b\n\n# TLS for clients")
    assert section in main_cf
    assert "smtpd_milters = inet:127.0.0.1:11332\n" in main_cf


def test_a_setting_two_roles_export_is_refused(site_dir: Path, full_site: Path) -> None:
    twice = [{"name": "milter_protocol", "value": 2}]
    dependent = "{{ rspamd__postfix__dependent_maincf + " + json.dumps(twice) + " }}"
    result = render(site_dir, *preview_args(site_dir, postfix__dependent_maincf=dependent))
    assert result.returncode != 0
    assert "postfix__dependent_maincf: every entry needs a name and a value, and a name may come again only with a " \
        "list value each time" in result.stdout
    assert "milter_protocol, milter_protocol" in result.stdout
    assert not (site_dir / "preview" / HOST / "etc/postfix/main.cf").exists()


def test_render_playbook_refuses_to_run_without_the_preview_tag(site_dir: Path, full_site: Path) -> None:
    result = render(site_dir, "-e", f"mailappliance__preview_dir={site_dir / 'preview'}")
    assert result.returncode != 0
    assert "render.yml only previews" in result.stdout
    # The guard play stopped the run before the imported deployment play began.
    assert "Provision the mail appliance" not in result.stdout


def test_unbound_forwards_to_the_sites_resolvers_only(site_dir: Path, full_site: Path) -> None:
    result = render(site_dir, *preview_args(site_dir, mailappliance__dns_resolvers=["192.0.2.53", "2001:db8::53"]))
    assert result.returncode == 0, result.stdout + result.stderr
    conf = (site_dir / "preview" / HOST / "etc/unbound/unbound.conf.d/mailappliance.conf").read_text()
    assert "forward-zone:\n    name: \".\"\n    forward-first: no\n    forward-addr: 192.0.2.53\n" \
           "    forward-addr: 2001:db8::53\n" in conf
    assert 'module-config: "validator iterator"' in conf and 'local-zone: "." static' not in conf


def test_unbound_refuses_a_forwarder_that_is_no_address(site_dir: Path, full_site: Path) -> None:
    result = render(site_dir, *preview_args(site_dir, mailappliance__dns_resolvers=["dns.example.com"]))
    assert result.returncode != 0
    assert "unbound__forwarders must list IP addresses (dns.example.com)" in result.stdout
