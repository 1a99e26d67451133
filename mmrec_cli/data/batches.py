"""Batches for the sequential models, built from a Dataset.

Conventions every model follows:
    batch["items"]    (B, L) int64  item index + 1, right-padded with 0 (oldest first)
    batch["lengths"]  (B,)   int64  real length of each row
    batch["user"]     (B,)   int64  user index
    batch["targets"]  (B, L) int64  training only: the 0-based next item at each position, -100 on padding
Training uses a loss at every position of a user's train sequence (causal models see exactly the
prefix before each target), which gives RecBole's per-prefix supervision in one pass. Sequences
longer than max_len + 1 are cut into windows ending at the sequence's end, so every target keeps
some context.
"""

from __future__ import annotations

import numpy as np
import torch

from mmrec_cli.data.dataset import TEST, TRAIN, VALID, Dataset, before

IGNORE = -100


def train_windows(ds: Dataset, max_len: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Windows of at most max_len + 1 train items per user, and the user of each window."""
    windows, users = [], []
    for u in range(ds.num_users):
        seq = ds.sequence(u)[ds.labels(u) == TRAIN]
        end = len(seq)
        while end >= 2:
            windows.append(seq[max(0, end - max_len - 1) : end])
            users.append(u)
            end -= max_len
    return windows, np.array(users, dtype=np.int64)


def collate_train(windows: list[np.ndarray], users: np.ndarray) -> dict:
    L = max(len(w) for w in windows) - 1
    items = torch.zeros(len(windows), L, dtype=torch.long)
    targets = torch.full((len(windows), L), IGNORE, dtype=torch.long)
    for b, w in enumerate(windows):
        n = len(w) - 1
        items[b, :n] = torch.from_numpy(w[:-1] + 1)
        targets[b, :n] = torch.from_numpy(w[1:])
    lengths = (items > 0).sum(1)
    return {"items": items, "targets": targets, "lengths": lengths, "user": torch.from_numpy(users)}


def train_batches(ds: Dataset, max_len: int, batch_size: int, seed: int, epoch: int):
    """Shuffled training batches; the order depends only on (seed, epoch), so a resumed run repeats it."""
    windows, users = train_windows(ds, max_len)
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(len(windows), generator=g).numpy()
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        yield collate_train([windows[i] for i in idx], users[idx])


def sequence_batches(ds: Dataset, cfg, train_cfg, epoch: int, stage: str = "finetune"):
    """The standard `ModelSpec.train_batches`: windows of cfg.max_len with a target at every position."""
    return train_batches(ds, cfg.max_len, train_cfg.batch_size, train_cfg.seed, epoch)


def prefixes(ds, max_len: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every prefix of each user's train sequence -> next item: (flat train items, start, end, user).

    Example e's history is flat[start[e]:end[e]] (at most max_len items), its target flat[end[e]].
    """
    train = ds.split == TRAIN
    flat = ds.items[train]
    owner = np.repeat(np.arange(ds.num_users), np.diff(ds.offsets))
    counts = np.bincount(owner[train], minlength=ds.num_users)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    user = np.repeat(np.arange(ds.num_users), counts)
    end = np.arange(len(flat))
    ok = end > first[user]  # not the first item of its user
    end, user = end[ok], user[ok]
    start = np.maximum(first[user], end - max_len)
    return flat, start, end, user


def collate_prefixes(flat: np.ndarray, start: np.ndarray, end: np.ndarray, user: np.ndarray) -> dict:
    lengths = end - start
    items = torch.zeros(len(start), int(lengths.max()), dtype=torch.long)
    for b in range(len(start)):
        items[b, : lengths[b]] = torch.from_numpy(flat[start[b] : end[b]] + 1)
    return {"items": items, "lengths": torch.from_numpy(lengths), "user": torch.from_numpy(user), "target": torch.from_numpy(flat[end])}


def bucketed(order: np.ndarray, lengths: np.ndarray, batch_size: int, bucket: int, g: torch.Generator, counts: np.ndarray | None = None) -> list[np.ndarray]:
    """Cut a shuffled `order` into batches of batch_size rows, or with `counts` (examples per row) of at most
    batch_size examples (`within_budget`). With bucket > 1, every run of about `bucket` batches is sorted by length
    and cut on its own, and the batches are shuffled (by `g`): the same rows per epoch with a fraction of the padding."""
    runs = [order]
    if bucket > 1 and len(order):
        run = bucket * batch_size if counts is None else max(1, bucket * batch_size * len(counts) // max(1, int(counts.sum())))
        runs = [o[np.argsort(lengths[o], kind="stable")] for o in (order[s : s + run] for s in range(0, len(order), run))]
    if counts is None:
        cuts = [r[s : s + batch_size] for r in runs for s in range(0, len(r), batch_size)]
    else:
        cuts = [c for r in runs for c in within_budget(r, counts, batch_size)]
    if bucket > 1:
        cuts = [cuts[i] for i in torch.randperm(len(cuts), generator=g).tolist()]
    return cuts


def within_budget(order: np.ndarray, counts: np.ndarray, budget: int) -> list[np.ndarray]:
    """`order` cut, in order, into runs whose `counts` add up to at most `budget` (a larger one alone)."""
    ends = np.cumsum(counts[order])
    cuts, start, base = [], 0, 0
    while start < len(order):
        stop = max(start + 1, int(np.searchsorted(ends, base + budget, side="right")))
        cuts.append(order[start:stop])
        start, base = stop, int(ends[stop - 1])
    return cuts


def window_batches(ds: Dataset, max_len: int, batch_size: int, seed: int, epoch: int, bucket: int, by_examples: bool = False):
    """`train_windows` in shuffled, length-`bucketed` batches of batch_size windows, or with `by_examples` of at
    most batch_size targets (a window with more is a batch alone: the examples of `prefix_batches`, each window
    read once). The order depends only on (seed, epoch)."""
    windows, users = train_windows(ds, max_len)
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(len(windows), generator=g).numpy()
    counts = np.array([len(w) - 1 for w in windows], dtype=np.int64)  # targets per window; sorts as the lengths do
    for idx in bucketed(order, counts, batch_size, bucket, g, counts if by_examples else None):
        yield collate_train([windows[j] for j in idx], users[idx])


def prefix_batches(ds: Dataset, max_len: int, batch_size: int, seed: int, epoch: int, bucket: int = 0):
    """`prefixes` (RecBole's instances) in shuffled, length-`bucketed` batches; the order depends only on (seed, epoch)."""
    flat, start, end, user = prefixes(ds, max_len)
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(len(end), generator=g).numpy()
    for idx in bucketed(order, end - start, batch_size, bucket, g):
        yield collate_prefixes(flat, start[idx], end[idx], user[idx])


def eval_rows(ds: Dataset, split: str) -> tuple[list[np.ndarray], list[np.ndarray], list[int]]:
    """For each user with targets in `split`: (history, targets, user index).

    The history is every interaction labelled before the split (train for valid; train and valid
    for test), oldest first; `collate_eval` keeps the last items the model reads.
    """
    level = {"valid": VALID, "test": TEST}[split]
    inputs, targets, users = [], [], []
    for u in range(ds.num_users):
        seq, lab = ds.sequence(u), ds.labels(u)
        tgt = seq[lab == level]
        if len(tgt) == 0:
            continue
        hist = seq[before(lab, level)]
        inputs.append(hist)
        targets.append(tgt)
        users.append(u)
    return inputs, targets, users


def collate_eval(histories: list[np.ndarray], users: list[int], max_len: int) -> dict:
    """A batch of the last `max_len` (at least 1) items of each history, right-padded."""
    if max_len < 1:
        raise ValueError(f"max_len must be at least 1, not {max_len}")
    L = max(1, min(max_len, max(len(h) for h in histories)))
    items = np.zeros((len(histories), L), dtype=np.int64)  # filled in numpy: a torch slice assignment per row costs ~50x more
    for b, h in enumerate(histories):
        h = h[len(h) - min(len(h), max_len) :]
        items[b, : len(h)] = h + 1
    items = torch.from_numpy(items)
    return {"items": items, "lengths": (items > 0).sum(1), "user": torch.tensor(users, dtype=torch.long)}


def to_device(batch: dict, device: str | torch.device) -> dict:
    """Tensors of the batch on `device`, also those inside tuples (AlignRec's `in_batch`)."""
    if torch.device(device).type == "cpu":
        return batch
    return {k: _to(v, device) for k, v in batch.items()}


def _to(v, device: str | torch.device):
    if torch.is_tensor(v):
        return v.to(device, non_blocking=True)
    if isinstance(v, tuple):
        return tuple(_to(x, device) for x in v)
    return v
