"""Full-ranking evaluation: every user's targets ranked against all items, scored in chunks.

A model provides `users(batch)`, computed once per batch of users, and `score_users(users, items)
-> (B, n)` for any item indices (the `Scorer` protocol of `mmrec_cli.models`); memory is bounded by
(users per batch) x (items per chunk), whatever the catalogue size. Batches go to the model's
device; scores come back to the CPU for ranking.
Ranks are pessimistic on ties (an item scoring exactly as the target counts as above it), so a
model that scores everything alike gets no credit. With `mask_history` the user's TRAIN items (except
the targets themselves) are removed from the ranking, for valid and for test, as MMRec's evaluation
(`EvalDataLoader(..., additional_dataset=train)`) does; `mask_valid` also removes the validation
items when ranking the test split.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from mmrec_cli.data.batches import collate_eval, eval_rows, to_device
from mmrec_cli.data.dataset import VALID, Dataset, before
from mmrec_cli.evaluation import CHUNK
from mmrec_cli.models import Scorer

KS = (5, 10, 20, 50)


@dataclass
class EvalConfig:
    split: str = "valid"
    ks: tuple[int, ...] = KS
    mask_history: bool = False  # remove the user's train items from the ranking
    mask_valid: bool = False  # with mask_history on the test split: remove the validation items too
    batch_size: int = 512
    chunk: int = CHUNK


def evaluate(model: Scorer, ds: Dataset, cfg: EvalConfig, rankings_k: int = 0, on_batch=None, nproc: int = 1, load=None) -> tuple[dict, list]:
    """(metrics, per-user records). Records hold ranks of the targets and, with rankings_k, the top items.
    The model sees the last `model.max_len` items of each history.

    With `nproc` above 1, `nproc - 1` spawned processes rank spans of whole batches of the users, each with
    the model and dataset `load()` (picklable) gives it, and the records equal one process's
    (mmrec_cli/evaluation/processes.py).
    """
    rows = eval_rows(ds, cfg.split)
    parts = spans(len(rows[2]), cfg.batch_size, nproc)
    if len(parts) > 1:
        if load is None:
            raise ValueError("evaluate(nproc > 1) needs load(), which gives each process its model and dataset")
        from mmrec_cli.evaluation.processes import spread

        records = spread(model, ds, cfg, rows, parts, rankings_k, on_batch, load)
    else:
        records = rank_rows(model, ds, cfg, rows, (0, len(rows[2])), rankings_k, on_batch)
    return metrics(records, cfg.ks), records


def spans(users: int, batch_size: int, nproc: int) -> list[tuple[int, int]]:
    """Contiguous (start, stop) row ranges, one per process, each starting on a batch boundary and holding
    as even a number of batches as can be; fewer than `nproc` when there are fewer batches."""
    batches = -(-users // batch_size)
    parts = max(1, min(nproc, batches))
    cuts = [batch_size * (batches * r // parts) for r in range(parts)] + [users]
    return list(zip(cuts[:-1], cuts[1:]))


def rank_rows(model: Scorer, ds: Dataset, cfg: EvalConfig, rows: tuple, span: tuple[int, int], rankings_k: int, on_batch) -> list[dict]:
    """The records of rows span[0] .. span[1] - 1 of `eval_rows`, in batches of cfg.batch_size from span[0]."""
    histories, targets, users = rows
    was_training = model.training
    model.eval()
    records = []
    try:
        with torch.inference_mode():
            for start in range(span[0], span[1], cfg.batch_size):
                sl = slice(start, min(span[1], start + cfg.batch_size))
                batch = collate_eval(histories[sl], users[sl], model.max_len)
                masks = _masks(ds, histories[sl], users[sl], cfg) if cfg.mask_history else None
                ranks, top = rank_batch(model, batch, targets[sl], ds.num_items, cfg.chunk, masks, rankings_k)
                for b, u in enumerate(users[sl]):
                    rec = {"user": u, "targets": targets[sl][b].tolist(), "ranks": ranks[b]}
                    if top is not None:
                        rec["top"] = top[0][b].tolist()
                        rec["scores"] = top[1][b].tolist()
                    records.append(rec)
                if on_batch:
                    on_batch(len(users[sl]))
    finally:
        model.train(was_training)
    return records


def mask_name(cfg: EvalConfig) -> str:
    """What was removed from the ranking, as results record it."""
    if not cfg.mask_history:
        return "none"
    return "train+valid" if cfg.mask_valid and cfg.split == "test" else "train"


def _masks(ds: Dataset, histories: list[np.ndarray], users: list[int], cfg: EvalConfig) -> list[np.ndarray]:
    if cfg.split == "valid" or cfg.mask_valid:
        return histories  # everything before the split's targets
    return [ds.sequence(u)[before(ds.labels(u), VALID)] for u in users]  # train (and history-only) items


def device_of(model) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def scores_on_cpu(model: Scorer, users, items: torch.Tensor, dev: torch.device) -> torch.Tensor:
    """score_users on the model's device, as float32 on the CPU (a no-op move on the CPU)."""
    return model.score_users(users, items.to(dev)).float().cpu()


def rank_batch(model: Scorer, batch: dict, targets: list[np.ndarray], num_items: int, chunk: int, masks=None, topk: int = 0):
    """0-based rank of every target of every user in the batch (and the top-k items when asked)."""
    dev = device_of(model)
    users = model.users(to_device(batch, dev))  # once per batch; every chunk is scored from it
    owner = torch.cat([torch.full((len(t),), b, dtype=torch.long) for b, t in enumerate(targets)])  # (M,)
    flat = torch.from_numpy(np.concatenate(targets)).long()  # (M,)
    uniq, inv = torch.unique(flat, return_inverse=True)
    t_scores = scores_on_cpu(model, users, uniq, dev)[owner, inv]  # (M,)
    above = torch.zeros(len(flat), dtype=torch.long)
    one_each = len(flat) == len(targets)  # one target per user (leave-one-out): rows need no copy
    mask_rows, mask_items = _mask_pairs(masks, targets)
    top_v = top_i = None
    for s in range(0, num_items, chunk):
        e = min(num_items, s + chunk)
        sc = scores_on_cpu(model, users, torch.arange(s, e), dev)  # (B, C)
        if mask_rows is not None:
            sel = (mask_items >= s) & (mask_items < e)
            sc[mask_rows[sel], mask_items[sel] - s] = -math.inf
        if topk:  # before the comparison below overwrites the scores
            top_v, top_i = merge_top(top_v, top_i, sc, s, topk)
        rows = sc if one_each else sc[owner]  # (M, C), ours to overwrite
        # 1.0 where an item scores at least the target (ties count as above), in place: a fifth of the time
        # of counting a new bool tensor
        ge = rows.ge_(t_scores[:, None])
        inside = ((flat >= s) & (flat < e)).nonzero().squeeze(1)
        # the target is not above itself, even when its two scores (two matmul shapes) differ in the last bit
        ge[inside, flat[inside] - s] = 0.0
        above += _count(ge)
    ranks = [[] for _ in targets]
    for m, b in enumerate(owner.tolist()):
        ranks[b].append(int(above[m]))
    return ranks, (top_i, top_v) if topk else None


def _count(ones: torch.Tensor) -> torch.Tensor:
    """Row sums of a (M, C) tensor of 0.0 and 1.0, as integers: exact in float32 up to 2**24 columns."""
    if ones.shape[1] > 2**24:
        return ones.sum(1, dtype=torch.float64).long()
    return ones.sum(1).long()


def _mask_pairs(masks, targets):
    if masks is None:
        return None, None
    rows, items = [], []
    for b, (h, t) in enumerate(zip(masks, targets)):
        h = np.setdiff1d(h, t)  # a repeated target stays rankable
        rows.append(np.full(len(h), b))
        items.append(h)
    return torch.from_numpy(np.concatenate(rows)).long(), torch.from_numpy(np.concatenate(items)).long()


def merge_top(top_v, top_i, sc: torch.Tensor, offset: int, k: int):
    """The running top-k (values, item indices) merged with a chunk's scores `sc` (B, C) of the items
    offset .. offset + C - 1; chunks narrower than k keep every column until k are seen."""
    v, i = sc.topk(min(k, sc.shape[1]), dim=1)
    i = i + offset
    if top_v is not None:
        v, j = torch.cat([top_v, v], 1).topk(min(k, top_v.shape[1] + v.shape[1]), dim=1)
        i = torch.cat([top_i, i], 1).gather(1, j)
    return v, i


def user_metrics(ranks: list[int], k: int) -> dict:
    """Recall (share of the targets in the top k), NDCG, MRR, and hit (any target in the top k: the
    `hit@k` of MISSRec's and RecBole's tables, equal to recall under leave-one-out)."""
    hits = [r for r in ranks if r < k]
    idcg = sum(1.0 / math.log2(i + 2) for i in range(min(len(ranks), k)))
    return {
        "recall": len(hits) / len(ranks),
        "hit": float(bool(hits)),
        "ndcg": sum(1.0 / math.log2(r + 2) for r in hits) / idcg,
        "mrr": 1.0 / (min(ranks) + 1) if min(ranks) < k else 0.0,
    }


def metrics(records: list[dict], ks=KS) -> dict:
    out = {}
    n = max(1, len(records))
    for k in ks:
        sums = {"recall": 0.0, "hit": 0.0, "ndcg": 0.0, "mrr": 0.0}
        for rec in records:
            for name, v in user_metrics(rec["ranks"], k).items():
                sums[name] += v
        for name, v in sums.items():
            out[f"{name}@{k}"] = v / n
    out["users"] = len(records)
    return out
