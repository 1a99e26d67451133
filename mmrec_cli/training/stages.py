"""Pretrain, finetune and transfer: separate small functions over the one training loop.

Each stage builds a model from the registry, resolves its batches, calls `loop.fit`, and returns
the model with the best state loaded plus the fit result. Commands write the artifacts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from mmrec_cli import models
from mmrec_cli.data.dataset import Dataset
from mmrec_cli.errors import mismatch
from mmrec_cli.evaluation.ranking import EvalConfig, evaluate
from mmrec_cli.models import ModelSpec, Pretrainable, Recommender
from mmrec_cli.training.loading import default_settings
from mmrec_cli.training.loop import FitResult, TrainConfig, fit


@dataclass
class Run:
    """Where a stage keeps its state and tells people what happens."""

    checkpoint: str | None = None
    resume: bool = False
    log: Callable[[str], None] = lambda s: None
    progress: Callable | None = None
    identity: dict | None = None  # what the checkpoint must have been made with to be resumed (loading.run_identity)
    log_file: str | None = None  # the training log, one JSON line per epoch (loop.EpochLog); None: none
    tensorboard: str | None = None  # a folder for TensorBoard scalars of the same numbers; None: none


def recommender(spec: ModelSpec, model_cfg, ds: Dataset, features: dict | None) -> Recommender:
    """The model for training on `ds`. A model with a per-user table (`spec.needs_users`) also gets
    `num_users=ds.num_users`: it is sized from the dataset, never from the batches a process sees."""
    extra = {"num_users": ds.num_users} if spec.needs_users else {}
    return spec.build(model_cfg, ds.num_items, features, **extra)


def batches_for(spec: ModelSpec, ds: Dataset, model_cfg, train_cfg: TrainConfig, stage: str = "finetune"):
    """The function of epoch -> batches for a model."""
    return lambda epoch: spec.train_batches(ds, model_cfg, train_cfg, epoch, stage)


def validator(model: Recommender, ds: Dataset, mask_history: bool = False) -> Callable[[], dict]:
    cfg = EvalConfig(split="valid", mask_history=mask_history)
    return lambda: evaluate(model, ds, cfg)[0]  # batches go to the model's device


def finetune(name: str, ds: Dataset, features: dict | None, model_cfg, train_cfg: TrainConfig, run: Run, init: dict | None = None) -> tuple:
    """Train a model for recommendation, selecting the best epoch on the validation metric (train_cfg.metric)."""
    spec = models.get(name)
    torch.manual_seed(train_cfg.seed)
    model = recommender(spec, model_cfg, ds, features)
    if init is not None:
        loaded = load_init(spec, model, init, run.log)
        if spec.after_init is not None:  # e.g. MISSRec freezes its transformer after pre-training
            spec.after_init(model, run.log, loaded)
        check_frozen(model, loaded)
    mask = ds.protocol == "ratio"
    result = _fit(spec, model, batches_for(spec, ds, model_cfg, train_cfg), model.loss, train_cfg, validator(model, ds, mask), run)
    model.load_state_dict(result.best_state)
    return model, result


def pretrain(name: str, ds: Dataset, features: dict | None, model_cfg, train_cfg: TrainConfig, run: Run) -> tuple:
    """Self-supervised pre-training with the model's `pretrain_loss`; keeps the last epoch's state."""
    spec = models.get(name)
    torch.manual_seed(train_cfg.seed)
    model: Pretrainable = spec.build(model_cfg, ds.num_items, features)  # no user tables: none is pre-trained
    result = _fit(spec, model, batches_for(spec, ds, model_cfg, train_cfg, stage="pretrain"), model.pretrain_loss, train_cfg, None, run)
    model.load_state_dict(result.best_state)
    return model, result


def _fit(spec: ModelSpec, model, batches, loss_fn, train_cfg: TrainConfig, validate, run: Run) -> FitResult:
    """The training loop with the run's checkpoint, resume, identity, log and progress."""
    return fit(model, batches, loss_fn, train_cfg, validate=validate, checkpoint=run.checkpoint, resume=run.resume,
               log=run.log, progress=run.progress, identity=run.identity, log_file=run.log_file, tensorboard=run.tensorboard,
               defaults=default_settings(spec), same_results=tuple(f"model.{key}" for key in spec.same_results))


def transfer(name: str, ds: Dataset, features: dict | None, model_cfg, train_cfg: TrainConfig, run: Run, init: dict) -> tuple:
    """Carry a pre-trained model to another domain: fine-tune it from `init` on `ds`.

    The target catalogue may differ from the source: tensors whose shape depends on it (ID embeddings,
    interest tables) start fresh, the rest is loaded. With train_cfg.epochs = 0 the pre-trained model
    is kept as it is (zero-shot).
    """
    return finetune(name, ds, features, model_cfg, train_cfg, run, init)


def load_init(spec: ModelSpec, model: Recommender, state: dict, log: Callable[[str], None]) -> set[str]:
    """Load pre-trained weights where names and shapes match; say what was left out; return the names loaded.

    A tensor of another shape may only start fresh when the spec says so (`spec.fresh`: sized by the
    catalogue or the users, or a fine-tuning layer); any other means the pre-trained model was built
    with other settings, and half of it would be random: refused."""
    own = model.state_dict()
    for name in sorted(set(state) & set(own)):
        if own[name].shape != state[name].shape and not name.startswith(spec.fresh):
            raise mismatch(
                f"--init: {name} has shape {tuple(state[name].shape)} in the pre-trained model but {tuple(own[name].shape)} here; "
                f"build the model with the pre-trained model's settings ({', '.join(f'model.{k}' for k in spec.architecture) or 'its config'}; see `mmrec info`)"
            )
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    skipped = sorted(set(state) - set(usable))
    fresh = sorted(set(own) - set(usable))
    model.load_state_dict(usable, strict=False)
    parts = sorted({name.rsplit(".", 1)[0] if "." in name else name for name in fresh})  # modules, not each tensor
    log(f"initialised {len(usable)} tensors from the pre-trained model; {len(fresh)} trained from scratch"
        + (f" ({', '.join(parts[:6])}{', ...' if len(parts) > 6 else ''})" if parts else "") + f", {len(skipped)} unused")
    return set(usable)


def check_frozen(model: Recommender, loaded: set[str]) -> None:
    """A parameter frozen after an init must hold pre-trained values, never its random initialisation."""
    random = [n for n, p in model.named_parameters() if not p.requires_grad and n not in loaded]
    if random:
        raise mismatch(f"--init: {random[0]} is frozen but was not in the pre-trained model; train every parameter (model.full=true) or pre-train with these settings")
