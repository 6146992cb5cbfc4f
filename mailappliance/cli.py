"""The `mailappliance` command: a click group whose verbs live in mailappliance/commands/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from mailappliance import __version__, exit_codes
from mailappliance.commands import audit, demo, deploy, dns, render, site, validate
from mailappliance.context import AppContext
from mailappliance.errors import UserError


class _Group(click.Group):
    """Prints UserError as one line per problem and exits with its code, never with a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except UserError as error:
            for line in error.lines:
                click.echo(f"Error: {line}", err=True)
            ctx.exit(error.exit_code)
        except KeyboardInterrupt:
            click.echo("Error: interrupted", err=True)
            ctx.exit(exit_codes.EXIT_CODE_INTERRUPTED)


@click.group(cls=_Group,
             context_settings={"auto_envvar_prefix": "MAILAPPLIANCE", "help_option_names": ["-h", "--help"]})
@click.option("--inventory-root", type=click.Path(file_okay=False, path_type=Path), default=Path("inventories"),
              envvar="MAILAPPLIANCE_INVENTORY_ROOT", show_default=True, show_envvar=True,
              help="Folder holding one inventory folder per site (<root>/<site>/site.yml, hosts.yml, group_vars/).")
@click.option("--build-root", type=click.Path(file_okay=False, path_type=Path), default=Path("build"),
              envvar="MAILAPPLIANCE_BUILD_ROOT", show_default=True, show_envvar=True,
              help="Folder for generated output such as offline previews (<root>/<site>/preview/).")
@click.version_option(__version__, prog_name="mailappliance")
@click.pass_context
def cli(ctx: click.Context, inventory_root: Path, build_root: Path) -> None:
    """Define a mail site in one YAML file, preview its server configuration and deploy it with Ansible.

    SITE arguments take a site name (INVENTORY_ROOT/SITE/site.yml) or the path of a site file.
    """
    ctx.obj = AppContext(inventory_root=inventory_root, build_root=build_root)


cli.add_command(site.site)
cli.add_command(validate.validate)
cli.add_command(render.render)
cli.add_command(deploy.deploy)
cli.add_command(demo.demo)
cli.add_command(dns.dns_group)
cli.add_command(audit.audit)


def main() -> None:
    cli(prog_name="mailappliance")
