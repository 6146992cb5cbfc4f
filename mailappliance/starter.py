"""Starter site files: a working site.yml from a few command-line answers, rendered from templates/."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import jinja2

from mailappliance.errors import UserError
from mailappliance.files import write_if_changed
from mailappliance.project import TEMPLATES_DIR
from mailappliance.site import (
    Site,
    is_container_name,
    is_domain_name,
    is_email_address,
    is_host_address,
    is_site_name,
    load_site,
)

TEMPLATE = "site.yml.j2"
# clamd refuses to start without signatures and the appliance downloads none, so a starter site ships
# one database that matches only the harmless EICAR test file; the site file says to replace it.
TEST_DATABASE = "eicar.hdb"
EICAR_HDB = "44d88612fea8a8f36de82e1278abb02f:68:Local.EICAR-Test-File\n"


@dataclass(frozen=True)
class StarterAnswers:
    name: str
    domains: tuple[str, ...]
    hostname: str
    admin: str | None = None
    address: str | None = None
    connection: str = "ssh"
    network_checks: bool = True


def write_starter(answers: StarterAnswers, target: Path) -> Site:
    """Write a starter site file (and its test virus database) to `target`; raise UserError on bad answers."""
    _check_answers(answers)
    domains = [d.lower() for d in answers.domains]
    admin = (answers.admin or f"postmaster@{domains[0]}").lower()
    # The admin gets a mailbox when the address is hosted here; otherwise postmaster@ of the first domain
    # is the one mailbox, so a fresh site can always receive and log in.
    mailbox = admin if admin.rpartition("@")[2] in domains else f"postmaster@{domains[0]}"
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR), undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True, autoescape=False,
    )
    text = environment.get_template(TEMPLATE).render(
        name=answers.name, hostname=answers.hostname.lower(), admin=admin, domains=domains, mailbox=mailbox,
        address=answers.address or answers.hostname.lower(), connection=answers.connection,
        database=TEST_DATABASE, network_checks=answers.network_checks,
    )
    database = target.parent / TEST_DATABASE
    if not database.exists():
        write_if_changed(database, EICAR_HDB.encode())
    write_if_changed(target, text.encode())
    return load_site(target)


def _check_answers(answers: StarterAnswers) -> None:
    errors: list[str] = []
    if not is_site_name(answers.name):
        errors.append(f"NAME: \"{answers.name}\" is not a valid site name; use 1-63 lowercase letters, digits and "
                      "hyphens, starting with a letter")
    if not answers.domains:
        errors.append("--domain: is required; give each mail domain with --domain example.com")
    seen: set[str] = set()
    for domain in answers.domains:
        if not is_domain_name(domain.lower()):
            errors.append(f"--domain: \"{domain}\" is not a valid domain name; use letters, digits and hyphens in "
                          "dot-separated labels")
        elif domain.lower() in seen:
            errors.append(f"--domain: \"{domain}\" is given twice; give each domain once")
        seen.add(domain.lower())
    if not is_domain_name(answers.hostname.lower()):
        errors.append(f"--hostname: \"{answers.hostname}\" is not a fully qualified domain name; use the "
                      "appliance's full DNS name, e.g. mail.example.com")
    if answers.admin is not None and not is_email_address(answers.admin.lower()):
        errors.append(f"--admin: \"{answers.admin}\" is not a valid email address; use e.g. postmaster@example.com")
    if answers.address is not None and answers.connection == "ssh" and not is_host_address(answers.address):
        errors.append(f"--host: \"{answers.address}\" is not a valid host name or IP address; use a DNS name, "
                      "an IPv4 or an IPv6 address")
    if answers.address is not None and answers.connection == "podman" and not is_container_name(answers.address):
        errors.append(f"--host: \"{answers.address}\" is not a valid container name; use letters, digits, dots, "
                      "underscores and hyphens")
    if errors:
        raise UserError(*errors)
