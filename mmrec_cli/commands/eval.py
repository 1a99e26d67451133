"""mmrec eval MODEL DATASET: full-ranking metrics on the validation or (explicitly) the test split."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mmrec_cli.commands._common import handle_errors, invocation, progress, say


@handle_errors
def eval_(
    model: Path = typer.Argument(..., help="Model artifact from `mmrec finetune` / `mmrec transfer`."),
    dataset: Path = typer.Argument(..., help="The dataset artifact it was trained on."),
    split: str = typer.Option("valid", "--split", help="valid | test. Choose settings on valid; evaluate test once, at the end."),
    features: Optional[str] = typer.Option(None, "--features", help="The features artifact it was trained with."),
    mask_history: Optional[bool] = typer.Option(None, "--mask-history/--no-mask-history", help="Remove the user's earlier items from the ranking (default: off for leave-one-out, on for the ratio split)."),
    ks: str = typer.Option("5,10,20,50", "--ks", help="Cut-offs for Recall/NDCG/MRR."),
    output: Optional[str] = typer.Option(None, "-o", "--output", help="Write the metrics JSON here (default: stdout)."),
    rankings: Optional[str] = typer.Option(None, "--rankings", help="Also write per-user rankings as JSON lines ('-' = stdout)."),
    top_k: int = typer.Option(20, "--top-k", help="Items per user in --rankings."),
    batch_size: int = typer.Option(512, "--batch-size", help="Users scored at once."),
    chunk: int = typer.Option(65536, "--chunk", help="Items scored at once (bounds memory for large catalogues)."),
) -> None:
    """Rank every item for every user of SPLIT and report Recall, NDCG and MRR at each cut-off."""
    from mmrec_cli import loading
    from mmrec_cli.evaluate import EvalConfig, evaluate
    from mmrec_cli.io import dataset as D
    from mmrec_cli.io.jsonl import jsonl_writer, write_json

    if split not in ("valid", "test"):
        raise typer.BadParameter("--split must be valid or test")
    cut = tuple(int(k) for k in ks.split(","))
    ds = D.load(str(dataset))
    _, net, meta = loading.load_trained(str(model), ds, features)
    mask = (ds.protocol == "ratio") if mask_history is None else mask_history
    cfg = EvalConfig(split=split, ks=cut, mask_history=mask, batch_size=batch_size, chunk=chunk, max_len=getattr(net.cfg, "max_len", 50))
    with progress(f"eval {split}", None) as advance:
        metrics, records = evaluate(net, ds, cfg, rankings_k=top_k if rankings else 0, on_batch=advance)
    result = {
        "metrics": metrics,
        "split": split,
        "mask_history": mask,
        "protocol": ds.protocol,
        "model": {"path": str(model), "name": meta["model"], "fingerprint": loading.fingerprint(str(model)), "best_epoch": meta.get("best_epoch")},
        "dataset": {"path": str(dataset), "fingerprint": ds.fingerprint()},
        "command": invocation(),
        "seed": meta.get("seed"),
        "versions": meta.get("versions"),
    }
    if rankings:
        with jsonl_writer(rankings) as write:
            for rec in records:
                write({"user_id": ds.user_ids[rec["user"]], "targets": [ds.item_ids[i] for i in rec["targets"]], "ranks": rec["ranks"], "top": [ds.item_ids[i] for i in rec["top"]], "scores": [round(s, 6) for s in rec["scores"]]})
    write_json(output, result)
    say(_summary(metrics, split))


def _summary(metrics: dict, split: str) -> str:
    keys = [k for k in ("recall@10", "ndcg@10", "recall@50", "ndcg@50") if k in metrics]
    return f"{split} ({metrics['users']} users): " + "  ".join(f"{k} {metrics[k]:.4f}" for k in keys)
