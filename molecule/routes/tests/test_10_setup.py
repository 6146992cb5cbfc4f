"""What every other check stands on: the appliance finds each carrier by name through its own resolver and trusts
its certificate for that name, the orders channel is a Postfix instance of its own, and its submission port
takes passwords only after STARTTLS."""

from __future__ import annotations

import pytest

from mailprobe import ehlo_keywords

from conftest import ORDERS_PORT

# Runs on the appliance with its own python3: STARTTLS to a carrier, checked against the system's trust store
# and the carrier's name, as Postfix's smtp client with `tls: verify` does.
VERIFY_SCRIPT = """
import smtplib, ssl, sys
name, port = sys.argv[1], int(sys.argv[2])
client = smtplib.SMTP(name, port, local_hostname="mail.routes.test", timeout=20)
client.starttls(context=ssl.create_default_context())
print(client.sock.getpeercert()["subject"])
client.quit()
"""


@pytest.mark.parametrize("carrier_name", ["isp1", "isp2", "overseas"])
def test_the_appliance_resolves_each_carrier_through_unbound(host, carriers, carrier_name):
    carrier = carriers[carrier_name]
    assert host.file("/etc/resolv.conf").contains(r"^nameserver 127\."), host.file("/etc/resolv.conf").content_string
    out = host.run("getent ahostsv4 %s", carrier.container)
    assert out.rc == 0 and carrier.ip in out.stdout.split(), f"{carrier.container}: {out.stdout}{out.stderr}"


@pytest.mark.parametrize("carrier_name", ["isp1", "isp2", "overseas"])
def test_the_appliance_trusts_each_carriers_certificate_for_its_name(host, carriers, carrier_name):
    carrier = carriers[carrier_name]
    out = host.run("python3 -c %s %s 587", VERIFY_SCRIPT, carrier.container)
    assert out.rc == 0, f"STARTTLS to {carrier.container}:587 from the appliance: {out.stderr}"


def test_the_orders_channel_is_a_postfix_instance_of_its_own(host):
    out = host.run("postmulti -l")
    assert out.rc == 0, out.stderr
    instances = {fields[0]: fields for fields in (line.split() for line in out.stdout.splitlines()) if fields}
    assert "postfix-orders" in instances, f"no postfix-orders instance:\n{out.stdout}"
    # postmulti -l: name, group, enabled, config_directory
    assert instances["postfix-orders"][2] == "y", f"postfix-orders is not enabled:\n{out.stdout}"
    status = host.run("postmulti -i postfix-orders -p status")
    assert status.rc == 0, f"postfix-orders is not running: {status.stdout}{status.stderr}"


def test_the_orders_submission_port_offers_auth_only_after_starttls(appliance):
    plain = ehlo_keywords(appliance.ip, ORDERS_PORT)
    assert "starttls" in plain, f"port {ORDERS_PORT} offers no STARTTLS: {plain}"
    assert "auth" not in plain, f"port {ORDERS_PORT} offers AUTH in clear text: {plain['auth']}"
    encrypted = ehlo_keywords(appliance.ip, ORDERS_PORT, starttls=True)
    assert "auth" in encrypted, f"port {ORDERS_PORT} offers no AUTH after STARTTLS: {encrypted}"
