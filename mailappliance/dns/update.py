"""`dns apply`: compare a plan with what an authoritative server holds and send the difference as an RFC 2136
dynamic update, signed with TSIG.

Only what the plan owns is replaced: at a name that holds other TXT records (the domain's apex usually does)
only the SPF one is touched; MX, SRV, CNAME, A/AAAA and TLSA sets are the plan's alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdata
import dns.rdatatype
import dns.rrset
import dns.tsig
import dns.update

from mailappliance.dns import plan as dnsplan
from mailappliance.dns.plan import Plan, Record
from mailappliance.dns.servers import QUERY_TIMEOUT, Server
from mailappliance.errors import UserError

# TXT records the plan owns at a name, told apart by their version tag; other TXT records there are kept.
_TXT_TAGS = {
    dnsplan.SPF: "v=spf1",
    dnsplan.HELO_SPF: "v=spf1",
    dnsplan.DMARC: "v=dmarc1",
    dnsplan.MTA_STS: "v=stsv1",
    dnsplan.TLSRPT: "v=tlsrptv1",
}
# What may not share a name with a CNAME (RFC 1034 3.6.2), and is deleted when the plan puts a CNAME there.
_CNAME_CONFLICTS = ("A", "AAAA", "TXT", "MX")


@dataclass(frozen=True)
class Change:
    action: str  # "add" or "delete"
    name: str
    type: str
    ttl: int
    rdata: dns.rdata.Rdata

    def __str__(self) -> str:
        sign = "+" if self.action == "add" else "-"
        return f"{sign} {self.name} {self.ttl} IN {self.type} {self.rdata.to_text()}"


@dataclass
class ZoneChanges:
    zone: str
    changes: list[Change] = field(default_factory=list)
    unchanged: int = 0


@dataclass
class UpdatePlan:
    server: Server
    zones: list[ZoneChanges]
    # (record, why it is not sent)
    skipped: list[tuple[Record, str]]

    @property
    def change_count(self) -> int:
        return sum(len(zone.changes) for zone in self.zones)


def compare(plan: Plan, server: Server, zone: str | None = None) -> UpdatePlan:
    """What the server must change to hold the plan; asks it over TCP, changes nothing."""
    client = _Client(server)
    only_zone = dnsplan.absolute(zone) if zone else None
    if only_zone and client.zone_of(only_zone) != only_zone:
        raise UserError(f"--zone: {server} is not authoritative for {only_zone}; give a zone it serves, or leave "
                        "--zone out to update every zone of the plan that it serves")
    zones: dict[str, ZoneChanges] = {}
    skipped: list[tuple[Record, str]] = []
    groups: dict[tuple[str, str, str], list[Record]] = {}
    for record in plan.records:
        if record.pending:
            skipped.append((record, f"pending: {record.pending}"))
            continue
        found = client.zone_of(record.name)
        if only_zone and found != only_zone:
            skipped.append((record, f"outside zone {only_zone}"))
            continue
        if found is None:
            skipped.append((record, f"not in a zone {server} serves"))
            continue
        zones.setdefault(found, ZoneChanges(found))
        tag = _TXT_TAGS.get(record.purpose, "") if record.type == "TXT" else ""
        groups.setdefault((record.name, record.type, tag), []).append(record)
    for (name, rtype, tag), records in groups.items():
        zone_changes = zones[client.zone_of(name) or ""]
        planned = {record.to_rdata(): record for record in records}
        current, ttl, cname = client.rrset(name, rtype)
        owned = [rdata for rdata in current if not tag or _txt(rdata).lower().startswith(tag)]
        for rdata in owned:
            if rdata not in planned:
                zone_changes.changes.append(Change("delete", name, rtype, ttl, rdata))
        for rdata, record in planned.items():
            if rdata in owned:
                zone_changes.unchanged += 1
            else:
                zone_changes.changes.append(Change("add", name, rtype, record.ttl, rdata))
        if rtype != "CNAME" and cname is not None:
            zone_changes.changes.insert(0, Change("delete", name, "CNAME", cname[1], cname[0]))
        if rtype == "CNAME":
            for other in _CNAME_CONFLICTS:
                others, other_ttl, _ = client.rrset(name, other)
                zone_changes.changes[:0] = [Change("delete", name, other, other_ttl, rdata) for rdata in others]
    for zone_changes in zones.values():
        # Several planned types at one name each find the CNAME that has to go.
        zone_changes.changes = list(dict.fromkeys(zone_changes.changes))
    return UpdatePlan(server=server, zones=list(zones.values()), skipped=skipped)


def send(update_plan: UpdatePlan, key: dns.tsig.Key) -> list[str]:
    """Send each zone's changes as one signed update; returns a line per zone updated."""
    lines = []
    for zone in update_plan.zones:
        if not zone.changes:
            continue
        message = dns.update.UpdateMessage(zone.zone, keyring={key.name: key}, keyname=key.name,
                                           keyalgorithm=key.algorithm)
        for change in zone.changes:
            if change.action == "delete":
                message.delete(change.name, change.rdata)
            else:
                message.add(change.name, change.ttl, change.rdata)
        response = _exchange(message, update_plan.server, f"the update of {zone.zone}", key)
        rcode = response.rcode()
        if rcode != dns.rcode.NOERROR:
            raise UserError(f"{update_plan.server} refused the update of {zone.zone} ({dns.rcode.to_text(rcode)}); "
                            f"allow key {key.name.to_text(omit_final_dot=True)!r} to update that zone "
                            "(Knot: acl action update; BIND: update-policy)")
        count = len(zone.changes)
        lines.append(f"updated {zone.zone}: {count} change{'' if count == 1 else 's'}")
    return lines


def _txt(rdata: dns.rdata.Rdata) -> str:
    return b"".join(getattr(rdata, "strings", ())).decode("ascii", "replace")


def _exchange(message: dns.message.Message, server: Server, what: str,
              key: dns.tsig.Key | None = None) -> dns.message.Message:
    try:
        return dns.query.tcp(message, server.address, port=server.port, timeout=QUERY_TIMEOUT)
    except dns.tsig.PeerError as exc:
        assert key is not None
        raise UserError(f"{server} rejected the TSIG key {key.name.to_text(omit_final_dot=True)!r} for {what} "
                        f"({type(exc).__name__}); check that the server has the same key name, algorithm and "
                        "secret") from None
    except dns.exception.Timeout:
        raise UserError(f"{server} did not answer {what} within {QUERY_TIMEOUT:g} s; check the address and "
                        "port, and that it accepts DNS over TCP") from None
    except (OSError, EOFError, dns.exception.DNSException) as exc:
        raise UserError(f"{server} could not be asked {what} ({exc or type(exc).__name__}); check the address "
                        "and port, and that it accepts DNS over TCP") from None


class _Client:
    """Direct, non-recursive questions to one authoritative server, each answered once."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.zones: dict[str, str | None] = {}

    def query(self, name: str, rtype: str) -> dns.message.Message:
        message = dns.message.make_query(name, rtype)
        message.flags &= ~dns.flags.RD
        return _exchange(message, self.server, f"for {name} {rtype}")

    def zone_of(self, name: str) -> str | None:
        """The zone the server holds `name` in (its SOA owner), None when it serves none that holds it."""
        if name not in self.zones:
            response = self.query(name, "SOA")
            zone = None
            if response.rcode() in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN) and response.flags & dns.flags.AA:
                for section in (response.answer, response.authority):
                    for rrset in section:
                        if rrset.rdtype == dns.rdatatype.SOA:
                            zone = rrset.name.to_text().lower()
            self.zones[name] = zone
        return self.zones[name]

    def rrset(self, name: str, rtype: str) -> tuple[list[dns.rdata.Rdata], int, tuple[dns.rdata.Rdata, int] | None]:
        """The server's records of that name and type, their TTL, and a CNAME found at the name instead."""
        response = self.query(name, rtype)
        owner = dns.name.from_text(name)
        wanted = dns.rdatatype.from_text(rtype)
        cname = None
        for rrset in response.answer:
            if rrset.name != owner:
                continue
            if rrset.rdtype == wanted:
                return list(rrset), rrset.ttl, None
            if rrset.rdtype == dns.rdatatype.CNAME:
                cname = (rrset[0], rrset.ttl)
        return [], 0, cname
