"""The MTA-STS policy has one source: the file the nginx role serves, as the offline preview renders it, holds
byte for byte the text whose hash `dns plan` publishes as the id, and nginx serves it for every domain."""

from __future__ import annotations

import json
import re
from pathlib import Path

from clirunner import run_cli
from conftest import MINIMAL_SITE, write_site
from mailappliance.dns.plan import mta_sts_id
from mailappliance.site.mta_sts import mta_sts_policy

PREVIEW_HOST = Path("build/molecule/preview/mail.alpha.test")
POLICY_FILE = PREVIEW_HOST / "var/www/mta-sts/mta-sts.txt"
NGINX_CONF = PREVIEW_HOST / "etc/nginx/conf.d/mta-sts.conf"


def test_preview_serves_the_planned_policy_for_every_domain(site_dir: Path) -> None:
    """Runs playbooks/render.yml through ansible-runner on this machine; takes some seconds."""
    # Values other than the defaults, so a role that rebuilt the text from defaults would be caught.
    write_site(site_dir, dict(MINIMAL_SITE, dns={"mta_sts_mode": "testing", "mta_sts_max_age": 86400}))
    render = run_cli("render", "site.yml")
    assert render.exit_code == 0, render.output
    plan = run_cli("dns", "plan", "site.yml", "--format", "json")
    assert plan.exit_code == 0, plan.output
    planned = json.loads(plan.stdout)["mta_sts"]

    served = (site_dir / POLICY_FILE).read_bytes()
    assert served == planned["policy"].encode()
    assert served == mta_sts_policy("testing", "mail.alpha.test", 86400).encode()
    assert mta_sts_id(served.decode()) == planned["id"]

    conf = (site_dir / NGINX_CONF).read_text()
    assert conf.startswith("# Managed by mailappliance (role nginx): /etc/nginx/conf.d/mta-sts.conf\n")
    assert re.findall(r"^\s*server_name (.*);$", conf, re.MULTILINE) == ["_", "mta-sts.alpha.test mta-sts.beta.test"]
    assert re.findall(r"^\s*ssl_protocols (.*);$", conf, re.MULTILINE) == ["TLSv1.2 TLSv1.3"] * 2
    assert conf.count("server_tokens off;") == 2
    assert "alias /var/www/mta-sts/mta-sts.txt;" in conf
