"""mmrec finetune MODEL DATASET: train a recommender, keep the best epoch on validation."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mmrec_cli.commands._common import CONFIG_HELP, SET_HELP, handle_errors, invocation, progress, say


def _models() -> list[str]:
    from mmrec_cli.models import MODELS

    return list(MODELS)


@handle_errors
def finetune(
    model: str = typer.Argument(..., help="sasrec | msm4sr | missrec | mmmlp | alignrec", autocompletion=_models),
    dataset: Path = typer.Argument(..., help="Dataset artifact from `mmrec prepare`."),
    output: Path = typer.Option(..., "-o", "--output", help="Model artifact to write."),
    features: Optional[str] = typer.Option(None, "--features", help="Features artifact (multimodal models)."),
    init: Optional[Path] = typer.Option(None, "--init", help="Start from a pre-trained model artifact (`mmrec pretrain`)."),
    config: Optional[str] = typer.Option(None, "--config", help=CONFIG_HELP),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
    epochs: Optional[int] = typer.Option(None, "--epochs"),
    lr: Optional[float] = typer.Option(None, "--lr"),
    batch_size: Optional[int] = typer.Option(None, "--batch-size"),
    max_len: Optional[int] = typer.Option(None, "--max-len"),
    seed: Optional[int] = typer.Option(None, "--seed"),
    patience: Optional[int] = typer.Option(None, "--patience"),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="Checkpoint file (default: OUTPUT.ckpt)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the checkpoint of an interrupted run."),
) -> None:
    """Train MODEL on DATASET; the best epoch by validation NDCG@10 is written to OUTPUT."""
    from mmrec_cli import loading, models, stages
    from mmrec_cli.io import dataset as D
    from mmrec_cli.io import model_file

    module = models.get(model)
    flags = {"train.epochs": epochs, "train.lr": lr, "train.batch_size": batch_size, "model.max_len": max_len, "train.seed": seed, "train.patience": patience}
    cfg = loading.resolve_stage(module, config, set_, flags)
    ds = D.load(str(dataset))
    feats, feats_meta = loading.features_for(module, ds, features, model)
    init_state = _init_state(init, model)
    ckpt = str(checkpoint or f"{output}.ckpt")
    with progress(f"finetune {model}", None) as advance:
        run = stages.Run(checkpoint=ckpt, resume=resume, log=say, progress=advance)
        net, result = stages.finetune(model, ds, feats, cfg.model, cfg.train, run, init_state)
    extra = {"init": None if init is None else {"path": str(init), "fingerprint": loading.fingerprint(str(init))}}
    model_file.save(str(output), net, loading.artifact_meta(model, "finetune", cfg, ds, feats_meta, result, invocation(), **extra))
    Path(ckpt).unlink(missing_ok=True)
    say(f"wrote {output}: best epoch {result.best_epoch}, valid {cfg.train.metric} {result.best_metrics.get(cfg.train.metric, float('nan')):.4f}")


def _init_state(init: Optional[Path], model: str):
    if init is None:
        return None
    from mmrec_cli.errors import mismatch
    from mmrec_cli.io import model_file

    state, meta = model_file.load(str(init))
    if meta.get("model") != model:
        raise mismatch(f"{init}: a {meta.get('model')} model cannot initialise {model}; pass a `mmrec pretrain {model}` output")
    return state
