"""`mailappliance dns plan|apply|check SITE`: the DNS records a site needs, sent to a server, checked live."""

from __future__ import annotations

import json
from pathlib import Path

import click

from mailappliance import exit_codes
from mailappliance.context import AppContext
from mailappliance.controls.catalogue import DNS_BY_ID
from mailappliance.controls.model import NOT_APPLICABLE, PASS, SEVERITIES, STATUSES
from mailappliance.dns import check as dnscheck
from mailappliance.dns import output, update
from mailappliance.dns.plan import Plan
from mailappliance.dns.servers import describe, parse_server, resolver_for
from mailappliance.dns.tsig import read_tsig_key
from mailappliance.errors import UserError

STATUS_WIDTH = max(len(status) for status in STATUSES)
SEVERITY_WIDTH = max(len(severity) for severity in SEVERITIES)


@click.group(name="dns")
def dns_group() -> None:
    """Plan, publish and check the DNS records of a site."""


def load_plan(app: AppContext, site_arg: str) -> Plan:
    return app.dns_plan(app.load(site_arg))


@dns_group.command()
@click.argument("site_arg", metavar="SITE")
@click.option("--format", "output_format", type=click.Choice(["zone", "json"]), default="zone", show_default=True,
              help="A BIND zone snippet with absolute names, or JSON (with a schema version).")
@click.pass_obj
def plan(app: AppContext, site_arg: str, output_format: str) -> None:
    """Print every DNS record SITE needs, per domain and for the appliance itself.

    DKIM and TLSA records come from what `mailappliance deploy` fetched from the appliance into
    INVENTORY_ROOT/SITE/published/; until then they are listed as pending, with the reason.
    """
    the_plan = load_plan(app, site_arg)
    click.echo(output.render_json(the_plan) if output_format == "json" else output.render_zone(the_plan), nl=False)


@dns_group.command()
@click.argument("site_arg", metavar="SITE")
@click.option("--server", "server_arg", required=True, metavar="HOST[:PORT]",
              help="The authoritative server that accepts updates (the primary), e.g. 192.0.2.53 or "
                   "[2001:db8::53]:5353.")
@click.option("--tsig-key", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="TSIG key file as `tsig-keygen` or `keymgr -t` write it "
                   '(key "NAME" { algorithm ...; secret ...; };). Required unless --dry-run.')
@click.option("--zone", metavar="ZONE",
              help="Only update this zone (default: every zone of the plan the server serves).")
@click.option("--dry-run", is_flag=True, help="Show the difference and send nothing.")
@click.pass_obj
def apply(app: AppContext, site_arg: str, server_arg: str, tsig_key: Path | None, zone: str | None,
          dry_run: bool) -> None:
    """Send SITE's DNS records to SERVER as an RFC 2136 dynamic update, signed with TSIG.

    First shows the difference with what the server holds (+ added, - deleted); only the records the plan
    owns are replaced (other TXT records at a name are kept). Pending records and names outside the zones
    the server serves are listed and skipped.
    """
    if tsig_key is None and not dry_run:
        raise UserError("--tsig-key: is required to send an update; give the key file the server trusts for "
                        "updates, or add --dry-run to only see the difference")
    key = read_tsig_key(tsig_key) if tsig_key is not None else None
    the_plan = load_plan(app, site_arg)
    server = parse_server(server_arg, "--server")
    difference = update.compare(the_plan, server, zone)
    for zone_changes in difference.zones:
        click.echo(f"zone {zone_changes.zone} on {server}: {_count(len(zone_changes.changes), 'change')}, "
                   f"{_count(zone_changes.unchanged, 'record')} already as planned")
        for change in zone_changes.changes:
            click.echo(f"  {change}")
    for record, reason in difference.skipped:
        click.echo(f"skipped {record.name} {record.type}: {reason}")
    if dry_run:
        click.echo(f"dry run: nothing sent to {server}")
        return
    if not difference.change_count:
        click.echo(f"nothing to change on {server}")
        return
    assert key is not None
    for line in update.send(difference, key):
        click.echo(line)


@dns_group.command()
@click.argument("site_arg", metavar="SITE")
@click.option("--nameserver", "nameserver_arg", metavar="IP[:PORT]",
              help="Ask this server (resolver or authoritative) instead of the system's resolvers.")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="A readable report, or JSON (with a schema version) for tools and the audit.")
@click.pass_obj
def check(app: AppContext, site_arg: str, nameserver_arg: str | None, output_format: str) -> None:
    """Look up every record SITE needs in live DNS and judge it against the plan.

    Each record reports present / missing / different / weaker than planned, the value observed and a
    status as in `mailappliance audit`: pass, fail, warn, not-applicable or error. The controls are the
    audit's DNS-* controls. Exits with 7 when a control fails or a lookup errs (a warning never does).
    """
    the_plan = load_plan(app, site_arg)
    server = parse_server(nameserver_arg, "--nameserver", names_allowed=False) if nameserver_arg else None
    resolver = resolver_for(server)
    checked = dnscheck.run_checks(the_plan, resolver)
    results = checked.results
    where = describe(server, resolver)
    if output_format == "json":
        click.echo(json.dumps(dnscheck.report_data(the_plan, checked, where), indent=2))
    else:
        _print_report(the_plan, results, where)
        if not checked.reached:
            click.echo(f"no lookup got an answer from {where}: is it the right server, and does it serve the "
                       "site's zones?")
    failed = dnscheck.failing(results)
    if failed:
        names = ", ".join(f"{result.id} ({result.name})" for result in failed)
        raise UserError(f"dns check of {the_plan.site}: {len(failed)} failed: {names}",
                        exit_code=exit_codes.EXIT_CODE_DNS_CHECK_FAILED)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _print_report(the_plan: Plan, results: list[dnscheck.Result], where: str) -> None:
    click.echo(f"dns check of {the_plan.site} ({the_plan.hostname}) against {where}")
    group = None
    for result in results:
        if result.group != group:
            group = result.group
            click.echo(f"\n{group}")
        state = f"{result.state}: " if result.state else ""
        severity = DNS_BY_ID[result.id].severity
        click.echo(f"  {result.status:<{STATUS_WIDTH}} {severity:<{SEVERITY_WIDTH}} {result.id:<19} "
                   f"{result.name} {result.type}: {state}{result.detail}")
        if result.status not in (PASS, NOT_APPLICABLE):
            if result.observed:
                click.echo(f"  {'':<{STATUS_WIDTH}} observed: {result.observed}")
            if result.expected and result.state in (dnscheck.DIFFERENT, dnscheck.WEAKER, dnscheck.MISSING):
                click.echo(f"  {'':<{STATUS_WIDTH}} expected: {result.expected}")
    counts: dict[str, int] = {}
    for result in results:
        counts[result.status] = counts.get(result.status, 0) + 1
    click.echo("\n" + ", ".join(f"{count} {status}" for status, count in counts.items()))
