"""mmrec subsample DATASET --keep-users F -o OUT: train on a share of the users, evaluate on all of them."""

from __future__ import annotations

from pathlib import Path

import typer

from mmrec_cli.cli._common import handle_errors, invocation, say


@handle_errors
def subsample(
    dataset: Path = typer.Argument(..., help="Dataset artifact (`mmrec prepare`)."),
    keep_users: float = typer.Option(..., "--keep-users", help="Share of the users whose train interactions are trained on, in (0, 1]."),
    seed: int = typer.Option(2020, "--seed", help="Seed of the choice of users (the same seed keeps the same users)."),
    output: Path = typer.Option(..., "-o", "--output", help="Dataset artifact to write."),
) -> None:
    """Keep a share of the users for training (a learning curve); the others' train items become input history only, so every share is evaluated on the same users."""
    from mmrec_cli.data import dataset as D
    from mmrec_cli.errors import out_of_range
    from mmrec_cli.io.artifacts import fingerprint_file
    from mmrec_cli.io.atomic import check_artifact_path, check_distinct

    if not 0 < keep_users <= 1:
        raise out_of_range("--keep-users", keep_users, "a share in (0, 1], e.g. 0.1")
    check_artifact_path(output)
    check_distinct({"-o": output}, {"DATASET": dataset})
    ds = D.load(str(dataset))
    sub, kept = D.subsample_users(ds, keep_users, seed)
    config = {**(ds.meta.get("config") or {}), "keep_users": keep_users, "keep_users_seed": seed}
    D.save(sub, str(output), invocation(), config, {"dataset": {"path": str(dataset), "fingerprint": fingerprint_file(str(dataset))}})
    train = int((sub.split == D.TRAIN).sum())
    say(f"wrote {output}: {kept} of {ds.num_users} users trained on ({train} train interactions); all {ds.num_users} evaluated")
