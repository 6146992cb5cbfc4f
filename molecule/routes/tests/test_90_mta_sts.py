"""MTA-STS for direct delivery: the site's direct carrier has `mta_sts: true` and *.policies.test goes direct. The
test domains publish policies in enforce mode (../vars/mta-sts-policies.yml), served over HTTPS by the DNS container
with a certificate of the test CA. The direct route transport asks the appliance's MTA-STS resolver after the relays'
own TLS table; a domain whose policy names its MX gets its mail over TLS with the MX's certificate verified, one
whose policy names another host keeps its mail deferred, and while the resolver is down direct mail waits in the
queue rather than leave under a weaker policy. What each step saw is printed."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import yaml

from mailprobe import build_message, new_token, wait_until

from conftest import STAFF
from routeprobe import QUEUE_ID, postfix_log, queue_line, stored_everywhere, wait_for_stored

POLICIES = yaml.safe_load((Path(__file__).resolve().parents[1] / "vars" / "mta-sts-policies.yml").read_text())
ENFORCED, MISMATCH = POLICIES["prepare__policy_domains"]
RESOLVER = "postfix-mta-sts-resolver"
# Instances whose routes send *.policies.test direct: staff and the orders channel (site/site.yml).
CONFIG_DIRECTORIES = ("/etc/postfix", "/etc/postfix-orders")
OUTCOME_TIMEOUT = 60.0


def policy_map_overrides(host: Any, config_directory: str) -> dict[str, str]:
    """The master.cf services of an instance that set smtp_tls_policy_maps, with the value."""
    out = host.run("postconf -c %s -P", config_directory)
    assert out.rc == 0, out.stderr
    found = {}
    for line in out.stdout.splitlines():
        name, _, value = line.partition(" = ")
        if name.endswith("/smtp_tls_policy_maps"):
            found[name.removesuffix("/smtp_tls_policy_maps")] = value
    return found


def resolver_map(host: Any) -> str:
    """The socketmap the staff instance's direct route asks (its last policy table)."""
    overrides = policy_map_overrides(host, CONFIG_DIRECTORIES[0])
    assert len(overrides) == 1, f"expected one route transport with the resolver's map: {overrides}"
    return re.split(r"[\s,]+", next(iter(overrides.values())))[-1]


def outcome(host: Any, since: float, recipient: str) -> re.Match[str] | None:
    """The first delivery attempt's log line for `recipient` since `since`."""
    return queue_line(postfix_log(host, since), rf"^(?P<qid>{QUEUE_ID}): to=<{re.escape(recipient)}>, "
                      r"relay=(?P<relay>\S+), .*dsn=(?P<dsn>[\d.]+), status=(?P<status>\w+) \((?P<why>.*)\)")


def wait_for_outcome(host: Any, since: float, recipient: str) -> re.Match[str]:
    found = wait_until(lambda: outcome(host, since, recipient), OUTCOME_TIMEOUT, interval=1.0)
    assert found, f"no delivery attempt for {recipient} in the mail log within {OUTCOME_TIMEOUT:.0f} s"
    return found


def mx_carrier(carriers: dict[str, Any], domain: dict[str, Any]) -> Any:
    return next(carrier for carrier in carriers.values() if carrier.container == domain["mx"])


def submit(appliance: Any, recipient: str, token: str) -> None:
    out = appliance.submit(587, STAFF, STAFF, recipient, build_message(STAFF, recipient, token))
    assert out.accepted, str(out)


def test_the_direct_route_asks_the_resolver_after_the_relays_table(host):
    for directory in CONFIG_DIRECTORIES:
        overrides = policy_map_overrides(host, directory)
        assert len(overrides) == 1, f"{directory}: expected only the direct route to ask the resolver: {overrides}"
        tables = re.split(r"[\s,]+", next(iter(overrides.values())))
        assert tables[0] == f"texthash:{directory}/tls_policy" and tables[1].startswith("socketmap:inet:127.0.0.1:"), (
            f"{directory}: {tables}")
    service = host.service(RESOLVER)
    assert service.is_running and service.is_enabled, host.run("journalctl -u %s -n 30 --no-pager", RESOLVER).stdout
    port = int(resolver_map(host).split(":")[3])
    listening = [str(socket) for socket in host.socket.get_listening_sockets() if socket.endswith(f":{port}")]
    assert listening == [f"tcp://127.0.0.1:{port}"], f"the resolver listens on {listening}"


def test_the_resolver_answers_with_each_domains_policy(host, figures):
    table = resolver_map(host)
    lines = []
    for domain in (ENFORCED, MISMATCH):
        out = host.run("postmap -q %s %s", domain["name"], table)
        lines.append(f"{domain['name']}: {out.stdout.strip() or out.stderr.strip()}")
        assert (out.rc, out.stdout.strip()) == (0, f"secure match={':'.join(domain['policy_mx'])} servername=hostname")
    # No policy (no _mta-sts record): no answer, so Postfix's own level applies.
    nothing = f"no-policy.{POLICIES['prepare__policy_zone']}"
    out = host.run("postmap -q %s %s", nothing, table)
    lines.append(f"{nothing}: {out.stdout.strip() or 'not found'} (exit {out.rc})")
    figures.report("MTA-STS resolver answers", lines)
    assert (out.rc, out.stdout) == (1, ""), f"{nothing}: {out.rc} {out.stdout}{out.stderr}"


def test_mail_to_a_domain_whose_policy_names_its_mx_leaves_over_verified_tls(host, appliance, carriers, figures):
    token = new_token()
    recipient = f"someone+{token}@{ENFORCED['name']}"
    since = time.time()
    submit(appliance, recipient, token)
    sent = wait_for_outcome(host, since, recipient)
    stored = wait_for_stored(list(carriers.values()), token)
    lines = postfix_log(host, since)
    verified = [line for line in lines if re.search(
        rf"Verified TLS connection established to {re.escape(ENFORCED['mx'])}\[[^\]]+\]:25:", line.text)]
    figures.report(f"MTA-STS: mail to {ENFORCED['name']} (policy mx {', '.join(ENFORCED['policy_mx'])})",
                   [str(line) for line in verified[:1]] + [sent.string])
    assert sent["status"] == "sent" and sent["relay"].startswith(f"{ENFORCED['mx']}["), sent.string
    assert verified, "no verified TLS connection to the MX in the mail log:\n" + "\n".join(map(str, lines))
    assert [s.carrier for s in stored] == [mx_carrier(carriers, ENFORCED).name], f"stored: {stored}"
    assert "with ESMTPS" in stored[0].received, f"the MX took the message without TLS: {stored[0].received}"


def test_mail_to_a_domain_whose_policy_names_another_host_stays_deferred(host, appliance, carriers, figures):
    token = new_token()
    recipient = f"someone+{token}@{MISMATCH['name']}"
    since = time.time()
    submit(appliance, recipient, token)
    deferred = wait_for_outcome(host, since, recipient)
    try:
        figures.report(f"MTA-STS: mail to {MISMATCH['name']} (MX {MISMATCH['mx']}, policy mx "
                       f"{', '.join(MISMATCH['policy_mx'])})", [deferred.string])
        assert deferred["status"] == "deferred" and deferred["dsn"].startswith("4."), deferred.string
        # The MX's certificate is valid for its own name, which the policy does not list.
        assert "certificate" in deferred["why"].lower(), deferred.string
        queued = host.run("postqueue -j")
        assert deferred["qid"] in queued.stdout, f"{deferred['qid']} is no longer in the queue:\n{queued.stdout}"
        assert not stored_everywhere(carriers.values(), token), "a carrier took mail the policy does not allow"
    finally:
        host.run("postsuper -d %s", deferred["qid"])


def test_a_stopped_resolver_defers_direct_mail_until_it_is_back(host, appliance, carriers, figures):
    token = new_token()
    recipient = f"someone+{token}@{ENFORCED['name']}"
    host.run("systemctl stop %s", RESOLVER)
    since = time.time()
    try:
        submit(appliance, recipient, token)
        deferred = wait_for_outcome(host, since, recipient)
        held = stored_everywhere(carriers.values(), token)
    finally:
        started = host.run("systemctl start %s", RESOLVER)
    assert started.rc == 0, started.stderr
    flushed = time.time()
    host.run("postqueue -f")
    stored = wait_for_stored(list(carriers.values()), token)
    again = [line for line in postfix_log(host, flushed)
             if line.text.startswith(f"{deferred['qid']}: to=<") and "status=sent" in line.text]
    figures.report("MTA-STS: the resolver stopped, then started again",
                   [deferred.string] + [str(line) for line in again[:1]] +
                   [f"stored at {stored[0].carrier} {stored[0].mtime - flushed:.1f} s after the flush" if stored
                    else "not stored"])
    assert deferred["status"] == "deferred" and deferred["dsn"].startswith("4."), deferred.string
    assert not held, f"delivered while the resolver was down: {held}"
    assert [s.carrier for s in stored] == [mx_carrier(carriers, ENFORCED).name], f"after the restart: {stored}"
    assert "with ESMTPS" in stored[0].received, stored[0].received
