"""`mailappliance site new NAME`: start a site file and its inventory from a few answers."""

from __future__ import annotations

import shutil
from pathlib import Path

import click

from mailappliance.context import AppContext
from mailappliance.errors import UserError
from mailappliance.starter import StarterAnswers, write_starter


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
    create_site(app, StarterAnswers(name=name, domains=domains, hostname=hostname, admin=admin, address=address,
                                    connection=connection))
    click.echo(f"Next: review {app.inventory_root / name / 'site.yml'}, then `mailappliance render {name}` "
               f"and `mailappliance deploy {name}`.")


def create_site(app: AppContext, answers: StarterAnswers) -> None:
    """Write a new site file and its inventory; refuses to replace an existing site file.

    Answers are checked before anything is written; should a later step still fail (the inventory cannot
    be written, Ctrl-C), whatever this call created is removed again, so a failed run leaves no files.
    """
    target = app.inventory_root / answers.name / "site.yml"
    if target.exists():
        raise UserError(f"{target}: already exists; edit it, or choose another site name")
    undo = _Undo(target.parent)
    try:
        site_model = write_starter(answers, target)
        click.echo(f"created {target}")
        app.write_inventory(site_model)
    except BaseException:
        undo()
        raise


class _Undo:
    """Removes what was created under a folder since construction: the topmost folder that did not exist
    yet, or else the new entries inside the folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        missing = [path for path in (folder, *folder.parents) if not path.exists()]
        self.new_root = missing[-1] if missing else None
        self.before = set() if missing else set(folder.rglob("*"))

    def __call__(self) -> None:
        if self.new_root is not None:
            shutil.rmtree(self.new_root, ignore_errors=True)
            return
        # Deepest first, so folders are empty when their turn comes.
        for path in sorted(set(self.folder.rglob("*")) - self.before, key=lambda p: len(p.parts), reverse=True):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
