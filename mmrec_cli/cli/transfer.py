"""mmrec transfer PRETRAINED DATASET: carry a pre-trained model to a target domain, with or without item IDs."""

from __future__ import annotations

import contextlib
from pathlib import Path

import typer

from mmrec_cli.cli._common import (
    CONFIG_HELP,
    DEVICE,
    DEVICE_HELP,
    SET_HELP,
    TENSORBOARD_HELP,
    check_tensorboard,
    handle_errors,
    invocation,
    progress,
    say,
    training_log,
)
from mmrec_cli.cli.finetune import NPROC_HELP, PRECISION_HELP


@handle_errors
def transfer(
    pretrained: Path = typer.Argument(..., help="Pre-trained model artifact (`mmrec pretrain`)."),
    dataset: Path = typer.Argument(..., help="Target dataset artifact (its catalogue may be new to the model)."),
    output: Path = typer.Option(..., "-o", "--output", help="Model artifact to write (the training log goes to OUTPUT.log.jsonl); evaluate it with `mmrec eval OUTPUT DATASET --features FEATS`."),
    features: str | None = typer.Option(None, "--features", help="Features artifact of the target dataset."),
    mode: str = typer.Option("inductive", "--mode", help="inductive: items by their features only (cold-start, no IDs) | transductive: features and trained item IDs."),
    full: bool = typer.Option(False, "--full", help="Train every parameter (default: the pre-trained transformer stays frozen)."),
    config: str | None = typer.Option(None, "--config", help=CONFIG_HELP),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
    epochs: int | None = typer.Option(None, "--epochs", help="Fine-tuning epochs on the target (0 = zero-shot: the pre-trained model as it is)."),
    lr: float | None = typer.Option(None, "--lr"),
    batch_size: int | None = typer.Option(None, "--batch-size"),
    seed: int | None = typer.Option(None, "--seed"),
    patience: int | None = typer.Option(None, "--patience"),
    checkpoint: Path | None = typer.Option(None, "--checkpoint", help="Checkpoint file (default: OUTPUT.ckpt)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the checkpoint of an interrupted run."),
    precision: str | None = typer.Option(None, "--precision", help=PRECISION_HELP),
    device: str = typer.Option(DEVICE, "--device", help=DEVICE_HELP),
    nproc: int = typer.Option(1, "--nproc", help=NPROC_HELP),
    tensorboard: Path | None = typer.Option(None, "--tensorboard", help=TENSORBOARD_HELP),
) -> None:
    """Fine-tune PRETRAINED on DATASET (best epoch by the validation metric, train.metric), keeping its architecture."""
    from mmrec_cli import models
    from mmrec_cli.data import dataset as D
    from mmrec_cli.errors import bad_input
    from mmrec_cli.io import model_file
    from mmrec_cli.io.atomic import check_artifact_path, check_distinct
    from mmrec_cli.training import allocator, distributed, loading, stages

    if mode not in ("inductive", "transductive"):
        raise typer.BadParameter("--mode must be inductive or transductive")
    check_artifact_path(output)  # now, not after the first epoch; before torchrun starts its processes
    check_artifact_path(checkpoint, "--checkpoint")  # None: OUTPUT.ckpt, in OUTPUT's folder
    ckpt = str(checkpoint or f"{output}.ckpt")
    check_distinct({"-o": output, "--checkpoint": ckpt, "training log": training_log(output)}, {"PRETRAINED": pretrained, "DATASET": dataset, "--features": features, "--config": config})
    check_tensorboard(tensorboard)
    if nproc != 1 and not distributed.launched():  # launch refuses 0 and below
        return distributed.launch(nproc)  # this command again, under torchrun
    state, meta = model_file.load(str(pretrained))
    name = meta.get("model")
    spec = models.get(name)
    if "transfer" not in models.stages(name):
        raise bad_input(f"{pretrained}: model '{name}' has no transfer stage")
    flags = {"model.ids": mode == "transductive", "model.full": True if full else None, "train.epochs": epochs, "train.lr": lr, "train.batch_size": batch_size, "train.seed": seed, "train.patience": patience, "train.precision": precision}
    cfg = loading.resolve_stage(spec, config, set_, flags, min_epochs=0)  # --epochs 0: zero-shot
    ds = D.load(str(dataset))
    feats, feats_meta = loading.features_for(spec, ds, features)
    if feats_meta is not None:
        from mmrec_cli.io.feature_file import check_same_encoders

        check_same_encoders((meta.get("features") or {}).get("encoders"), feats_meta.get("encoders"), str(pretrained), str(features))
    allocator.pin_mmap_threshold(spec.mmap_threshold)  # where the model asks: training/allocator.py
    with distributed.session(device) as ctx:
        log = say if ctx.main else (lambda s: None)
        kept = loading.keep_architecture(spec, cfg, meta)  # said with the result: an error before it stays one line
        with progress(f"transfer {name}", None) if ctx.main else contextlib.nullcontext() as advance:
            run = stages.Run(checkpoint=ckpt, resume=resume, log=log, progress=advance, identity=loading.run_identity(cfg, ds, feats_meta, str(pretrained)),
                             log_file=training_log(output), tensorboard=None if tensorboard is None else str(tensorboard))
            net, result = stages.transfer(name, ds, feats, cfg.model, cfg.train, run, state)
    if not ctx.main:
        return  # rank 0 alone writes
    extra = {"init": loading.init_record(str(pretrained), meta), "mode": mode, "sources": meta.get("sources")}
    model_file.save(str(output), net, loading.artifact_meta(name, "transfer", cfg, ds, feats_meta, result, invocation(), **extra))
    Path(ckpt).unlink(missing_ok=True)
    metric = result.best_metrics.get(cfg.train.metric)
    how = "zero-shot (not fine-tuned)" if cfg.train.epochs == 0 else f"best epoch {result.best_epoch}"
    say(f"wrote {output}: {mode} transfer, {how}" + (f", valid {cfg.train.metric} {metric:.4f}" if metric is not None else ""))
    if kept:
        say(f"kept the pre-trained model's architecture: {'; '.join(kept)}")
