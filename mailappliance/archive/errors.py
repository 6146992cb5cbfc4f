"""The one exception for problems an operator or auditor can fix; the CLI prints it as one line."""


class ArchiveError(Exception):
    """What is wrong and what to do about it, in one line (for example a missing store or a bad key file)."""
