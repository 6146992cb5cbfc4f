"""The MTA-STS policy text of a site (RFC 8461 section 3.2).

One function writes it, for three readers that must agree byte for byte: the inventory hands it to the nginx
role, which serves it; `dns plan` hashes it into the id it publishes; the audit compares what is served with it.
"""

from __future__ import annotations

from mailappliance.site.model import Site


def mta_sts_policy(mode: str, hostname: str, max_age: int) -> str:
    """The policy text; LF line ends, which RFC 8461's ABNF allows."""
    return f"version: STSv1\nmode: {mode}\nmx: {hostname}\nmax_age: {max_age}\n"


def site_mta_sts_policy(site: Site) -> str:
    """The policy text of a site; needs nothing deploy fetched, so it is known before the first deploy."""
    return mta_sts_policy(site.dns.mta_sts_mode, site.hostname, site.dns.mta_sts_max_age)
