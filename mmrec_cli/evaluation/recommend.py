"""Recommendations for any history, seen in training or not: JSON lines in, ranked items out.

Input, one JSON object per line: {"user_id": ..., "items": [item ids, oldest first, newest last]}
("user_id" optional). Output, one line per input line and in the same order:
{"user_id": ..., "items": [the top-k item ids, best first], "scores": [...]}.

Works for every model through the `Scorer` protocol: a batch is built as for evaluation (item
index + 1, right-padded, the last `model.max_len` items; `user` is the dataset's index of a known
user_id, else -1), its user side is computed once, and the catalogue is scored in chunks whose
top-k are merged, so
memory is bounded by batch x chunk whatever the number of histories or items. Items the dataset
knows only by their features (cold-start items of an inductive model) are ranked like any other.
Unknown item ids in a history are skipped and counted, or refused with file:line under `strict`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from mmrec_cli.data.batches import collate_eval, to_device
from mmrec_cli.errors import bad_input
from mmrec_cli.evaluation import TOP_BATCH, TOP_CHUNK
from mmrec_cli.evaluation.ranking import device_of, merge_top
from mmrec_cli.io.jsonl import read_jsonl
from mmrec_cli.models import Scorer


@dataclass
class RecommendConfig:
    top_k: int = 10
    exclude_history: bool = False
    batch_size: int = TOP_BATCH  # histories scored at once
    chunk: int = TOP_CHUNK  # items scored at once
    window: int = 8  # batches read ahead and regrouped by history length (1 = input order)
    strict: bool = False
    digits: int = 6  # scores are rounded to this many decimals, as round(score, digits)


@dataclass
class Stats:
    histories: int = 0
    unknown_items: int = 0  # item ids not in the dataset, skipped
    with_unknown: int = 0  # histories that had some
    empty: int = 0  # histories with no known item (ranked from the empty history)
    known_users: int = 0

    def line(self) -> str:
        s = f"recommended for {self.histories} histories ({self.known_users} known users)"
        if self.unknown_items:
            s += f"; skipped {self.unknown_items} unknown item ids in {self.with_unknown} histories (--strict refuses them)"
        if self.empty:
            s += f"; {self.empty} histories had no known item"
        return s


@dataclass
class History:
    user_id: object
    user: int  # the dataset's user index, -1 if unknown
    items: np.ndarray  # 0-based item indices, oldest first


def read_histories(path: str, item_ids: list[str], user_ids: list[str], stats: Stats, strict: bool = False) -> Iterator[History]:
    """Parse histories from a JSONL file ('-' = stdin), mapping ids to the dataset's indices, lazily."""
    item_index = {iid: i for i, iid in enumerate(item_ids)}
    user_index = {uid: u for u, uid in enumerate(user_ids)}
    for lineno, obj in read_jsonl(path):
        items = obj.get("items")
        if not isinstance(items, list):
            raise bad_input(f"{path}:{lineno}: expected \"items\": a list of item ids (oldest first), e.g. {{\"user_id\": \"u1\", \"items\": [\"i3\", \"i7\"]}}")
        known, unknown = [], 0
        for iid in items:
            if type(iid) is str:  # the usual case first: no checks or str() per item
                i = item_index.get(iid)
            elif isinstance(iid, (dict, list, bool)) or iid is None:
                raise bad_input(f"{path}:{lineno}: item id {iid!r} is not a string or number")
            else:
                i = item_index.get(str(iid))
            if i is None:
                if strict:
                    raise bad_input(f"{path}:{lineno}: unknown item id '{iid}' (not among the dataset's {len(item_ids)} items); remove it, or drop --strict to skip unknown ids")
                unknown += 1
            else:
                known.append(i)
        user_id = obj.get("user_id")
        user = user_index.get(str(user_id), -1) if user_id is not None else -1
        stats.histories += 1
        stats.unknown_items += unknown
        stats.with_unknown += unknown > 0
        stats.empty += not known
        stats.known_users += user >= 0
        yield History(user_id, user, np.asarray(known, dtype=np.int64))


def recommend(model: Scorer, rows: Iterable[History], num_items: int, cfg: RecommendConfig, on_batch=None) -> Iterator[tuple[History, list[int], list[float]]]:
    """(history, top item indices, their scores rounded to `cfg.digits` decimals) for each history, in input order.

    Histories are read `cfg.window` batches at a time and scored in batches of similar length (less
    padding for the sequence encoder); the results of a window come out in input order before the
    next window is read, so memory stays flat however many histories stream through."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            window: list[History] = []
            for row in rows:
                window.append(row)
                if len(window) == cfg.batch_size * cfg.window:
                    yield from _window(model, window, num_items, cfg, on_batch)
                    window = []
            if window:
                yield from _window(model, window, num_items, cfg, on_batch)
    finally:
        model.train(was_training)


def _window(model: Scorer, rows: list[History], num_items: int, cfg: RecommendConfig, on_batch):
    order = list(range(len(rows)))
    if cfg.window > 1:
        order.sort(key=lambda i: len(rows[i].items))  # stable: equal lengths keep input order
    out: list = [None] * len(rows)
    for s in range(0, len(order), cfg.batch_size):
        idx = order[s : s + cfg.batch_size]
        for i, result in zip(idx, _batch(model, [rows[i] for i in idx], num_items, cfg)):
            out[i] = result
        on_batch and on_batch(len(idx))
    yield from out


def _batch(model: Scorer, rows: list[History], num_items: int, cfg: RecommendConfig):
    batch = collate_eval([r.items for r in rows], [r.user for r in rows], model.max_len)
    masks = [r.items for r in rows] if cfg.exclude_history else None
    values, items = top_items(model, batch, num_items, cfg.top_k, cfg.chunk, masks)
    finite = torch.isfinite(values).all(dim=1).tolist()  # per row: every top item kept (one pass, not one per row)
    top_v, top_i = rounded(values.numpy(), cfg.digits).tolist(), items.tolist()
    for b, row in enumerate(rows):
        if finite[b]:
            yield row, top_i[b], top_v[b]
        else:  # an excluded item (score -inf) is never recommended
            keep = [math.isfinite(v) for v in top_v[b]]
            yield row, [i for i, k in zip(top_i[b], keep) if k], [v for v, k in zip(top_v[b], keep) if k]


def top_items(model: Scorer, batch: dict, num_items: int, k: int, chunk: int, masks: list[np.ndarray] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k (scores, item indices), each (B, k), over all items, scored `chunk` items at a time.

    `masks` holds, per row, item indices that must not be recommended (score -inf).
    """
    dev = device_of(model)
    users = model.users(to_device(batch, dev))  # once; every chunk is scored from it
    k = max(1, min(k, num_items))
    rows = cols = None
    if masks is not None and any(len(m) for m in masks):
        rows = torch.from_numpy(np.concatenate([np.full(len(m), b) for b, m in enumerate(masks)])).long().to(dev)
        cols = torch.from_numpy(np.concatenate(masks)).long().to(dev)
    top_v = top_i = None
    for s in range(0, num_items, chunk):
        e = min(num_items, s + chunk)
        sc = model.score_users(users, torch.arange(s, e, device=dev)).float()  # (B, C)
        if rows is not None:
            sel = (cols >= s) & (cols < e)
            sc[rows[sel], cols[sel] - s] = -math.inf
        top_v, top_i = merge_top(top_v, top_i, sc, s, k)
    return top_v.cpu(), top_i.cpu()


def rounded(x: np.ndarray, digits: int) -> np.ndarray:
    """round(v, digits) of every element v, the very floats Python's round gives, in one pass: rint(v * 10**digits)
    / 10**digits is the double nearest the decimal round(v) reaches (an integer over a power of ten that doubles hold
    exactly) whenever the product is exact, as it always is for float32 scores and digits <= 12 (24 + 28 significant
    bits). For doubles, where the product's rounding error could move it across a half (a near-tie), or where it is
    too large to hold a fraction (also inf, nan), those few elements go through round() itself."""
    scale = 10.0**digits
    y = x.astype(np.float64) * scale
    out = np.rint(y) / scale
    with np.errstate(invalid="ignore"):
        unsure = ~(np.abs(y) < 2.0**52) | (np.abs(np.abs(y - np.trunc(y)) - 0.5) <= 1e-9 * np.maximum(1.0, np.abs(y)))
    for i in np.flatnonzero(unsure):
        out.flat[i] = round(float(x.flat[i]), digits)
    return out


def encoded_ids(item_ids: list[str]) -> list[str]:
    """Each item id as JSON text, once per catalogue (json_line's `encoded`)."""
    return [json.dumps(iid) for iid in item_ids]


def json_line(row: History, items: list[int], scores: list[float], encoded: list[str]) -> str:
    """One output line, the text json.dumps({"user_id": ..., "items": [ids], "scores": [...]}) + newline gives,
    put together from the ids' JSON text (`encoded_ids`) and the floats' repr (what json writes for a finite float;
    other scores go through json itself): the same bytes in about half the time of a dict through json.dumps."""
    text = ", ".join(map(float.__repr__, scores)) if all(map(math.isfinite, scores)) else json.dumps(scores)[1:-1]
    return f'{{"user_id": {json.dumps(row.user_id)}, "items": [{", ".join([encoded[i] for i in items])}], "scores": [{text}]}}\n'
