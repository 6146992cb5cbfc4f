"""Starter site files: a working site.yml from a few command-line answers, rendered from templates/, and a new
site created from them (`site new`, `demo`) with its inventory, or nothing at all when a step fails."""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import click
import jinja2
import yaml

from mailappliance.errors import UserError
from mailappliance.files import write_if_changed
from mailappliance.project import TEMPLATES_DIR
from mailappliance.site import (
    DEFAULT_BAN_TIME,
    DEFAULT_DKIM_SELECTOR,
    DEFAULT_FIND_TIME,
    DEFAULT_MAX_FAILURES,
    DEFAULT_MESSAGE_SIZE_LIMIT,
    DEFAULT_QUOTA,
    DEFAULT_SPAM_ADD_HEADER,
    DEFAULT_SPAM_REJECT,
    Site,
    is_container_name,
    is_domain_name,
    is_email_address,
    is_host_address,
    is_site_name,
    load_site,
    parse_site,
    show_value,
)

TEMPLATE = "site.yml.j2"
# clamd refuses to start without signatures and the appliance downloads none, so a starter site ships
# one database that matches only the harmless EICAR test file; the site file says to replace it.
TEST_DATABASE = "eicar.hdb"
EICAR_HDB = "44d88612fea8a8f36de82e1278abb02f:68:Local.EICAR-Test-File\n"
_PLAIN_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._@-]*\Z")


@dataclass(frozen=True)
class StarterAnswers:
    name: str
    domains: tuple[str, ...]
    hostname: str
    admin: str | None = None
    address: str | None = None
    connection: str = "ssh"
    network_checks: bool = True
    air_gapped: bool = False


def create_site(answers: StarterAnswers, inventory_root: Path, write_inventory: Callable[[Site], object]) -> None:
    """Write a new site file in `inventory_root`, then its inventory with `write_inventory`; refuses to replace
    an existing site file.

    Answers are checked before anything is written; should a later step still fail (the inventory cannot
    be written, Ctrl-C), whatever this call created is removed again, so a failed run leaves no files.
    """
    target = inventory_root / answers.name / "site.yml"
    if target.exists():
        raise UserError(f"{target}: already exists; edit it, or choose another site name")
    undo = _Undo(target.parent)
    try:
        site_model = write_starter(answers, target)
        click.echo(f"created {target}")
        write_inventory(site_model)
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


def write_starter(answers: StarterAnswers, target: Path) -> Site:
    """Write a starter site file (and its test virus database) to `target`; raise UserError on bad answers.

    Every answer is checked, and the rendered site validated, before the first file is written.
    """
    _check_answers(answers)
    text = render_starter(answers)
    with tempfile.TemporaryDirectory() as staging:
        # The site names its database relative to its folder, which may not exist yet.
        (Path(staging) / TEST_DATABASE).write_text(EICAR_HDB)
        parse_site(text, target, base_dir=Path(staging))
    database = target.parent / TEST_DATABASE
    if not database.exists():
        write_if_changed(database, EICAR_HDB.encode())
    write_if_changed(target, text.encode())
    return load_site(target)


def render_starter(answers: StarterAnswers) -> str:
    """The text of the starter site file for checked answers."""
    domains = [d.lower() for d in answers.domains]
    admin = (answers.admin or f"postmaster@{domains[0]}").lower()
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR), undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True, autoescape=False,
    )
    environment.filters["yaml_scalar"] = _yaml_scalar
    return environment.get_template(TEMPLATE).render(
        name=answers.name, hostname=answers.hostname.lower(), admin=admin, domains=domains,
        mailbox=_mailbox(admin, domains), address=answers.address or answers.hostname.lower(),
        connection=answers.connection, database=TEST_DATABASE, network_checks=answers.network_checks,
        air_gapped=answers.air_gapped,
        dkim_selector=DEFAULT_DKIM_SELECTOR, quota=DEFAULT_QUOTA, message_size_limit=DEFAULT_MESSAGE_SIZE_LIMIT,
        spam_add_header=f"{DEFAULT_SPAM_ADD_HEADER:g}", spam_reject=f"{DEFAULT_SPAM_REJECT:g}",
        max_failures=DEFAULT_MAX_FAILURES, find_time=DEFAULT_FIND_TIME, ban_time=DEFAULT_BAN_TIME,
    )


def _mailbox(admin: str, domains: list[str]) -> str:
    # The admin gets a mailbox when the address is hosted here; otherwise postmaster@ of the first domain
    # is the one mailbox, so a fresh site can always receive and log in.
    return admin if admin.rpartition("@")[2] in domains else f"postmaster@{domains[0]}"


def _yaml_scalar(value: str) -> str:
    """`value` as a YAML scalar that loads back as the same text: plain when it can be (yes, 1e5 and the
    like cannot), double-quoted otherwise (JSON's quoting is valid YAML)."""
    return value if _PLAIN_RE.fullmatch(value) and yaml.safe_load(value) == value else json.dumps(value)


def _check_answers(answers: StarterAnswers) -> None:
    errors: list[str] = []
    if not is_site_name(answers.name):
        errors.append(f"NAME: {show_value(answers.name)} is not a valid site name; use 1-63 lowercase letters, "
                      "digits and hyphens, starting with a letter")
    if not answers.domains:
        errors.append("--domain: is required; give each mail domain with --domain example.com")
    seen: set[str] = set()
    for domain in answers.domains:
        if not is_domain_name(domain.lower()):
            errors.append(f"--domain: {show_value(domain)} is not a valid domain name; use letters, digits and "
                          "hyphens in dot-separated labels")
        elif domain.lower() in seen:
            errors.append(f"--domain: {show_value(domain)} is given twice; give each domain once")
        seen.add(domain.lower())
    if not is_domain_name(answers.hostname.lower()):
        errors.append(f"--hostname: {show_value(answers.hostname)} is not a fully qualified domain name; use the "
                      "appliance's full DNS name, e.g. mail.example.com")
    if answers.admin is not None:
        admin = answers.admin.lower()
        if not is_email_address(admin):
            errors.append(f"--admin: {show_value(answers.admin)} is not a valid email address; "
                          "use e.g. postmaster@example.com")
        elif admin.rpartition("@")[2] in seen and not is_email_address(admin, hosted=True):
            errors.append(f"--admin: {show_value(answers.admin)} would be the site's mailbox but has characters a "
                          "mailbox address cannot have; use only letters, digits, dots, hyphens and underscores "
                          "before the @, or an address outside the site's domains")
    if answers.address is not None and answers.connection == "ssh" and not is_host_address(answers.address):
        errors.append(f"--host: {show_value(answers.address)} is not a valid host name or IP address; use a DNS "
                      "name, an IPv4 or an IPv6 address")
    if answers.address is not None and answers.connection == "podman" and not is_container_name(answers.address):
        errors.append(f"--host: {show_value(answers.address)} is not a valid container name; use letters, digits, "
                      "dots, underscores and hyphens")
    if errors:
        raise UserError(*errors)
