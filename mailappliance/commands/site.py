"""`mailappliance site new NAME`: start a site file and its inventory from a few answers."""

from __future__ import annotations

import click

from mailappliance.context import AppContext
from mailappliance.starter import StarterAnswers, create_site


@click.group()
def site() -> None:
    """Create and manage site files."""


@site.command()
@click.argument("name")
@click.option("--domain", "domains", multiple=True, required=True, metavar="DOMAIN",
              help="A mail domain of the site; repeat for several.")
@click.option("--hostname", required=True, metavar="FQDN",
              help="Full DNS name of the appliance, e.g. mail.example.com.")
@click.option("--admin", metavar="EMAIL", help="Admin contact (default: postmaster@ the first domain).")
@click.option("--host", "address", metavar="ADDRESS", help="Address Ansible connects to (default: the hostname).")
@click.option("--connection", type=click.Choice(["ssh", "podman"]), default="ssh", show_default=True,
              help="How Ansible reaches the host: SSH, or a local Podman container named by --host.")
@click.pass_obj
def new(app: AppContext, name: str, domains: tuple[str, ...], hostname: str, admin: str | None,
        address: str | None, connection: str) -> None:
    """Write INVENTORY_ROOT/NAME/site.yml (one admin mailbox, self-signed TLS) and its inventory."""
    create_site(StarterAnswers(name=name, domains=domains, hostname=hostname, admin=admin, address=address,
                               connection=connection), app.inventory_root, app.write_inventory)
    click.echo(f"Next: review {app.inventory_root / name / 'site.yml'}, then `mailappliance render {name}` "
               f"and `mailappliance deploy {name}`.")

