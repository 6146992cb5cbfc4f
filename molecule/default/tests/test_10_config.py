"""The services' own configuration checkers find nothing to complain about, and the SMTP greeting
names the host without telling the world which software and version answer."""

from __future__ import annotations

import re

import mailprobe


def test_postfix_check_is_clean(host):
    out = host.run("postfix check")
    assert out.rc == 0, f"postfix check exited {out.rc}: {out.stdout}{out.stderr}"
    assert not (out.stdout + out.stderr).strip(), f"postfix check complains:\n{out.stdout}{out.stderr}"


def test_doveconf_parses_the_configuration(host):
    out = host.run("doveconf -n")
    assert out.rc == 0, f"doveconf -n exited {out.rc}: {out.stderr}"
    assert not re.search(r"(?im)^doveconf: (warning|error|fatal)", out.stderr), out.stderr


def test_rspamd_configtest_is_ok(host):
    out = host.run("rspamadm configtest")
    assert out.rc == 0, f"rspamadm configtest exited {out.rc}: {out.stdout}{out.stderr}"
    assert "syntax OK" in out.stdout, out.stdout + out.stderr


def test_rspamd_enforces_dmarc_policies(host):
    # The fixture has no resolver for its domains, so the verdicts cannot be provoked here; this checks that
    # Rspamd loaded the actions it takes when a sender domain publishes p=reject or p=quarantine.
    out = host.run("rspamadm configdump dmarc")
    assert out.rc == 0, out.stderr
    actions = dict(re.findall(r'(?m)^\s*(reject|quarantine) = "([^"]*)";', out.stdout))
    assert actions == {"reject": "reject", "quarantine": "add header"}, out.stdout


def test_smtp_banner_names_the_host_but_no_software(appliance):
    client, code, banner = mailprobe.open_smtp(appliance.ip, 25)
    mailprobe.close_smtp(client)
    assert code == 220, f"banner: {code} {banner}"
    assert banner.split()[0] == mailprobe.HOSTNAME, f"banner does not start with the host name: {banner!r}"
    assert not re.search(r"postfix|debian|ubuntu|gnu", banner, re.IGNORECASE), f"banner names software: {banner!r}"
    assert not re.search(r"\d+\.\d+", banner), f"banner carries a version number: {banner!r}"
