"""Services that listen on loopback only still refuse local users without the password from the vault:
Redis (Rspamd's store) and Rspamd's controller (web UI, learning API)."""

from __future__ import annotations

import pytest

CONTROLLER = "http://127.0.0.1:11334"
# An unprivileged local account: what any local user or compromised service could do.
LOCAL_USER = "nobody"


def controller_status(host, path: str, password: str | None) -> int:
    """The HTTP status of a controller request made on the host as an unprivileged user."""
    script = (
        "import json, sys, urllib.request, urllib.error\n"
        "req = urllib.request.Request(sys.argv[1])\n"
        "if sys.argv[2]: req.add_header('Password', sys.argv[2])\n"
        "try:\n"
        "    print(urllib.request.urlopen(req, timeout=10).status)\n"
        "except urllib.error.HTTPError as err:\n"
        "    print(err.code)\n"
    )
    out = host.run("runuser -u %s -- python3 -c %s %s %s", LOCAL_USER, script, CONTROLLER + path, password or "")
    assert out.rc == 0, f"controller request failed: {out.stderr}"
    return int(out.stdout.strip())


def redis_reply(host, *args: str) -> str:
    out = host.run("runuser -u %s -- redis-cli -h 127.0.0.1 -p 6379 --no-auth-warning " + " ".join(["%s"] * len(args)),
                   LOCAL_USER, *args)
    return (out.stdout + out.stderr).strip()


@pytest.mark.parametrize("path", ["/stat", "/actions", "/learnspam"])
def test_rspamd_controller_refuses_local_users_without_the_password(host, path):
    assert controller_status(host, path, None) in (401, 403)
    assert controller_status(host, path, "not-the-password") in (401, 403)


def test_rspamd_controller_accepts_the_vault_password(host, secrets):
    # Proves the CLI's hash of the password is one Rspamd itself accepts.
    assert controller_status(host, "/stat", secrets["mailappliance__rspamd_controller_password"]) == 200


def test_redis_refuses_commands_without_the_password(host):
    reply = redis_reply(host, "ping")
    assert "NOAUTH" in reply, f"redis answered a local user without a password: {reply}"
    reply = redis_reply(host, "-a", "not-the-password", "ping")
    assert "PONG" not in reply, f"redis took a wrong password: {reply}"


def test_redis_answers_with_the_vault_password(host, secrets):
    assert redis_reply(host, "-a", secrets["mailappliance__redis_password"], "ping") == "PONG"


def test_rspamd_stores_in_redis_with_the_password(host, secrets):
    # The delivery and content-filter tests before this one passed mail through Rspamd, whose history and
    # antivirus cache it can only have written after authenticating.
    keys = redis_reply(host, "-a", secrets["mailappliance__redis_password"], "dbsize")
    assert keys.isdigit() and int(keys) > 0, f"Rspamd has stored nothing in Redis: {keys}"


def test_redis_listens_on_loopback_only(host):
    out = host.run("ss -Hltn 'sport = :6379'")
    listeners = [line.split()[3] for line in out.stdout.splitlines() if line.strip()]
    assert listeners and all(address.startswith(("127.0.0.1:", "[::1]:")) for address in listeners), listeners
