"""Plain functions the commands share: resolve a stage's config, load features, rebuild a model."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import field, make_dataclass

from mmrec_cli import config as C
from mmrec_cli import models
from mmrec_cli.data.dataset import Dataset
from mmrec_cli.errors import bad_input, mismatch, out_of_range
from mmrec_cli.io import artifacts, model_file
from mmrec_cli.models import ModelSpec
from mmrec_cli.training.loop import TrainConfig


def stage_config_class(spec: ModelSpec):
    """A dataclass with two sections: `model` (the model's Config) and `train` (TrainConfig)."""
    return make_dataclass(
        "StageConfig",
        [("model", spec.config, field(default_factory=spec.config)), ("train", TrainConfig, field(default_factory=TrainConfig))],
    )


def resolve_stage(spec: ModelSpec, config_file: str | None, sets: list[str], flags: dict, min_epochs: int = 1):
    """The stage's config from its layers; `min_epochs` 0 where no training is meaningful (zero-shot transfer)."""
    cfg = C.resolve(stage_config_class(spec), config_file, sets, flags, defaults={"train": spec.train_defaults})
    check_ranges(cfg, min_epochs)
    return cfg


def default_settings(spec: ModelSpec) -> dict:
    """Each setting of the stage's config when nothing is given (no --config, --set or flag), by dotted key
    ("model.hidden": 64), as JSON has it. A setting is added with the default that keeps what came before, so a
    checkpoint or artifact that lacks a key was made with this value."""
    cfg = C.resolve(stage_config_class(spec), defaults={"train": spec.train_defaults})
    return C.flatten(json.loads(json.dumps(dataclasses.asdict(cfg))))


# The lowest value each setting can take. Below it a run fails deep in torch (batch size 0), never ends
# (max_len 0 cuts no window) or writes a model trained for no epoch, so it is refused before data is read.
_LOWEST = {"train.batch_size": 1, "train.eval_every": 1, "train.patience": 0, "train.weight_decay": 0, "train.clip_grad": 0, "model.max_len": 1}


def check_ranges(cfg, min_epochs: int = 1) -> None:
    values = dataclasses.asdict(cfg)
    for key, low in {"train.epochs": min_epochs, **_LOWEST}.items():
        section, name = key.split(".")
        value = values[section].get(name)  # a setting the model does not have is skipped
        if value is not None and not value >= low:  # `not >=` also refuses NaN
            raise out_of_range(f"config: {key}", value, f"{low} or more")
    if not (cfg.train.lr > 0 and math.isfinite(cfg.train.lr)):
        raise out_of_range("config: train.lr", cfg.train.lr, "a positive number, e.g. 0.001")
    check_shape(cfg.model)


def check_shape(model_cfg) -> None:
    """Sizes, counts, rates and init scales, by name across the models: a bad one failed deep in torch (internal
    error) or trained something else than asked (-1 layers as 0). No size or count is negative; widths and
    heads are 1 or more, while 0 layers (graph, decoder) is a meaningful ablation. No float is NaN or inf."""
    for name, value in vars(model_cfg).items():
        key = f"config: model.{name}"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if name.endswith(("hidden", "heads")) and isinstance(value, int) and value < 1:
            raise out_of_range(key, value, "1 or more")
        if isinstance(value, int) and value < 0:
            raise out_of_range(key, value, "0 or more")
        if name.endswith("dropout") and isinstance(value, float) and not 0 <= value < 1:
            raise out_of_range(key, value, "a rate in [0, 1)")
        if name.endswith("_std") and not (math.isfinite(value) and value >= 0):
            raise out_of_range(key, value, "a finite number, 0 or more")
        if not math.isfinite(value):
            raise out_of_range(key, value, "a finite number")
    values = vars(model_cfg)
    for hidden, heads in (("hidden", "heads"), ("enc_hidden", "enc_heads")):
        h, n = values.get(hidden), values.get(heads)
        if h is not None and n is not None and h % n:
            raise bad_input(f"config: model.{hidden}={h} is not divisible by model.{heads}={n}; change one of them")


def features_for(spec: ModelSpec, ds: Dataset, path: str | None) -> tuple[dict | None, dict | None]:
    """The features a model reads, aligned to the dataset's items; None for ID-only models."""
    from mmrec_cli.io import feature_file

    needed = spec.modalities
    if not needed:
        return None, None
    if path is None:
        raise bad_input(f"model '{spec.name}' reads item features ({', '.join(needed)}); pass --features FEATS.safetensors (from `mmrec extract` or `mmrec prepare --features-out`)")
    tensors, meta = feature_file.align(path, ds.item_ids)
    for m in needed:
        mask = tensors.get(f"{m}_mask")
        if mask is not None and len(mask) and not bool(mask.bool().any()):
            raise bad_input(f"{path}: every item's '{m}' is masked (no item had {m} when it was extracted); a model would train on zeros. Extract features without '{m}', or with items that have it")
    meta["path"] = path
    return tensors, meta


def keep_architecture(spec: ModelSpec, cfg, meta: dict) -> list[str]:
    """Give cfg.model the architecture of the pre-trained model whose metadata is `meta` (the shapes of
    its weights: `spec.architecture`); say what changed, one entry per setting."""
    source, kept = meta.get("config", {}).get("model", {}), []
    mine = vars(cfg.model)
    for key in spec.architecture:
        if key in source and mine[key] != source[key]:
            kept.append(f"model.{key} = {source[key]!r} (not {mine[key]!r})")
            mine[key] = source[key]
    return kept


def run_identity(cfg, ds: Dataset, feats_meta: dict | None, init: str | None = None) -> dict:
    """What a training run is made of: its resolved config and its inputs' fingerprints (checkpoints record it)."""
    return {
        "config": dataclasses.asdict(cfg),
        "dataset": ds.fingerprint(),
        "features": None if feats_meta is None else feats_meta["fingerprint"],
        "init": None if init is None else fingerprint(init),
    }


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
    """(spec, model with its weights, metadata), refusing other data or features than it was trained on."""
    state, meta = model_file.load(path)
    spec = models.get(meta["model"])
    if check_dataset:
        model_file.check_dataset(meta, ds, path)
    feats, feats_meta = features_for(spec, ds, features_path)
    model_file.check_features(meta, feats_meta, path)
    cfg = C.build(stage_config_class(spec), meta["config"], where=f"{path} config")
    model = spec.build(cfg.model, ds.num_items, feats)  # a per-user table is sized by load_state_dict
    try:
        model.load_state_dict(state)
    except RuntimeError as err:  # a tensor missing, extra or of another shape than the recorded config builds
        raise mismatch(f"{path}: the weights do not fit the model's recorded config ({err}); the file was altered, recreate it") from None
    model.eval()
    return spec, model, meta


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
