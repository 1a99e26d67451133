"""Strict, layered configuration: dataclass defaults < --config file < --set key=value < typed flags.

Configs are plain dataclasses (each model file defines its own `Config`). `resolve` builds one from
the layers and refuses unknown keys and values that do not parse as the field's type. Nested
sections are written with a dot: `--set train.lr=3e-4`.
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
        _merge(values, read_config_file(config_file), config_file)
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


def read_config_file(path: str) -> dict:
    p = Path(path)
    if not p.is_file():
        raise not_found(f"{path}: config file not found; check the path")
    try:
        if p.suffix == ".toml":
            return tomllib.loads(p.read_text(encoding="utf-8"))
        data = json.loads(p.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as err:  # JSON/TOML/UTF-8 errors are ValueErrors; so are 4300+ digit numbers
        raise bad_input(f"{path}: cannot parse config ({err}); use JSON or TOML") from err
    if not isinstance(data, dict):
        raise bad_input(f"{path}: a config file must hold an object of key/values")
    return data


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
