"""The site model: load a site file (site.yml), check every rule of the schema and return typed data.

All problems in a file are collected and reported together, one line each, in the form
`<file>: <field path>: <what is wrong>; <what is allowed or how to fix it>`.

The data classes, defaults and ranges live in `model`, the rules for single values in `values`, reading a
file in `load` and the checks, one module per section, in `checks`; this package exports what the rest of
mailappliance uses.
"""

from __future__ import annotations

from mailappliance.site.load import load_site, parse_site, resolve_site_file
from mailappliance.site.model import (
    BAN_TIME_RANGE,
    CATCH_ALL_DOMAINS,
    CLAMAV_DATABASE_EXTENSIONS,
    CONNECTIONS,
    DEFAULT_BAN_TIME,
    DEFAULT_DKIM_SELECTOR,
    DEFAULT_DMARC_POLICY,
    DEFAULT_DNS_TTL,
    DEFAULT_FIND_TIME,
    DEFAULT_MAX_FAILURES,
    DEFAULT_MESSAGE_SIZE_LIMIT,
    DEFAULT_MTA_STS_MAX_AGE,
    DEFAULT_MTA_STS_MODE,
    DEFAULT_QUOTA,
    DEFAULT_SPAM_ADD_HEADER,
    DEFAULT_SPAM_REJECT,
    DMARC_POLICIES,
    DNS_TTL_RANGE,
    FIND_TIME_RANGE,
    IMPLICIT_LOCAL_PARTS,
    IMPLICIT_TLS_PORT,
    MAX_FAILURES_RANGE,
    MAX_NETWORKS,
    MESSAGE_SIZE_LIMIT_RANGE,
    MTA_STS_MAX_AGE_RANGE,
    MTA_STS_MODES,
    QUOTA_RANGE,
    SPAM_SCORE_MAX,
    TLS_SOURCES,
    Account,
    Alias,
    Antivirus,
    Archive,
    Carrier,
    CarrierLimits,
    Channel,
    Dns,
    Domain,
    Host,
    LoginProtection,
    Mailbox,
    Outbound,
    RetentionRule,
    Route,
    Site,
    Spam,
    Tls,
)
from mailappliance.site.values import (
    is_container_name,
    is_domain_name,
    is_email_address,
    is_host_address,
    is_mirror_url,
    is_site_name,
    show_value,
    size_to_bytes,
)

__all__ = [
    "BAN_TIME_RANGE", "CATCH_ALL_DOMAINS", "CLAMAV_DATABASE_EXTENSIONS", "CONNECTIONS", "DEFAULT_BAN_TIME",
    "DEFAULT_DKIM_SELECTOR", "DEFAULT_DMARC_POLICY", "DEFAULT_DNS_TTL", "DEFAULT_FIND_TIME", "DEFAULT_MAX_FAILURES",
    "DEFAULT_MESSAGE_SIZE_LIMIT", "DEFAULT_MTA_STS_MAX_AGE", "DEFAULT_MTA_STS_MODE", "DEFAULT_QUOTA",
    "DEFAULT_SPAM_ADD_HEADER", "DEFAULT_SPAM_REJECT", "DMARC_POLICIES", "DNS_TTL_RANGE", "FIND_TIME_RANGE",
    "IMPLICIT_LOCAL_PARTS", "IMPLICIT_TLS_PORT", "MAX_FAILURES_RANGE", "MAX_NETWORKS", "MESSAGE_SIZE_LIMIT_RANGE",
    "MTA_STS_MAX_AGE_RANGE", "MTA_STS_MODES", "QUOTA_RANGE", "SPAM_SCORE_MAX", "TLS_SOURCES",
    "Account", "Alias", "Antivirus", "Archive", "Carrier", "CarrierLimits", "Channel", "Dns", "Domain", "Host",
    "LoginProtection", "Mailbox", "Outbound", "RetentionRule", "Route", "Site", "Spam", "Tls",
    "is_container_name", "is_domain_name", "is_email_address", "is_host_address", "is_mirror_url", "is_site_name",
    "show_value", "size_to_bytes",
    "load_site", "parse_site", "resolve_site_file",
]
