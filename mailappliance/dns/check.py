"""`dns check`: ask live DNS for every planned record and judge what is there, one result per record and control.

Each result says how the record compares with the plan (present, missing, different, weaker) and a status in
the audit's vocabulary (pass, fail, warn, not-applicable, error), with the value observed. The controls
themselves (title, severity, remediation, references) are the audit catalogue's DNS-* entries, so `dns check`
and `audit` judge DNS the same way and the audit folds these results into its controls by ID.

Records are fetched here with dnspython, so a failing server is told apart from a missing record; their
content is judged by checkdmarc (SPF with its nested lookups, DMARC by RFC 9989, MTA-STS, TLS-RPT) and dkimpy
(DKIM keys). checkdmarc follows SPF includes itself, through the resolver handed to it, which is how it is
pointed at a given server and port.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import checkdmarc.dmarc
import checkdmarc.mta_sts
import checkdmarc.smtp_tls_reporting
import checkdmarc.spf
import checkdmarc.utils
import dns.exception
import dns.flags
import dns.rdata
import dns.resolver

from mailappliance import __version__
from mailappliance.controls.catalogue import DNS_BY_ID, DNS_SPECS
from mailappliance.controls.model import ERROR, FAIL, FAILING, NOT_APPLICABLE, PASS, WARN
from mailappliance.dns import plan as dnsplan
from mailappliance.dns.plan import Plan, Record
from mailappliance.dns.published import parse_dkim_record
from mailappliance.dns.servers import QUERY_TIMEOUT
from mailappliance.site.spf import SPF_MAX_LOOKUPS

# 2: statuses are the audit's (no info, n/a became not-applicable); controls carry severity and remediation.
CHECK_SCHEMA_VERSION = 2

PRESENT, MISSING, DIFFERENT, WEAKER = "present", "missing", "different", "weaker"

# After this many timeouts in a row the server is taken as down, and the remaining lookups are not waited for.
TIMEOUTS_BEFORE_GIVING_UP = 2
SPF_MAX_VOID_LOOKUPS = 2
_DMARC_STRENGTH = {"none": 0, "quarantine": 1, "reject": 2}
_DMARC_OBSOLETE_TAGS = ("pct", "rf", "ri")
_SPF_ALL_RE = re.compile(r"^([+?~-]?)all$", re.IGNORECASE)
_SPF_QUALIFIERS = {"fail": "-", "softfail": "~", "neutral": "?", "pass": "+"}


@dataclass(frozen=True)
class Result:
    id: str
    group: str
    name: str
    type: str
    status: str
    state: str | None
    observed: str | None
    expected: str | None
    detail: str


@dataclass(frozen=True)
class _Lookup:
    rdatas: list[dns.rdata.Rdata]
    error: str = ""
    authenticated: bool = False

    @property
    def texts(self) -> list[str]:
        return [_txt(rdata) for rdata in self.rdatas]


@dataclass(frozen=True)
class Checked:
    results: list[Result]
    # Lookups that got a usable answer (records, none of that type, or no such name). None at all means the
    # server could not be used, which the audit reports as one error rather than a verdict per record.
    answered: int

    @property
    def reached(self) -> bool:
        return self.answered > 0


def run_checks(plan: Plan, resolver: dns.resolver.Resolver) -> Checked:
    # checkdmarc caches answers by name alone, not by server: a check must not see another server's answers.
    checkdmarc.utils.DNS_CACHE.clear()
    checker = _Checker(plan, resolver)
    return Checked(checker.run(), checker.answered)


def failing(results: list[Result]) -> list[Result]:
    return [result for result in results if result.status in FAILING]


def report_data(plan: Plan, checked: Checked, nameserver: str) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for result in checked.results:
        counts[result.status] = counts.get(result.status, 0) + 1
    return {
        "schema_version": CHECK_SCHEMA_VERSION,
        "generator": f"mailappliance {__version__}",
        "site": plan.site,
        "nameserver": nameserver,
        "answered": checked.answered,
        "summary": counts,
        "controls": {spec.id: {"title": spec.title, "severity": spec.severity, "remediation": spec.remediation,
                               "references": list(spec.references)} for spec in DNS_SPECS},
        "results": [asdict(result) for result in checked.results],
    }


def _txt(rdata: dns.rdata.Rdata) -> str:
    return b"".join(getattr(rdata, "strings", ())).decode("utf-8", "replace")


def _tags(record: str) -> dict[str, str]:
    """A tag=value; list (DMARC, MTA-STS, TLS-RPT, DKIM) as a dict with lower-case tag names."""
    tags = {}
    for part in record.split(";"):
        name, sep, value = part.partition("=")
        if sep:
            tags[name.strip().lower()] = value.strip()
    return tags


class _Checker:
    def __init__(self, plan: Plan, resolver: dns.resolver.Resolver) -> None:
        self.plan = plan
        self.resolver = resolver
        self.results: list[Result] = []
        self.cache: dict[tuple[str, str], _Lookup] = {}
        self.timeouts = 0
        self.answered = 0

    def run(self) -> list[Result]:
        for domain in self.plan.domains:
            self.check_mx(domain)
            self.check_spf(self.plan.by_purpose(dnsplan.SPF, domain)[0])
            # The domain's own key, then those of the outbound channels that sign for it.
            for record in self.plan.by_purpose(dnsplan.DKIM, domain):
                self.check_dkim(record)
            self.check_dmarc(domain)
            self.check_mta_sts(domain)
            self.check_tlsrpt(domain)
            for record in self.plan.by_purpose(dnsplan.SRV, domain):
                self.check_exact(record, "DNS-SRV")
            for record in self.plan.by_purpose(dnsplan.AUTOCONFIG, domain):
                self.check_points_at_appliance(record, "DNS-AUTOCONFIG")
            self.check_dnssec(domain)
        for record in self.plan.by_purpose(dnsplan.ADDRESS):
            self.check_exact(record, "DNS-ADDRESS")
        for record in self.plan.by_purpose(dnsplan.HELO_SPF):
            self.check_spf(record)
        self.check_tlsa(self.plan.by_purpose(dnsplan.TLSA))
        for record in self.plan.by_purpose(dnsplan.PTR):
            self.check_exact(record, "DNS-PTR")
        return self.results

    # -- plumbing -------------------------------------------------------------------------------------

    def add(self, control: str, record: Record | tuple[str, str, str], status: str, state: str | None,
            observed: str | None, detail: str, expected: str | None = None) -> None:
        # Every result must fold into a catalogued control, or the audit would drop it silently.
        if control not in DNS_BY_ID:
            raise ValueError(f"{control} is not a DNS control of the audit catalogue")
        if isinstance(record, Record):
            group, name, rtype = record.group, record.name, record.type
            if expected is None and not record.pending:
                expected = record.value
        else:
            group, name, rtype = record
        self.results.append(Result(control, group, name, rtype, status, state, observed, expected, detail))

    def lookup(self, name: str, rtype: str) -> _Lookup:
        key = (name.lower(), rtype)
        if key not in self.cache:
            self.cache[key] = self._lookup(name, rtype)
        return self.cache[key]

    def _lookup(self, name: str, rtype: str) -> _Lookup:
        if self.timeouts >= TIMEOUTS_BEFORE_GIVING_UP:
            return _Lookup([], error=f"not asked: {self.timeouts} lookups in a row got no answer, the server "
                                     "looks down")
        try:
            answer = self.resolver.resolve(name, rtype, raise_on_no_answer=False)
        except dns.exception.Timeout:
            self.timeouts += 1
            return _Lookup([], error=f"no answer within {self.resolver.lifetime:g} s")
        except dns.resolver.NXDOMAIN:
            self.timeouts = 0
            self.answered += 1
            return _Lookup([])
        except dns.resolver.NoNameservers as exc:
            self.timeouts = 0
            return _Lookup([], error=str(exc))
        except dns.exception.DNSException as exc:
            return _Lookup([], error=str(exc) or type(exc).__name__)
        self.timeouts = 0
        self.answered += 1
        rdatas = list(answer.rrset) if answer.rrset is not None else []
        return _Lookup(rdatas, authenticated=bool(answer.response.flags & dns.flags.AD))

    def lookup_failed(self, control: str, record: Record | tuple[str, str, str], result: _Lookup) -> bool:
        if result.error:
            self.add(control, record, ERROR, None, None, f"lookup failed: {result.error}")
            return True
        return False

    def not_applicable(self, controls: tuple[str, ...], record: Record | tuple[str, str, str], why: str) -> None:
        for control in controls:
            self.add(control, record, NOT_APPLICABLE, None, None, why)

    def appliance_addresses(self) -> set[str]:
        """The appliance's addresses: planned, else whatever its name resolves to."""
        planned = {a for a in (self.plan.ipv4, self.plan.ipv6) if a}
        if planned:
            return planned
        found = set()
        for rtype in ("A", "AAAA"):
            found |= {rdata.to_text() for rdata in self.lookup(self.plan.hostname, rtype).rdatas}
        return found

    # -- records compared as planned ------------------------------------------------------------------

    def check_exact(self, record: Record, control: str) -> None:
        found = self.lookup(record.name, record.type)
        if self.lookup_failed(control, record, found):
            return
        observed = ", ".join(rdata.to_text() for rdata in found.rdatas) or None
        if record.pending:
            if found.rdatas:
                self.add(control, record, WARN, PRESENT, observed, f"present, not compared: {record.pending}")
            else:
                self.add(control, record, FAIL, MISSING, None, f"no {record.type} record; {record.pending}")
            return
        if record.to_rdata() in found.rdatas:
            self.add(control, record, PASS, PRESENT, observed, "as planned")
        elif found.rdatas:
            self.add(control, record, FAIL, DIFFERENT, observed, f"the planned {record.type} record is not there")
        else:
            self.add(control, record, FAIL, MISSING, None, f"no {record.type} record")

    def check_points_at_appliance(self, record: Record, control: str) -> None:
        """A planned CNAME, also satisfied by A/AAAA records holding the appliance's addresses."""
        found = self.lookup(record.name, "CNAME")
        if self.lookup_failed(control, record, found):
            return
        if record.to_rdata() in found.rdatas:
            self.add(control, record, PASS, PRESENT, found.rdatas[0].to_text(), "as planned")
            return
        if found.rdatas:
            self.add(control, record, FAIL, DIFFERENT, found.rdatas[0].to_text(),
                     f"points at {found.rdatas[0].to_text()}, not at the appliance")
            return
        addresses = {rdata.to_text() for rtype in ("A", "AAAA") for rdata in self.lookup(record.name, rtype).rdatas}
        appliance = self.appliance_addresses()
        if addresses and appliance and addresses <= appliance:
            self.add(control, record, PASS, DIFFERENT, ", ".join(sorted(addresses)),
                     "address records of the appliance instead of a CNAME")
        elif addresses:
            self.add(control, record, FAIL, DIFFERENT, ", ".join(sorted(addresses)),
                     "addresses that are not the appliance's")
        else:
            self.add(control, record, FAIL, MISSING, None, "no CNAME or address records")

    def check_mx(self, domain: str) -> None:
        self.check_exact(self.plan.by_purpose(dnsplan.MX, domain)[0], "DNS-MX")

    # -- SPF --------------------------------------------------------------------------------------------

    def check_spf(self, record: Record) -> None:
        controls = ("DNS-SPF-ALL", "DNS-SPF-LOOKUPS", "DNS-SPF-AUTHORIZES")
        found = self.lookup(record.name, "TXT")
        if self.lookup_failed("DNS-SPF-RECORD", record, found):
            self.not_applicable(controls, record, "the SPF record could not be read")
            return
        spf = [text for text in found.texts if re.match(r"v=spf1(\s|$)", text, re.IGNORECASE)]
        if len(spf) != 1:
            problem = "no SPF record" if not spf else f"{len(spf)} SPF records, which is a permanent error"
            self.add("DNS-SPF-RECORD", record, FAIL, MISSING if not spf else DIFFERENT, " | ".join(spf) or None,
                     problem)
            self.not_applicable(controls, record, "no single SPF record to judge")
            return
        text = spf[0]
        try:
            parsed = checkdmarc.spf.parse_spf_record(text, record.name.rstrip("."), resolver=self.resolver,
                                                     ignore_too_many_lookups=True, timeout=QUERY_TIMEOUT)
        except checkdmarc.spf.SPFError as exc:
            self.add("DNS-SPF-RECORD", record, FAIL, DIFFERENT, text, f"invalid: {exc}")
            self.not_applicable(controls, record, "the SPF record is invalid")
            return
        state = PRESENT if text == record.value else DIFFERENT
        self.add("DNS-SPF-RECORD", record, PASS, state, text,
                 "as planned" if state == PRESENT else "valid, differs from the plan (judged below)")
        self.judge_spf_all(record, text, parsed)
        too_many = self.judge_spf_lookups(record, text, parsed)
        if too_many:
            self.add("DNS-SPF-AUTHORIZES", record, NOT_APPLICABLE, None, text,
                     "not evaluated: receivers stop at the lookup limit with a permanent error")
        else:
            self.judge_spf_authorizes(record, text, parsed)

    def judge_spf_all(self, record: Record, text: str, parsed: dict[str, Any]) -> None:
        terms = text.split()[1:]
        qualifier = next((m.group(1) or "+" for m in map(_SPF_ALL_RE.match, terms) if m), None)
        if qualifier is None and any(term.lower().startswith("redirect=") for term in terms):
            qualifier = _SPF_QUALIFIERS.get(parsed["parsed"].get("all", ""), "?")
        domain = record.name.rstrip(".")
        if qualifier == "-":
            self.add("DNS-SPF-ALL", record, PASS, PRESENT, text, "ends with -all")
            return
        why = {
            "~": "~all only marks mail from other hosts as suspicious (softfail)",
            "?": "?all leaves mail from other hosts unjudged (neutral)",
            "+": f"+all lets any host on the internet send as {domain}",
            None: "no all term, so mail from other hosts is left unjudged (neutral)",
        }[qualifier]
        self.add("DNS-SPF-ALL", record, FAIL, WEAKER, text, f"{why}; end the record with -all")

    def judge_spf_lookups(self, record: Record, text: str, parsed: dict[str, Any]) -> bool:
        """Judge the lookup counts; True when the record is over a limit."""
        lookups, void = parsed["dns_lookups"], parsed["void_dns_lookups"]
        if parsed.get("error"):
            # With the limit ignored checkdmarc stops counting at the include that went over; without, it
            # raises with the full count.
            try:
                checkdmarc.spf.parse_spf_record(text, record.name.rstrip("."), resolver=self.resolver,
                                                timeout=QUERY_TIMEOUT)
            except checkdmarc.spf.SPFTooManyDNSLookups as exc:
                lookups = (exc.data or {}).get("dns_lookups", lookups)
            except checkdmarc.spf.SPFTooManyVoidDNSLookups as exc:
                void = (exc.data or {}).get("void_dns_lookups", void)
            except checkdmarc.spf.SPFError:
                pass
        counted = f"{lookups} DNS lookups (at most {SPF_MAX_LOOKUPS}), {void} void (at most {SPF_MAX_VOID_LOOKUPS})"
        if lookups > SPF_MAX_LOOKUPS or void > SPF_MAX_VOID_LOOKUPS or parsed.get("error"):
            self.add("DNS-SPF-LOOKUPS", record, FAIL, WEAKER, text,
                     f"{counted}, including nested includes: receivers give a permanent error; "
                     "flatten or drop includes")
            return True
        self.add("DNS-SPF-LOOKUPS", record, PASS, None, text, counted)
        return False

    def judge_spf_authorizes(self, record: Record, text: str, parsed: dict[str, Any]) -> None:
        appliance = self.appliance_addresses()
        if not appliance:
            self.add("DNS-SPF-AUTHORIZES", record, NOT_APPLICABLE, None, text,
                     "the appliance's addresses are unknown; set dns.ipv4/dns.ipv6 in the site file")
            return
        networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        everything = _spf_pass_networks(parsed["parsed"], networks)
        terms: set[str] = set()
        _spf_pass_terms(parsed["parsed"], terms)
        missing = sorted(a for a in appliance if not everything and not _covers(networks, ipaddress.ip_network(a)))
        # The carriers of the outbound: section that send mail with a Return-Path in the domain (not for HELO).
        carriers = self.plan.carrier_spf.get(record.group, {}) if record.purpose == dnsplan.SPF else {}
        lacking = {carrier: [m for m in mechanisms if not everything and not self.spf_passes(m, networks, terms)]
                   for carrier, mechanisms in carriers.items()}
        problems = [f"the appliance's {', '.join(missing)}"] if missing else []
        problems += [f"carrier {carrier}'s {', '.join(absent)}" for carrier, absent in lacking.items() if absent]
        if problems:
            self.add("DNS-SPF-AUTHORIZES", record, FAIL, DIFFERENT, text,
                     f"does not authorize {'; '.join(problems)}: {'its' if len(problems) == 1 else 'their'} mail "
                     "fails SPF")
        else:
            self.add("DNS-SPF-AUTHORIZES", record, PASS, PRESENT, text,
                     f"authorizes {', '.join([*sorted(appliance), *(f'carrier {name}' for name in carriers)])}")

    def spf_passes(self, mechanism: str, networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network],
                   terms: set[str]) -> bool:
        """Whether the record passes the hosts a planned mechanism names: the same include: or a: term anywhere in
        it, or networks that cover the mechanism's (for a:, the addresses its name has now)."""
        kind, _, value = mechanism.partition(":")
        if mechanism in terms:
            return True
        if kind in ("ip4", "ip6"):
            return _covers(networks, ipaddress.ip_network(value))
        if kind == "a":
            addresses = [rdata.to_text() for rtype in ("A", "AAAA") for rdata in self.lookup(value, rtype).rdatas]
            return bool(addresses) and all(_covers(networks, ipaddress.ip_network(a)) for a in addresses)
        return False

    # -- DKIM -------------------------------------------------------------------------------------------

    def check_dkim(self, record: Record) -> None:
        controls = ("DNS-DKIM-BITS", "DNS-DKIM-MATCH")
        found = self.lookup(record.name, "TXT")
        if self.lookup_failed("DNS-DKIM-RECORD", record, found):
            self.not_applicable(controls, record, "the DKIM record could not be read")
            return
        if not found.texts:
            detail = "no DKIM key record" + (f"; {record.pending}" if record.pending else "")
            self.add("DNS-DKIM-RECORD", record, FAIL, MISSING, None, detail)
            self.not_applicable(controls, record, "no DKIM key record")
            return
        text = found.texts[0] if len(found.texts) == 1 else " | ".join(found.texts)
        if len(found.texts) > 1:
            self.add("DNS-DKIM-RECORD", record, FAIL, DIFFERENT, text,
                     f"{len(found.texts)} TXT records at the selector; verifiers need exactly one")
            self.not_applicable(controls, record, "no single DKIM key record")
            return
        try:
            key = parse_dkim_record(text)
        except ValueError as exc:
            self.add("DNS-DKIM-RECORD", record, FAIL, DIFFERENT, text, f"not a usable DKIM key record: {exc}")
            self.not_applicable(controls, record, "the DKIM key record is unusable")
            return
        state = None if record.pending else PRESENT if text == record.value else DIFFERENT
        self.add("DNS-DKIM-RECORD", record, PASS, state, text, f"{key.key_type} key record")
        if key.key_type == "rsa" and key.bits < dnsplan.DKIM_MIN_BITS:
            self.add("DNS-DKIM-BITS", record, FAIL, WEAKER, text,
                     f"RSA key of {key.bits} bits; use at least {dnsplan.DKIM_MIN_BITS} bits")
        else:
            self.add("DNS-DKIM-BITS", record, PASS, None, text, f"{key.key_type} key of {key.bits} bits")
        if record.pending:
            self.add("DNS-DKIM-MATCH", record, WARN, None, text, f"present, not compared: {record.pending}")
        elif key.public_key == parse_dkim_record(record.value).public_key:
            self.add("DNS-DKIM-MATCH", record, PASS, PRESENT, text, "the key the appliance signs with")
        else:
            self.add("DNS-DKIM-MATCH", record, FAIL, DIFFERENT, text,
                     "another key than the one the appliance signs with: its signatures fail")

    # -- DMARC ------------------------------------------------------------------------------------------

    def check_dmarc(self, domain: str) -> None:
        record = self.plan.by_purpose(dnsplan.DMARC, domain)[0]
        controls = ("DNS-DMARC-POLICY", "DNS-DMARC-SP", "DNS-DMARC-RUA", "DNS-DMARC-OBSOLETE")
        found = self.lookup(record.name, "TXT")
        rua = None
        if self.lookup_failed("DNS-DMARC-RECORD", record, found):
            self.not_applicable(controls, record, "the DMARC record could not be read")
        else:
            rua = self.judge_dmarc(domain, record, found, controls)
        for rua_domain in dict.fromkeys(address.rpartition("@")[2] for address in rua or [self.plan.dmarc_rua]):
            if rua_domain != domain:
                self.check_report_authorization(domain, rua_domain)

    def judge_dmarc(self, domain: str, record: Record, found: _Lookup, controls: tuple[str, ...]) -> list[str] | None:
        """Judge the DMARC record; returns the report addresses it names (None when there is no valid one)."""
        texts = [text for text in found.texts if text.lower().replace(" ", "").startswith("v=dmarc1")]
        if len(texts) != 1:
            problem = "no DMARC record" if not texts else f"{len(texts)} DMARC records, so receivers ignore all"
            self.add("DNS-DMARC-RECORD", record, FAIL, MISSING if not texts else DIFFERENT,
                     " | ".join(texts) or None, problem)
            self.not_applicable(controls, record, "no single DMARC record to judge")
            return None
        text = texts[0]
        try:
            parsed = checkdmarc.dmarc.parse_dmarc_record(text, domain, resolver=self.resolver, timeout=QUERY_TIMEOUT)
        except checkdmarc.dmarc.DMARCError as exc:
            self.add("DNS-DMARC-RECORD", record, FAIL, DIFFERENT, text, f"invalid: {exc}")
            self.not_applicable(controls, record, "the DMARC record is invalid")
            return None
        tags = {name: value["value"] for name, value in parsed["tags"].items()}
        explicit = {name for name, value in parsed["tags"].items() if value.get("explicit")}
        notes = "; ".join(parsed["warnings"])
        state = PRESENT if text == record.value else DIFFERENT
        self.add("DNS-DMARC-RECORD", record, PASS, state, text,
                 ("as planned" if state == PRESENT else "valid, differs from the plan (judged below)")
                 + (f"; checkdmarc notes: {notes}" if notes else ""))

        planned = _DMARC_STRENGTH[self.plan.dmarc_policy]
        policy = str(tags.get("p", "none"))
        if _DMARC_STRENGTH.get(policy, 0) < planned:
            self.add("DNS-DMARC-POLICY", record, FAIL, WEAKER, text,
                     f"p={policy} is weaker than the planned p={self.plan.dmarc_policy}"
                     + ("; receivers deliver mail that fails DMARC" if policy == "none" else ""))
        elif str(tags.get("t", "n")) == "y":
            self.add("DNS-DMARC-POLICY", record, FAIL, WEAKER, text,
                     "t=y asks receivers not to apply the policy (testing mode); remove t=y")
        else:
            self.add("DNS-DMARC-POLICY", record, PASS, PRESENT if policy == self.plan.dmarc_policy else DIFFERENT,
                     text, f"p={policy}")

        weak = [f"{tag}={tags[tag]}" for tag in ("sp", "np")
                if tag in explicit and _DMARC_STRENGTH.get(str(tags[tag]), 0) < planned]
        if weak:
            self.add("DNS-DMARC-SP", record, FAIL, WEAKER, text,
                     f"{', '.join(weak)} is weaker than the planned p={self.plan.dmarc_policy} for subdomains")
        else:
            self.add("DNS-DMARC-SP", record, PASS, None, text, "subdomains get the domain's policy or a stricter one")

        rua = [uri.get("address", "").lower() for uri in tags.get("rua") or [] if isinstance(uri, dict)]
        if not rua:
            self.add("DNS-DMARC-RUA", record, FAIL, MISSING, text, "no rua tag: nobody receives aggregate reports")
        elif self.plan.dmarc_rua in rua:
            self.add("DNS-DMARC-RUA", record, PASS, PRESENT, text, f"reports go to {', '.join(rua)}")
        else:
            self.add("DNS-DMARC-RUA", record, WARN, DIFFERENT, text,
                     f"reports go to {', '.join(rua)}, not to the planned {self.plan.dmarc_rua}")

        obsolete = [f"{name}={value}" for name, value in _tags(text).items() if name in _DMARC_OBSOLETE_TAGS]
        if obsolete:
            self.add("DNS-DMARC-OBSOLETE", record, WARN, DIFFERENT, text,
                     f"{', '.join(obsolete)}: removed by RFC 9989, ignored by receivers that follow it; drop them")
        else:
            self.add("DNS-DMARC-OBSOLETE", record, PASS, None, text, "no obsolete tags")
        return rua

    def check_report_authorization(self, domain: str, rua_domain: str) -> None:
        """RFC 9989 external destinations: the report address's domain must accept reports for this one."""
        name = f"{domain}._report._dmarc.{rua_domain}."
        subject = (domain, name, "TXT")
        found = self.lookup(name, "TXT")
        if self.lookup_failed("DNS-DMARC-RUA-AUTH", subject, found):
            return
        texts = [text for text in found.texts if text.lower().replace(" ", "").startswith("v=dmarc1")]
        if texts:
            self.add("DNS-DMARC-RUA-AUTH", subject, PASS, PRESENT, texts[0],
                     f"{rua_domain} accepts reports about {domain}", expected="v=DMARC1;")
        else:
            self.add("DNS-DMARC-RUA-AUTH", subject, FAIL, MISSING, " | ".join(found.texts) or None,
                     f"{rua_domain} does not confirm it accepts reports about {domain}, so receivers send none",
                     expected="v=DMARC1;")

    # -- MTA-STS and TLS-RPT ----------------------------------------------------------------------------

    def check_mta_sts(self, domain: str) -> None:
        record = self.plan.by_purpose(dnsplan.MTA_STS, domain)[0]
        found = self.lookup(record.name, "TXT")
        if not self.lookup_failed("DNS-MTASTS-RECORD", record, found):
            texts = [text for text in found.texts if text.lower().replace(" ", "").startswith("v=stsv1")]
            self.judge_tagged_record("DNS-MTASTS-RECORD", record, texts, checkdmarc.mta_sts.parse_mta_sts_record,
                                     checkdmarc.mta_sts.MTASTSError, self.judge_mta_sts_id)

        policy_subject = (domain, f"mta-sts.{domain}.", "POLICY")
        policy = checkdmarc.mta_sts.parse_mta_sts_policy(self.plan.mta_sts_policy)["policy"]
        observed = f"mode: {policy['mode']} (the policy the appliance serves, from the plan)"
        if policy["mode"] == "enforce":
            self.add("DNS-MTASTS-MODE", policy_subject, PASS, PRESENT, observed, "mode enforce", expected="enforce")
        else:
            self.add("DNS-MTASTS-MODE", policy_subject, FAIL, WEAKER, observed,
                     f"mode {policy['mode']}: senders deliver even when TLS to the MX fails; "
                     "set dns.mta_sts_mode: enforce once TLS-RPT reports are clean", expected="enforce")

        mx_subject = (domain, f"{domain}.", "MX")
        found = self.lookup(f"{domain}.", "MX")
        if not self.lookup_failed("DNS-MTASTS-MX", mx_subject, found):
            hosts = [rdata.exchange.to_text(omit_final_dot=True) for rdata in found.rdatas]
            uncovered = [h for h in hosts if not checkdmarc.mta_sts.mx_in_mta_sts_patterns(h, policy["mx"])]
            patterns = ", ".join(policy["mx"])
            if not hosts:
                self.add("DNS-MTASTS-MX", mx_subject, NOT_APPLICABLE, None, None, "no MX records to cover")
            elif uncovered:
                self.add("DNS-MTASTS-MX", mx_subject, FAIL, DIFFERENT, ", ".join(hosts),
                         f"{', '.join(uncovered)} not covered by the policy's mx ({patterns}): senders enforcing "
                         "MTA-STS refuse to deliver there", expected=patterns)
            else:
                self.add("DNS-MTASTS-MX", mx_subject, PASS, PRESENT, ", ".join(hosts),
                         f"every MX matches the policy's mx ({patterns})", expected=patterns)
        self.check_points_at_appliance(self.plan.by_purpose(dnsplan.MTA_STS_HOST, domain)[0], "DNS-MTASTS-HOST")

    def judge_mta_sts_id(self, record: Record, text: str, tags: dict[str, Any]) -> None:
        observed_id = str(tags.get("id", {}).get("value", "")) if isinstance(tags.get("id"), dict) \
            else str(tags.get("id", ""))
        if observed_id == self.plan.mta_sts_id:
            self.add("DNS-MTASTS-RECORD", record, PASS, PRESENT, text, "id of the served policy")
        else:
            self.add("DNS-MTASTS-RECORD", record, FAIL, DIFFERENT, text,
                     f"id {observed_id} is not the served policy's {self.plan.mta_sts_id}: senders keep a "
                     "cached older policy")

    def check_tlsrpt(self, domain: str) -> None:
        record = self.plan.by_purpose(dnsplan.TLSRPT, domain)[0]
        found = self.lookup(record.name, "TXT")
        if self.lookup_failed("DNS-TLSRPT", record, found):
            return
        texts = [text for text in found.texts if text.lower().replace(" ", "").startswith("v=tlsrptv1")]
        self.judge_tagged_record("DNS-TLSRPT", record, texts,
                                 checkdmarc.smtp_tls_reporting.parse_smtp_tls_reporting_record,
                                 checkdmarc.smtp_tls_reporting.SMTPTLSReportingError, self.judge_tlsrpt_rua)

    def judge_tlsrpt_rua(self, record: Record, text: str, tags: dict[str, Any]) -> None:
        rua = tags.get("rua", {})
        values = rua.get("value", rua) if isinstance(rua, dict) else rua
        addresses = [str(v).lower().removeprefix("mailto:") for v in (values if isinstance(values, list) else
                                                                       str(values).split(","))]
        if self.plan.tlsrpt_rua in addresses:
            self.add("DNS-TLSRPT", record, PASS, PRESENT, text, f"reports go to {', '.join(addresses)}")
        else:
            self.add("DNS-TLSRPT", record, WARN, DIFFERENT, text,
                     f"reports go to {', '.join(addresses)}, not to the planned {self.plan.tlsrpt_rua}")

    def judge_tagged_record(self, control: str, record: Record, texts: list[str],
                            parse: Callable[[str], Any], error: type[Exception],
                            judge: Callable[[Record, str, dict[str, Any]], None]) -> None:
        if len(texts) != 1:
            self.add(control, record, FAIL, MISSING if not texts else DIFFERENT, " | ".join(texts) or None,
                     "no record" if not texts else f"{len(texts)} records where senders need exactly one")
            return
        try:
            parsed = parse(texts[0])
        except error as exc:
            self.add(control, record, FAIL, DIFFERENT, texts[0], f"invalid: {exc}")
            return
        judge(record, texts[0], parsed["tags"])

    # -- TLSA and DNSSEC --------------------------------------------------------------------------------

    def check_tlsa(self, records: list[Record]) -> None:
        record = records[0]
        found = self.lookup(record.name, "TLSA")
        if self.lookup_failed("DNS-TLSA-MATCH", record, found):
            return
        observed = ", ".join(rdata.to_text() for rdata in found.rdatas) or None
        if record.pending:
            if found.rdatas:
                self.add("DNS-TLSA-MATCH", record, WARN, PRESENT, observed,
                         f"present, not compared: {record.pending}")
            else:
                self.add("DNS-TLSA-MATCH", record, FAIL, MISSING, None, f"no TLSA record; {record.pending}")
            return
        expected = ", ".join(r.value for r in records)
        absent = [r.value for r in records if r.to_rdata() not in found.rdatas]
        if not found.rdatas:
            self.add("DNS-TLSA-MATCH", record, FAIL, MISSING, None, "no TLSA record: DANE senders cannot "
                     "authenticate the appliance", expected=expected)
        elif absent:
            self.add("DNS-TLSA-MATCH", record, FAIL, DIFFERENT, observed,
                     "no TLSA record matches the appliance's certificate: DANE senders refuse to deliver",
                     expected=expected)
        else:
            self.add("DNS-TLSA-MATCH", record, PASS, PRESENT, observed, "matches the appliance's certificate",
                     expected=expected)

    def check_dnssec(self, domain: str) -> None:
        # Reported, not required: signed passes; unsigned or unknown warns (severity info), never failing a run.
        subject = (domain, f"{domain}.", "DNSKEY")
        found = self.lookup(f"{domain}.", "DNSKEY")
        if found.error:
            self.add("DNS-DNSSEC", subject, WARN, None, None, f"not determined: {found.error}")
        elif not found.rdatas:
            self.add("DNS-DNSSEC", subject, WARN, MISSING, "no DNSKEY",
                     "unsigned: no DNSKEY at the domain, so TLSA records cannot be trusted")
        else:
            validated = "the resolver validated it (AD)" if found.authenticated else \
                "the resolver did not report it validated (no AD)"
            self.add("DNS-DNSSEC", subject, PASS, PRESENT, f"{len(found.rdatas)} DNSKEY records",
                     f"signed; {validated}")


def _covers(networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network],
            network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    return any(net.version == network.version and network.subnet_of(net) for net in networks)


def _spf_pass_terms(parsed: dict[str, Any], terms: set[str]) -> None:
    """Collect the include: and a: terms an SPF tree passes (includes and redirect followed), as "include:name"."""
    for mechanism in parsed.get("mechanisms", []):
        if mechanism.get("action") != "pass" or mechanism.get("mechanism") not in ("include", "a"):
            continue
        terms.add(f"{mechanism['mechanism']}:{str(mechanism.get('value', '')).lower()}")
        if isinstance(mechanism.get("parsed"), dict):
            _spf_pass_terms(mechanism["parsed"], terms)
    redirect = parsed.get("redirect")
    if isinstance(redirect, dict) and isinstance(redirect.get("parsed"), dict):
        _spf_pass_terms(redirect["parsed"], terms)


def _spf_pass_networks(parsed: dict[str, Any], networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    """Collect the networks an SPF tree passes (includes and redirect followed); True when it passes all."""
    for mechanism in parsed.get("mechanisms", []):
        if mechanism.get("action") != "pass":
            continue
        kind = mechanism.get("mechanism")
        if kind in ("ip4", "ip6"):
            networks.append(ipaddress.ip_network(mechanism["value"], strict=False))
        elif kind == "include" and isinstance(mechanism.get("parsed"), dict):
            if _spf_pass_networks(mechanism["parsed"], networks):
                return True
        for address in mechanism.get("addresses", []):
            networks.append(ipaddress.ip_network(address))
        for host in mechanism.get("hosts", []):
            networks.extend(ipaddress.ip_network(address) for address in host.get("addresses", []))
    redirect = parsed.get("redirect")
    if isinstance(redirect, dict) and isinstance(redirect.get("parsed"), dict):
        return _spf_pass_networks(redirect["parsed"], networks)
    return parsed.get("all") == "pass"

