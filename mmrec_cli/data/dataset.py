"""The dataset artifact: every user's chronological sequence plus a split label per interaction.

Tensors (kind "dataset"):
    offsets (U+1,) int64   user u's interactions are items[offsets[u]:offsets[u+1]], oldest first
    items   (T,)   int64   0-based item index (row i of every features artifact is item i)
    split   (T,)   int8    0 = train, 1 = valid, 2 = test
Metadata: item_ids and user_ids (external ids, in index order), the split protocol, counts, and the
fingerprints of the input files. Leave-one-out labels are [0, ..., 0, 1, 2]; the ratio protocol
labels a seeded random 8:1:1 draw per user.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from mmrec_cli.errors import bad_input, mismatch
from mmrec_cli.io import artifacts

TRAIN, VALID, TEST = 0, 1, 2
HISTORY = 3  # a train-time interaction of a user left out of training (`subsample_users`): input history only
SPLITS = {"train": TRAIN, "valid": VALID, "test": TEST}


def before(labels: np.ndarray, level: int) -> np.ndarray:
    """Which of a user's interactions come before the targets labelled `level` (VALID or TEST): the
    history a model reads to rank them."""
    return (labels < level) | (labels == HISTORY)


@dataclass
class Dataset:
    item_ids: list[str]
    user_ids: list[str]
    offsets: np.ndarray  # (U+1,) int64
    items: np.ndarray  # (T,) int64
    split: np.ndarray  # (T,) int8
    protocol: str = "loo"  # "loo" (leave-one-out) or "ratio" (per-user random 8:1:1)
    meta: dict = field(default_factory=dict)

    @property
    def num_items(self) -> int:
        return len(self.item_ids)

    @property
    def num_users(self) -> int:
        return len(self.user_ids)

    def sequence(self, u: int) -> np.ndarray:
        return self.items[self.offsets[u] : self.offsets[u + 1]]

    def labels(self, u: int) -> np.ndarray:
        return self.split[self.offsets[u] : self.offsets[u + 1]]

    def fingerprint(self, item_fingerprint: str | None = None) -> str:
        """A hash of the sequences, the split and the item ids; `item_fingerprint`: the last, when known."""
        h = hashlib.sha256()
        for arr in (self.offsets, self.items, self.split):
            h.update(np.ascontiguousarray(arr))  # the array's bytes, hashed where they lie
        h.update((item_fingerprint or self.item_fingerprint()).encode())
        return "sha256:" + h.hexdigest()[:16]

    def item_fingerprint(self) -> str:
        return artifacts.fingerprint_strings(self.item_ids)


def from_sequences(seqs: list[list[int]], item_ids: list[str], user_ids: list[str], protocol: str = "loo", seed: int = 0) -> Dataset:
    """Build a dataset from per-user chronological item-index lists (each at least 3 long)."""
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    items = np.fromiter((i for s in seqs for i in s), dtype=np.int64, count=int(lengths.sum()))
    return from_arrays(lengths, items, item_ids, user_ids, protocol, seed)


def from_arrays(lengths: np.ndarray, items: np.ndarray, item_ids: list[str], user_ids: list[str], protocol: str = "loo", seed: int = 0) -> Dataset:
    """Build a dataset from every user's sequence length and the item indices of all sequences end to end (user
    after user, each oldest first): `from_sequences` without a Python list per user, for millions of them."""
    lengths = np.asarray(lengths, dtype=np.int64)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    split = loo_labels(lengths) if protocol == "loo" else ratio_labels(lengths, seed)
    return Dataset(item_ids, user_ids, offsets, np.ascontiguousarray(items, dtype=np.int64), split, protocol)


def loo_labels(lengths: np.ndarray) -> np.ndarray:
    """Leave-one-out: the last interaction is test, the second to last valid, the rest train."""
    split = np.zeros(int(lengths.sum()), dtype=np.int8)
    ends = np.cumsum(lengths)
    split[ends - 1] = TEST
    split[ends - 2] = VALID
    return split


TIME_SHARES = (0.8, 0.1, 0.1)  # the temporal split: the oldest 80 % of all interactions train, the next 10 % valid


def time_cutoffs(times: np.ndarray, shares=TIME_SHARES) -> tuple[float, float]:
    """The two moments of the temporal split: interactions at or after the first are valid, at or after the
    second test; each the time of the interaction at that share of all interactions in time order."""
    order = np.sort(np.asarray(times, dtype=np.float64))
    n = len(order)
    return float(order[min(n - 1, int(n * shares[0]))]), float(order[min(n - 1, int(n * (shares[0] + shares[1])))])


def time_labels(times: list[np.ndarray], cutoffs: tuple[float, float]) -> np.ndarray:
    """The temporal split of each user's interactions (oldest first): train before the first cutoff, valid
    before the second, test after. A user's first interaction, when it falls after the first cutoff, has no
    history to be ranked from: it becomes HISTORY (read as input for the later targets, never trained on),
    so no target has an empty history and nothing after the cutoff is trained on."""
    lengths = np.array([len(t) for t in times], dtype=np.int64)
    flat = np.concatenate(times) if times else np.zeros(0, dtype=np.float64)
    return time_labels_flat(flat, lengths, cutoffs)


def time_labels_flat(times: np.ndarray, lengths: np.ndarray, cutoffs: tuple[float, float]) -> np.ndarray:
    """`time_labels` of all users' times end to end (user after user, `lengths` each), in one pass."""
    labels = np.where(times < cutoffs[0], TRAIN, np.where(times < cutoffs[1], VALID, TEST)).astype(np.int8)
    firsts = (np.cumsum(lengths) - lengths)[lengths > 0]
    labels[firsts[labels[firsts] != TRAIN]] = HISTORY
    return labels


def ratio_labels(lengths: np.ndarray, seed: int, ratios=(0.8, 0.1, 0.1)) -> np.ndarray:
    """Per-user random 8:1:1 (AlignRec's protocol): at least one train item, one test item from two
    items on and one valid item from three on (each of a user's items in exactly one part)."""
    rng = np.random.default_rng(seed)
    parts = []
    for n in lengths.tolist():
        n_test = min(max(1, int(round(n * ratios[2]))), n - 1)
        n_valid = min(max(1, int(round(n * ratios[1]))), n - 1 - n_test)
        labels = np.zeros(n, dtype=np.int8)
        labels[n - n_test - n_valid : n - n_test] = VALID
        labels[n - n_test :] = TEST
        parts.append(labels[rng.permutation(n)])
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int8)


def subsample_users(ds: Dataset, fraction: float, seed: int) -> tuple[Dataset, int]:
    """Train on a share of the users: the others' train interactions become HISTORY (read as input when
    their valid and test targets are ranked, never trained on), so every fraction is evaluated on the
    same, complete set of users. Returns the dataset and the number of users kept for training."""
    keep = max(1, round(fraction * ds.num_users))
    chosen = np.zeros(ds.num_users, dtype=bool)
    chosen[np.random.default_rng(seed).permutation(ds.num_users)[:keep]] = True
    owner = np.repeat(np.arange(ds.num_users), np.diff(ds.offsets))
    split = ds.split.copy()
    split[(split == TRAIN) & ~chosen[owner]] = HISTORY
    return Dataset(ds.item_ids, ds.user_ids, ds.offsets, ds.items, split, ds.protocol, dict(ds.meta)), keep


def save(ds: Dataset, path: str, command: str, config: dict, inputs: dict) -> None:
    item_fingerprint = ds.item_fingerprint()
    meta = {
        "command": command,
        "config": config,
        "inputs": inputs,
        "protocol": ds.protocol,
        "num_users": ds.num_users,
        "num_items": ds.num_items,
        "num_interactions": int(len(ds.items)),
        "item_ids": ds.item_ids,
        "user_ids": ds.user_ids,
        "fingerprint": ds.fingerprint(item_fingerprint),
        "item_fingerprint": item_fingerprint,
        **ds.meta,
    }
    tensors = {"offsets": ds.offsets, "items": ds.items, "split": ds.split}
    artifacts.save(path, tensors, "dataset", meta)


def load(path: str) -> Dataset:
    tensors, meta = artifacts.load(path, kind="dataset", torch=False)
    try:
        ds = Dataset(meta["item_ids"], meta["user_ids"], tensors["offsets"], tensors["items"], tensors["split"], meta["protocol"])
        recorded = meta["fingerprint"]
    except KeyError as err:  # a tensor or metadata key taken out of a file mmrec wrote
        raise mismatch(f"{path}: the dataset artifact lacks {err}; recreate it with `mmrec prepare`") from None
    if ds.fingerprint() != recorded:
        raise mismatch(f"{path}: contents do not match the recorded fingerprint; the file was altered, recreate it")
    ds.meta = {k: meta[k] for k in ("command", "config", "inputs") if k in meta}
    ds.meta["path"] = str(path)
    return ds


def check_lengths(seqs: list[list[int]], user_ids: list[str], where: str, minimum: int = 3) -> None:
    check_length_counts(np.array([len(s) for s in seqs], dtype=np.int64), user_ids, where, minimum)


def check_length_counts(lengths: np.ndarray, user_ids: list[str], where: str, minimum: int = 3) -> None:
    """Refuse the first user (in index order) with fewer than `minimum` interactions."""
    short = np.flatnonzero(np.asarray(lengths) < minimum)
    if len(short):
        u = int(short[0])
        raise bad_input(
            f"{where}: user '{user_ids[u]}' has {int(lengths[u])} interaction(s); leave-one-out needs at least {minimum} "
            "(train, valid, test): pass --drop-short to drop such users, or --kcore to filter"
        )


def merge(datasets: list[Dataset]) -> tuple[Dataset, list[int]]:
    """One dataset holding several (pre-training on several domains): users and items side by side.

    Item ids become '<k>:<id>' for the k-th dataset (k from 0), so equal ids of different domains stay
    apart; returns the merged dataset and each dataset's first item index.
    """
    if len(datasets) == 1:
        return datasets[0], [0]
    starts = np.cumsum([0] + [d.num_items for d in datasets[:-1]]).tolist()
    item_ids = [f"{k}:{i}" for k, d in enumerate(datasets) for i in d.item_ids]
    user_ids = [f"{k}:{u}" for k, d in enumerate(datasets) for u in d.user_ids]
    items = np.concatenate([d.items + s for d, s in zip(datasets, starts)])
    lengths = np.concatenate([d.offsets[1:] - d.offsets[:-1] for d in datasets])
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    split = np.concatenate([d.split for d in datasets])
    protocols = {d.protocol for d in datasets}
    merged = Dataset(item_ids, user_ids, offsets, items, split, protocols.pop() if len(protocols) == 1 else "mixed")
    merged.meta = {"path": "+".join(str(d.meta.get("path")) for d in datasets)}
    return merged, starts
