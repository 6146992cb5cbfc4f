"""The DNS plan of a site: every record its domains and its appliance need, computed from the site file and
what deploy published (DKIM keys of the domains and of the outbound channels, the certificate).

Records whose value is not known yet (no DKIM key or certificate fetched, no public address given) are kept
in the plan as pending, with a one-line reason, so the rest can be published already.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.reversename

from mailappliance.dns import published
from mailappliance.site import Site
from mailappliance.site.mta_sts import site_mta_sts_policy
from mailappliance.site.spf import SpfSender, appliance_mechanisms, spf_mechanisms, spf_senders

# (service label, port, priority): RFC 6186 with RFC 8314's preference for implicit TLS (lower priority
# number wins), and the SRV record Outlook's Autodiscover looks up.
SRV_SERVICES = (
    ("_submissions._tcp", 465, 0),
    ("_submission._tcp", 587, 10),
    ("_imaps._tcp", 993, 0),
    ("_imap._tcp", 143, 10),
    ("_pop3s._tcp", 995, 0),
    ("_autodiscover._tcp", 443, 0),
)
MX_PREFERENCE = 10
SMTP_PORT = 25
# RFC 8461 allows 1-32 alphanumeric characters; 20 hex digits of a SHA-256 are plenty to tell versions apart.
MTA_STS_ID_LENGTH = 20
REVERSE_GROUP = "reverse"
# The size receivers expect of RSA DKIM keys (RFC 8301 requires at least 1024 and recommends 2048).
DKIM_MIN_BITS = 2048

# What each record is for; `dns check` judges records by these.
MX = "mx"
SPF = "spf"
DKIM = "dkim"
DMARC = "dmarc"
DMARC_REPORT_AUTH = "dmarc-report-auth"
MTA_STS = "mta-sts"
MTA_STS_HOST = "mta-sts-host"
TLSRPT = "tlsrpt"
AUTOCONFIG = "autoconfig"
SRV = "srv"
ADDRESS = "address"
HELO_SPF = "helo-spf"
TLSA = "tlsa"
PTR = "ptr"


@dataclass(frozen=True)
class Record:
    """One planned resource record. Names are absolute (trailing dot) and lower case."""

    name: str
    type: str
    # TXT: the text itself (split into strings only when written out); other types: presentation format.
    value: str
    ttl: int
    purpose: str
    # The mail domain the record serves, the appliance's hostname, or "reverse" for PTR records.
    group: str
    # Why the value is not known yet; "" when it is.
    pending: str = ""

    @property
    def rdata(self) -> str:
        """The record data in zone-file presentation format."""
        return txt_rdata(self.value) if self.type == "TXT" else self.value

    def to_rdata(self) -> dns.rdata.Rdata:
        return dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.from_text(self.type), self.rdata)


@dataclass(frozen=True)
class Plan:
    site: str
    hostname: str
    records: tuple[Record, ...]
    # The MTA-STS policy the appliance serves at https://mta-sts.<domain>/.well-known/mta-sts.txt, and its id.
    mta_sts_policy: str
    mta_sts_id: str
    mta_sts_mode: str
    dmarc_policy: str
    dmarc_rua: str
    tlsrpt_rua: str
    ipv4: str
    ipv6: str
    dkim_selectors: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    # Per domain, the carriers its SPF record authorizes besides the appliance, with the mechanisms that do;
    # `dns check` makes sure the published record still does.
    carrier_spf: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)

    @property
    def groups(self) -> list[str]:
        return list(dict.fromkeys(record.group for record in self.records))

    def by_purpose(self, purpose: str, group: str | None = None) -> list[Record]:
        return [r for r in self.records if r.purpose == purpose and (group is None or r.group == group)]

    @property
    def domains(self) -> list[str]:
        return list(self.dkim_selectors)


def txt_rdata(text: str) -> str:
    """TXT text as zone-file strings of at most 255 bytes each (RFC 1035 character-strings)."""
    data = text.encode("ascii")
    chunks = [data[start:start + 255] for start in range(0, len(data), 255)] or [b""]
    return " ".join('"' + chunk.decode().replace("\\", "\\\\").replace('"', '\\"') + '"' for chunk in chunks)


def absolute(name: str) -> str:
    return name.lower().rstrip(".") + "."


def mta_sts_id(policy: str) -> str:
    """Changes whenever the policy text changes, which tells senders to fetch it again."""
    return hashlib.sha256(policy.encode()).hexdigest()[:MTA_STS_ID_LENGTH]


def spf_text(mechanisms: list[str]) -> str:
    """Passes the hosts the mechanisms name and fails every other."""
    return " ".join(["v=spf1", *mechanisms, "-all"])


def build_plan(site: Site, published_host_dir: Path) -> Plan:
    """Every record of the site; `published_host_dir` is <inventory>/published/<hostname>/ (may not exist)."""
    ttl = site.dns.ttl
    host = absolute(site.hostname)
    policy = site_mta_sts_policy(site)
    policy_id = mta_sts_id(policy)
    rua_domain = site.dns.dmarc_rua.rpartition("@")[2]
    domain_names = [d.name for d in site.domains]
    senders = spf_senders(site.hostname, site.dns, site.outbound, domain_names)
    records: list[Record] = []
    notes: list[str] = []

    def add(name: str, rtype: str, value: str, purpose: str, group: str, pending: str = "") -> None:
        records.append(Record(absolute(name), rtype, value, ttl, purpose, group, pending))

    for d, selectors in _dkim_selectors(site).items():
        add(d, "MX", f"{MX_PREFERENCE} {host}", MX, d)
        add(d, "TXT", spf_text(spf_mechanisms(senders[d])), SPF, d)
        for selector in selectors:
            key_file = published.dkim_key_file(published_host_dir, d, selector)
            key = published.read_dkim_key(key_file)
            dkim_name = f"{selector}._domainkey.{d}"
            if key is None:
                add(dkim_name, "TXT", "", DKIM, d, f"no DKIM key at {key_file} yet; deploy first, which fetches it")
            else:
                add(dkim_name, "TXT", key.record, DKIM, d)
                if key.key_type == "rsa" and key.bits < DKIM_MIN_BITS:
                    notes.append(f"{key_file}: the DKIM key has {key.bits} bits; receivers treat RSA keys under "
                                 f"{DKIM_MIN_BITS} bits as weak, generate a {DKIM_MIN_BITS}-bit key")
        add(f"_dmarc.{d}", "TXT", f"v=DMARC1; p={site.dns.dmarc_policy}; rua=mailto:{site.dns.dmarc_rua}", DMARC, d)
        if d == rua_domain:
            # RFC 9989 external report destinations: the rua domain confirms it takes reports for the others.
            for other in domain_names:
                if other != d:
                    add(f"{other}._report._dmarc.{d}", "TXT", "v=DMARC1;", DMARC_REPORT_AUTH, d)
        elif rua_domain not in domain_names:
            notes.append(f"DMARC reports go to {site.dns.dmarc_rua} outside the site: its domain must publish "
                         f'{d}._report._dmarc.{rua_domain}. TXT "v=DMARC1;" or receivers send {d}\'s reports nowhere')
        add(f"_mta-sts.{d}", "TXT", f"v=STSv1; id={policy_id}", MTA_STS, d)
        add(f"mta-sts.{d}", "CNAME", host, MTA_STS_HOST, d)
        add(f"_smtp._tls.{d}", "TXT", f"v=TLSRPTv1; rua=mailto:{site.dns.tlsrpt_rua}", TLSRPT, d)
        add(f"autoconfig.{d}", "CNAME", host, AUTOCONFIG, d)
        add(f"autodiscover.{d}", "CNAME", host, AUTOCONFIG, d)
        for service, port, priority in SRV_SERVICES:
            add(f"{service}.{d}", "SRV", f"{priority} 1 {port} {host}", SRV, d)

    h = site.hostname
    if site.dns.ipv4:
        add(h, "A", site.dns.ipv4, ADDRESS, h)
    if site.dns.ipv6:
        add(h, "AAAA", site.dns.ipv6, ADDRESS, h)
    if not site.dns.ipv4 and not site.dns.ipv6:
        add(h, "A", "", ADDRESS, h, "the appliance's public address is unknown; set dns.ipv4 (and dns.ipv6) "
                                    "in the site file")
    if h not in domain_names:
        # The HELO name gets its own SPF record (RFC 7208 section 2.3), checked for bounces and HELO.
        add(h, "TXT", spf_text(list(appliance_mechanisms(site.hostname, site.dns))), HELO_SPF, h)
    certificates = _certificate_keys(site, published_host_dir)
    if not certificates:
        add(f"_{SMTP_PORT}._tcp.{h}", "TLSA", "", TLSA, h,
            f"no certificate at {published.certificate_file(published_host_dir)} yet; deploy first, which fetches it")
    for certificate in certificates:
        add(f"_{SMTP_PORT}._tcp.{h}", "TLSA", f"3 1 1 {certificate.spki_sha256}", TLSA, h)
    if len(certificates) > 1:
        notes.append(f"two certificates: the deployed one ({certificates[0].source}) and the site's "
                     f"tls.cert ({certificates[1].source}); both TLSA records stay until the next deploy")
    for address in (site.dns.ipv4, site.dns.ipv6):
        if address:
            add(dns.reversename.from_address(address).to_text(), "PTR", host, PTR, REVERSE_GROUP)
    notes += _unlisted_relay_notes(senders)
    notes += _alignment_notes(site)

    return Plan(
        site=site.name, hostname=site.hostname, records=tuple(records), mta_sts_policy=policy,
        mta_sts_id=policy_id, mta_sts_mode=site.dns.mta_sts_mode, dmarc_policy=site.dns.dmarc_policy,
        dmarc_rua=site.dns.dmarc_rua, tlsrpt_rua=site.dns.tlsrpt_rua, ipv4=site.dns.ipv4, ipv6=site.dns.ipv6,
        dkim_selectors={d.name: d.dkim_selector for d in site.domains}, notes=tuple(notes),
        carrier_spf={d: {sender.carrier: sender.mechanisms for sender in domain_senders
                         if sender.carrier and sender.mechanisms} for d, domain_senders in senders.items()},
    )


def _dkim_selectors(site: Site) -> dict[str, list[str]]:
    """The selectors of each domain's DKIM keys: its own, then those of the channels that sign for it. The site
    check refuses a channel key that is another's, and a key named twice would still be one record."""
    selectors = {domain.name: [domain.dkim_selector] for domain in site.domains}
    for channel in site.outbound.channels if site.outbound else ():
        selectors[channel.signing_domain].append(channel.dkim_selector)
    return {domain: list(dict.fromkeys(names)) for domain, names in selectors.items()}


def _unlisted_relay_notes(senders: dict[str, list[SpfSender]]) -> list[str]:
    """Relays whose SPF mechanisms the site file does not give: receivers check the Return-Path domain's record,
    which then does not name the relay's hosts."""
    unlisted: dict[str, list[str]] = {}
    for domain, domain_senders in senders.items():
        for sender in domain_senders:
            if sender.mechanisms is None:
                unlisted.setdefault(sender.carrier, []).append(domain)
    return [f"mail relayed by {carrier} fails SPF for {', '.join(domains)} unless its senders are in the record; add "
            f"outbound.carriers.{carrier}.spf as the provider documents it (or [] if the relay sends with a "
            "Return-Path of its own)" for carrier, domains in unlisted.items()]


def _aligned(domain: str, other: str) -> bool:
    """Relaxed DMARC alignment, told without the public suffix list: the same name, or one below the other."""
    return domain == other or domain.endswith("." + other) or other.endswith("." + domain)


def _alignment_notes(site: Site) -> list[str]:
    """Channel mail whose From domain (an account's senders) aligns with neither or only one of the channel's
    signing_domain (DKIM) and bounce_domain (SPF, the Return-Path): DMARC passes on an aligned pass alone."""
    if site.outbound is None:
        return []
    notes = []
    how = ("aligned here: the same domain or one below the other; relaxed alignment also takes two names below one "
           "registered domain, which is not told apart here")
    for channel in site.outbound.channels:
        accounts: dict[str, list[str]] = {}
        for account in site.outbound.accounts:
            if account.channel == channel.name:
                for sender in account.senders:
                    names = accounts.setdefault(sender.rpartition("@")[2], [])
                    if account.name not in names:
                        names.append(account.name)
        for domain, names in accounts.items():
            dkim, spf = _aligned(domain, channel.signing_domain), _aligned(domain, channel.bounce_domain)
            if dkim and spf:
                continue
            plural = "s" if len(names) > 1 else ""
            mail = f"channel {channel.name}: mail from {domain} (account{plural} {', '.join(names)})"
            if not dkim and not spf:
                notes.append(f"{mail} is signed for {channel.signing_domain} (DKIM) and has its Return-Path in "
                             f"{channel.bounce_domain} (SPF), neither aligned with {domain}, so it fails DMARC; set "
                             f"outbound.channels.{channel.name}.signing_domain to {domain}, or send it through a "
                             f"channel that signs for it ({how})")
            elif not dkim:
                notes.append(f"{mail} is signed for {channel.signing_domain}, not aligned with {domain}, so it passes "
                             f"DMARC on SPF alone (Return-Path in {channel.bounce_domain}), which forwarding breaks; "
                             f"set outbound.channels.{channel.name}.signing_domain to {domain} ({how})")
            else:
                notes.append(f"{mail} has its Return-Path in {channel.bounce_domain}, not aligned with {domain}, so "
                             f"it passes DMARC on DKIM alone (signed for {channel.signing_domain}); set "
                             f"outbound.channels.{channel.name}.bounce_domain to {domain} for SPF to align too ({how})")
    return notes


def _certificate_keys(site: Site, published_host_dir: Path) -> list[published.CertificateKey]:
    """The deployed certificate, and the site's provided one when it differs (a TLSA rollover in progress)."""
    found = [published.read_certificate_key(published.certificate_file(published_host_dir))]
    if site.tls.source == "provided" and site.tls.cert is not None:
        found.append(published.read_certificate_key(site.tls.cert))
    unique: dict[str, published.CertificateKey] = {}
    for key in found:
        if key is not None:
            unique.setdefault(key.spki_sha256, key)
    return list(unique.values())
