"""`mailappliance demo`: a complete appliance in a local Podman container, deployed and mail-tested."""

from __future__ import annotations

import click

from mailappliance import mailcheck, podman, runner
from mailappliance.context import AppContext
from mailappliance.errors import UserError
from mailappliance.inventory import inventory_paths, read_mailbox_passwords
from mailappliance.starter import StarterAnswers, create_site

SITE_NAME = "demo"
CONTAINER = "mailappliance-demo"
DOMAIN = "demo.test"
HOSTNAME = f"mail.{DOMAIN}"


@click.command()
@click.option("--recreate", is_flag=True, help="Replace an existing demo container with a fresh one.")
@click.pass_obj
def demo(app: AppContext, recreate: bool) -> None:
    """Deploy the demo site into the Podman container mailappliance-demo and send it a test message.

    Creates INVENTORY_ROOT/demo/site.yml on first use (edit it and run demo again to try changes),
    renders the preview, deploys with playbooks/site.yml over the podman connection, then delivers a
    message on port 25 and reads it back over IMAPS.
    """
    if not podman.image_exists():
        raise UserError(f"the base image {podman.BASE_IMAGE} does not exist; build it with "
                        "`scripts/build-base-image` (as root, needs debootstrap)")
    site_file = app.inventory_root / SITE_NAME / "site.yml"
    created = not site_file.exists()
    if created:
        create_site(StarterAnswers(name=SITE_NAME, domains=(DOMAIN,), hostname=HOSTNAME, address=CONTAINER,
                                   connection="podman", network_checks=False, air_gapped=True),
                    app.inventory_root, app.write_inventory)
    site = app.load(SITE_NAME)
    if site.host.connection != "podman" or site.host.address != CONTAINER:
        raise UserError(f"{site_file}: host: must be {{connection: podman, address: {CONTAINER}}} for the demo; "
                        "fix it, or delete the file to start from a fresh demo site")
    if not site.mailboxes:
        raise UserError(f"{site_file}: mailboxes: the demo needs at least one mailbox to deliver its test message to; "
                        "add one, or delete the file to start from a fresh demo site")
    if not created:
        app.write_inventory(site)

    state = podman.container_state(CONTAINER)
    if recreate and state is not None:
        click.echo(f"removing container {CONTAINER}")
        podman.remove(CONTAINER)
        state = None
    if state is None:
        click.echo(f"creating container {CONTAINER} from {podman.BASE_IMAGE}")
        podman.create_systemd_container(CONTAINER, site.hostname)
    elif state != "running":
        click.echo(f"starting container {CONTAINER}")
        podman.start(CONTAINER)
    podman.wait_until_booted(CONTAINER)

    files = app.render_preview(site)
    click.echo(f"rendered {len(files)} preview files into {app.preview_dir(site)}")
    run = app.deploy(site)
    runner.raise_for_failure(run, "demo deploy")

    address = podman.ip_address(CONTAINER)
    recipient = site.mailboxes[0].address
    password = read_mailbox_passwords(site.name, app.inventory_root)[recipient]
    click.echo(f"sending a test message to {recipient} via {address}:25 and reading it back over IMAPS")
    subject = mailcheck.send_and_receive(
        address, recipient, password,
        log_hint=f"see the mail log with `podman exec {CONTAINER} journalctl -n 100 --no-pager`",
    )
    paths = inventory_paths(site.name, app.inventory_root)
    click.echo(f"""\
The demo appliance works: "{subject}" went from SMTP to {recipient}'s INBOX.
  site file   {site_file}
  inventory   {paths.directory}/ (hosts.yml, group_vars/all/; passwords: ansible-vault view \
--vault-password-file {paths.vault_password} {paths.vault})
  preview     {app.preview_dir(site)}/
  IMAP login  {recipient} at {address}:993 (self-signed certificate)
  shell       podman exec -it {CONTAINER} bash
  mail log    podman exec -it {CONTAINER} journalctl -f -u postfix@- -u dovecot -u rspamd
  remove      podman rm --force {CONTAINER}""")
