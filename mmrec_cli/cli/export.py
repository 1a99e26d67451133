"""mmrec export DATASET --format recbole|csv -o PATH: a dataset for other tools, with mmrec's split."""

from __future__ import annotations

from pathlib import Path

import typer

from mmrec_cli.cli._common import handle_errors, say


@handle_errors
def export(
    dataset: Path = typer.Argument(..., help="Dataset artifact (`mmrec prepare`)."),
    fmt: str = typer.Option("recbole", "--format", help="recbole: FOLDER/NAME/NAME.inter (+ NAME.yaml, RecBole's settings for the same split) | csv: one file, user_id,item_id,timestamp,split."),
    output: Path = typer.Option(..., "-o", "--output", help="recbole: the folder to write (RecBole's data_path); csv: the file ('-' = stdout)."),
    name: str | None = typer.Option(None, "--name", help="recbole: the dataset name (default: DATASET's file name without .safetensors)."),
) -> None:
    """Write a dataset in another tool's format, keeping its split: RecBole's atomic files or a plain CSV."""
    import sys

    from mmrec_cli import models
    from mmrec_cli.data import dataset as D
    from mmrec_cli.data import export as X
    from mmrec_cli.errors import usage
    from mmrec_cli.io.atomic import check_distinct, check_writable, write_text

    if fmt not in X.FORMATS:
        raise usage(f"--format {fmt}: choose one of {', '.join(X.FORMATS)}")
    name = name or dataset.name.removesuffix(".safetensors")
    if fmt == "recbole" and (not name or "/" in name or name.startswith(".")):
        raise usage(f"--name {name!r}: give a plain dataset name, e.g. --name scientific")
    target = output / name / f"{name}.inter" if fmt == "recbole" else output
    check_writable(target)
    check_distinct({"-o": target}, {"DATASET": dataset})
    ds = D.load(str(dataset))
    X.check_exportable(ds, fmt, str(dataset))
    if fmt == "csv":
        text = X.interactions_csv(ds)
        if str(output) == "-":
            sys.stdout.write(text)
        else:
            write_text(output, text)
    else:
        if str(output) == "-":
            raise usage("-o -: RecBole's files are a folder; give a folder path")
        write_text(target, X.recbole_inter(ds))
        write_text(target.with_suffix(".yaml"), X.recbole_config(output, name, models.MAX_LEN))
    users, items, rows = X.counts(ds)
    say(f"wrote {target if str(output) != '-' else 'stdout'}: {users} users, {items} items, {rows} interactions ({fmt})")
