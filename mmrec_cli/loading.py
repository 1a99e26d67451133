"""Plain functions the commands share: resolve a stage's config, load features, rebuild a model."""

from __future__ import annotations

import dataclasses
from dataclasses import field, make_dataclass

from mmrec_cli import config as C
from mmrec_cli import models
from mmrec_cli.errors import bad_input
from mmrec_cli.io import artifacts, model_file
from mmrec_cli.io.dataset import Dataset
from mmrec_cli.train import TrainConfig


def stage_config_class(module):
    """A dataclass with two sections: `model` (the model's Config) and `train` (TrainConfig)."""
    return make_dataclass(
        "StageConfig",
        [("model", module.Config, field(default_factory=module.Config)), ("train", TrainConfig, field(default_factory=TrainConfig))],
    )


def resolve_stage(module, config_file: str | None, sets: list[str], flags: dict):
    return C.resolve(stage_config_class(module), config_file, sets, flags)


def features_for(module, ds: Dataset, path: str | None, name: str) -> tuple[dict | None, dict | None]:
    """The features a model reads, aligned to the dataset's items; None for ID-only models."""
    from mmrec_cli.io import features

    needed = tuple(getattr(module, "MODALITIES", ()))
    if not needed:
        return None, None
    if path is None:
        raise bad_input(f"model '{name}' reads item features ({', '.join(needed)}); pass --features FEATS.safetensors (from `mmrec extract` or `mmrec prepare --features-out`)")
    tensors, meta = features.align(path, ds.item_ids)
    meta["path"] = path
    return tensors, meta


def artifact_meta(name: str, stage: str, cfg, ds: Dataset, feats_meta: dict | None, result, inv: dict, **extra) -> dict:
    return {
        "model": name,
        "stage": stage,
        "command": inv,
        "config": dataclasses.asdict(cfg),
        "dataset": {"path": ds.meta.get("path"), "fingerprint": ds.fingerprint(), "item_fingerprint": ds.item_fingerprint()},
        "features": None if feats_meta is None else {"path": feats_meta.get("path"), "fingerprint": feats_meta["fingerprint"], "encoders": feats_meta.get("encoders")},
        "best_epoch": result.best_epoch,
        "valid": {k: v for k, v in result.best_metrics.items()},
        "history": result.history,
        "seed": cfg.train.seed,
        **extra,
    }


def load_trained(path: str, ds: Dataset, features_path: str | None, check_dataset: bool = True):
    """(module, model with its weights, metadata), refusing other data or features than it was trained on."""
    state, meta = model_file.load(path)
    module = models.get(meta["model"])
    if check_dataset:
        model_file.check_dataset(meta, ds, path)
    feats, feats_meta = features_for(module, ds, features_path, meta["model"])
    model_file.check_features(meta, feats_meta, path)
    cfg = C.build(stage_config_class(module), meta["config"], where=f"{path} config")
    model = module.Model(cfg.model, ds.num_items, feats)
    model.load_state_dict(state)
    model.eval()
    return module, model, meta


def fingerprint(path: str) -> str:
    return artifacts.fingerprint_file(path)


def setting(meta: dict) -> str:
    """A fingerprint of how a model was made, its seed aside: runs that differ only by seed share it.

    It covers the model, the stage, the resolved config (without train.seed), the data and features
    fingerprints, and what the run started from (the init's own setting, so that fine-tuning runs of
    several seeds from one pre-training, or from pre-trainings that differ only by seed, share it)."""
    import json

    config = dict(meta.get("config") or {})
    if "train" in config:
        config["train"] = {k: v for k, v in config["train"].items() if k != "seed"}
    init = meta.get("init")
    made = {
        "model": meta.get("model"), "stage": meta.get("stage"), "config": config,
        "dataset": (meta.get("dataset") or {}).get("fingerprint"), "features": (meta.get("features") or {}).get("fingerprint"),
        "init": None if not init else init.get("setting") or init.get("fingerprint"),
    }
    return artifacts.fingerprint_strings([json.dumps(made, sort_keys=True)])


def init_record(path: str, meta: dict) -> dict:
    """What a fine-tuning or transfer artifact records of the model it started from."""
    return {"path": path, "fingerprint": fingerprint(path), "setting": setting(meta)}
