"""mmrec merge SHARD... -o feats.safetensors: join the shards of `mmrec extract --shard I/N` into one artifact."""

from __future__ import annotations

from pathlib import Path

import typer

from mmrec_cli.cli._common import handle_errors, invocation


@handle_errors
def merge(
    shards: list[Path] = typer.Argument(..., help="Every shard of one split (`mmrec extract ... --shard I/N`), in any order."),
    output: Path = typer.Option(..., "-o", "--output", help="Features artifact to write (.safetensors)."),
) -> None:
    """Join extraction shards into the features artifact an unsharded `mmrec extract` writes (checks they are complete)."""
    from mmrec_cli.cli._common import say
    from mmrec_cli.features.shards import merge as run
    from mmrec_cli.io.atomic import check_artifact_path, check_distinct

    check_artifact_path(output)
    check_distinct({"-o": output}, {"SHARDS": shards})
    run([str(s) for s in shards], str(output), invocation(), say)
