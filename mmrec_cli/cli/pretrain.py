"""mmrec pretrain MODEL DATASET [DATASET ...]: self-supervised pre-training on one or several domains."""

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
from mmrec_cli.cli.finetune import NPROC_HELP, PRECISION_HELP


def _models() -> list[str]:
    return models.names("pretrain")


@handle_errors
def pretrain(
    model: str = typer.Argument(..., help=models.help_text("pretrain"), autocompletion=_models),
    datasets: list[Path] = typer.Argument(..., help="One or more dataset artifacts (several = multi-domain pre-training)."),
    output: Path = typer.Option(..., "-o", "--output", help="Pre-trained model artifact to write (feed it to `finetune --init`); the training log goes to OUTPUT.log.jsonl."),
    features: list[str] = typer.Option([], "--features", help="Features artifact of each dataset, in the same order (repeat)."),
    config: str | None = typer.Option(None, "--config", help=CONFIG_HELP),
    set_: list[str] = typer.Option([], "--set", help=SET_HELP),
    epochs: int | None = typer.Option(None, "--epochs"),
    lr: float | None = typer.Option(None, "--lr"),
    batch_size: int | None = typer.Option(None, "--batch-size"),
    max_len: int | None = typer.Option(None, "--max-len"),
    seed: int | None = typer.Option(None, "--seed"),
    checkpoint: Path | None = typer.Option(None, "--checkpoint", help="Checkpoint file (default: OUTPUT.ckpt)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the checkpoint of an interrupted run."),
    precision: str | None = typer.Option(None, "--precision", help=PRECISION_HELP),
    device: str = typer.Option(DEVICE, "--device", help=DEVICE_HELP),
    nproc: int = typer.Option(1, "--nproc", help=NPROC_HELP),
    tensorboard: Path | None = typer.Option(None, "--tensorboard", help=TENSORBOARD_HELP),
) -> None:
    """Pre-train MODEL with its self-supervised losses on the train split of every DATASET."""
    from mmrec_cli.errors import bad_input
    from mmrec_cli.io import model_file
    from mmrec_cli.io.atomic import check_artifact_path, check_distinct
    from mmrec_cli.training import allocator, distributed, loading, stages

    check_artifact_path(output)  # now, not after the first epoch; before torchrun starts its processes
    check_artifact_path(checkpoint, "--checkpoint")  # None: OUTPUT.ckpt, in OUTPUT's folder
    ckpt = str(checkpoint or f"{output}.ckpt")
    check_distinct({"-o": output, "--checkpoint": ckpt, "training log": training_log(output)}, {"DATASETS": datasets, "--features": features, "--config": config})
    check_tensorboard(tensorboard)
    if nproc != 1 and not distributed.launched():  # launch refuses 0 and below
        return distributed.launch(nproc)  # this command again, under torchrun
    spec = models.get(model)
    if "pretrain" not in models.stages(model):
        raise bad_input(f"model '{model}' has no pre-training stage; use `mmrec finetune {model}`")
    if spec.modalities and len(features) != len(datasets):
        raise bad_input(f"give one --features per dataset ({len(datasets)} datasets, {len(features)} --features)")
    flags = {"train.epochs": epochs, "train.lr": lr, "train.batch_size": batch_size, "model.max_len": max_len, "train.seed": seed, "train.precision": precision}
    cfg = loading.resolve_stage(spec, config, set_, flags)
    ds, feats, feats_meta = _load_all(spec, datasets, features)
    allocator.pin_mmap_threshold(spec.mmap_threshold)  # where the model asks: training/allocator.py
    with distributed.session(device) as ctx, progress(f"pretrain {model}", None) if ctx.main else contextlib.nullcontext() as advance:
        run = stages.Run(checkpoint=ckpt, resume=resume, log=say if ctx.main else (lambda s: None), progress=advance, identity=loading.run_identity(cfg, ds, feats_meta),
                         log_file=training_log(output), tensorboard=None if tensorboard is None else str(tensorboard))
        net, result = stages.pretrain(model, ds, feats, cfg.model, cfg.train, run)
    if not ctx.main:
        return
    meta = loading.artifact_meta(model, "pretrain", cfg, ds, feats_meta, result, invocation(), sources=[str(d) for d in datasets])
    model_file.save(str(output), net, meta)
    Path(ckpt).unlink(missing_ok=True)
    n = result.best_epoch + 1
    say(f"wrote {output}: pre-trained {n} epoch{'s' if n != 1 else ''} on {ds.num_users} users, {ds.num_items} items")


def _load_all(spec, datasets, features):
    """Load every dataset (and its features), merged into one catalogue when there are several."""
    import torch

    from mmrec_cli.data import dataset as D
    from mmrec_cli.io import feature_file as FE
    from mmrec_cli.training import loading

    loaded = [D.load(str(p)) for p in datasets]
    feats_list = [loading.features_for(spec, d, f) for d, f in zip(loaded, features or [None] * len(loaded))]
    ds, _ = D.merge(loaded)
    if not spec.modalities:
        return ds, None, None
    names = [k for k in feats_list[0][0] if all(k in f[0] for f in feats_list)]
    for m in sorted({m for f in feats_list for m in f[0] if "_" not in m} - set(names)):  # a modality some domains lack
        lacking = [str(p) for p, f in zip(features, feats_list) if m not in f[0]]
        say(f"pre-training without '{m}': {', '.join(lacking)} has no '{m}' features (a model pre-trains on the modalities every dataset has)")
    feats = {k: torch.cat([f[0][k] for f in feats_list]) for k in names}
    metas = [f[1] for f in feats_list]
    for other in metas[1:]:  # one model reads them all: the same encoder for each modality
        FE.check_same_encoders(metas[0].get("encoders"), other.get("encoders"), metas[0]["path"], other["path"])
    meta = metas[0] if len(metas) == 1 else {"path": "+".join(m["path"] for m in metas), "fingerprint": "+".join(m["fingerprint"] for m in metas), "encoders": metas[0].get("encoders")}
    return ds, feats, meta
