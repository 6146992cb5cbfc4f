"""`mailappliance render SITE`: write the site's inventory, then an offline preview of every server file."""

from __future__ import annotations

import os

import click

from mailappliance.context import AppContext


@click.command()
@click.argument("site_arg", metavar="SITE")
@click.option("--preview/--no-preview", default=True, show_default=True,
              help="Also render every configuration file the appliance would get into BUILD_ROOT/SITE/preview/ "
                   "(runs Ansible locally, contacts no host).")
@click.pass_obj
def render(app: AppContext, site_arg: str, preview: bool) -> None:
    """Validate SITE, write its inventory and render an offline preview of its server files."""
    site = app.load(site_arg)
    app.write_inventory(site)
    if not preview:
        return
    files = app.render_preview(site)
    click.echo(f"Preview of {len(files)} files in {app.preview_dir(site)}:")
    for path in files:
        click.echo(f"  {os.path.relpath(path, app.preview_dir(site))}")
