"""`mailappliance deploy SITE`: refresh the inventory, then run playbooks/site.yml against the site's host."""

from __future__ import annotations

import click

from mailappliance import runner
from mailappliance.context import AppContext


@click.command()
@click.argument("site_arg", metavar="SITE")
@click.option("--check", is_flag=True, help="Show what would change without changing anything.")
@click.option("--diff", is_flag=True, help="Show the differences in changed files.")
@click.option("--limit", metavar="HOSTS", help="Only run on these hosts (an Ansible host pattern).")
@click.pass_obj
def deploy(app: AppContext, site_arg: str, check: bool, diff: bool, limit: str | None) -> None:
    """Validate SITE, write its inventory and provision its appliance with Ansible."""
    site = app.load(site_arg)
    app.write_inventory(site)
    action = "deploy --check" if check else "deploy"
    run = app.deploy(site, check=check, diff=diff, limit=limit)
    runner.raise_for_failure(run, action)
    click.echo(f"{action} of {site.name} finished on {', '.join(run.hosts_with('processed')) or 'no host'}")
