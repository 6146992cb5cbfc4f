"""mailappliance: turn a short site definition into a tested, reproducible Debian mail server."""

__version__ = "0.1.0"
