"""mmrec finetune MODEL DATASET: train a recommender, keep the best epoch on validation."""

from __future__ import annotations

import contextlib
from pathlib import Path

import typer

from mmrec_cli import models
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

PRECISION_HELP = "fp32 | bf16 | fp16: mixed precision (torch.autocast) for training; fp32 unless set."
NPROC_HELP = "Train with N processes on this machine (starts torchrun; same result as 1 process for the same global batch)."


def _models() -> list[str]:
    return models.names("finetune")


@handle_errors
def finetune(
    model: str = typer.Argument(..., help=models.help_text("finetune"), autocompletion=_models),
    dataset: Path = typer.Argument(..., help="Dataset artifact from `mmrec prepare`."),
    output: Path = typer.Option(..., "-o", "--output", help="Model artifact to write; the training log goes beside it, to OUTPUT.log.jsonl."),
    features: str | None = typer.Option(None, "--features", help="Features artifact (multimodal models)."),
    init: Path | None = typer.Option(None, "--init", help="Start from a pre-trained model artifact (`mmrec pretrain`)."),
    config: str | None = typer.Option(None, "--config", help=CONFIG_HELP),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
    epochs: int | None = typer.Option(None, "--epochs"),
    lr: float | None = typer.Option(None, "--lr"),
    batch_size: int | None = typer.Option(None, "--batch-size"),
    max_len: int | None = typer.Option(None, "--max-len"),
    seed: int | None = typer.Option(None, "--seed"),
    patience: int | None = typer.Option(None, "--patience"),
    checkpoint: Path | None = typer.Option(None, "--checkpoint", help="Checkpoint file (default: OUTPUT.ckpt)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the checkpoint of an interrupted run."),
    seeds: str | None = typer.Option(None, "--seeds", help="Several runs, e.g. 1,2,3: one artifact per seed, OUTPUT with .seedN before its suffix."),
    precision: str | None = typer.Option(None, "--precision", help=PRECISION_HELP),
    device: str = typer.Option(DEVICE, "--device", help=DEVICE_HELP),
    nproc: int = typer.Option(1, "--nproc", help=NPROC_HELP),
    tensorboard: Path | None = typer.Option(None, "--tensorboard", help=TENSORBOARD_HELP),
) -> None:
    """Train MODEL on DATASET; the best epoch by the validation metric (train.metric; see `mmrec config MODEL`) is written to OUTPUT."""
    from mmrec_cli.data import dataset as D
    from mmrec_cli.io import model_file
    from mmrec_cli.io.atomic import check_artifact_path, check_distinct
    from mmrec_cli.training import allocator, distributed, loading, stages

    check_artifact_path(output)  # now, not after the first epoch; before torchrun starts its processes
    check_artifact_path(checkpoint, "--checkpoint")  # None: OUTPUT.ckpt, in OUTPUT's folder
    paths = run_paths(output, checkpoint, seeds)
    written = {"-o": [out for _, out, _ in paths], "--checkpoint": [ckpt for _, _, ckpt in paths], "training log": [training_log(out) for _, out, _ in paths]}
    check_distinct(written, {"DATASET": dataset, "--features": features, "--init": init, "--config": config})
    check_tensorboard(tensorboard)
    if nproc != 1 and not distributed.launched():  # launch refuses 0 and below
        return distributed.launch(nproc)  # this command again, under torchrun
    spec = models.get(model)
    flags = {"train.epochs": epochs, "train.lr": lr, "train.batch_size": batch_size, "model.max_len": max_len, "train.seed": seed, "train.patience": patience, "train.precision": precision}
    base = loading.resolve_stage(spec, config, set_, flags)
    ds = D.load(str(dataset))
    feats, feats_meta = loading.features_for(spec, ds, features)
    init_state, init_meta = _init_state(init, model)
    if init_meta is not None and feats_meta is not None:
        from mmrec_cli.io.feature_file import check_same_encoders

        check_same_encoders((init_meta.get("features") or {}).get("encoders"), feats_meta.get("encoders"), str(init), str(features))
    extra = {"init": None if init is None else loading.init_record(str(init), init_meta)}  # the same for every seed
    allocator.pin_mmap_threshold(spec.mmap_threshold)  # where the model asks: training/allocator.py
    with distributed.session(device) as ctx:
        log = say if ctx.main else (lambda s: None)
        for cfg, out, ckpt in seed_runs(base, paths):
            with progress(f"finetune {model}", None) if ctx.main else contextlib.nullcontext() as advance:
                identity = loading.run_identity(cfg, ds, feats_meta, None if init is None else str(init))
                board = None if tensorboard is None else str(tensorboard if seeds is None else tensorboard / f"seed{cfg.train.seed}")
                run = stages.Run(checkpoint=ckpt, resume=resume, log=log, progress=advance, identity=identity, log_file=training_log(out), tensorboard=board)
                net, result = stages.finetune(model, ds, feats, cfg.model, cfg.train, run, init_state)
            if not ctx.main:
                continue
            model_file.save(str(out), net, loading.artifact_meta(model, "finetune", cfg, ds, feats_meta, result, invocation(), **extra))
            Path(ckpt).unlink(missing_ok=True)
            say(f"wrote {out}: best epoch {result.best_epoch}, valid {cfg.train.metric} {result.best_metrics.get(cfg.train.metric, float('nan')):.4f}")


def _init_state(init: Path | None, model: str):
    if init is None:
        return None, None
    from mmrec_cli.errors import mismatch
    from mmrec_cli.io import model_file

    state, meta = model_file.load(str(init))
    if meta.get("model") != model:
        raise mismatch(f"{init}: a {meta.get('model')} model cannot initialise {model}; pass a `mmrec pretrain {model}` output")
    return state, meta


def run_paths(output: Path, checkpoint: Path | None, seeds: str | None) -> list[tuple[int | None, Path, str]]:
    """(seed, output, checkpoint) of each run: one without --seeds (seed None: the config's), else one per
    seed (OUTPUT.seedN.ext)."""
    from mmrec_cli.training.sweep import parse_seeds

    if seeds is None:
        return [(None, output, str(checkpoint or f"{output}.ckpt"))]
    runs = []
    for s in parse_seeds(seeds):
        out = output.with_name(f"{output.stem}.seed{s}{output.suffix}")
        runs.append((s, out, f"{checkpoint}.seed{s}" if checkpoint else f"{out}.ckpt"))
    return runs


def seed_runs(cfg, paths: list[tuple[int | None, Path, str]]):
    """(config, output, checkpoint) of each run of `run_paths`, the config with the run's seed."""
    import dataclasses

    return [(cfg if s is None else dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, seed=s)), out, ckpt) for s, out, ckpt in paths]
