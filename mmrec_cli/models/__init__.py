"""The model registry: a plain dict from name to module, imported only when used.

Every model module defines, top to bottom:
    Config            a dataclass of its hyper-parameters (max_len among them for sequence models)
    Model             an nn.Module following the `Recommender` protocol below
    STAGES            the commands it supports, a subset of {"pretrain", "finetune", "transfer"}
    MODALITIES        feature names it reads from a features artifact (empty for ID-only models)
and may define `train_batches(ds, cfg, train_cfg, epoch)` when it does not train on the standard
sequence batches of `mmrec_cli.data.batches`, and `NUM_USERS = True` when its Model needs the number of
users: `stages.recommender` then builds it with the keyword `num_users=ds.num_users` (AlignRec does).
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Protocol

import torch

from mmrec_cli.errors import bad_input

MODELS = {
    "sasrec": "mmrec_cli.models.sasrec",
    "msm4sr": "mmrec_cli.models.msm4sr",
    "missrec": "mmrec_cli.models.missrec",
    "mmmlp": "mmrec_cli.models.mmmlp",
    "alignrec": "mmrec_cli.models.alignrec",
}


class Recommender(Protocol):
    def loss(self, batch: dict) -> torch.Tensor:
        """The fine-tuning loss of a training batch (a scalar)."""

    def score(self, batch: dict, items: torch.Tensor) -> torch.Tensor:
        """Scores (B, n) of the batch's users for the 0-based item indices `items` (n,)."""


def get(name: str) -> ModuleType:
    if name not in MODELS:
        raise bad_input(f"unknown model '{name}'; choose one of {', '.join(MODELS)}")
    try:
        return importlib.import_module(MODELS[name])
    except ModuleNotFoundError as err:
        if err.name == MODELS[name]:
            from mmrec_cli.errors import MmrecError, NOT_IMPLEMENTED

            raise MmrecError(f"model '{name}' is not implemented yet", NOT_IMPLEMENTED) from err
        raise
