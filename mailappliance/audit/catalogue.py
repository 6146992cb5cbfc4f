"""Every control the audit knows: stable ID, title, severity, remediation and references.

IDs never change meaning once published, since auditors and CI compare reports by ID across runs.
"""

from __future__ import annotations

from mailappliance.audit.model import Spec

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

PROBE, HOST, AUDIT = "probe", "host", "audit"

# Per-port TLS controls; {port} is the port number.
TLS_PROTOCOLS = Spec(
    "TLS-{port}-PROTOCOLS", "Port {port} refuses TLS 1.0 and 1.1 and accepts TLS 1.2 or newer", "high",
    "Allow only TLS 1.2 and 1.3 (Postfix smtpd_tls_protocols and smtpd_tls_mandatory_protocols = >=TLSv1.2; "
    "Dovecot ssl_min_protocol = TLSv1.2), then redeploy with `mailappliance deploy SITE`.",
    (RFC8996, RFC8314, BSI, MOZILLA, NIST), PROBE)
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
