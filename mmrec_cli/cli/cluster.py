"""mmrec cluster FEATS DATASET: MISSRec's interests of every user (DPC-KNN) or of the catalogue (k-means)."""

from __future__ import annotations

from pathlib import Path

import typer

from mmrec_cli import models
from mmrec_cli.cli._common import handle_errors, invocation, progress, say


@handle_errors
def cluster(
    features: Path = typer.Argument(..., help="Features artifact (text and image, one dimension)."),
    dataset: Path = typer.Argument(..., help="Dataset artifact the features belong to."),
    output: Path = typer.Option(..., "-o", "--output", help="Interests artifact to write; train with --set model.interests=OUTPUT."),
    method: str = typer.Option("dpc-knn", "--method", help="dpc-knn: per user, over the tokens of its history | kmeans: over all item tokens of the catalogue (the public code)."),
    ratio: float = typer.Option(0.5, "--ratio", help="Interests = ceil(ratio x tokens) of each history (dpc-knn) or of the catalogue (kmeans)."),
    knn_ratio: float = typer.Option(0.1, "--knn-ratio", help="dpc-knn: neighbours for the local density = ceil(ratio x tokens of the history)."),
    split: str = typer.Option("valid", "--split", help="dpc-knn: cluster the history before this split's targets (valid = train items only: no evaluation target is seen)."),
    max_len: int = typer.Option(models.MAX_LEN, "--max-len", help="dpc-knn: the last N items of each history (as the model sees them: its model.max_len)."),
    iters: int = typer.Option(20, "--iters", help="kmeans: Lloyd iterations."),
    seed: int = typer.Option(0, "--seed", help="kmeans: seed of the initial centroids."),
    batch_size: int = typer.Option(256, "--batch-size", help="dpc-knn: histories clustered at once."),
) -> None:
    """Find interests in the clustering space of the raw features (each item token L2-normalised).

    A token is one item in one modality. DPC-KNN keeps each user's interest centres in order of first
    appearance; the model assigns any history token of that user to its nearest centre, so valid and
    test histories are covered without seeing their targets. k-means keeps one table item -> interest.
    """
    import math

    import torch

    from mmrec_cli.data import dataset as D
    from mmrec_cli.errors import check_min, out_of_range
    from mmrec_cli.io import artifacts
    from mmrec_cli.io import feature_file as FE
    from mmrec_cli.io.atomic import check_artifact_path, check_distinct
    from mmrec_cli.models import missrec_interests as CL
    from mmrec_cli.models.missrec import MODALITIES

    if method not in ("dpc-knn", "kmeans"):
        raise typer.BadParameter("--method must be dpc-knn or kmeans")
    if split not in ("valid", "test"):
        raise typer.BadParameter("--split must be valid or test")
    for name, value in (("--ratio", ratio), ("--knn-ratio", knn_ratio)):
        if not 0 < value <= 1:
            raise out_of_range(name, value, "a share in (0, 1]")
    check_min({"--max-len": max_len, "--iters": iters, "--batch-size": batch_size}, 1)
    check_artifact_path(output)
    check_distinct({"-o": output}, {"FEATURES": features, "DATASET": dataset})
    ds = D.load(str(dataset))
    feats, fmeta = FE.align(str(features), ds.item_ids)
    mods = [m for m in MODALITIES if m in feats]
    if not mods:
        from mmrec_cli.errors import bad_input

        raise bad_input(f"{features}: no {' or '.join(MODALITIES)} features to cluster")
    tokens = CL.space_tokens(feats, mods)
    M = len(mods)
    meta = {
        "command": invocation(),
        "method": method,
        "modalities": mods,
        "space": "raw features, each token L2-normalised",
        "dataset": {"path": str(dataset), "fingerprint": ds.fingerprint(), "item_fingerprint": ds.item_fingerprint()},
        "features": {"path": str(features), "fingerprint": fmeta["fingerprint"]},
    }
    if method == "kmeans":
        C = max(1, math.ceil(ratio * len(tokens)))
        assign, centroids = CL.kmeans(tokens, C, iters, seed)
        tensors = {"table": assign.view(ds.num_items, M), "centroids": centroids}
        meta |= {"scope": "catalogue", "clusters": C, "config": {"ratio": ratio, "iters": iters, "seed": seed}}
        summary = f"{C} interests over {len(tokens)} item tokens"
    else:
        hists = CL.histories(ds, split, max_len)
        with progress("cluster", ds.num_users) as advance, torch.inference_mode():
            tensors = CL.user_interests(tokens, M, hists, ratio, knn_ratio, batch_size, on_batch=advance)
        sizes = (tensors["offsets"][1:] - tensors["offsets"][:-1]).float()
        meta |= {"scope": "users", "config": {"ratio": ratio, "knn_ratio": knn_ratio, "split": split, "max_len": max_len}, "mean_interests": round(float(sizes.mean()), 3)}
        summary = f"{ds.num_users} users, {sizes.mean():.2f} interests per user on average"
    artifacts.save(str(output), tensors, "interests", meta)
    say(f"wrote {output}: {summary} ({method})")
