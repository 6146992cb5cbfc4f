"""Judge what the live probes saw (mailappliance.audit.probes) against the controls of the catalogue."""

from __future__ import annotations

import datetime
import hashlib
import re
from typing import Any

from mailappliance.audit.probes import MTA_STS_MAX_BYTES
from mailappliance.controls import catalogue as cat
from mailappliance.controls.model import ERROR, FAIL, NOT_APPLICABLE, PASS, WARN, Control, worst

LEGACY_VERSIONS = ("TLSv1", "TLSv1.1")
CURRENT_VERSIONS = ("TLSv1.2", "TLSv1.3")
EXPIRY_WARN_DAYS = 30
EXPIRY_FAIL_DAYS = 7
# OpenSSL verify codes for a certificate that is its own issuer, or a chain ending in a private root.
_SELF_SIGNED_CODES = (18, 19)
# Software names and version numbers that a banner should not give away.
_SOFTWARE_RE = re.compile(
    r"postfix|exim|sendmail|qmail|dovecot|cyrus|courier|pigeonhole|zimbra|exchange|microsoft|debian|ubuntu|"
    r"\b\d+\.\d+(\.\d+)*\b", re.IGNORECASE)


# The web port serves names other than the host name (mta-sts.<domain>): its certificate is judged per name by
# MTASTS-POLICY, so only its protocol versions are judged per port.
PROTOCOLS_ONLY_KINDS = ("https",)


def judge_probes(probes: dict[str, Any], hostname: str, now: datetime.datetime, mta_sts_policy: str) -> list[Control]:
    """Every probe control; `mta_sts_policy` is the plan's policy text, which the web server must serve as is."""
    controls: list[Control] = []
    for port in probes["ports"].values():
        controls.extend(judge_port(port, hostname, now))
    controls.extend(judge_smtp(probes["smtp"], probes["ports"], hostname))
    controls.append(judge_mta_sts(probes.get("mta_sts") or {}, mta_sts_policy))
    return controls


def judge_port(port: dict[str, Any], hostname: str, now: datetime.datetime) -> list[Control]:
    number = int(port["port"])
    web = port.get("kind") in PROTOCOLS_ONLY_KINDS
    specs = (cat.TLS_PROTOCOLS,) if web else cat.TLS_PORT_SPECS
    remediation = cat.TLS_PROTOCOLS_WEB_REMEDIATION if web else None
    if not port.get("reachable"):
        status = ERROR if port.get("required", True) else NOT_APPLICABLE
        evidence = f"port {number}: {port.get('error') or 'not reachable'}"
        if status == NOT_APPLICABLE:
            evidence += " (optional service)"
        return [spec.judge(status, evidence, number, remediation) for spec in specs]
    if web:
        return [_protocols(port, number, remediation)]
    return [_protocols(port, number), _chain(port, number), _expiry(port, number, now), _name(port, number, hostname)]


def _protocols(port: dict[str, Any], number: int, remediation: str | None = None) -> Control:
    versions = port.get("versions") or {}
    accepted = [name for name, seen in versions.items() if seen.get("accepted")]
    seen = ", ".join(f"{name} {'accepted' if v.get('accepted') else 'refused (' + (v.get('reason') or '?') + ')'}"
                     for name, v in versions.items())
    legacy = [name for name in LEGACY_VERSIONS if name in accepted]
    if legacy:
        return cat.TLS_PROTOCOLS.judge(FAIL, f"legacy {', '.join(legacy)} accepted; {seen}", number, remediation)
    if not any(name in accepted for name in CURRENT_VERSIONS):
        return cat.TLS_PROTOCOLS.judge(FAIL, f"neither TLS 1.2 nor 1.3 accepted; {seen}", number, remediation)
    return cat.TLS_PROTOCOLS.judge(PASS, seen, number, remediation)


def _chain(port: dict[str, Any], number: int) -> Control:
    trust = port.get("trust") or {}
    cert = port.get("certificate") or {}
    issuer = cert.get("issuer", "?")
    if trust.get("verified"):
        return cat.TLS_CERT_CHAIN.judge(PASS, f"chain verifies against the system trust store (issuer {issuer})",
                                        number)
    message = f"{trust.get('verify_message') or 'not verified'} (OpenSSL code {trust.get('verify_code')})"
    if trust.get("verify_code") in _SELF_SIGNED_CODES:
        return cat.TLS_CERT_CHAIN.judge(WARN, f"not publicly trusted: {message}; issuer {issuer}", number)
    return cat.TLS_CERT_CHAIN.judge(FAIL, f"chain does not verify: {message}; issuer {issuer}", number)


def _expiry(port: dict[str, Any], number: int, now: datetime.datetime) -> Control:
    cert = port.get("certificate")
    if not cert:
        return cat.TLS_CERT_EXPIRY.judge(ERROR, "no certificate was presented", number)
    not_after = datetime.datetime.fromisoformat(cert["not_after"])
    days = (not_after - now).total_seconds() / 86400
    evidence = f"valid until {not_after:%Y-%m-%d %H:%M} UTC ({days:.0f} days left)"
    if days < EXPIRY_FAIL_DAYS:
        status = FAIL
        if days < 0:
            evidence = f"expired on {not_after:%Y-%m-%d %H:%M} UTC"
    elif days < EXPIRY_WARN_DAYS:
        status = WARN
    else:
        status = PASS
    return cat.TLS_CERT_EXPIRY.judge(status, evidence, number)


def name_matches(pattern: str, hostname: str) -> bool:
    """RFC 6125 matching: exact, or a wildcard standing for exactly the left-most label."""
    pattern, hostname = pattern.lower().rstrip("."), hostname.lower().rstrip(".")
    if pattern.startswith("*."):
        first, _, rest = hostname.partition(".")
        return bool(first) and rest == pattern[2:]
    return pattern == hostname


def _name(port: dict[str, Any], number: int, hostname: str) -> Control:
    cert = port.get("certificate")
    if not cert:
        return cat.TLS_CERT_NAME.judge(ERROR, "no certificate was presented", number)
    names = cert.get("dns_names") or []
    if any(name_matches(name, hostname) for name in names):
        return cat.TLS_CERT_NAME.judge(PASS, f"{hostname} matches subjectAltName {', '.join(names)}", number)
    shown = ", ".join(names) or f"none (subject {cert.get('subject')})"
    return cat.TLS_CERT_NAME.judge(FAIL, f"{hostname} is not among the certificate's DNS names: {shown}", number)


def banner_leak(text: str, hostname: str) -> list[str]:
    """Software names and version numbers in a banner; the host's own name is not held against it."""
    cleaned = re.sub(re.escape(hostname), "", text, flags=re.IGNORECASE)
    return sorted({match.group(0) for match in _SOFTWARE_RE.finditer(cleaned)})


def judge_smtp(smtp: dict[str, Any], ports: dict[str, Any], hostname: str) -> list[Control]:
    controls: list[Control] = []
    port25, port587 = smtp.get("25") or {}, smtp.get("587") or {}
    for spec, seen, number in ((cat.SMTP_25_STARTTLS, port25, 25), (cat.SMTP_587_STARTTLS, port587, 587)):
        if not seen.get("reachable"):
            controls.append(spec.judge(ERROR, f"port {number}: {seen.get('error') or 'not reachable'}"))
        elif "starttls" in seen.get("before_tls", []):
            controls.append(spec.judge(PASS, f"EHLO on {number} lists STARTTLS"))
        else:
            controls.append(spec.judge(FAIL, f"EHLO on {number} lists {', '.join(seen.get('before_tls', []))}; "
                                             "no STARTTLS"))

    if not port25.get("reachable"):
        controls.append(cat.SMTP_25_NO_AUTH.judge(ERROR, f"port 25: {port25.get('error') or 'not reachable'}"))
    else:
        where = [side for side, key in (("before STARTTLS", "before_tls"), ("after STARTTLS", "after_tls"))
                 if "auth" in port25.get(key, [])]
        if where:
            controls.append(cat.SMTP_25_NO_AUTH.judge(FAIL, f"port 25 offers AUTH {' and '.join(where)}"))
        else:
            after = "after STARTTLS" if "after_tls" in port25 else "(STARTTLS not offered)"
            controls.append(cat.SMTP_25_NO_AUTH.judge(PASS, f"no AUTH in EHLO on port 25 before STARTTLS nor {after}"))

    if not port587.get("reachable"):
        controls.append(cat.SMTP_587_NO_AUTH_BEFORE_TLS.judge(
            ERROR, f"port 587: {port587.get('error') or 'not reachable'}"))
    elif "auth" in port587.get("before_tls", []):
        controls.append(cat.SMTP_587_NO_AUTH_BEFORE_TLS.judge(FAIL, "port 587 offers AUTH before STARTTLS"))
    else:
        mechanisms = " ".join(port587.get("auth_after_tls", [])) or "none"
        controls.append(cat.SMTP_587_NO_AUTH_BEFORE_TLS.judge(
            PASS, f"no AUTH before STARTTLS; after STARTTLS: {mechanisms}"))

    controls.append(_relay(smtp.get("relay") or {}))
    controls.append(_banner(cat.SMTP_BANNER, [(25, port25.get("banner")), (587, port587.get("banner")),
                                              (465, (ports.get("465") or {}).get("greeting"))], hostname))
    controls.append(_banner(cat.IMAP_GREETING, [(993, (ports.get("993") or {}).get("greeting"))], hostname))
    return controls


def _relay(relay: dict[str, Any]) -> Control:
    steps = relay.get("steps") or []
    dialogue = "; ".join(f"{step['command']} -> {step['code']} {step['reply']}" for step in steps)
    if not relay.get("reachable") and not steps:
        return cat.SMTP_OPEN_RELAY.judge(ERROR, f"port 25: {relay.get('error') or 'not reachable'}")
    rcpt = next((step for step in steps if step["command"].startswith("RCPT")), None)
    if rcpt is None:
        # Refused before RCPT: no relay happened, but the relay rules themselves were not reached.
        return cat.SMTP_OPEN_RELAY.judge(WARN, f"refused before the recipient was tried: {dialogue}")
    if 500 <= rcpt["code"] < 600:
        return cat.SMTP_OPEN_RELAY.judge(PASS, dialogue)
    if 400 <= rcpt["code"] < 500:
        return cat.SMTP_OPEN_RELAY.judge(WARN, f"deferred (4xx), not refused: {dialogue}")
    return cat.SMTP_OPEN_RELAY.judge(FAIL, f"relay accepted: {dialogue}")


def _banner(spec: Any, banners: list[tuple[int, str | None]], hostname: str) -> Control:
    seen = [(port, text) for port, text in banners if text]
    if not seen:
        return spec.judge(ERROR, "no banner was received")
    leaks = [(port, text, banner_leak(text, hostname)) for port, text in seen]
    shown = "; ".join(f"{port}: {text!r}" for port, text in seen)
    bad = [f"port {port} reveals {', '.join(found)}" for port, _, found in leaks if found]
    if bad:
        return spec.judge(FAIL, f"{'; '.join(bad)} ({shown})")
    return spec.judge(PASS, shown)


def judge_mta_sts(fetched: dict[str, dict[str, Any]], policy: str) -> Control:
    """MTASTS-POLICY: every domain's policy host serves the plan's policy, byte for byte, as senders fetch it."""
    if not fetched:
        return cat.MTASTS_POLICY.judge(NOT_APPLICABLE, "no domain to fetch a policy for")
    verdicts = [_policy_verdict(seen, policy) for seen in fetched.values()]
    return cat.MTASTS_POLICY.judge(worst([status for status, _ in verdicts]), "\n".join(line for _, line in verdicts))


def _policy_verdict(seen: dict[str, Any], policy: str) -> tuple[str, str]:
    where = f"{seen.get('url')} at {seen.get('address')}:{seen.get('port')}"
    if not seen.get("reachable"):
        return FAIL, f"fail: {where}: unreachable: {seen.get('error') or 'no answer'}"
    failures: list[str] = []
    warnings: list[str] = []
    status = seen.get("status")
    if status != 200:
        location = f" to {seen['location']}" if seen.get("location") else ""
        extra = f" (a redirect{location}, which senders do not follow)" if 300 <= int(status or 0) < 400 else ""
        failures.append(f"HTTP {status} {seen.get('reason', '')}".rstrip() + extra)
    content_type = seen.get("content_type") or ""
    if content_type.split(";")[0].strip().lower() != "text/plain":
        failures.append(f"Content-Type {content_type or 'missing'}, not text/plain")
    if status == 200 and seen.get("body_sha256") != hashlib.sha256(policy.encode()).hexdigest():
        failures.append(f"body differs from the plan's policy: {policy_difference(seen, policy)}")
    cert = seen.get("certificate") or {}
    names = cert.get("dns_names") or []
    host = seen.get("host", "")
    if not cert:
        failures.append("no certificate was presented")
    elif not any(name_matches(name, host) for name in names):
        failures.append(f"the certificate does not name {host} (subjectAltName: {', '.join(names) or 'none'})")
    trust = seen.get("trust") or {}
    if cert and not trust.get("verified"):
        warnings.append(f"the certificate is not publicly trusted ({trust.get('verify_message') or 'not verified'}): "
                        "senders fetch policies only over a chain they can verify")
    served = f"HTTP {status}, {content_type or 'no Content-Type'}, {seen.get('body_bytes', 0)} bytes, " \
             f"{seen.get('tls_version') or 'TLS ?'}"
    if failures:
        return FAIL, f"fail: {where}: {'; '.join(failures + warnings)} ({served})"
    if warnings:
        return WARN, f"warn: {where}: serves the planned policy, but {'; '.join(warnings)} ({served})"
    return PASS, f"pass: {where}: serves the planned policy ({served}, certificate names {host})"


def policy_difference(seen: dict[str, Any], policy: str) -> str:
    """How a served policy differs from the planned text, in words an administrator can act on."""
    body = seen.get("body") or ""
    if int(seen.get("body_bytes") or 0) > MTA_STS_MAX_BYTES:
        return f"served more than {MTA_STS_MAX_BYTES // 1024} KiB, where a policy is a few lines"
    if not body:
        return "served an empty body"
    if body.replace("\r\n", "\n") == policy:
        return "CRLF line endings where the plan has LF"
    if body.rstrip("\r\n") == policy.rstrip("\n"):
        return "only the line endings at the end differ"
    served_lines, planned_lines = body.splitlines(), policy.splitlines()
    for number, (got, want) in enumerate(zip(served_lines, planned_lines), start=1):
        if got != want:
            return f"line {number} is {got!r} where the plan has {want!r}"
    if len(served_lines) > len(planned_lines):
        return f"extra line {len(planned_lines) + 1} {served_lines[len(planned_lines)]!r}"
    return f"line {len(served_lines) + 1} {planned_lines[len(served_lines)]!r} of the plan is missing"
