"""mmrec export DATASET --format recbole|csv|unisrec -o PATH: a dataset for other tools, with mmrec's split."""

from __future__ import annotations

from pathlib import Path

import typer

from mmrec_cli.cli._common import handle_errors, say


@handle_errors
def export(
    dataset: Path = typer.Argument(..., help="Dataset artifact (`mmrec prepare`)."),
    fmt: str = typer.Option("recbole", "--format", help="recbole: FOLDER/NAME/NAME.inter (+ NAME.yaml, RecBole's settings for the same split) | csv: one file, user_id,item_id,timestamp,split | unisrec: FOLDER/NAME/NAME.{train,valid,test}.inter + NAME.user2index, NAME.item2index (UniSRec's downstream files; `mmrec prepare FOLDER/NAME` reads them back)."),
    output: Path = typer.Option(..., "-o", "--output", help="recbole, unisrec: the folder to write (RecBole's data_path); csv: the file ('-' = stdout)."),
    name: str | None = typer.Option(None, "--name", help="recbole, unisrec: the dataset name (default: DATASET's file name without .safetensors)."),
    max_len: int | None = typer.Option(None, "--max-len", help="recbole, unisrec: the longest history, MAX_ITEM_LIST_LENGTH (default 50, mmrec's models.MAX_LEN): unisrec rows hold the last N items before their target."),
) -> None:
    """Write a dataset in another tool's format, keeping its split: RecBole's atomic files, UniSRec's files or a plain CSV."""
    import sys

    from mmrec_cli import models
    from mmrec_cli.data import dataset as D
    from mmrec_cli.data import export as X
    from mmrec_cli.errors import check_min, usage
    from mmrec_cli.io.atomic import check_distinct, check_writable, write_text

    if fmt not in X.FORMATS:
        raise usage(f"--format {fmt}: choose one of {', '.join(X.FORMATS)}")
    if max_len is not None:
        if fmt == "csv":
            raise usage("--max-len is for --format recbole or unisrec; a CSV holds whole sequences")
        check_min({"--max-len": max_len}, 1)
    max_len = models.MAX_LEN if max_len is None else max_len
    name = name or dataset.name.removesuffix(".safetensors")
    if fmt != "csv" and (not name or "/" in name or name.startswith(".")):
        raise usage(f"--name {name!r}: give a plain dataset name, e.g. --name scientific")
    if fmt != "csv" and str(output) == "-":
        raise usage(f"-o -: {'RecBole' if fmt == 'recbole' else 'UniSRec'}'s files are a folder; give a folder path")
    if fmt == "unisrec":
        targets = [output / name / f"{name}.{suffix}" for suffix in X.UNISREC_FILES]
    else:
        targets = [output / name / f"{name}.inter" if fmt == "recbole" else output]
    target = targets[0]
    for path in targets:
        check_writable(path)
    check_distinct({"-o": targets}, {"DATASET": dataset})
    ds = D.load(str(dataset))
    X.check_exportable(ds, fmt, str(dataset))
    if fmt == "unisrec":
        X.write_unisrec(ds, output / name, name, max_len)
        target = output / name / f"{name}.*"
    elif fmt == "csv":
        text = X.interactions_csv(ds)
        if str(output) == "-":
            sys.stdout.write(text)
        else:
            write_text(output, text)
    else:
        write_text(target, X.recbole_inter(ds))
        write_text(target.with_suffix(".yaml"), X.recbole_config(output, name, max_len))
    users, items, rows = X.counts(ds)
    say(f"wrote {target if str(output) != '-' else 'stdout'}: {users} users, {items} items, {rows} interactions ({fmt})")
