"""A DNS plan written out: a BIND zone snippet (from templates/dns/zone.j2) or JSON with a schema version."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import jinja2

from mailappliance import __version__
from mailappliance.dns.plan import REVERSE_GROUP, Plan, Record
from mailappliance.project import TEMPLATES_DIR

ZONE_TEMPLATE = "dns/zone.j2"
# Raised when a field is removed or changes meaning; new fields keep the version.
PLAN_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class _Group:
    title: str
    records: list[Record]

    @property
    def width(self) -> int:
        return max(len(record.name) for record in self.records)


def render_zone(plan: Plan) -> str:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR), undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True, autoescape=False,
    )
    groups = [_Group(_title(plan, group), [r for r in plan.records if r.group == group]) for group in plan.groups]
    return environment.get_template(ZONE_TEMPLATE).render(plan=plan, groups=groups,
                                                          version=__version__).rstrip("\n") + "\n"


def _title(plan: Plan, group: str) -> str:
    if group == REVERSE_GROUP:
        return "reverse DNS, set by whoever holds the address block (usually the hosting provider)"
    if group == plan.hostname and group not in plan.domains:
        return f"{group} (the appliance)"
    return group


def plan_data(plan: Plan) -> dict[str, Any]:
    return {
        "schema_version": PLAN_SCHEMA_VERSION,
        "generator": f"mailappliance {__version__}",
        "site": plan.site,
        "hostname": plan.hostname,
        "addresses": {"ipv4": plan.ipv4 or None, "ipv6": plan.ipv6 or None},
        "domains": [{"name": name, "dkim_selector": selector} for name, selector in plan.dkim_selectors.items()],
        "dmarc": {"policy": plan.dmarc_policy, "rua": plan.dmarc_rua},
        "tlsrpt": {"rua": plan.tlsrpt_rua},
        "mta_sts": {"id": plan.mta_sts_id, "mode": plan.mta_sts_mode, "policy": plan.mta_sts_policy},
        "records": [
            {
                "name": record.name, "type": record.type, "ttl": record.ttl,
                "value": None if record.pending else record.value,
                "rdata": None if record.pending else record.rdata,
                "purpose": record.purpose, "group": record.group, "pending": record.pending or None,
            }
            for record in plan.records
        ],
        "notes": list(plan.notes),
    }


def render_json(plan: Plan) -> str:
    return json.dumps(plan_data(plan), indent=2) + "\n"
