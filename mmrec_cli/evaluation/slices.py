"""Metrics per slice of the evaluated users and targets: where transfer and features are supposed to pay off.

    target popularity   how often the target item occurs among the TRAIN interactions: `unseen` (never:
                        only feature-based models can rank it), `cold` (1 to COLD times), and the rest
                        split into halves at the median count (`mid`, `popular`)
    history length      the number of items the user's history holds before the target (1-5, 6-10, 11-20, 21+)

Target slices score each (user, target) pair on its own (one rank each); history slices score users.
"""

from __future__ import annotations

import numpy as np

from mmrec_cli.data.batches import eval_rows
from mmrec_cli.data.dataset import TRAIN, Dataset
from mmrec_cli.evaluation.ranking import metrics

COLD = 5
LENGTHS = ((1, 5), (6, 10), (11, 20), (21, None))


def train_counts(ds: Dataset) -> np.ndarray:
    """(num_items,) occurrences of each item among the TRAIN interactions."""
    return np.bincount(ds.items[ds.split == TRAIN], minlength=ds.num_items)


def target_slice(counts: np.ndarray, median: float) -> np.ndarray:
    """The slice name of each count."""
    return np.where(counts == 0, "unseen", np.where(counts <= COLD, "cold", np.where(counts <= median, "mid", "popular")))


def slice_metrics(ds: Dataset, split: str, records: list[dict], ks) -> dict:
    """{"target": {slice: metrics}, "history": {slice: metrics}} of the records `evaluate` gave on `split`."""
    hist, _, users = eval_rows(ds, split)
    histories = {u: len(h) for h, u in zip(hist, users)}
    counts = train_counts(ds)
    warm = counts[counts > COLD]
    median = float(np.median(warm)) if len(warm) else 0.0
    by_target: dict[str, list] = {}
    for rec in records:
        names = target_slice(counts[np.asarray(rec["targets"])], median)
        for name, rank in zip(names.tolist(), rec["ranks"]):
            by_target.setdefault(name, []).append({"ranks": [rank]})
    by_length: dict[str, list] = {}
    for rec in records:
        n = histories[rec["user"]]
        name = next(f"{lo}-{hi}" if hi else f"{lo}+" for lo, hi in LENGTHS if n >= lo and (hi is None or n <= hi)) if n else "0"
        by_length.setdefault(name, []).append(rec)
    order = ["unseen", "cold", "mid", "popular"]
    return {
        "target": {k: metrics(by_target[k], ks) for k in order if k in by_target},
        "history": {k: metrics(v, ks) for k, v in sorted(by_length.items(), key=lambda kv: int(kv[0].split("-")[0].rstrip("+")))},
        "cold_max": COLD,
        "median_warm_count": median,
    }
