"""mmrec info FILE: what an artifact is, who made it, from what."""

from __future__ import annotations

import json

import typer

from mmrec_cli.cli._common import handle_errors


@handle_errors
def info(
    path: str = typer.Argument(..., help="Any mmrec artifact (.safetensors)."),
    full: bool = typer.Option(False, "--full", help="Print all metadata, id lists and history included."),
) -> None:
    """Print an artifact's metadata as JSON: kind, producing command, config, inputs, versions, tensors."""
    from mmrec_cli.io import artifacts

    meta = artifacts.read_meta(path)
    tensors = artifacts.tensor_names(path)
    if not full:
        for key in ("item_ids", "user_ids", "history"):
            if isinstance(meta.get(key), list):
                meta[key] = f"<{len(meta[key])} entries; --full to show>"
    meta["tensors"] = {k: {"dtype": v["dtype"], "shape": v["shape"]} for k, v in sorted(tensors.items())} if full or len(tensors) <= 40 else f"<{len(tensors)} tensors; --full to show>"
    typer.echo(json.dumps(meta, indent=2, sort_keys=True))
