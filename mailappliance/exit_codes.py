"""Named process exit codes, so scripts and CI can tell why a command stopped."""

EXIT_CODE_OK = 0
# Something the user can fix: an invalid site file, a missing file, a name already taken.
EXIT_CODE_USER_ERROR = 1
# Click's own code for a malformed command line (unknown option, missing argument).
EXIT_CODE_USAGE_ERROR = 2
# Ansible ran but at least one task failed on a host.
EXIT_CODE_PLAYBOOK_FAILED = 3
# Ansible could not reach at least one host.
EXIT_CODE_HOST_UNREACHABLE = 4
# Ansible itself could not run (syntax error in a playbook, missing role, broken install).
EXIT_CODE_ANSIBLE_ERROR = 5
# The demo appliance was deployed but did not pass a test message from SMTP to IMAP.
EXIT_CODE_MAIL_CHECK_FAILED = 6
# `dns check` found a record that fails its control (or could not be looked up).
EXIT_CODE_DNS_CHECK_FAILED = 7
# `audit` found a failing control at or above --fail-on (or a control it could not check).
EXIT_CODE_AUDIT_FAILED = 8
# Interrupted with Ctrl-C, following the shell convention 128 + SIGINT.
EXIT_CODE_INTERRUPTED = 130
