"""`mailappliance validate SITE`: check a site file and report every problem, one line each."""

from __future__ import annotations

import click

from mailappliance.context import AppContext


def _count(number: int, singular: str, plural: str) -> str:
    return f"{number} {singular if number == 1 else plural}"


@click.command()
@click.argument("site_arg", metavar="SITE")
@click.pass_obj
def validate(app: AppContext, site_arg: str) -> None:
    """Check the site file SITE without writing anything."""
    site = app.load(site_arg)
    counts = ", ".join([_count(len(site.domains), "domain", "domains"),
                        _count(len(site.mailboxes), "mailbox", "mailboxes"),
                        _count(len(site.aliases), "alias", "aliases")])
    click.echo(f"{site_arg}: valid: site {site.name}, {counts}")
