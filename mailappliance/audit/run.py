"""One audit of a site: check its DNS, probe it, inspect its host read-only, judge every control and write the
reports."""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from mailappliance import podman
from mailappliance.audit import report
from mailappliance.audit.host import HostAccess, HostInspection, inspect
from mailappliance.audit.judge_archive import anchors_of, archive_expectations
from mailappliance.audit.judge_dns import check_dns, judge_dns, no_plan
from mailappliance.audit.judge_host import SERVICES, SiteExpectations, judge_host, outbound_expectations
from mailappliance.audit.judge_probes import judge_probes
from mailappliance.audit.probes import PORTS, probe_all
from mailappliance.controls import catalogue as cat
from mailappliance.controls.model import ERROR, PASS, Control
from mailappliance.dns.plan import Plan
from mailappliance.dns.servers import Server
from mailappliance.errors import UserError
from mailappliance.inventory import site_vars
from mailappliance.site import Site
from mailappliance.site.mta_sts import site_mta_sts_policy


@dataclass(frozen=True)
class AuditResult:
    controls: list[Control]
    data: dict[str, Any]
    written: report.Written


def probe_address(site: Site) -> str:
    """Where the controller reaches the appliance: the container's address for a podman site."""
    if site.host.connection == "podman":
        return podman.ip_address(site.host.address)
    return site.host.address


def judge_inspection(inspection: HostInspection, site: Site) -> tuple[list[Control], dict[str, Any]]:
    """Controls from the host run, including the proof that it changed nothing; and the evidence to keep."""
    controls: list[Control] = []
    changed = inspection.changed
    recap = {key: dict(value) for key, value in (inspection.stats or {}).items()}
    if inspection.stats is None:
        controls.append(cat.AUDIT_READ_ONLY.judge(ERROR, "the playbook run produced no recap, so it proves nothing"))
    elif changed:
        controls.append(cat.AUDIT_READ_ONLY.judge(
            ERROR, "the audit run reported changes: " + ", ".join(f"{h} changed={n}" for h, n in changed.items())))
    else:
        controls.append(cat.AUDIT_READ_ONLY.judge(PASS, f"recap: changed=0 on every host; {recap}"))
    if inspection.error:
        controls.append(cat.AUDIT_HOST_INSPECTION.judge(ERROR, inspection.error))
    elif not inspection.evidence:
        controls.append(cat.AUDIT_HOST_INSPECTION.judge(ERROR, "the playbook handed over no evidence"))
    else:
        controls.append(cat.AUDIT_HOST_INSPECTION.judge(PASS, f"inspected {', '.join(sorted(inspection.evidence))}"))
    expectations = SiteExpectations(
        spam_add_header=site.spam.add_header, spam_reject=site.spam.reject,
        outbound=outbound_expectations(site_vars(site)) if site.outbound else None,
        archive=archive_expectations(site_vars(site)) if site.archive else None)
    kept: dict[str, Any] = {}
    for host, evidence in sorted(inspection.evidence.items()):
        host_controls = judge_host(evidence, inspection.expected.get(host, {}), expectations)
        if len(inspection.evidence) > 1:
            host_controls = [Control.from_dict({**c.to_dict(), "evidence": f"{host}: {c.evidence}"})
                             for c in host_controls]
        controls.extend(host_controls)
        services = evidence.get("services") or {}
        kept[host] = {**evidence, "services": {name: services.get(name) for name in SERVICES},
                      "expected_files": inspection.expected.get(host, {})}
    return controls, kept


def by_source(controls: list[Control]) -> list[Control]:
    """Controls in the report's order: DNS, probes, host, the audit run; catalogue order within a source."""
    order = {source: index for index, source in enumerate(cat.SOURCES)}
    return sorted(controls, key=lambda control: order.get(control.source, len(order)))


def run_audit(site: Site, host: HostAccess, *, dns_plan: Callable[[], Plan], audit_dir: Path, fail_on: str,
              output: Path | None, previous: Path | None, nameserver: Server | None = None) -> AuditResult:
    """Audit `site`: `dns_plan` builds its DNS plan, `host` reaches its host, and reports go to `output`, by
    default a new timestamped folder in `audit_dir`, where the previous report is also looked for."""
    started = datetime.datetime.now(datetime.UTC)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    output = output or audit_dir / stamp
    # A plan that cannot be built (a broken certificate file) costs the DNS controls, not the whole audit.
    try:
        plan = dns_plan()
    except UserError as exc:
        click.echo(f"no DNS plan: {exc}")
        dns_evidence = no_plan(str(exc), nameserver)
    else:
        click.echo(f"checking {len(plan.records)} planned DNS records of {site.name} in live DNS")
        dns_evidence = check_dns(plan, nameserver)
    click.echo(f"  nameserver: {dns_evidence['nameserver']}; {len(dns_evidence['results'])} results"
               + (f"; {dns_evidence['error']}" if dns_evidence["error"] else ""))
    controls = judge_dns(dns_evidence)
    address = probe_address(site)
    domains = [domain.name for domain in site.domains]
    click.echo(f"probing {site.hostname} at {address} (ports {', '.join(str(port.number) for port in PORTS)}; "
               f"MTA-STS policy of {', '.join(domains)})")
    probes = probe_all(address, site.hostname, domains)
    controls += judge_probes(probes, site.hostname, started, site_mta_sts_policy(site))
    previous = previous or report.find_previous(audit_dir, exclude=output)
    previous_data = report.load_report(previous) if previous is not None else None
    anchors = anchors_of(previous_data)
    click.echo("inspecting the host with playbooks/audit.yml (read-only)"
               + (f"; the archive's log held to the previous report's anchor {', '.join(anchors)}" if anchors else ""))
    inspection = inspect(dataclasses.replace(host, archive_anchors=anchors))
    host_controls, host_evidence = judge_inspection(inspection, site)
    controls = by_source(controls + host_controls)

    changes = None
    if previous is not None and previous_data is not None:
        changes = report.changes_data(previous, previous_data, report.compare(previous_data, controls))
    finished = datetime.datetime.now(datetime.UTC)
    evidence = report.Evidence(dns=dns_evidence, probes=probes, host=host_evidence, run={
        "started": started.isoformat(timespec="seconds"), "finished": finished.isoformat(timespec="seconds"),
        "wall_seconds": round((finished - started).total_seconds(), 1),
        "playbook_status": inspection.status, "playbook_rc": inspection.rc, "recap": inspection.stats,
        "failed_tasks": inspection.failed_tasks,
    })
    data = report.report_data(site=site.name, hostname=site.hostname, address=address,
                              generated_at=started.strftime("%Y-%m-%dT%H:%M:%SZ"), controls=controls,
                              evidence=evidence, fail_on=fail_on, changes=changes)
    return AuditResult(controls, data, report.write_reports(data, output))
