"""`mailappliance audit SITE`: read-only evidence about a deployed site, judged per control, as HTML, JSON, JUnit."""

from __future__ import annotations

from pathlib import Path

import click

from mailappliance import exit_codes
from mailappliance.audit.host import HostAccess
from mailappliance.audit.report import not_passing_lines
from mailappliance.audit.run import run_audit
from mailappliance.context import AppContext
from mailappliance.controls.model import SEVERITIES, failing_at
from mailappliance.dns.servers import parse_server
from mailappliance.errors import UserError
from mailappliance.site import Site


@click.command()
@click.argument("site_arg", metavar="SITE")
@click.option("--fail-on", type=click.Choice(SEVERITIES), default="high", show_default=True,
              help="Exit non-zero when a control of this severity or a more serious one fails (or cannot be checked).")
@click.option("--output", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for report.html, report.json and report.junit.xml (with .sha256 digests) "
                   "[default: BUILD_ROOT/SITE/audit/<UTC timestamp>/].")
@click.option("--previous", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="An earlier report.json to list changes against [default: the latest earlier report of SITE "
                   "in BUILD_ROOT/SITE/audit/].")
@click.option("--nameserver", "nameserver_arg", metavar="IP[:PORT]",
              help="Ask this DNS server (resolver or authoritative) for the DNS controls instead of the system's "
                   "resolvers, as `dns check` does.")
@click.pass_obj
def audit(app: AppContext, site_arg: str, fail_on: str, output: Path | None, previous: Path | None,
          nameserver_arg: str | None) -> None:
    """Audit SITE's deployed appliance without changing it.

    Checks the site's DNS records in live DNS against `dns plan` (the controls of `dns check`), probes TLS,
    SMTP policy and the served MTA-STS policy from this machine, inspects the host through a read-only
    playbook (playbooks/audit.yml; the run must report no change), compares the deployed files with the
    offline preview, and writes the reports. Exits with code 8 when a control at or above --fail-on fails.
    """
    server = parse_server(nameserver_arg, "--nameserver", names_allowed=False) if nameserver_arg else None
    site = app.load(site_arg)
    app.write_inventory(site)
    result = run_audit(site, _host_access(app, site), dns_plan=lambda: app.dns_plan(site),
                       audit_dir=app.build_root / site.name / "audit", fail_on=fail_on, output=output,
                       previous=previous, nameserver=server)
    summary = result.data["summary"]
    counts = ", ".join(f"{count} {status}" for status, count in summary["by_status"].items() if count)
    click.echo(f"audit of {site.name}: {summary['total']} controls: {counts}")
    for control in result.controls:
        if control.status != "pass":
            # DNS controls hold one evidence line per record; only the records that did not pass are news here.
            shown = not_passing_lines(control.evidence).splitlines() or [""]
            click.echo(f"  {control.status.upper():<14} {control.severity:<8} {control.id}: {shown[0]}")
            for line in shown[1:]:
                click.echo(f"  {'':<14} {'':<8} {line}")
    changes = result.data.get("changes")
    if changes:
        click.echo(f"changes since {changes['previous_report']}: {len(changes['changed'])}")
        for change in changes["changed"]:
            click.echo(f"  {change['id']}: {change['before']} -> {change['after']}")
    written = result.written
    click.echo(f"reports: {written.html}\n         {written.json} (sha256 {written.json_digest})\n"
               f"         {written.junit}")
    failing = failing_at(result.controls, fail_on)
    if failing:
        raise UserError(f"{len(failing)} control(s) at or above severity {fail_on} failed: "
                        + ", ".join(control.id for control in failing),
                        exit_code=exit_codes.EXIT_CODE_AUDIT_FAILED)


def _host_access(app: AppContext, site: Site) -> HostAccess:
    """The site's build folder, its offline preview and its playbooks, for the host inspection."""
    return HostAccess(
        work_dir=app.build_root / site.name, preview_dir=app.preview_dir(site),
        render_preview=lambda: app.render_preview(site),
        run_playbook=lambda name, extravars: app.run_playbook(name, site, extravars=extravars),
    )
