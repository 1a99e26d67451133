"""The features artifact: item features aligned to item ids.

Tensors (kind "features"), for each modality m (e.g. "text", "image"):
    m              (N, D)    float32  one vector per item
    m_mask         (N,)      uint8    1 where the item has this modality (optional; all present if absent)
    m_stack        (N, S, D) float32  several vectors per item (sentences, images), MSM4SR's x^t / x^v
    m_stack_mask   (N, S)    uint8    1 for real rows of the stack
Metadata: item_ids (row order), item_fingerprint, and per modality what produced it ("encoders"); a shard of
`mmrec extract --shard I/N` also has "shard" (mmrec_cli/features/shards.py).
Models read features through `align`, which reorders rows to a dataset's items and refuses
features that lack some of them.
"""

from __future__ import annotations

import numpy as np

from mmrec_cli.errors import bad_input, mismatch
from mmrec_cli.io import artifacts


def save(path: str, tensors: dict, item_ids: list[str], command: str, config: dict, inputs: dict, encoders: dict, extra: dict | None = None) -> None:
    check_finite(tensors, path)
    meta = {
        **(extra or {}),
        "command": command,
        "config": config,
        "inputs": inputs,
        "item_ids": list(item_ids),
        "item_fingerprint": artifacts.fingerprint_strings(list(item_ids)),
        "encoders": encoders,
        "modalities": sorted(k for k in tensors if "_" not in k),
    }
    artifacts.save(path, tensors, "features", meta)


def load(path: str) -> tuple[dict, dict]:
    tensors, meta = artifacts.load(path, kind="features", torch=False)
    n = len(meta.get("item_ids") or [])
    for name, t in tensors.items():  # every tensor has one row per item; else rows would pair with wrong ids
        if t.ndim == 0 or t.shape[0] != n:
            raise mismatch(f"{path}: feature '{name}' has shape {tuple(t.shape)} for {n} item ids; the file was altered, recreate it")
    return tensors, meta


def align(path: str, item_ids: list[str]) -> tuple[dict, dict]:
    """Feature tensors (torch) with rows in the order of `item_ids`, and the artifact's metadata."""
    import torch

    tensors, meta = load(path)
    have = meta["item_ids"]
    if have != list(item_ids):
        index = {iid: r for r, iid in enumerate(have)}
        missing = [iid for iid in item_ids if iid not in index]
        if missing:
            raise mismatch(f"{path}: features lack {len(missing)} of the dataset's {len(item_ids)} items (first: '{missing[0]}'); extract features for the dataset's items file")
        rows = np.array([index[iid] for iid in item_ids], dtype=np.int64)
        tensors = {k: v[rows] for k, v in tensors.items()}
    check_finite(tensors, path)
    meta = dict(meta, fingerprint=artifacts.fingerprint_file(path))
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in tensors.items()}, meta


def check_finite(tensors: dict, where: str) -> None:
    for name, t in tensors.items():
        arr = np.asarray(t.detach().cpu().numpy() if hasattr(t, "detach") else t)
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            row = int(np.argwhere(~np.isfinite(arr))[0][0])
            raise bad_input(f"{where}: feature '{name}' holds NaN or inf (row {row}); recompute the features")


# What names an encoder's vectors: two feature files whose entries differ here hold vectors of different spaces.
_SIGNATURE = ("encoder", "model", "pretrained", "weights", "revision", "pooling", "normalize", "dim", "source")


def check_same_encoders(a: dict | None, b: dict | None, what_a: str, what_b: str) -> None:
    """Refuse features of two different encoders for one modality (a model carried across domains reads both)."""
    for m in sorted(set(a or {}) & set(b or {})):
        sa, sb = ({k: e.get(k) for k in _SIGNATURE if k in e} for e in (a[m], b[m]))
        differ = [k for k in _SIGNATURE if k in sa and k in sb and sa[k] != sb[k]]
        if differ:
            k = differ[0]
            raise mismatch(f"{what_b}: '{m}' features come from another encoder than {what_a}'s ({k} {sb[k]!r}, not {sa[k]!r}); extract both with the same encoder")
