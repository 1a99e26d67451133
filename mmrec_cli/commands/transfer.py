"""mmrec transfer: not built yet (see the issue tracker)."""

from __future__ import annotations

import typer

from mmrec_cli.commands._common import not_implemented


def transfer(args: list[str] = typer.Argument(None, help="Arguments (this command is not implemented yet).")) -> None:
    """Not implemented yet: exits with code 2."""
    not_implemented("mmrec transfer")
