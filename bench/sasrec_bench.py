"""SASRec figures on the example data, and full-ranking evaluation over a 1,000,000-item catalogue, with the user side
computed once per batch of users (`users` / `score_users`) beside recomputing it for every item chunk.

    .venv/bin/python bench/sasrec_bench.py [--epochs 3] [--million-users 2048] [--part million --million-batch-size 512 --million-chunk 1024 --no-per-chunk]

Prints seconds per epoch, training sequences per second, evaluation users per second and peak
memory (max RSS of this process, which includes the Python runtime and torch). The 1M-item part runs
in a child process so its peak memory is its own.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = os.path.join(HERE, "..", "examples", "scientific")


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def example(epochs: int) -> dict:
    import torch

    from mmrec_cli.data import batches as B
    from mmrec_cli.evaluation.ranking import EvalConfig, evaluate
    from mmrec_cli.io import unisrec
    from mmrec_cli.models import sasrec

    ds = unisrec.import_dataset(EXAMPLE)
    torch.manual_seed(0)
    model = sasrec.Model(sasrec.Config(), ds.num_items)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    windows = len(B.train_windows(ds, 50)[0])
    times = []
    for epoch in range(epochs):
        t0 = time.perf_counter()
        for batch in B.train_batches(ds, 50, 256, 0, epoch):
            opt.zero_grad()
            model.loss(batch).backward()
            opt.step()
        times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    m, _ = evaluate(model, ds, EvalConfig(split="test"))
    ev = time.perf_counter() - t0
    sec = sorted(times)[len(times) // 2]
    return {"seconds_per_epoch": round(sec, 3), "train_sequences_per_s": round(windows / sec, 1), "eval_users_per_s": round(m["users"] / ev, 1), "threads": torch.get_num_threads(), "peak_rss_gb": round(peak_gb(), 3)}


def million(users: int, per_chunk: bool = True, batch_size: int | None = None, chunk: int | None = None) -> dict:
    """Score `users` random histories against 1,000,000 items, `batch_size` users at a time and `chunk` items at a
    time (None: evaluation's defaults), and report time and peak memory."""
    import numpy as np

    from mmrec_cli.data import dataset as D
    from mmrec_cli.evaluation import CHUNK
    from mmrec_cli.evaluation.ranking import EvalConfig, evaluate
    from mmrec_cli.models import sasrec

    n_items = 1_000_000
    rng = np.random.default_rng(0)
    seqs = [rng.integers(0, n_items, size=int(rng.integers(5, 30))).tolist() for _ in range(users)]
    ds = D.Dataset([str(i) for i in range(n_items)], [str(u) for u in range(users)], *_flat(seqs))
    model = sasrec.Model(sasrec.Config(), n_items)
    cfg = EvalConfig(split="test", batch_size=batch_size or EvalConfig.batch_size, chunk=chunk or CHUNK)
    t0 = time.perf_counter()
    m, _ = evaluate(model, ds, cfg)
    sec = time.perf_counter() - t0
    out = {"items": n_items, "users": users, "batch_size": cfg.batch_size, "chunk": cfg.chunk, "eval_users_per_s": round(users / sec, 1), "seconds": round(sec, 1), "peak_rss_gb": round(peak_gb(), 3)}
    if per_chunk:  # the same evaluation with the user side recomputed for every item chunk
        t0 = time.perf_counter()
        m2, _ = evaluate(PerChunk(model), ds, cfg)
        sec = time.perf_counter() - t0
        assert m2 == m, "both ways rank alike"
        out["per_chunk_users_per_s"] = round(users / sec, 1)
    return out


class PerChunk:
    """A model scored as `score(batch, items)` was: the histories are encoded again for each item chunk."""

    def __init__(self, model):
        self.model, self.max_len = model, model.max_len

    def parameters(self):
        return self.model.parameters()

    def eval(self):
        return self.model.eval()

    def train(self, mode=True):
        return self.model.train(mode)

    @property
    def training(self):
        return self.model.training

    def users(self, batch):
        return batch

    def score_users(self, batch, items):
        return self.model.score_users(self.model.users(batch), items)


def _flat(seqs):
    import numpy as np

    from mmrec_cli.data.dataset import loo_labels

    lengths = np.array([len(s) for s in seqs])
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return offsets, np.concatenate(seqs).astype(np.int64), loo_labels(lengths)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--million-users", type=int, default=1024)
    ap.add_argument("--part", choices=["all", "example", "million"], default="all")
    ap.add_argument("--million-batch-size", type=int, default=None, help="users scored at once (eval --batch-size; default: its default)")
    ap.add_argument("--million-chunk", type=int, default=None, help="items scored at once (eval --chunk; default: its default)")
    ap.add_argument("--no-per-chunk", action="store_true", help="skip the run with the user side recomputed per chunk")
    args = ap.parse_args()
    if args.part in ("all", "example"):
        print("sasrec on examples/scientific:", json.dumps(example(args.epochs)))
    if args.part == "million":
        print("full ranking, 1M items:", json.dumps(million(args.million_users, not args.no_per_chunk, args.million_batch_size, args.million_chunk)))
    elif args.part == "all":
        out = subprocess.run([sys.executable, __file__, "--part", "million", "--million-users", str(args.million_users)], capture_output=True, text=True)
        sys.stdout.write(out.stdout or out.stderr)


if __name__ == "__main__":
    main()
