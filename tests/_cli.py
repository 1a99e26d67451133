"""The in-process CLI for tests: run a command, and read its one-line error."""

from typer.testing import CliRunner

from mmrec_cli.cli.app import app

cli = CliRunner()


def run(*args):
    return cli.invoke(app, [str(a) for a in args])


def error_line(result) -> str:
    """The command's stderr, which must be exactly one line and no traceback."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]
