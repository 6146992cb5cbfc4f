"""The audit's reports: JSON (with a schema version), self-contained HTML and JUnit XML, each with its digest.

The JSON is the record; HTML and JUnit are rendered from the same data. A report can be compared with an
earlier one of the same site, by control ID, to list what changed.
"""

from __future__ import annotations

import hashlib
import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from mailappliance import __version__
from mailappliance.controls.catalogue import SOURCES
from mailappliance.controls.model import FAILING, SEVERITIES, STATUSES, Control, failing_at
from mailappliance.errors import UserError
from mailappliance.project import TEMPLATES_DIR

# 2: DNS controls and evidence.dns (per-record DNS results), evidence.probes.mta_sts, summary.by_source.
SCHEMA_VERSION = 2
SOURCE_TITLES = {
    "dns": "DNS records, looked up live and judged against the plan",
    "probe": "Live probes from the controller",
    "host": "Host inspection (Ansible, read-only)",
    "audit": "The audit run itself",
}
JSON_NAME, HTML_NAME, JUNIT_NAME = "report.json", "report.html", "report.junit.xml"
DIGEST_SUFFIX = ".sha256"


@dataclass(frozen=True)
class Change:
    id: str
    title: str
    before: str
    after: str


@dataclass
class Evidence:
    """Everything observed, by source, kept in the report so the judgement can be retraced."""

    dns: dict[str, Any] = field(default_factory=dict)
    probes: dict[str, Any] = field(default_factory=dict)
    host: dict[str, Any] = field(default_factory=dict)
    run: dict[str, Any] = field(default_factory=dict)


def summary(controls: list[Control], fail_on: str) -> dict[str, Any]:
    by_status = {status: sum(1 for c in controls if c.status == status) for status in STATUSES}
    failing_by_severity = {severity: sum(1 for c in controls if c.failing and c.severity == severity)
                           for severity in SEVERITIES}
    sources = [source for source in SOURCES if any(c.source == source for c in controls)]
    by_source = {source: {status: sum(1 for c in controls if c.source == source and c.status == status)
                          for status in STATUSES} for source in sources}
    return {
        "total": len(controls),
        "by_status": by_status,
        "by_source": by_source,
        "failing_by_severity": failing_by_severity,
        "fail_on": fail_on,
        "verdict": "fail" if failing_at(controls, fail_on) else "pass",
    }


def report_data(*, site: str, hostname: str, address: str, generated_at: str, controls: list[Control],
                evidence: Evidence, fail_on: str, changes: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": "mailappliance",
        "tool_version": __version__,
        "generated_at": generated_at,
        "site": site,
        "hostname": hostname,
        "address": address,
        "summary": summary(controls, fail_on),
        "controls": [control.to_dict() for control in controls],
        "changes": changes,
        "evidence": {"dns": evidence.dns, "probes": evidence.probes, "host": evidence.host, "run": evidence.run},
    }


def compare(previous: dict[str, Any], controls: list[Control]) -> list[Change]:
    """Controls whose status differs from `previous` (a report's data); new and dropped controls count too."""
    before = {c["id"]: c for c in previous.get("controls") or []}
    now = {c.id: c for c in controls}
    changes = []
    for cid, control in now.items():
        old = before.get(cid)
        if old is None or old.get("status") != control.status:
            changes.append(Change(cid, control.title, old.get("status", "absent") if old else "absent", control.status))
    for cid, old in before.items():
        if cid not in now:
            changes.append(Change(cid, old.get("title", ""), old.get("status", "?"), "absent"))
    return sorted(changes, key=lambda change: change.id)


def changes_data(previous_path: Path, previous: dict[str, Any], changes: list[Change]) -> dict[str, Any]:
    return {
        "previous_report": str(previous_path),
        "previous_generated_at": previous.get("generated_at"),
        "changed": [{"id": c.id, "title": c.title, "before": c.before, "after": c.after} for c in changes],
    }


def find_previous(audit_dir: Path, exclude: Path) -> Path | None:
    """The newest report.json under `audit_dir`/<timestamp>/ other than the one in `exclude`."""
    if not audit_dir.is_dir():
        return None
    candidates = sorted(p for p in audit_dir.glob(f"*/{JSON_NAME}") if p.parent.resolve() != exclude.resolve())
    return candidates[-1] if candidates else None


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_with_digest(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    digest = sha256_file(path)
    # The sha256sum format, so `sha256sum -c report.json.sha256` checks it from the report folder.
    path.with_name(path.name + DIGEST_SUFFIX).write_text(f"{digest}  {path.name}\n", encoding="utf-8")
    return digest


def not_passing_lines(evidence: str) -> str:
    """A failing control's evidence without the records that passed (DNS controls list one line per record)."""
    lines = evidence.splitlines()
    return "\n".join([line for line in lines if not line.startswith("pass: ")] or lines)


def render_html(data: dict[str, Any], json_digest: str) -> str:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR / "audit")),
                             autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["pretty"] = lambda value: json.dumps(value, indent=2, sort_keys=True)
    env.filters["not_passing"] = not_passing_lines
    order = {severity: index for index, severity in enumerate(SEVERITIES)}
    failing = sorted((c for c in data["controls"] if c["status"] in FAILING), key=lambda c: (order[c["severity"]], c["id"]))
    known = [source for source in SOURCES if any(c["source"] == source for c in data["controls"])]
    others = sorted({c["source"] for c in data["controls"]} - set(SOURCES))
    groups = [(source, SOURCE_TITLES.get(source, source or "other"),
               [c for c in data["controls"] if c["source"] == source]) for source in known + others]
    return env.get_template("report.html.j2").render(
        data=data, json_digest=json_digest, failing=failing, groups=groups, severities=SEVERITIES,
        statuses=STATUSES)


def render_junit(data: dict[str, Any]) -> str:
    controls = data["controls"]
    suite = ET.Element("testsuite", {
        "name": f"mailappliance audit {data['site']}",
        "tests": str(len(controls)),
        "failures": str(sum(1 for c in controls if c["status"] == "fail")),
        "errors": str(sum(1 for c in controls if c["status"] == "error")),
        "skipped": str(sum(1 for c in controls if c["status"] == "not-applicable")),
        "timestamp": data["generated_at"],
    })
    properties = ET.SubElement(suite, "properties")
    for name in ("tool", "tool_version", "generated_at", "site", "hostname", "schema_version"):
        ET.SubElement(properties, "property", {"name": name, "value": str(data[name])})
    for control in controls:
        case = ET.SubElement(suite, "testcase", {
            "classname": f"audit.{control['source'] or 'audit'}.{control['severity']}",
            "name": f"{control['id']}: {control['title']}",
        })
        message = control["evidence"]
        detail = f"{control['evidence']}\n\nRemediation: {control['remediation']}"
        if control["status"] == "fail":
            ET.SubElement(case, "failure", {"message": message, "type": control["severity"]}).text = detail
        elif control["status"] == "error":
            ET.SubElement(case, "error", {"message": message, "type": control["severity"]}).text = detail
        elif control["status"] == "not-applicable":
            ET.SubElement(case, "skipped", {"message": message})
        else:
            ET.SubElement(case, "system-out").text = f"{control['status']}: {message}"
    suites = ET.Element("testsuites")
    suites.append(suite)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


@dataclass(frozen=True)
class Written:
    json: Path
    html: Path
    junit: Path
    json_digest: str
    html_digest: str


def write_reports(data: dict[str, Any], output: Path) -> Written:
    output.mkdir(parents=True, exist_ok=True)
    json_path, html_path, junit_path = output / JSON_NAME, output / HTML_NAME, output / JUNIT_NAME
    json_digest = _write_with_digest(json_path, json.dumps(data, indent=2, sort_keys=False) + "\n")
    html_digest = _write_with_digest(html_path, render_html(data, json_digest))
    _write_with_digest(junit_path, render_junit(data))
    return Written(json_path, html_path, junit_path, json_digest, html_digest)


def load_report(path: Path) -> dict[str, Any]:
    """An earlier report.json; a file that is not one is the user's to fix (it was named by --previous)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot read the previous report ({exc}); pass a report.json of an earlier audit") from None
    if not isinstance(data, dict) or "controls" not in data or "schema_version" not in data:
        raise UserError(f"{path}: not an audit report (no schema_version or controls); "
                        "pass a report.json of an earlier audit")
    return data
