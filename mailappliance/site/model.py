"""The site model: the data a validated site file yields, and the defaults and allowed ranges of its values."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# Signature and whitelist formats clamd loads from its database folder (see sigtool(1) and the ClamAV
# signature writing guide); anything else copied there is ignored by clamd or breaks its reload. The one
# list: the audit hands it to playbooks/audit.yml to find the databases on the host.
CLAMAV_DATABASE_EXTENSIONS = (
    ".cat", ".cdb", ".cld", ".crb", ".cud", ".cvd", ".fp", ".ftm", ".gdb", ".hdb", ".hdu", ".hsb",
    ".hsu", ".idb", ".ign", ".ign2", ".imp", ".ldb", ".ldu", ".mdb", ".mdu", ".msb", ".msu", ".ndb",
    ".ndu", ".pdb", ".pwdb", ".sfp", ".wdb", ".yar", ".yara",
)

# postmaster@ and abuse@ of every domain go to admin_contact unless the site defines them.
IMPLICIT_LOCAL_PARTS = ("postmaster", "abuse")

DEFAULT_DKIM_SELECTOR = "mail"
DEFAULT_QUOTA = "1G"
DEFAULT_MESSAGE_SIZE_LIMIT = "25M"
DEFAULT_SPAM_ADD_HEADER = 6.0
DEFAULT_SPAM_REJECT = 15.0
# Postfix takes any long as message_size_limit, but the clamav role lets clamd scan up to eight times the
# limit (a message with its unpacked archives, roles/clamav/defaults/main.yml) and clamd refuses limits of
# 4 GiB and more, so 511M is the largest limit every service honours; below 1M mail with a single photo
# bounces.
MESSAGE_SIZE_LIMIT_RANGE = ("1M", "511M")
# Dovecot keeps quotas as signed 64-bit byte counts (8 EiB); 1024T is far inside that and beyond any disk,
# so anything larger is a typo. Below 1M a mailbox cannot take one ordinary message.
QUOTA_RANGE = ("1M", "1024T")
# Rspamd's rules add up to a few dozen points; a threshold above 1000 is a typo, and .nan or .inf would
# never (or always) match.
SPAM_SCORE_MAX = 1000.0
CONNECTIONS = ("ssh", "podman")
TLS_SOURCES = ("self-signed", "provided")
DEFAULT_DNS_TTL = 3600
DNS_TTL_RANGE = (60, 604800)
DMARC_POLICIES = ("quarantine", "reject")
DEFAULT_DMARC_POLICY = "quarantine"
MTA_STS_MODES = ("enforce", "testing")
DEFAULT_MTA_STS_MODE = "enforce"
DEFAULT_MTA_STS_MAX_AGE = 604800
# RFC 8461 section 3.2 caps max_age at 31557600 s (about a year); under a day senders refetch the
# policy so often that it protects little between fetches.
MTA_STS_MAX_AGE_RANGE = (86400, 31557600)

# Password guessing (fail2ban): failures per source address within find_time get it blocked for ban_time.
DEFAULT_MAX_FAILURES = 5
MAX_FAILURES_RANGE = (1, 100)
DEFAULT_FIND_TIME = 600
FIND_TIME_RANGE = (60, 86400)
DEFAULT_BAN_TIME = 3600
# At least a few seconds, so a ban is ever seen; at most a year.
BAN_TIME_RANGE = (10, 31536000)
# Networks listed in allow lists and trusted relays: enough for a site's real neighbours, small enough to read.
MAX_NETWORKS = 64

# Outbound mail (the outbound: section). Without it the appliance sends as before: the staff channel (Postfix's
# own instance: port 25, and submission on 587 and 465) delivers straight to the recipients' MX.
DIRECT_CARRIER = "direct"
STAFF_CHANNEL = "staff"
CARRIER_TYPES = ("direct", "relay")
# verify: STARTTLS (implicit TLS on port 465) with the relay's certificate checked against its host name;
# encrypt: TLS required, certificate not checked. Nothing weaker: a relay always gets TLS, and SASL passwords
# never cross the network in clear.
RELAY_TLS_MODES = ("verify", "encrypt")
DEFAULT_RELAY_TLS = "verify"
# The submission port (RFC 6409), where ISPs' outbound relays take authenticated clients.
DEFAULT_RELAY_PORT = 587
# Port 465 is submission over implicit TLS (RFC 8314); every other relay port speaks STARTTLS.
IMPLICIT_TLS_PORT = 465
# The recipient domain the transport map falls back to when no other pattern matches.
CATCH_ALL_DOMAINS = "*"
# Postfix's default_destination_concurrency_limit; 100 parallel connections to one destination is beyond what
# any receiver accepts from one sender.
DEFAULT_CONCURRENCY_PER_DESTINATION = 20
CONCURRENCY_PER_DESTINATION_RANGE = (1, 100)
# Up to 1,000 messages a second to one destination, three times the peak of 350 for the whole appliance.
# Postfix spaces deliveries to one destination by whole seconds (and then one at a time), so at most 60 a minute
# can be asked for; faster carriers are limited by concurrency_per_destination.
MESSAGES_PER_MINUTE_RANGE = (1, 60)
# Postfix's default_process_limit, per dedicated channel (each is a Postfix instance of its own).
DEFAULT_CHANNEL_PROCESS_LIMIT = 100
CHANNEL_PROCESS_LIMIT_RANGE = (1, 1000)
# Dedicated channels listen above the privileged ports, beside the appliance's own listeners.
SUBMISSION_PORT_RANGE = (1024, 65535)
# The 10 million messages a day one appliance is built for.
DAILY_QUOTA_RANGE = (1, 10_000_000)
RATE_PER_MINUTE_RANGE = (1, 60000)
# Ports the appliance itself listens on, so no channel may take them: the roles' defaults (postfix, dovecot,
# nginx, unbound, rspamd, redis, clamav; tests/test_site_outbound.py keeps this in step with them) and SSH.
APPLIANCE_PORTS = {
    22: "SSH", 25: "SMTP", 53: "the resolver (Unbound)", 143: "IMAP", 443: "HTTPS (MTA-STS)",
    465: "staff submission (implicit TLS)", 587: "staff submission", 993: "IMAPS", 995: "POP3S",
    3310: "clamd", 4190: "ManageSieve", 6379: "Redis", 11332: "the Rspamd milter", 11333: "Rspamd",
    11334: "Rspamd's controller", 12340: "Dovecot's quota-status service", 10026: "the channels' hand-over to staff",
    8461: "the MTA-STS resolver", 11340: "the archive's journaling milter",
}
# Each channel is a Postfix instance, each carrier a transport of every instance; bounded to what one host runs.
MAX_CARRIERS = 32
MAX_CHANNELS = 16
MAX_ACCOUNTS = 1000
MAX_ROUTES = 256
MAX_ROUTE_CARRIERS = 8
MAX_SENDERS = 256
# SPF mechanisms one relay carrier adds to the records of the domains it sends for; providers document one include:
# or a few networks.
MAX_SPF_MECHANISMS = 10
# A domain list file (file: entries of routes): a few thousand names is a large "overseas" set; 1 MiB holds
# tens of thousands.
MAX_DOMAIN_LIST_BYTES = 1024**2

# The compliance archive (the archive: section): every message journaled into a store on the host. Without the
# section nothing is archived.
DEFAULT_ARCHIVE_STORE = "/var/lib/mailappliance/archive"
# defer: new mail gets 4xx while the store cannot take it; queue: it is accepted and kept in a local spool until
# the store takes it again (the audit warns).
ARCHIVE_ON_FAILURE = ("defer", "queue")
DEFAULT_ARCHIVE_ON_FAILURE = "defer"
# inbound: from outside to the site; outbound: from the site to outside; internal: between the site's own
# addresses; local: sent by the host itself (cron, bounces).
ARCHIVE_DIRECTIONS = ("inbound", "outbound", "internal", "local")
# Seven years (7 * 365 + 2 leap days), what SOX-style rules ask for; up to a century.
DEFAULT_RETENTION_DAYS = 2557
RETENTION_DAYS_RANGE = (1, 36500)
COLD_AFTER_DAYS_RANGE = (1, 36500)
# How often the log head is signed: a tampered log is provable from the next checkpoint on; at least daily.
DEFAULT_CHECKPOINT_MINUTES = 60
CHECKPOINT_MINUTES_RANGE = (1, 1440)
MAX_RETENTION_RULES = 256
MAX_RETENTION_DOMAINS = 256
# Folders an archive store may be neither in nor above, each with what it is; "*" ends a name prefix
# (/var/spool/postfix-orders is a channel's queue). The role gives the store's folder its own owner and mode, and
# these belong to other software, or systemd empties them, or they are links into /usr or /run.
ARCHIVE_RESERVED_PATHS = {
    "/var/spool/postfix*": "a Postfix queue folder",
    "/var/lib/postfix*": "a Postfix data folder",
    "/var/vmail": "the mailboxes' folder",
    "/boot": "the folder of the boot loader and kernels",
    "/dev": "the folder of device files",
    "/etc": "the folder of the system's configuration",
    "/proc": "a kernel file system",
    "/sys": "a kernel file system",
    "/run": "a file system in memory, emptied at boot",
    "/var/run": "a link to /run, emptied at boot",
    "/var/lock": "a link into /run, emptied at boot",
    "/tmp": "the folder of temporary files, emptied at boot",
    "/var/tmp": "the folder of temporary files, which systemd-tmpfiles removes after 30 days",
    "/usr": "the folder of the installed software",
    "/bin": "a link into /usr, the installed software",
    "/sbin": "a link into /usr, the installed software",
    "/lib": "a link into /usr, the installed software",
    "/lib32": "a link into /usr, the installed software",
    "/lib64": "a link into /usr, the installed software",
    "/libx32": "a link into /usr, the installed software",
}
# Folders other software shares: a store may be below them, never one of them.
ARCHIVE_SHARED_FOLDERS = ("/home", "/media", "/opt", "/root", "/srv", "/var/backups", "/var/cache", "/var/local",
                          "/var/log", "/var/mail", "/var/opt")


@dataclass(frozen=True)
class Host:
    """How Ansible reaches the appliance: over SSH, or into a local Podman container by name."""

    address: str
    user: str = "root"
    port: int = 22
    connection: str = "ssh"


@dataclass(frozen=True)
class Domain:
    name: str
    dkim_selector: str = DEFAULT_DKIM_SELECTOR


@dataclass(frozen=True)
class Mailbox:
    address: str
    quota: str
    quota_bytes: int
    name: str = ""


@dataclass(frozen=True)
class Alias:
    address: str
    to: tuple[str, ...]

    @property
    def is_catch_all(self) -> bool:
        return self.address.startswith("@")


@dataclass(frozen=True)
class Tls:
    source: str = "self-signed"
    cert: Path | None = None
    key: Path | None = None


@dataclass(frozen=True)
class Spam:
    add_header: float = DEFAULT_SPAM_ADD_HEADER
    reject: float = DEFAULT_SPAM_REJECT
    # Checks that ask services on the internet (DNS blocklists, Rspamd's fuzzy storage and map server);
    # air-gapped sites turn them off.
    network_checks: bool = True


@dataclass(frozen=True)
class Antivirus:
    mirror_url: str = ""
    local_databases: tuple[Path, ...] = ()


@dataclass(frozen=True)
class Dns:
    """What `mailappliance dns` publishes; defaults are filled in from the rest of the site when loaded."""

    ttl: int = DEFAULT_DNS_TTL
    dmarc_policy: str = DEFAULT_DMARC_POLICY
    # Receive DMARC aggregate and TLS-RPT reports; both default to admin_contact.
    dmarc_rua: str = ""
    tlsrpt_rua: str = ""
    mta_sts_mode: str = DEFAULT_MTA_STS_MODE
    mta_sts_max_age: int = DEFAULT_MTA_STS_MAX_AGE
    # The appliance's public addresses; "" when unknown. ipv4/ipv6 default to host.address when it is an IP.
    ipv4: str = ""
    ipv6: str = ""
    # The appliance's own resolver (Unbound): the resolvers it forwards every query to, or () to resolve from the
    # root servers itself; whether it validates DNSSEC; and whether it may reach no resolver beyond these at all.
    resolvers: tuple[str, ...] = ()
    dnssec_validation: bool = True
    air_gapped: bool = False


@dataclass(frozen=True)
class LoginProtection:
    """Blocking of password guessers per source address, on every port that takes a password."""

    max_failures: int = DEFAULT_MAX_FAILURES
    find_time: int = DEFAULT_FIND_TIME
    ban_time: int = DEFAULT_BAN_TIME
    # Networks never blocked: monitoring hosts, an office's NAT address.
    allow: tuple[str, ...] = ()


@dataclass(frozen=True)
class CarrierLimits:
    """How hard one carrier pushes: connections and deliveries per minute to one destination (the relay itself
    for a relay carrier, each recipient domain for a direct one). 0 messages a minute: no limit."""

    concurrency_per_destination: int = DEFAULT_CONCURRENCY_PER_DESTINATION
    messages_per_minute: int = 0


@dataclass(frozen=True)
class Carrier:
    """A way out: direct MX delivery, or a relay (host, port, TLS, optional SASL login whose password the vault
    keeps, and the SPF mechanisms that authorize its sending hosts). Empty text and 0 mean "not used by this type"
    (host, port, tls, username of a direct carrier) or "the system's choice" (source_address); spf is None when the
    site file does not say, () when the relay needs nothing in the site's SPF records."""

    name: str
    type: str = DIRECT_CARRIER
    host: str = ""
    port: int = 0
    tls: str = ""
    username: str = ""
    source_address: str = ""
    helo_name: str = ""
    limits: CarrierLimits = CarrierLimits()
    spf: tuple[str, ...] | None = None
    # A direct carrier only: deliver to recipient domains with an MTA-STS policy (RFC 8461) as the policy demands.
    mta_sts: bool = False


@dataclass(frozen=True)
class Route:
    """Recipient domains (names, "*.parent" for every subdomain of parent, "*" for all) of the listed channels,
    and the carriers that take them: the first while it works, then the next. The first route that matches a
    message wins; the validation makes sure no later route is hidden by an earlier one."""

    domains: tuple[str, ...]
    channels: tuple[str, ...]
    carriers: tuple[str, ...]


@dataclass(frozen=True)
class Channel:
    """A dedicated sending channel: a Postfix instance with its own queue and submission port, signing with its
    own DKIM selector and taking its bounces (VERP) at bounce_domain."""

    name: str
    dkim_selector: str
    signing_domain: str
    bounce_domain: str
    submission_port: int
    process_limit: int = DEFAULT_CHANNEL_PROCESS_LIMIT


@dataclass(frozen=True)
class Account:
    """A sending account of a department or application: it logs in on its channel's submission port with its
    name and a generated password, and may send as its senders (addresses, or @domain for a whole domain)."""

    name: str
    channel: str
    senders: tuple[str, ...]
    daily_quota: int
    rate_per_minute: int


@dataclass(frozen=True)
class Outbound:
    """How mail leaves: every carrier (the built-in direct one included), the routes in order (ending with the
    implied catch-all), the dedicated channels (staff, the appliance's own path, is implicit) and the accounts."""

    carriers: tuple[Carrier, ...]
    routes: tuple[Route, ...]
    channels: tuple[Channel, ...] = ()
    accounts: tuple[Account, ...] = ()


@dataclass(frozen=True)
class RetentionRule:
    """How many days messages are kept: those with a sender or recipient in one of domains (names, "*.parent" for
    every name below parent) and of the given direction; no domains means any domain, "" any direction. The first
    rule that matches a message wins; the validation makes sure no rule is hidden by an earlier one."""

    days: int
    direction: str = ""
    domains: tuple[str, ...] = ()

    @property
    def is_catch_all(self) -> bool:
        return not self.domains and not self.direction


@dataclass(frozen=True)
class Archive:
    """The compliance archive: the hot store and the optional cold one (absolute host paths; "" and 0 days for no
    cold store), what happens to new mail when the store cannot take it, the retention rules in order (ending with a
    catch-all, the default one unless the file ends with its own) and how often the log head is signed."""

    store: str = DEFAULT_ARCHIVE_STORE
    cold_store: str = ""
    cold_after_days: int = 0
    on_failure: str = DEFAULT_ARCHIVE_ON_FAILURE
    retention: tuple[RetentionRule, ...] = (RetentionRule(days=DEFAULT_RETENTION_DAYS),)
    checkpoint_minutes: int = DEFAULT_CHECKPOINT_MINUTES


@dataclass(frozen=True)
class Site:
    """A validated site; paths are absolute, names and addresses lower case."""

    path: Path
    name: str
    hostname: str
    admin_contact: str
    host: Host
    domains: tuple[Domain, ...]
    mailboxes: tuple[Mailbox, ...]
    aliases: tuple[Alias, ...]
    message_size_limit: str
    message_size_limit_bytes: int
    tls: Tls
    spam: Spam
    antivirus: Antivirus
    dns: Dns = Dns()
    login_protection: LoginProtection = LoginProtection()
    # Networks that may hand in mail on port 25 with a hosted domain as envelope sender (gateways, scanners).
    trusted_relays: tuple[str, ...] = ()
    # None without an outbound: section: the staff channel delivers directly, as before the section existed.
    outbound: Outbound | None = None
    # None without an archive: section: nothing is archived.
    archive: Archive | None = None
