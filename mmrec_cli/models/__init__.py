"""The model registry, the contract every model follows, and the spec each model module registers.

A model module (`models/<name>.py`) defines, top to bottom, a `Config` dataclass, a `Model` nn.Module
that satisfies `Recommender` (and `Pretrainable` where it has a pre-training stage), its own helpers,
and `SPEC = ModelSpec(...)`. The registry below names each module and the stages it supports; it is
read without importing torch, so that `mmrec --help` and shell completion stay instant. Training
(`training/stages.py`), evaluation (`evaluation/ranking.py`) and recommendation
(`evaluation/recommend.py`) are written against these types only.

Scoring is split in two: `users(batch)` computes a batch's user side once (the transformer over the
histories, or whatever the model needs), `score_users(users, items)` scores any chunk of the
catalogue from it, cheaply. Full ranking calls the first once per batch of users and the second once
per item chunk.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from mmrec_cli.errors import bad_input

if TYPE_CHECKING:  # the registry is read by `--help` and completion: no torch import here
    import torch

# The one default history length (RecBole's MAX_ITEM_LIST_LENGTH): every sequence model's Config
# starts from it; evaluation, recommendation and clustering read the value from the model.
MAX_LEN = 50


class Entry(NamedTuple):
    module: str
    stages: tuple[str, ...]  # the commands the model supports, among pretrain, finetune, transfer
    summary: str


MODELS: dict[str, Entry] = {
    "sasrec": Entry("mmrec_cli.models.sasrec", ("finetune",), "SASRec: self-attention over item IDs (the ID-only baseline)"),
    "gru4rec": Entry("mmrec_cli.models.gru4rec", ("finetune",), "GRU4Rec: a recurrent network (GRU) over item IDs (an ID-only baseline)"),
    "bert4rec": Entry("mmrec_cli.models.bert4rec", ("finetune",), "BERT4Rec: masked item prediction with a bidirectional transformer over item IDs (an ID-only baseline)"),
    "fmlprec": Entry("mmrec_cli.models.fmlprec", ("finetune",), "FMLP-Rec: learnable frequency-domain filters in an all-MLP encoder over item IDs (an ID-only baseline)"),
    "msm4sr": Entry("mmrec_cli.models.msm4sr", ("pretrain", "finetune"), "MSM4SR: multimodal pre-training with sentence stacks, NIP and CMCL"),
    "missrec": Entry("mmrec_cli.models.missrec", ("pretrain", "finetune", "transfer"), "MISSRec: interest-aware multimodal pre-training and transfer"),
    "unisrec": Entry("mmrec_cli.models.unisrec", ("pretrain", "finetune", "transfer"), "UniSRec: MoE-adapted item text in a transformer, pre-trained to transfer (the text baseline)"),
    "mmmlp": Entry("mmrec_cli.models.mmmlp", ("finetune",), "MMMLP: all-MLP mixers over image, text and ID sequences"),
    "alignrec": Entry("mmrec_cli.models.alignrec", ("pretrain", "finetune"), "AlignRec: aligned multimodal item encoder and a graph recommender"),
}


def names(stage: str | None = None) -> list[str]:
    """Registered model names, those that support `stage` when given."""
    return [n for n, e in MODELS.items() if stage is None or stage in e.stages]


def help_text(stage: str | None) -> str:
    return " | ".join(names(stage))


class Scorer(Protocol):
    """What evaluation and recommendation use of a model (a trained one, or a feature probe).

    A batch is a dict of tensors: `items` (B, L) item index + 1, right-padded with 0, oldest first;
    `lengths` (B,); `user` (B,) the dataset's user index (-1: unknown); training batches add the
    model's own keys (`targets`, `target`, ...) from its `SPEC.train_batches`.
    """

    max_len: int  # the longest history the model reads; the last max_len items of a history are kept

    def users(self, batch: dict) -> Any:
        """The user side of a batch (a (B, D) tensor, or a small struct), computed once per batch."""
        ...

    def score_users(self, users: Any, items: torch.Tensor) -> torch.Tensor:
        """Scores (B, n) of the users from `users(batch)` for the 0-based item indices `items` (n,): a new
        tensor, which evaluation overwrites in place."""
        ...

    def train(self, mode: bool = True) -> Any: ...

    def eval(self) -> Any: ...

    def parameters(self, recurse: bool = True) -> Iterator[torch.nn.Parameter]: ...


class Recommender(Scorer, Protocol):
    """A trainable model: what the training loop and the stages use besides `Scorer`."""

    cfg: Any

    def loss(self, batch: dict) -> torch.Tensor:
        """The fine-tuning loss of a training batch (a scalar)."""
        ...


class Pretrainable(Recommender, Protocol):
    def pretrain_loss(self, batch: dict) -> torch.Tensor:
        """The self-supervised loss of a pre-training batch (a scalar). A loss whose mean is over fewer
        targets than the batch holds (targets dropped inside it) sets `batch["num_targets"]` to its count."""
        ...


@dataclass(frozen=True)
class ModelSpec:
    """How the stages build and feed one model; registered as `SPEC` by its module."""

    name: str
    config: type  # the Config dataclass (the `model` section of a stage's config)
    build: Callable[..., Recommender]  # build(cfg, num_items, features) (+ num_users=... when needs_users)
    train_batches: Callable[..., Iterator[dict]]  # train_batches(ds, cfg, train_cfg, epoch, stage) -> batches
    modalities: tuple[str, ...] = ()  # features it reads (empty: IDs only, no --features)
    architecture: tuple[str, ...] = ()  # config keys a model built from a pre-trained one keeps from it
    needs_users: bool = False  # built with num_users=ds.num_users (a per-user table)
    train_defaults: dict = field(default_factory=dict)  # the paper's training/selection settings (e.g. metric), above TrainConfig's
    fresh: tuple[str, ...] = ()  # state names (prefixes) that start fresh when an init's shape differs (catalogue-sized)
    same_results: tuple[str, ...] = ()  # config keys that change how, not what, it computes (memory, speed): a resume or sweep may differ in them
    after_init: Callable[[Any, Callable[[str], None], set[str]], None] | None = None  # (model, log, names loaded)
    mmap_threshold: int | None = None  # bytes: glibc's mmap threshold its training commands pin (training/allocator.py); None: glibc's own


def get(name: str) -> ModelSpec:
    if name not in MODELS:
        raise bad_input(f"unknown model '{name}'; choose one of {', '.join(MODELS)}")
    return importlib.import_module(MODELS[name].module).SPEC


def stages(name: str) -> tuple[str, ...]:
    return MODELS[name].stages


def score(model: Scorer, batch: dict, items: torch.Tensor) -> torch.Tensor:
    """Scores (B, n) of a batch for `items` in one call (tests, notebooks)."""
    return model.score_users(model.users(batch), items)
