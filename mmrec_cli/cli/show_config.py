"""mmrec config MODEL: a model's full stage configuration, resolved from its layers, as JSON on stdout."""

from __future__ import annotations

import typer

from mmrec_cli import models
from mmrec_cli.cli._common import CONFIG_HELP, SET_HELP, handle_errors


@handle_errors
def show_config(
    model: str = typer.Argument(..., help=models.help_text(None), autocompletion=lambda: models.names()),
    config: str | None = typer.Option(None, "--config", help=CONFIG_HELP),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
) -> None:
    """Print MODEL's full config (model and train sections) as a run would resolve it: defaults < --config < --set."""
    import dataclasses
    import json

    from mmrec_cli.training import loading

    spec = models.get(model)
    cfg = loading.resolve_stage(spec, config, set_, {})
    out = dataclasses.asdict(cfg) | {"stages": list(models.stages(model))}
    typer.echo(json.dumps(out, indent=2))
