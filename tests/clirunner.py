"""Run the CLI in-process the way a user would, with stdout and stderr kept apart."""

from __future__ import annotations

from click.testing import CliRunner, Result

from mailappliance.cli import cli


def run_cli(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def assert_clean_failure(result: Result, exit_code: int) -> list[str]:
    """A failure prints only "Error: ..." lines on stderr, no traceback; returns the messages."""
    assert result.exit_code == exit_code, result.output
    lines = result.stderr.splitlines()
    assert lines and all(line.startswith("Error: ") for line in lines), result.stderr
    assert "Traceback" not in result.output
    return [line.removeprefix("Error: ") for line in lines]
