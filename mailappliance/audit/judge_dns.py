"""DNS evidence for the audit: `dns check` run against the site's plan, its per-record results folded into one
control per DNS-* ID (the worst record decides), so the IDs compare across runs like every other control."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import dns.exception

from mailappliance.controls import catalogue as cat
from mailappliance.controls.model import ERROR, NOT_APPLICABLE, PASS, Control, worst
from mailappliance.dns import check as dnscheck
from mailappliance.dns.plan import Plan
from mailappliance.dns.servers import Server, describe, resolver_for
from mailappliance.errors import UserError

# Long observed values (DKIM keys) are cut in a control's evidence; the full value stays in the DNS evidence.
OBSERVED_SHOWN = 120


def _evidence(server: Server | None, error: str = "", notes: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"nameserver": str(server) if server else "the system resolver", "error": error, "answered": 0,
            "notes": list(notes), "results": []}


def no_plan(error: str, server: Server | None) -> dict[str, Any]:
    """The DNS evidence when the plan itself could not be built (an unreadable certificate or key file)."""
    return _evidence(server, error=f"the DNS plan could not be built: {error}")


def check_dns(plan: Plan, server: Server | None) -> dict[str, Any]:
    """Ask `server` (or the system resolver) for every planned record; the evidence the report keeps.

    A resolver that cannot be set up, or a server that answers nothing, is recorded as `error`, not raised:
    the rest of the audit still runs.
    """
    evidence = _evidence(server, notes=plan.notes)
    try:
        resolver = resolver_for(server)
        evidence["nameserver"] = describe(server, resolver)
        checked = dnscheck.run_checks(plan, resolver)
    except (UserError, dns.exception.DNSException, OSError) as exc:
        evidence["error"] = str(exc) or type(exc).__name__
        return evidence
    evidence["answered"] = checked.answered
    evidence["results"] = [asdict(result) for result in checked.results]
    if not checked.reached:
        errors = list(dict.fromkeys(r.detail for r in checked.results if r.status == ERROR))
        evidence["error"] = f"no lookup got an answer from {evidence['nameserver']}" + (
            f" ({'; '.join(errors[:2])})" if errors else "")
    return evidence


def record_line(result: dict[str, Any]) -> str:
    """One record as evidence: "<status>: <name> <type>: <state>: <detail>; observed ...; expected ..."."""
    state = f"{result['state']}: " if result.get("state") else ""
    line = f"{result['status']}: {result['name']} {result['type']}: {state}{result['detail']}"
    if result.get("observed"):
        line += f"; observed {_shortened(result['observed'])}"
    if result.get("expected") and result["status"] != PASS and result.get("state") in (
            dnscheck.MISSING, dnscheck.DIFFERENT, dnscheck.WEAKER):
        line += f"; expected {_shortened(result['expected'])}"
    return line


def _shortened(value: str) -> str:
    return value if len(value) <= OBSERVED_SHOWN else value[:OBSERVED_SHOWN] + "..."


def judge_dns(evidence: dict[str, Any]) -> list[Control]:
    """One control per catalogued DNS-* ID, in catalogue order."""
    if evidence.get("error"):
        why = f"DNS could not be checked against {evidence['nameserver']}: {evidence['error']}"
        return [spec.judge(ERROR, why) for spec in cat.DNS_SPECS]
    by_id: dict[str, list[dict[str, Any]]] = {}
    for result in evidence.get("results") or []:
        by_id.setdefault(result["id"], []).append(result)
    controls = []
    for spec in cat.DNS_SPECS:
        results = by_id.get(spec.id)
        if not results:
            controls.append(spec.judge(NOT_APPLICABLE, "no record of the plan calls for this control"))
            continue
        controls.append(spec.judge(worst([r["status"] for r in results]),
                                   "\n".join(record_line(result) for result in results)))
    return controls
