"""Strict, layered configuration: dataclass defaults < --config file < --set key=value < typed flags.

Configs are plain dataclasses (each model file defines its own `Config`). `resolve` builds one from
the layers and refuses unknown keys and values that do not parse as the field's type. Nested
sections are written with a dot: `--set train.lr=3e-4`.

A config file is JSON, TOML (`.toml`) or YAML (`.yaml`/`.yml`, read with PyYAML's safe_load). At its top
level it may also use RecBole's flat key names (`learning_rate`, `hidden_size`, ...): `RECBOLE_ALIASES`
maps each to an mmrec key, `RECBOLE_IGNORED` lists those that only restate mmrec's fixed protocol, and
`RECBOLE_UNSUPPORTED` those refused with the reason.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path
from typing import Any

import tomllib

from mmrec_cli.errors import bad_input, not_found


def resolve(cls: type, config_file: str | None = None, sets: list[str] | None = None, flags: dict | None = None, defaults: dict | None = None):
    """An instance of dataclass `cls` from the layers; `flags` entries that are None are not given.
    `defaults` (nested, e.g. a model's own training defaults) sit above the dataclasses' defaults and
    below everything the user gives."""
    values: dict[str, Any] = {}
    if defaults:
        _merge(values, {k: dict(v) if isinstance(v, dict) else v for k, v in defaults.items()}, "defaults")
    if config_file:
        _merge(values, recbole_aliases(cls, read_config_file(config_file), config_file), config_file)
    for item in sets or []:
        key, value = _parse_set(item)
        _merge(values, _nest(key, value), f"--set {item}")
    for key, value in (flags or {}).items():
        if value is not None:
            _merge(values, _nest(key, value), f"flag {key}")
    return build(cls, values, where="config")


def build(cls: type, values: dict, where: str = "config", prefix: str = ""):
    """Instantiate dataclass `cls` from a (nested) dict, strictly; `prefix` names the section in errors."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise bad_input(f"{where}: unknown key '{prefix}{unknown[0]}'; known keys{' of ' + prefix[:-1] if prefix else ''}: {', '.join(fields)}")
    kwargs = {name: _coerce(hints[name], values[name], where, f"{prefix}{name}") for name in values}
    return cls(**kwargs)


# Said after the value a file is taken to have been made with when it does not record a setting (a checkpoint or
# model written before the setting existed; loading.default_settings gives the value).
PREDATES = " (not recorded: the file predates the setting, which then had its default)"


def flatten(values: dict, prefix: str = "") -> dict[str, Any]:
    """A nested dict by dotted key: {"model": {"hidden": 64}} -> {"model.hidden": 64}."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out |= flatten(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def read_config_file(path: str) -> dict:
    p = Path(path)
    if not p.is_file():
        raise not_found(f"{path}: config file not found; check the path")
    yaml = p.suffix.lower() in (".yaml", ".yml")
    try:
        text = p.read_text(encoding="utf-8")
        if yaml:
            data = _read_yaml(text, path)
        elif p.suffix == ".toml":
            data = tomllib.loads(text)
        else:
            data = json.loads(text)
    except (ValueError, RecursionError) as err:  # JSON/TOML/UTF-8 errors are ValueErrors; so are 4300+ digit numbers
        raise bad_input(f"{path}: cannot parse config ({err}); use JSON, TOML (.toml) or YAML (.yaml)") from err
    if not isinstance(data, dict):
        raise bad_input(f"{path}: a config file must hold an object of key/values")
    return data


def _read_yaml(text: str, path: str):
    """YAML by safe_load (plain data, no Python objects); its keys must be names, and no list or mapping may
    appear twice (YAML anchors and aliases), which would let a short file expand into a huge value."""
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ValueError(f"{err.problem or err.context}{where}") from None
    except yaml.YAMLError as err:
        raise ValueError(str(err).splitlines()[0] if str(err) else type(err).__name__) from None
    seen: set[int] = set()

    def check(value, where: str) -> None:
        if not isinstance(value, (dict, list)):
            return
        if id(value) in seen:
            raise bad_input(f"{path}: {where or 'the file'} repeats a YAML anchor; write the values out instead of aliasing them")
        seen.add(id(value))
        for key, item in value.items() if isinstance(value, dict) else enumerate(value):
            if isinstance(value, dict) and not isinstance(key, str):
                raise bad_input(f"{path}: key {key!r}{' in ' + where if where else ''} is not a name; quote it or use a setting's name")
            check(item, f"{where}.{key}" if where else str(key))

    check(data, "")
    return data


# RecBole's flat config names (its YAML files) and the mmrec key each stands for. A model key applies only
# where the model's Config has that setting; elsewhere the name is an unknown key.
RECBOLE_ALIASES = {
    "MAX_ITEM_LIST_LENGTH": "model.max_len",
    "hidden_size": "model.hidden",
    "n_layers": "model.layers",
    "n_heads": "model.heads",
    "inner_size": "model.inner",
    "hidden_dropout_prob": "model.dropout",
    "attn_dropout_prob": "model.attn_dropout",
    "initializer_range": "model.init_std",
    "embedding_size": "model.embedding",  # GRU4Rec
    "num_layers": "model.layers",  # GRU4Rec
    "dropout_prob": "model.dropout",  # GRU4Rec
    "hidden_act": "model.act",  # BERT4Rec
    "layer_norm_eps": "model.norm_eps",  # BERT4Rec
    "mask_ratio": "model.mask_ratio",  # BERT4Rec
    "ft_ratio": "model.ft_ratio",  # BERT4Rec
    "learning_rate": "train.lr",
    "train_batch_size": "train.batch_size",
    "epochs": "train.epochs",
    "stopping_step": "train.patience",
    "eval_step": "train.eval_every",
    "valid_metric": "train.metric",
    "weight_decay": "train.weight_decay",
    "seed": "train.seed",
}

# RecBole names that restate what mmrec always does: accepted with that value and then ignored.
RECBOLE_IGNORED = {
    "learner": (lambda v: isinstance(v, str) and v.lower() == "adam", "adam", "mmrec trains with Adam"),
    "reproducibility": (lambda v: v is True, "true", "mmrec runs are deterministic for a seed"),
    "show_progress": (lambda v: isinstance(v, bool), "true or false", "a progress bar is shown on a terminal's stderr"),
}

_DATA = "`mmrec prepare` reads the data and makes the splits (docs/data_formats.md); give its artifact as DATASET"
_METRICS = "`mmrec eval` ranks all items and reports recall, ndcg, mrr and hit at 5, 10, 20 and 50; train.metric picks the validation metric"
# RecBole names with no mmrec setting, and why.
RECBOLE_UNSUPPORTED = {
    "eval_args": "the split is made by `mmrec prepare --split`, and evaluation always ranks all items",
    "metrics": _METRICS,
    "topk": _METRICS,
    "metric_decimal_place": _METRICS,
    "loss_type": "each model trains with its paper's loss (see `mmrec config MODEL` for its switches)",
    "train_neg_sample_args": "each model draws its own negatives, as its paper does",
    "neg_sampling": "each model draws its own negatives, as its paper does",
    "data_path": _DATA,
    "dataset": _DATA,
    "load_col": _DATA,
    "USER_ID_FIELD": _DATA,
    "ITEM_ID_FIELD": _DATA,
    "TIME_FIELD": _DATA,
    "train_stage": "the stage is the command: `mmrec pretrain`, `mmrec finetune` or `mmrec transfer`",
    "gpu_id": "choose the device with --device",
    "use_gpu": "choose the device with --device",
    "device": "choose the device with --device",
    "checkpoint_dir": "give the checkpoint file with --checkpoint",
    "eval_batch_size": "evaluation scores items in chunks of a fixed size",
    "clip_grad_norm": "use train.clip_grad, the largest gradient norm",
}


def recbole_aliases(cls: type, data: dict, where: str) -> dict:
    """The top level of a config file for dataclass `cls` with RecBole's names put in mmrec's place; refuses
    RecBole names without an equivalent, aliases of settings `cls` lacks, and an alias that disagrees with
    its mmrec key in the same file."""
    own = {f.name for f in dataclasses.fields(cls)}
    out = {k: v for k, v in data.items() if k in own or k not in RECBOLE_ALIASES | RECBOLE_IGNORED | RECBOLE_UNSUPPORTED}
    for alias, value in data.items():
        if alias in out:
            continue
        if alias in RECBOLE_UNSUPPORTED:
            raise bad_input(f"{where}: RecBole key '{alias}' has no mmrec setting: {RECBOLE_UNSUPPORTED[alias]}; remove it")
        if alias in RECBOLE_IGNORED:
            ok, expected, why = RECBOLE_IGNORED[alias]
            if not ok(value):
                raise bad_input(f"{where}: RecBole key '{alias}' can only be {expected} ({why}); remove it")
            continue
        key = RECBOLE_ALIASES[alias]
        section, name = key.split(".")
        inner = _section(cls, section)
        if inner is None or name not in {f.name for f in dataclasses.fields(inner)}:
            known = f"known keys of {section}: {', '.join(f.name for f in dataclasses.fields(inner))}" if inner else f"known keys: {', '.join(own)}"
            raise bad_input(f"{where}: unknown key '{alias}' (RecBole's name for {key}, a setting this model does not have); {known}")
        if alias == "valid_metric" and isinstance(value, str):
            value = value.lower()  # RecBole's NDCG@10 is mmrec's ndcg@10
        value = _coerce(typing.get_type_hints(inner)[name], value, where, alias)
        block = out.setdefault(section, {})
        if not isinstance(block, dict):
            raise bad_input(f"{where}: '{section}' is a section; set its keys, e.g. {section}.<name>=value")
        if name in block:
            given = _coerce(typing.get_type_hints(inner)[name], block[name], where, key)
            if type(given) is not type(value) or given != value:
                raise bad_input(f"{where}: {alias} = {value!r} and {key} = {given!r} disagree; keep one of them")
        out[section] = {**block, name: value}
    return out


def _section(cls: type, name: str) -> type | None:
    """The dataclass of section `name` of `cls`, None when `cls` has no such section."""
    fields = {f.name for f in dataclasses.fields(cls)}
    tp = typing.get_type_hints(cls).get(name) if name in fields else None
    return tp if dataclasses.is_dataclass(tp) else None


def _parse_set(item: str) -> tuple[str, Any]:
    if "=" not in item:
        raise bad_input(f"--set {item}: expected key=value, e.g. --set lr=0.001")
    key, raw = item.split("=", 1)
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):  # also numbers over Python's 4300-digit limit and very deep nesting
        value = raw  # a bare string
    return key.strip(), value


def _nest(key: str, value: Any) -> dict:
    out: dict = {}
    cur = out
    parts = key.split(".")
    for p in parts[:-1]:
        cur = cur.setdefault(p, {})
    cur[parts[-1]] = value
    return out


def _merge(base: dict, new: dict, where: str) -> None:
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v, where)
        else:
            base[k] = v


def _coerce(tp, value, where: str, key: str):
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise bad_input(f"{where}: '{key}' is a section; set its keys, e.g. {key}.<name>=value")
        return build(tp, value, where, prefix=f"{key}.")
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        if value is None and type(None) in args:
            return None
        tp = next(a for a in args if a is not type(None))
        return _coerce(tp, value, where, key)
    if origin in (list, tuple):
        items = value if isinstance(value, (list, tuple)) else str(value).split(",")
        inner = args[0] if args else str
        return origin(_coerce(inner, v, where, key) for v in items)
    if origin is typing.Literal:
        if value not in args:
            raise bad_input(f"{where}: {key}: {value!r} is not one of {', '.join(map(str, args))}")
        return value
    return _scalar(tp, value, f"{where}: {key}")


_HINT = {bool: "true or false", int: "a whole number", float: "a number"}


def _scalar(tp, value, where: str):
    """Strict: a bool is never a number (`layers=true` is no 1) and a number never a bool (`ids=0`)."""
    try:
        if tp is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no"):
                return value.lower() in ("true", "yes")
            raise ValueError(value)
        if tp is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            return int(value)
        if tp is float:
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        if tp is str:
            return str(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an integer too large for a float
        raise bad_input(f"{where}: {value!r} is not a valid {tp.__name__}; use {_HINT[tp]}") from None
    return value
