"""Self-describing artifacts: safetensors with one JSON metadata string.

Every file mmrec writes with tensors is a safetensors file whose metadata holds one key, "mmrec",
a JSON object with at least: schema (int), kind (dataset | features | model | checkpoint | ...),
command (the producing command line), config (the resolved config), inputs (fingerprints of the
inputs) and versions. No pickle is ever read or written.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np

from mmrec_cli import __version__
from mmrec_cli.errors import mismatch, not_found
from mmrec_cli.io.atomic import atomic_path

SCHEMA = 1
META_KEY = "mmrec"


def save(path: str | os.PathLike, tensors: dict, kind: str, meta: dict[str, Any]) -> None:
    """Write `tensors` (torch or numpy) and metadata atomically. `meta` must be JSON-serialisable."""
    from safetensors.numpy import save_file

    arrays = {name: _to_numpy(t) for name, t in tensors.items()}
    header = {"schema": SCHEMA, "kind": kind, "versions": versions(), **meta, "tensors_sha256": tensors_hash(arrays)}
    with atomic_path(path) as tmp:
        save_file(arrays, str(tmp), metadata={META_KEY: json.dumps(header, sort_keys=True)})


def load(path: str | os.PathLike, kind: str | None = None, torch: bool = True) -> tuple[dict, dict]:
    """Read an artifact's tensors and metadata; refuse files that are not mmrec artifacts of `kind`."""
    meta = read_meta(path, kind)
    try:
        if torch:
            from safetensors.torch import load_file
        else:
            from safetensors.numpy import load_file
        tensors = load_file(str(path))
    except Exception as err:  # safetensors raises its own error types for corrupt files
        raise mismatch(f"{path}: corrupt safetensors data ({err}); recreate the file") from err
    recorded = meta.get("tensors_sha256")  # absent in files written before it was recorded
    if recorded is not None and tensors_hash({k: _to_numpy(v) for k, v in tensors.items()}) != recorded:
        raise mismatch(f"{path}: the tensors (names, dtypes, shapes or values) do not match the hash recorded when it was written; the file was altered, recreate it")
    return tensors, meta


def tensors_hash(arrays: dict[str, np.ndarray]) -> str:
    """sha256 over every tensor's name, dtype, shape and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(json.dumps([name, a.dtype.str, list(a.shape)]).encode())
        h.update(a.tobytes())
    return "sha256:" + h.hexdigest()


def read_meta(path: str | os.PathLike, kind: str | None = None) -> dict:
    """The metadata of an artifact, read from the header only (no tensor data is loaded)."""
    header = _read_header(path)
    metadata = header.get("__metadata__")
    raw = metadata.get(META_KEY) if isinstance(metadata, dict) else None
    if raw is None:
        raise mismatch(f"{path}: a safetensors file without mmrec metadata; produce it with an mmrec command")
    meta = _parse_meta(path, raw)
    if meta.get("schema") != SCHEMA:
        raise mismatch(f"{path}: artifact schema {meta.get('schema')} is not supported (this mmrec reads {SCHEMA}); recreate it with this version")
    if kind is not None and meta.get("kind") != kind:
        raise mismatch(f"{path}: expected a {kind} artifact, got a {meta.get('kind')} artifact")
    return meta


def _parse_meta(path, raw) -> dict:
    try:
        meta = json.loads(raw)
    except (TypeError, ValueError, RecursionError) as err:  # not a string, not JSON, or too deep
        raise mismatch(f"{path}: corrupt mmrec metadata ({err}); recreate the file with mmrec") from err
    if not isinstance(meta, dict):
        raise mismatch(f"{path}: corrupt mmrec metadata (a JSON {type(meta).__name__}, not an object); recreate the file with mmrec")
    return meta


def tensor_names(path: str | os.PathLike) -> dict[str, dict]:
    """Names, dtypes and shapes of the tensors in an artifact, from the header."""
    header = _read_header(path)
    return {k: v for k, v in header.items() if k != "__metadata__"}


def _read_header(path: str | os.PathLike) -> dict:
    p = Path(path)
    if not p.is_file():
        raise not_found(f"{path}: no such file; check the path")
    try:
        with open(p, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            if n > 100_000_000 or n > p.stat().st_size - 8:
                raise ValueError("header length out of range")
            header = json.loads(f.read(n))
        if not isinstance(header, dict):  # safetensors headers are objects; a list or number is another file
            raise ValueError(f"the header is a JSON {type(header).__name__}, not an object")
        return header
    except (struct.error, ValueError, UnicodeDecodeError, RecursionError) as err:
        raise mismatch(f"{path}: not a safetensors artifact ({err}); give a file written by mmrec") from err


def _to_numpy(t) -> np.ndarray:
    if hasattr(t, "detach"):
        t = t.detach().cpu().contiguous()
        if str(t.dtype) == "torch.bfloat16":
            t = t.float()
        return t.numpy()
    return np.ascontiguousarray(t)


def versions() -> dict[str, str]:
    import sys
    from importlib.metadata import PackageNotFoundError, version

    out = {"mmrec": __version__, "python": sys.version.split()[0]}
    for dist in ("torch", "numpy", "safetensors", "transformers", "open_clip_torch"):
        try:
            out[dist] = version(dist)  # from package metadata: no import of torch here
        except PackageNotFoundError:
            pass
    return out


def fingerprint_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes, as 'sha256:<hex16>' (short enough to read, long enough to trust)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return "sha256:" + h.hexdigest()[:16]


def fingerprint_bytes(data: bytes) -> str:
    """fingerprint_file of a file holding `data` (standard input, read into memory)."""
    return "sha256:" + hashlib.sha256(data).hexdigest()[:16]


def fingerprint_strings(items: list[str]) -> str:
    h = hashlib.sha256()
    for s in items:
        h.update(s.encode("utf-8"))
        h.update(b"\n")
    return "sha256:" + h.hexdigest()[:16]
