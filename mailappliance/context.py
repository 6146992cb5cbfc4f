"""State shared by every command (the inventory and build roots) and the steps most commands share."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from mailappliance import project, runner
from mailappliance.dns.plan import Plan, build_plan
from mailappliance.errors import UserError
from mailappliance.inventory import CARRIER_PASSWORDS, InventoryResult, inventory_paths, write_inventory
from mailappliance.site import Site, load_site, resolve_site_file


@dataclass(frozen=True)
class AppContext:
    inventory_root: Path
    build_root: Path

    def load(self, site_arg: str) -> Site:
        """Load and validate the site named or pointed at by a SITE argument."""
        path = resolve_site_file(site_arg, self.inventory_root)
        site = load_site(path)
        # A site addressed by name lives in <inventory-root>/<name>/ beside its generated inventory, so the
        # name inside the file has to agree or the inventory would be written somewhere else.
        if path == self.inventory_root / site_arg / "site.yml" and site.name != site_arg:
            raise UserError(f"{path}: site: \"{site.name}\" does not match its folder \"{site_arg}\"; "
                            f"set site: {site_arg}, or move the file to {self.inventory_root / site.name}/")
        return site

    def write_inventory(self, site: Site) -> InventoryResult:
        """Write the site's inventory and report what changed and any new passwords (printed only now)."""
        result = write_inventory(site, self.inventory_root)
        for path in result.written:
            click.echo(f"wrote {path}")
        if not result.written:
            click.echo(f"inventory {result.paths.directory} is up to date")
        _echo_passwords(f"New mailbox passwords (shown once; kept encrypted in {result.paths.vault}):",
                        result.new_passwords)
        _echo_passwords("New sending account passwords (the account's name is its SMTP login; shown once; kept "
                        f"encrypted in {result.paths.vault}):", result.new_account_passwords)
        for carrier in result.missing_carrier_passwords:
            click.echo(f"Carrier {carrier} logs in to its relay, but the vault holds no password for it yet: add it "
                       f"as {CARRIER_PASSWORDS}.{carrier} with `ansible-vault edit --vault-password-file "
                       f"{result.paths.vault_password} {result.paths.vault}` before deploying")
        return result

    def preview_dir(self, site: Site) -> Path:
        return self.build_root / site.name / "preview"

    def run_playbook(self, name: str, site: Site, **options: Any) -> runner.PlaybookRun:
        paths = inventory_paths(site.name, self.inventory_root)
        return runner.run_playbook(
            project.playbook(name), paths.hosts, paths.vault_password, self.build_root / site.name, **options
        )

    def deploy(self, site: Site, **options: Any) -> runner.PlaybookRun:
        """Run playbooks/site.yml; the roles copy what DNS needs to publish (DKIM keys, certificate) back here."""
        published = inventory_paths(site.name, self.inventory_root).published
        return self.run_playbook("site.yml", site, extravars={"mailappliance__published_dir": str(published.resolve())},
                                 **options)

    def dns_plan(self, site: Site) -> Plan:
        """The site's DNS plan, from what deploy published into its inventory; `dns` and `audit` start here."""
        return build_plan(site, inventory_paths(site.name, self.inventory_root).published / site.hostname)

    def render_preview(self, site: Site) -> list[Path]:
        """Render every server file of the site into the preview folder with Ansible; return the files."""
        preview = self.preview_dir(site)
        # The preview is entirely generated, so files of a previous render must not linger.
        shutil.rmtree(preview, ignore_errors=True)
        preview.mkdir(parents=True)
        # render.yml is site.yml's play reduced to each role's preview task; it refuses to run without the tag.
        run = self.run_playbook("render.yml", site, tags="preview",
                                extravars={"mailappliance__preview_dir": str(preview.resolve())})
        runner.raise_for_failure(run, "render")
        return sorted(path for path in preview.rglob("*") if path.is_file())


def _echo_passwords(heading: str, passwords: dict[str, str]) -> None:
    if not passwords:
        return
    click.echo(heading)
    width = max(len(login) for login in passwords)
    for login, password in passwords.items():
        click.echo(f"  {login:<{width}}  {password}")
