"""Host inspection: render the site's preview, run playbooks/audit.yml (read-only) and read back its evidence.

The playbook hands its evidence over as one JSON file per host in a scratch folder; expected checksums come
from the offline preview that `mailappliance render` writes, so drift is measured against the site file.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailappliance import runner
from mailappliance.audit.judge_host import KEY_FILES
from mailappliance.errors import UserError
from mailappliance.site import CLAMAV_DATABASE_EXTENSIONS


@dataclass(frozen=True)
class HostAccess:
    """What the inspection needs from its caller, for one site: a folder of its own on the controller, the
    offline preview, and a way to run a playbook of the project (by file name, with extra variables)."""

    work_dir: Path
    preview_dir: Path
    render_preview: Callable[[], list[Path]]
    run_playbook: Callable[[str, dict[str, Any]], runner.PlaybookRun]
    # SEQ:HASH of the archive's log as the previous report saw it (judge_archive.anchors_of), for verify --anchor.
    archive_anchors: tuple[str, ...] = ()


@dataclass
class HostInspection:
    """What the host run yielded: evidence per host, expected file checksums per host, and the run's recap."""

    evidence: dict[str, dict[str, Any]] = field(default_factory=dict)
    expected: dict[str, dict[str, str]] = field(default_factory=dict)
    stats: dict[str, dict[str, int]] | None = None
    status: str = ""
    rc: int = 0
    failed_tasks: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def changed(self) -> dict[str, int]:
        return {host: count for host, count in (self.stats or {}).get("changed", {}).items() if count}


def expected_checksums(preview_dir: Path) -> dict[str, dict[str, str]]:
    """SHA-256 of every preview file, by host and server path (<preview>/<host>/<server path>)."""
    expected: dict[str, dict[str, str]] = {}
    if not preview_dir.is_dir():
        return expected
    for host_dir in sorted(p for p in preview_dir.iterdir() if p.is_dir()):
        files = sorted(p for p in host_dir.rglob("*") if p.is_file())
        expected[host_dir.name] = {
            "/" + str(path.relative_to(host_dir)): hashlib.sha256(path.read_bytes()).hexdigest() for path in files
        }
    return expected


def inspect(access: HostAccess) -> HostInspection:
    """Render the preview, then run the audit playbook; a failed run is recorded, not raised."""
    files = access.render_preview()
    inspection = HostInspection(expected=expected_checksums(access.preview_dir))
    access.work_dir.mkdir(parents=True, exist_ok=True)
    evidence_dir = Path(tempfile.mkdtemp(prefix="audit-evidence-", dir=access.work_dir))
    try:
        run = access.run_playbook("audit.yml", {
            "mailappliance__audit_evidence_dir": str(evidence_dir.resolve()),
            "mailappliance__audit_files": {host: sorted(paths) for host, paths in inspection.expected.items()},
            # The files HOST-KEY-PERMISSIONS judges, from the one table that says what each should be.
            "mailappliance__audit_key_files": sorted(KEY_FILES),
            # The databases the site model lets a site ship, so the playbook finds every one clamd loads.
            "mailappliance__audit_clamav_database_extensions": list(CLAMAV_DATABASE_EXTENSIONS),
            # Checked by the archive's verify: the log up to them must be the one the previous report saw.
            "mailappliance__audit_archive_anchors": list(access.archive_anchors),
        })
        inspection.stats, inspection.status, inspection.rc = run.stats, run.status, run.rc
        inspection.failed_tasks = list(run.failed_tasks)
        try:
            runner.raise_for_failure(run, "the audit's host inspection")
        except UserError as error:
            inspection.error = str(error)
        for path in sorted(evidence_dir.glob("*.json")):
            inspection.evidence[path.stem] = json.loads(path.read_text(encoding="utf-8"))
    finally:
        shutil.rmtree(evidence_dir, ignore_errors=True)
    if not files:
        inspection.error = inspection.error or "the offline preview is empty, so drift cannot be measured"
    return inspection
