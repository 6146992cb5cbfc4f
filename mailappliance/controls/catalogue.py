"""Every control that `dns check` and the audit judge: stable ID, title, severity, remediation and references.

IDs never change meaning once published, since auditors and CI compare reports by ID across runs.
"""

from __future__ import annotations

from mailappliance.controls.model import Spec

RFC8314 = "RFC 8314 (Cleartext considered obsolete: TLS for email submission and access)"
RFC8996 = "RFC 8996 (Deprecating TLS 1.0 and TLS 1.1)"
RFC7672 = "RFC 7672 (SMTP security via opportunistic DANE TLS)"
RFC3207 = "RFC 3207 (SMTP service extension for secure SMTP over TLS)"
RFC4954 = "RFC 4954 (SMTP service extension for authentication)"
RFC5321 = "RFC 5321 section 3.6 (relaying)"
RFC6376 = "RFC 6376 (DKIM signatures)"
RFC8301 = "RFC 8301 (cryptographic algorithm and key usage update to DKIM)"
RFC8461 = "RFC 8461 (SMTP MTA Strict Transport Security)"
NIST = "NIST SP 800-177 Rev. 1 (Trustworthy email)"
BSI = "BSI TR-03108 (Secure e-mail transport)"
MOZILLA = "Mozilla server-side TLS guidelines (intermediate)"
RFC9989 = "RFC 9989 (DMARC)"
RFC7208 = "RFC 7208 (Sender Policy Framework)"
RFC8460 = "RFC 8460 (SMTP TLS reporting)"
RFC6186 = "RFC 6186 (SRV records for locating email submission and access services)"
RFC8463 = "RFC 8463 (Ed25519 for DKIM)"
RFC7671 = "RFC 7671 (DANE operational guidance)"
RFC5321_MX = "RFC 5321 section 5.1 (locating the target host)"
RFC4033 = "RFC 4033 (DNS security introduction and requirements)"
RFC6840 = "RFC 6840 section 5.7 (DNSSEC: setting the AD bit on queries)"
RFC9110 = "RFC 9110 (HTTP semantics)"
RFC5321_TIMEOUTS = "RFC 5321 section 4.5.3.2 (SMTP timeouts)"
RFC5321_RETRY = "RFC 5321 section 4.5.4.1 (sending strategy: retry for 4-5 days, then give up)"
QSHAPE = "Postfix QSHAPE_README (diagnosing mail queue congestion)"
RFC9525 = "RFC 9525 (Service identity in TLS)"
RFC6409 = "RFC 6409 (Message submission for mail)"
POSTFIX_TLS_README = "Postfix TLS_README (client TLS security levels, per-destination policy)"
POSTFIX_FALLBACK = "Postfix postconf(5) smtp_fallback_relay (fallback relays of a transport)"
POSTFIX_QMGR = "Postfix qmgr(8) (active queue controls: qmgr_message_active_limit)"

# Where a control's evidence comes from; the HTML report groups controls in this order.
DNS, PROBE, HOST, AUDIT = "dns", "probe", "host", "audit"
SOURCES = (DNS, PROBE, HOST, AUDIT)


def section(reference: str, number: str) -> str:
    """A reference narrowed to a section: "RFC 7208 (Sender ...)" -> "RFC 7208 section 4.6.4 (Sender ...)"."""
    name, sep, rest = reference.partition(" (")
    return f"{name} section {number}{sep}{rest}"

# Per-port TLS controls; {port} is the port number.
TLS_PROTOCOLS = Spec(
    "TLS-{port}-PROTOCOLS", "Port {port} refuses TLS 1.0 and 1.1 and accepts TLS 1.2 or newer", "high",
    "Allow only TLS 1.2 and 1.3 (Postfix smtpd_tls_protocols and smtpd_tls_mandatory_protocols = >=TLSv1.2; "
    "Dovecot ssl_min_protocol = TLSv1.2), then redeploy with `mailappliance deploy SITE`.",
    (RFC8996, RFC8314, BSI, MOZILLA, NIST), PROBE)
# The same control on the web port (443, the MTA-STS policy host), where nginx speaks TLS.
TLS_PROTOCOLS_WEB_REMEDIATION = (
    "Allow only TLS 1.2 and 1.3 in nginx (ssl_protocols TLSv1.2 TLSv1.3), then redeploy with "
    "`mailappliance deploy SITE`.")
TLS_CERT_CHAIN = Spec(
    "TLS-{port}-CERT-CHAIN", "Port {port} presents a certificate chain clients can verify", "medium",
    "Use a certificate from a publicly trusted CA (tls.source: provided, with the full chain in tls.cert) "
    "and redeploy.", (RFC8314, RFC7672, BSI, NIST), PROBE)
TLS_CERT_EXPIRY = Spec(
    "TLS-{port}-CERT-EXPIRY", "Port {port}'s certificate is valid for at least 30 more days", "high",
    "Renew the certificate, put it in the site's tls.cert and tls.key and redeploy.", (RFC8314, BSI, NIST), PROBE)
TLS_CERT_NAME = Spec(
    "TLS-{port}-CERT-NAME", "Port {port}'s certificate names the site's host name", "high",
    "Issue the certificate for the site's hostname (subjectAltName DNS entry) and redeploy.",
    (RFC8314, RFC8461, RFC7672, NIST), PROBE)
TLS_PORT_SPECS = (TLS_PROTOCOLS, TLS_CERT_CHAIN, TLS_CERT_EXPIRY, TLS_CERT_NAME)

SMTP_25_STARTTLS = Spec(
    "SMTP-25-STARTTLS", "Port 25 offers STARTTLS", "high",
    "Enable STARTTLS for incoming mail (Postfix smtpd_tls_security_level = may) and redeploy.",
    (RFC3207, RFC7672, RFC8461, BSI, NIST), PROBE)
SMTP_587_STARTTLS = Spec(
    "SMTP-587-STARTTLS", "Port 587 (submission) offers STARTTLS", "high",
    "Require TLS on submission (master.cf submission -o smtpd_tls_security_level=encrypt) and redeploy.",
    (RFC8314, RFC3207, BSI), PROBE)
SMTP_25_NO_AUTH = Spec(
    "SMTP-25-NO-AUTH", "Port 25 offers no AUTH, before or after STARTTLS", "medium",
    "Keep SASL off for port 25 (main.cf smtpd_sasl_auth_enable = no); users submit on 465 or 587.",
    (RFC8314, RFC4954, BSI), PROBE)
SMTP_587_NO_AUTH_BEFORE_TLS = Spec(
    "SMTP-587-NO-AUTH-BEFORE-TLS", "Port 587 offers AUTH only after STARTTLS", "critical",
    "Set smtpd_tls_auth_only = yes for the submission service so passwords never cross the network in clear.",
    (RFC8314, RFC4954, BSI, NIST), PROBE)
SMTP_OPEN_RELAY = Spec(
    "SMTP-OPEN-RELAY", "Mail from outside to another outside domain is refused (no open relay)", "critical",
    "Relay only for authenticated users and the host itself: smtpd_relay_restrictions = permit_mynetworks, "
    "permit_sasl_authenticated, reject_unauth_destination with mynetworks = loopback; redeploy.",
    (RFC5321, NIST, BSI), PROBE)
SMTP_BANNER = Spec(
    "SMTP-BANNER", "The SMTP banner names no software or version", "low",
    "Set smtpd_banner = $myhostname ESMTP.", (BSI,), PROBE)
IMAP_GREETING = Spec(
    "IMAP-GREETING", "The IMAP greeting names no software or version", "low",
    "Set Dovecot's login_greeting to the host name only.", (BSI,), PROBE)

POSTFIX_RELAY = Spec(
    "POSTFIX-RELAY", "Postfix relays only for loopback and authenticated users", "critical",
    "Restore mynetworks to loopback and smtpd_relay_restrictions to permit_mynetworks, "
    "permit_sasl_authenticated, reject_unauth_destination: `mailappliance deploy SITE`.",
    (RFC5321, NIST, BSI), HOST)
POSTFIX_TLS_PROTOCOLS = Spec(
    "POSTFIX-TLS-PROTOCOLS", "Postfix is configured for TLS 1.2 or newer only", "high",
    "Set smtpd_tls_protocols and smtpd_tls_mandatory_protocols to >=TLSv1.2 (redeploy restores them).",
    (RFC8996, BSI, MOZILLA), HOST)
POSTFIX_TLS_CIPHERS = Spec(
    "POSTFIX-TLS-CIPHERS", "Postfix uses the high cipher grade", "medium",
    "Set smtpd_tls_ciphers and smtpd_tls_mandatory_ciphers to high (redeploy restores them).",
    (BSI, MOZILLA, NIST), HOST)
POSTFIX_AUTH = Spec(
    "POSTFIX-AUTH", "Postfix offers SASL only on submission, and only over TLS", "high",
    "main.cf: smtpd_sasl_auth_enable = no, smtpd_tls_auth_only = yes; submission services enable SASL with "
    "smtpd_tls_security_level=encrypt (redeploy restores them).", (RFC8314, RFC4954, BSI), HOST)
POSTFIX_MILTER_TEMPFAIL = Spec(
    "POSTFIX-MILTER-TEMPFAIL", "A failing content filter defers mail instead of passing it unfiltered",
    "high", "Set milter_default_action = tempfail (redeploy restores it).", (NIST,), HOST)
POSTFIX_SMUGGLING = Spec(
    "POSTFIX-SMUGGLING", "Port 25 ends DATA only on CRLF.CRLF, so no second message can be smuggled in",
    "medium", "Set smtpd_forbid_bare_newline = normalize and smtpd_forbid_bare_newline_exclusions = $mynetworks "
    "(redeploy restores them).", ("CVE-2023-51764 (SMTP smuggling)", "RFC 5321 section 4.1.1.4 (DATA)"), HOST)
POSTFIX_QUEUE_AGE = Spec(
    "POSTFIX-QUEUE-AGE", "No mail lingers in a Postfix queue (maildrop, incoming, active: warn after 30 min, fail "
    "after 2 h; deferred: warn after 1 day, fail after 4; hold: warn after 1 day)", "medium",
    "Mail leaves maildrop, incoming and active within seconds, so one old message there means a stuck queue "
    "manager, pickup or delivery agent: check `postqueue -p`, `journalctl -u postfix@-` and HOST-SERVICES. "
    "Deferred mail is retried for maximal_queue_lifetime (5 days on Debian) and then bounced, so after 4 days "
    "the sender is about to lose it: read the delay reason (`postcat -q ID`) and fix the route, DNS or "
    "destination. Held mail waits for an administrator: `postsuper -H ID` releases it, `postsuper -d ID` "
    "drops it.", (RFC5321_RETRY, QSHAPE), HOST)
# Outbound mail (the site file's outbound: section); a site without one gets not-applicable.
OUTBOUND_RELAY_TLS = Spec(
    "OUTBOUND-RELAY-TLS", "Every relay carrier is reached over TLS with its certificate verified (encrypt: warn)",
    "high",
    "Each Postfix instance (staff and every channel) looks up the relay's next hop in its smtp_tls_policy_maps: "
    "verify checks the relay's certificate against its name (secure, dane-only and fingerprint authenticate it too); "
    "encrypt requires TLS but accepts any certificate, so whoever can redirect the connection reads the mail and "
    "the relay login; anything weaker, or a relay missing from the table (then smtp_tls_security_level applies: "
    "may, or dane, which is no more than may for a relay without TLSA records), can send both in clear. Set the "
    "carrier's tls: verify in the site file (the default; encrypt only for a relay known by IP address) and "
    "redeploy (`mailappliance deploy SITE`), which also restores a table that differs from the site.",
    (RFC3207, RFC8314, RFC9525, POSTFIX_TLS_README, NIST, BSI), HOST)
OUTBOUND_ROUTE_FALLBACK = Spec(
    "OUTBOUND-ROUTE-FALLBACK", "Every route of a dedicated channel has a fallback carrier (one carrier only: warn)",
    "medium",
    "A route's carriers are tried in turn: its transport has the primary as next hop and the others as "
    "smtp_fallback_relay, which Postfix uses when the primary refuses, stays silent or answers 4xx. A route with "
    "one carrier only warns: nothing is lost while that carrier is down, since Postfix keeps the mail deferred "
    "and retries it for maximal_queue_lifetime (5 days), but the channel's mail waits until the carrier is back "
    "(OUTBOUND-CHANNEL-QUEUES shows the backlog); give the route a second carrier in the site file "
    "(outbound.routes[].carriers, which also ends the implied \"*\" -> direct route of a channel without a "
    "\"*\" route of its own). It fails when the channel's Postfix instance does not do what the site asks: the "
    "instance is missing, or no transport of its transport table sends to the route's primary with the route's "
    "fallbacks in order. Redeploy (`mailappliance deploy SITE`).",
    (POSTFIX_FALLBACK, RFC5321_RETRY), HOST)
OUTBOUND_ACCOUNT_LIMITS = Spec(
    "OUTBOUND-ACCOUNT-LIMITS", "Every sending account has the site's daily quota and rate, and its channel "
    "enforces them", "high",
    "An account's limits are what stops a leaked password or a runaway application from sending without end in "
    "the site's name until its addresses are blocklisted. The policy service counts each account against the "
    "limits in the accounts file its systemd unit names (--accounts); each channel's submission listener asks it "
    "at the end of every message (smtpd_end_of_data_restrictions = check_policy_service ...). Every account of "
    "the site must be in that file with its channel, a positive daily_quota and rate_per_minute equal to the "
    "site's, the policy socket must be active, and each channel with accounts must ask the service. Redeploy "
    "(`mailappliance deploy SITE`) to restore the file, the socket and the listener; `systemctl status "
    "mailappliance-account-policy.socket` and its journal say why it stopped.",
    (RFC6409, NIST), HOST)
OUTBOUND_CHANNEL_QUEUES = Spec(
    "OUTBOUND-CHANNEL-QUEUES", "No channel's queue is backed up (deferred messages: warn over a quarter of "
    "qmgr_message_active_limit, fail over it; a dedicated channel's queue ages as in POSTFIX-QUEUE-AGE)", "medium",
    "Every Postfix instance that sends through the routes (staff and each dedicated channel) retries deferred mail "
    "through its active queue, which holds at most qmgr_message_active_limit messages (20,000 by default). More "
    "deferred mail than that cannot be retried in one pass and new mail waits behind it; a quarter of it means a "
    "carrier or many destinations refuse mail. The ages of a dedicated channel's queues are judged as the staff "
    "instance's are by POSTFIX-QUEUE-AGE (which keeps judging the staff ones). See what is waiting and why with "
    "`postqueue -c /etc/postfix-CHANNEL -p` (or `postmulti -i postfix-CHANNEL -x postqueue -p`) and `qshape -c "
    "/etc/postfix-CHANNEL deferred`; check the route's carriers (OUTBOUND-ROUTE-FALLBACK) and the channel's "
    "`journalctl -u postfix@postfix-CHANNEL`. A channel that is down makes this an error.",
    (QSHAPE, POSTFIX_QMGR, RFC5321_RETRY), HOST)
# The compliance archive (the site file's archive: section); a site without one gets not-applicable.
ARCHIVE_COVERAGE = Spec(
    "ARCHIVE-COVERAGE", "Every message Postfix accepted in the last 24 hours is in the archive, once", "critical",
    "The archive's promise is that Postfix answers 250 only to a message already written to the store (the "
    "journaling milter at the end of DATA). The audit reconciles the mail log of every Postfix instance (the qmgr "
    "line that accepts each queue id) with the archive's records: a message missing means mail was accepted "
    "without being journaled (a Postfix instance without the archive milter in smtpd_milters or with "
    "milter_default_action = accept: redeploy), a message twice means the store was written twice for one queue "
    "id. `mailappliance-archive reconcile --log FILE --since ... --until ...` lists every id. With archive: "
    "on_failure: queue the site accepts mail the store cannot take and keeps it in the spool until it can: that "
    "warns, and messages waiting in the spool fail once they are older than an hour (the store is full, "
    "unmounted or the archiver is down: ARCHIVE-SPACE, `systemctl status mailappliance-archive`).",
    ("SEC Rule 17a-4(f) (electronic storage of broker-dealer records)", NIST), HOST)
ARCHIVE_INTEGRITY = Spec(
    "ARCHIVE-INTEGRITY", "The archive's log chain, its signed checkpoints and every stored message verify",
    "critical",
    "`mailappliance-archive verify` recomputes the hash chain of the append-only log, checks every checkpoint's "
    "Ed25519 signature with the site's public key (from the vault, never the store's own copy) and reads back "
    "and hashes every stored message, hot and in cold packs. A problem names the log entry, checkpoint or "
    "message: restore that message or the store from a backup and keep the verify output as evidence of what "
    "happened (the log records it; nothing can repair the chain silently). A last checkpoint older than two "
    "checkpoint periods while entries came after it warns: check mailappliance-archive-checkpoint.timer. The "
    "signing key is on the host, so root there could rewrite and re-sign the log: keep this report, whose "
    "evidence names the last checkpoint as SEQ:HASH; the next audit holds the log to it, and `mailappliance-archive "
    "verify --anchor SEQ:HASH` does so with the anchor of any earlier report.",
    ("SEC Rule 17a-4(f) (electronic storage of broker-dealer records)", "RFC 8032 (EdDSA: Ed25519)"), HOST)
ARCHIVE_RETENTION = Spec(
    "ARCHIVE-RETENTION", "The archive keeps mail by the site's retention policy, and the daily run deletes what "
    "is due", "high",
    "The host's retention policy (/etc/mailappliance/archive-retention.json) must be the site file's "
    "archive.retention rules, and mailappliance-archive-daily.timer must be active: it deletes each day what "
    "the policy allows (never a held message; every deletion is a log entry) and moves old mail to the cold store. "
    "Records due for deletion for more than two days mean the daily run does not work: `journalctl -u "
    "mailappliance-archive-daily`. Redeploy (`mailappliance deploy SITE`) to restore the policy and the timer.",
    ("SEC Rule 17a-4(f) (electronic storage of broker-dealer records)",), HOST)
ARCHIVE_HOLDS = Spec(
    "ARCHIVE-HOLDS", "Legal holds in force are listed (each stops deletion of the mail it covers)", "info",
    "Holds are placed and released with `mailappliance-archive hold CASE ...` and `release CASE`, each a log "
    "entry naming who did it. The list is evidence for the auditor; the control fails only when the holds "
    "cannot be read, since then no one can say what retention may delete.", (), HOST)
ARCHIVE_SPACE = Spec(
    "ARCHIVE-SPACE", "The archive's stores have room (free space: warn under 20%, fail under 5%)", "high",
    "When the store is full the archive cannot take new mail, so every Postfix instance defers it (4xx; "
    "archive: on_failure: defer, the default) until there is room: senders retry, nothing is lost, but mail stops. "
    "Grow the file system or move the store to a larger disk (archive.store), set archive.cold_store on another "
    "disk with a shorter cold_after_days, or shorten retention where the law allows.", (), HOST)
DOVECOT_TLS = Spec(
    "DOVECOT-TLS", "Dovecot requires TLS 1.2 or newer", "high",
    "Set ssl = required and ssl_min_protocol = TLSv1.2 (redeploy restores them).",
    (RFC8314, RFC8996, BSI, MOZILLA), HOST)
DOVECOT_PLAINTEXT = Spec(
    "DOVECOT-PLAINTEXT", "Dovecot refuses plaintext logins without TLS", "high",
    "Set disable_plaintext_auth = yes (auth_allow_cleartext = no in Dovecot 2.4) and redeploy.",
    (RFC8314, BSI, NIST), HOST)
DOVECOT_PASSWORD_SCHEME = Spec(
    "DOVECOT-PASSWORD-SCHEME", "Mailbox passwords are stored as salted SHA512-CRYPT (or stronger) hashes", "high",
    "Re-render the site (`mailappliance render SITE`) and redeploy so every entry of /etc/dovecot/users carries a "
    "SHA512-CRYPT, BLF-CRYPT or ARGON2 hash.", (NIST, BSI), HOST)
RSPAMD_ACTIONS = Spec(
    "RSPAMD-ACTIONS", "Rspamd's reject and add_header thresholds are the site's", "medium",
    "Redeploy to restore /etc/rspamd/local.d/actions.conf from spam.add_header and spam.reject.", (NIST,), HOST)
RSPAMD_DKIM_BITS = Spec(
    "RSPAMD-DKIM-BITS", "Every DKIM signing key is RSA of at least 2048 bits (or Ed25519)", "high",
    "Generate a 2048-bit key for the domain (remove the old key file and redeploy), then publish its record.",
    (RFC6376, RFC8301, NIST, BSI), HOST)
RSPAMD_SCAN_TIME = Spec(
    "RSPAMD-SCAN-TIME", "Rspamd scans mail quickly (90th percentile of recent scans: warn over 2 s, fail over 10 s)",
    "medium",
    "A healthy scan takes tens to hundreds of milliseconds, since every check is local or a cached DNS answer; a "
    "slow one waits, nearly always on DNS (an unanswered lookup costs Rspamd's DNS timeout, 1 s by default, for "
    "each of up to 5 retransmits), else on clamd or Redis. Over 2 s for one scan in ten means lookups time out; over 10 s the "
    "sending client waits that long after DATA, each waiting scan holds an smtpd process, and scans nearing "
    "task_timeout (60 s) are deferred. Check the resolver Rspamd uses (`rspamadm configdump options`, "
    "/etc/resolv.conf), the `dns req` and `time` of the scans in `journalctl -u rspamd`, and clamd and Redis.",
    (RFC5321_TIMEOUTS,), HOST)
CLAMAV_RUNNING = Spec(
    "CLAMAV-RUNNING", "clamd is running", "high",
    "Start clamav-daemon (`systemctl start clamav-daemon`) and check its journal; redeploy.", (NIST,), HOST)
CLAMAV_SIGNATURES = Spec(
    "CLAMAV-SIGNATURES", "ClamAV signatures are fresh (warn after 3 days, fail after 14)", "medium",
    "Check freshclam and the signature mirror (antivirus.mirror_url), or copy current database files "
    "(antivirus.local_databases) and redeploy.", (NIST,), HOST)
HOST_SERVICES = Spec(
    "HOST-SERVICES", "Every appliance service is enabled and running", "high",
    "Start and enable the listed units (`systemctl enable --now UNIT`), or redeploy.", (NIST,), HOST)
HOST_SECURITY_UPDATES = Spec(
    "HOST-SECURITY-UPDATES", "No security updates are pending", "high",
    "Install them: `apt-get update && apt-get upgrade` (unattended-upgrades does this daily when enabled).",
    (NIST, BSI), HOST)
HOST_KEY_PERMISSIONS = Spec(
    "HOST-KEY-PERMISSIONS", "Private keys and password files have their owners and modes", "high",
    "Redeploy to restore owners and modes (TLS key 0600 root, DKIM keys 0640 _rspamd, /etc/dovecot/users "
    "0640 root:dovecot).", (NIST, BSI), HOST)
CONFIG_DRIFT = Spec(
    "CONFIG-DRIFT", "Every deployed configuration file matches the offline preview of the site", "high",
    "See the difference with `mailappliance deploy SITE --check --diff`; put wanted changes into the site file, "
    "then `mailappliance deploy SITE` restores the files.", (NIST,), HOST)

AUDIT_READ_ONLY = Spec(
    "AUDIT-READ-ONLY", "The audit changed nothing on the host", "critical",
    "The audit playbook reported a change: check playbooks/audit.yml, which must only read.", (), AUDIT)
AUDIT_HOST_INSPECTION = Spec(
    "AUDIT-HOST-INSPECTION", "The host could be inspected", "critical",
    "Make the host reachable by Ansible (see the error) and audit again.", (), AUDIT)

# The MTA-STS policy the appliance serves over HTTPS; the DNS side (id record, mode, mx) is judged below.
MTASTS_POLICY = Spec(
    "MTASTS-POLICY", "https://mta-sts.<domain>/.well-known/mta-sts.txt serves the planned policy for every domain",
    "high",
    "Redeploy (`mailappliance deploy SITE`) so the appliance's web server serves the policy of "
    "`mailappliance dns plan SITE` as text/plain with a certificate naming mta-sts.<domain>; senders only use "
    "a policy fetched with HTTP 200 over a certificate valid for that name.",
    (section(RFC8461, "3.3"), RFC9110, NIST, BSI), PROBE)

# DNS controls: live DNS judged against the site's plan (mailappliance.dns.check). Per-record results are folded
# into one control per ID, so these IDs compare across runs like the others.
_PUBLISH = ("`mailappliance dns plan SITE` prints the planned records; `mailappliance dns apply SITE --server "
            "HOST --tsig-key FILE` publishes them (or enter them at your DNS provider).")
DNS_MX = Spec(
    "DNS-MX", "MX records send the domain's mail to the appliance", "high",
    f"Publish the planned MX record (preference 10, the appliance's host name) for each domain. {_PUBLISH}",
    (RFC5321_MX, NIST), DNS)
DNS_SPF_RECORD = Spec(
    "DNS-SPF-RECORD", "Exactly one SPF record, valid syntax", "high",
    f"Publish exactly one TXT record starting with v=spf1 at the domain (merge any others into it). {_PUBLISH}",
    (section(RFC7208, "4.5"), NIST, BSI), DNS)
DNS_SPF_ALL = Spec(
    "DNS-SPF-ALL", "SPF ends with -all", "high",
    f"End the SPF record with -all so receivers reject mail from hosts it does not name. {_PUBLISH}",
    (section(RFC7208, "5.1"), NIST, BSI), DNS)
DNS_SPF_LOOKUPS = Spec(
    "DNS-SPF-LOOKUPS", "SPF needs at most 10 DNS lookups and 2 void lookups", "high",
    "Drop or flatten include:, a:, mx: and exists: terms (nested includes count) until at most 10 lookups "
    f"remain, or publish the planned record, which needs none beyond its carriers' own spf: entries. {_PUBLISH}",
    (section(RFC7208, "4.6.4"), NIST), DNS)
DNS_SPF_AUTHORIZES = Spec(
    "DNS-SPF-AUTHORIZES", "SPF authorizes the appliance's addresses and its carriers", "high",
    f"Name the appliance's addresses in the SPF record (ip4:/ip6:, as planned from dns.ipv4 and dns.ipv6), and "
    f"each carrier that sends the domain's mail (outbound.carriers.<name>.spf, a direct carrier's "
    f"source_address). {_PUBLISH}", (section(RFC7208, "5"), NIST), DNS)
DNS_DKIM_RECORD = Spec(
    "DNS-DKIM-RECORD", "DKIM key record published for the selector", "high",
    "Publish the DKIM TXT record at <selector>._domainkey.<domain>; deploy first, which fetches the key the "
    f"appliance signs with into the inventory. {_PUBLISH}", (section(RFC6376, "3.6.1"), NIST, BSI), DNS)
DNS_DKIM_BITS = Spec(
    "DNS-DKIM-BITS", "DKIM key is RSA of at least 2048 bits (or Ed25519)", "high",
    "Generate a 2048-bit key on the appliance (remove the old key file and redeploy), then publish its record. "
    f"{_PUBLISH}", (section(RFC8301, "3.2"), RFC8463, NIST, BSI), DNS)
DNS_DKIM_MATCH = Spec(
    "DNS-DKIM-MATCH", "DKIM record holds the key the appliance signs with", "high",
    f"Replace the published key with the one the appliance signs with. {_PUBLISH}",
    (section(RFC6376, "3.6"), NIST), DNS)
DNS_DMARC_RECORD = Spec(
    "DNS-DMARC-RECORD", "Exactly one DMARC record at _dmarc, valid syntax", "high",
    f"Publish exactly one TXT record starting with v=DMARC1 at _dmarc.<domain>. {_PUBLISH}",
    (RFC9989, NIST, BSI), DNS)
DNS_DMARC_POLICY = Spec(
    "DNS-DMARC-POLICY", "DMARC policy is at least the planned one and not in testing mode", "high",
    "Publish p=quarantine or p=reject (dns.dmarc_policy in the site file) without t=y, so receivers act on "
    f"mail that fails DMARC. {_PUBLISH}", (RFC9989, NIST, BSI), DNS)
DNS_DMARC_SP = Spec(
    "DNS-DMARC-SP", "DMARC subdomain policies (sp, np) are not weaker than planned", "medium",
    f"Remove sp= and np= or set them at least as strict as p=. {_PUBLISH}", (RFC9989, NIST), DNS)
DNS_DMARC_RUA = Spec(
    "DNS-DMARC-RUA", "DMARC aggregate reports go to the planned address", "medium",
    f"Name the planned report address (dns.dmarc_rua) in rua=mailto:. {_PUBLISH}", (RFC9989, NIST), DNS)
DNS_DMARC_RUA_AUTH = Spec(
    "DNS-DMARC-RUA-AUTH", "The report address's domain accepts reports for the domain", "medium",
    "Publish <domain>._report._dmarc.<report domain> TXT \"v=DMARC1;\" in the report address's zone, or send "
    f"reports to an address in the domain itself. {_PUBLISH}", (RFC9989,), DNS)
DNS_DMARC_OBSOLETE = Spec(
    "DNS-DMARC-OBSOLETE", "No DMARC tags removed by RFC 9989 (pct, rf, ri)", "low",
    f"Drop pct=, rf= and ri= from the DMARC record. {_PUBLISH}", (RFC9989,), DNS)
DNS_MTASTS_RECORD = Spec(
    "DNS-MTASTS-RECORD", "MTA-STS record carries the id of the served policy", "high",
    "Publish _mta-sts.<domain> TXT \"v=STSv1; id=...\" with the planned id, which changes with every policy "
    f"change. {_PUBLISH}", (section(RFC8461, "3.1"), NIST, BSI), DNS)
DNS_MTASTS_MODE = Spec(
    "DNS-MTASTS-MODE", "MTA-STS policy mode is enforce", "high",
    "Set dns.mta_sts_mode: enforce in the site file once TLS-RPT reports are clean, redeploy and publish the "
    f"new policy id. {_PUBLISH}", (section(RFC8461, "5"), NIST, BSI), DNS)
DNS_MTASTS_MX = Spec(
    "DNS-MTASTS-MX", "MTA-STS policy's mx patterns cover every MX", "high",
    "Point every MX at the appliance, or list each MX host in the policy; senders enforcing MTA-STS refuse "
    f"an MX the policy does not name. {_PUBLISH}", (section(RFC8461, "4.1"),), DNS)
DNS_MTASTS_HOST = Spec(
    "DNS-MTASTS-HOST", "mta-sts.<domain> points at the appliance", "high",
    f"Publish the planned CNAME mta-sts.<domain> to the appliance, which serves the policy. {_PUBLISH}",
    (section(RFC8461, "3.3"),), DNS)
DNS_TLSRPT = Spec(
    "DNS-TLSRPT", "TLS-RPT record sends reports to the planned address", "low",
    f"Publish _smtp._tls.<domain> TXT \"v=TLSRPTv1; rua=mailto:...\" (dns.tlsrpt_rua). {_PUBLISH}",
    (section(RFC8460, "3"),), DNS)
DNS_TLSA_MATCH = Spec(
    "DNS-TLSA-MATCH", "TLSA 3 1 1 for port 25 matches the appliance's certificate", "high",
    "Publish the planned TLSA record at _25._tcp.<host name> (before a certificate change, publish both the old "
    f"and the new one); it is only trusted in a DNSSEC-signed zone. {_PUBLISH}",
    (RFC7672, RFC7671, NIST, BSI), DNS)
DNS_SRV = Spec(
    "DNS-SRV", "Client SRV records point at the appliance", "low",
    f"Publish the planned _submissions, _submission, _imaps, _imap, _pop3s and _autodiscover SRV records. {_PUBLISH}",
    (RFC6186, section(RFC8314, "5.1")), DNS)
DNS_AUTOCONFIG = Spec(
    "DNS-AUTOCONFIG", "autoconfig and autodiscover names point at the appliance", "low",
    f"Publish the planned autoconfig.<domain> and autodiscover.<domain> CNAMEs. {_PUBLISH}", (), DNS)
DNS_ADDRESS = Spec(
    "DNS-ADDRESS", "The appliance's name has its address records", "high",
    f"Publish the planned A/AAAA records of the host name (from dns.ipv4 and dns.ipv6). {_PUBLISH}",
    (RFC5321_MX,), DNS)
DNS_PTR = Spec(
    "DNS-PTR", "Reverse DNS of the appliance's addresses names the appliance", "medium",
    "Ask the owner of the address (hosting or access provider) for the planned PTR records; receivers distrust "
    "mail from addresses whose reverse name does not match.", (NIST, BSI), DNS)
DNS_DNSSEC = Spec(
    "DNS-DNSSEC", "DNSSEC status of the zone (reported, not required)", "info",
    "Sign the zone at your DNS provider and publish the DS record at the parent; DANE (TLSA) needs it.",
    (RFC4033, RFC6840, RFC7672), DNS)
DNS_SPECS = (
    DNS_MX, DNS_SPF_RECORD, DNS_SPF_ALL, DNS_SPF_LOOKUPS, DNS_SPF_AUTHORIZES, DNS_DKIM_RECORD, DNS_DKIM_BITS,
    DNS_DKIM_MATCH, DNS_DMARC_RECORD, DNS_DMARC_POLICY, DNS_DMARC_SP, DNS_DMARC_RUA, DNS_DMARC_RUA_AUTH,
    DNS_DMARC_OBSOLETE, DNS_MTASTS_RECORD, DNS_MTASTS_MODE, DNS_MTASTS_MX, DNS_MTASTS_HOST, DNS_TLSRPT,
    DNS_TLSA_MATCH, DNS_SRV, DNS_AUTOCONFIG, DNS_ADDRESS, DNS_PTR, DNS_DNSSEC,
)
DNS_BY_ID = {spec.id: spec for spec in DNS_SPECS}
