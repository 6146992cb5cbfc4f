"""Who sends each hosted domain's mail, as its SPF record has to say (RFC 7208 checks the Return-Path domain).

One function works it out from the outbound: section, for two readers that must agree: the site check counts the
DNS lookups of each record, and `dns plan` writes the records. Staff mail has its Return-Path in every hosted
domain, a dedicated channel's in its bounce_domain; each leaves through the carriers of its routes.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailappliance.site.model import STAFF_CHANNEL, Dns, Outbound

# RFC 7208 section 4.6.4: receivers give a permanent error (SPF fails) past 10 terms that need a DNS lookup.
SPF_MAX_LOOKUPS = 10
_LOOKUP_TERMS = ("include", "a", "mx", "ptr", "exists")


@dataclass(frozen=True)
class SpfSender:
    """Hosts that send a domain's mail: the appliance itself (carrier "") or a carrier, with the SPF mechanisms
    that authorize them; None for a relay carrier whose spf the site file does not give."""

    carrier: str
    mechanisms: tuple[str, ...] | None

    @property
    def who(self) -> str:
        return f"carrier {self.carrier}" if self.carrier else "the appliance"


def appliance_mechanisms(hostname: str, dns: Dns) -> tuple[str, ...]:
    """The appliance's addresses when known, else its A/AAAA records."""
    mechanisms = tuple([f"ip4:{dns.ipv4}"] if dns.ipv4 else []) + tuple([f"ip6:{dns.ipv6}"] if dns.ipv6 else [])
    return mechanisms or (f"a:{hostname}",)


def spf_senders(hostname: str, dns: Dns, outbound: Outbound | None, domains: list[str]) -> dict[str, list[SpfSender]]:
    """Per hosted domain, the appliance first, then each carrier that sends mail with a Return-Path there, in the
    order of outbound.carriers. A direct carrier sends from the appliance's address unless it has a source_address
    of its own, so it only adds that."""
    appliance = SpfSender("", appliance_mechanisms(hostname, dns))
    senders = {domain: [appliance] for domain in domains}
    if outbound is None:
        return senders
    return_paths = {STAFF_CHANNEL: domains, **{channel.name: [channel.bounce_domain] for channel in outbound.channels}}
    carried: dict[str, set[str]] = {domain: set() for domain in domains}
    for route in outbound.routes:
        for channel in route.channels:
            for domain in return_paths[channel]:
                carried[domain].update(route.carriers)
    for carrier in outbound.carriers:
        if carrier.type == "relay":
            sender = SpfSender(carrier.name, carrier.spf)
        elif carrier.source_address:
            version = 6 if ":" in carrier.source_address else 4
            sender = SpfSender(carrier.name, (f"ip{version}:{carrier.source_address}",))
        else:
            continue
        for domain in domains:
            if carrier.name in carried[domain]:
                senders[domain].append(sender)
    return senders


def spf_mechanisms(senders: list[SpfSender]) -> list[str]:
    """The mechanisms of a record, each once, in the senders' order."""
    return list(dict.fromkeys(mechanism for sender in senders for mechanism in sender.mechanisms or ()))


def lookup_count(mechanisms: list[str]) -> int:
    """The terms that cost a DNS lookup, at the record's own level; includes cost their own terms besides."""
    return sum(1 for mechanism in mechanisms if mechanism.partition(":")[0].partition("/")[0] in _LOOKUP_TERMS)
