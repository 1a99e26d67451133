"""AlignRec on a synthetic graph of 100,000 items: set-up time (encoder + kNN graph), epoch time, peak memory.

    .venv/bin/python bench/alignrec_bench.py [--items 100000] [--users 50000] [--per-user 10]
                                             [--dim 512] [--batch 2048] [--max-steps 0]

Synthetic data: `--users` users with `--per-user` distinct random items each (ratio split 8:1:1), random
`--dim`-d text and image features. The model is AlignRec's default configuration (embedding 64, 2
LightGCN layers, item kNN k = 10, all four losses) with its item encoder marked as pre-trained
(random weights: the figures are costs, not quality). Reported: seconds to encode all items and build
the kNN graph (chunked, never items x items in memory), seconds for one training epoch of (user,
positive, negative) batches (`--max-steps` > 0 times only that many steps and extrapolates), seconds
for one full-ranking validation pass, and the peak resident memory of the process (ru_maxrss: torch and
Python included). Wall and process-CPU seconds are both printed: on a shared machine the CPU seconds
(with OMP_NUM_THREADS=1: one core's work) are the figure that does not depend on the neighbours.
A dense items x items float32 similarity matrix would take 40 GB at 100,000 items.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))


def peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def synthetic(items: int, users: int, per_user: int, seed: int = 0):
    import numpy as np

    from mmrec_cli.data import dataset as D

    rng = np.random.default_rng(seed)
    # popularity-skewed (Zipf-like, exponent 0.8) distinct items per user, as in real catalogues
    cdf = np.cumsum(1.0 / np.arange(1, items + 1) ** 0.8)
    draws = np.searchsorted(cdf / cdf[-1], rng.random((users, 3 * per_user)))
    seqs = []
    for row in draws:
        _, first = np.unique(row, return_index=True)
        seqs.append(row[np.sort(first)][:per_user].tolist())
    return D.from_sequences(seqs, [str(i) for i in range(items)], [str(u) for u in range(users)], protocol="ratio", seed=seed)


def main() -> None:
    import torch

    from mmrec_cli.evaluation.ranking import EvalConfig, evaluate
    from mmrec_cli.models import alignrec as A
    from mmrec_cli.training.loop import TrainConfig

    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--users", type=int, default=50_000)
    ap.add_argument("--per-user", type=int, default=10)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--batch", type=int, default=2048)
    ap.add_argument("--max-steps", type=int, default=0)
    args = ap.parse_args()

    t0 = time.perf_counter()
    ds = synthetic(args.items, args.users, args.per_user)
    g = torch.Generator().manual_seed(0)
    feats = {"text": torch.randn(args.items, args.dim, generator=g), "image": torch.randn(args.items, args.dim, generator=g)}
    data_s = time.perf_counter() - t0
    cfg = A.Config()
    torch.manual_seed(0)
    model = A.Model(cfg, ds.num_items, feats)
    del feats
    model.encoder_trained.fill_(1)
    t0, c0 = time.perf_counter(), time.process_time()
    h_enc, knn = model.content()
    setup_s, setup_cpu = time.perf_counter() - t0, time.process_time() - c0
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    tc = TrainConfig(batch_size=args.batch)
    model.train()
    t0, c0 = time.perf_counter(), time.process_time()
    steps = 0
    for batch in A.train_batches(ds, cfg, tc, 0):
        opt.zero_grad(set_to_none=True)
        model.loss(batch).backward()
        opt.step()
        steps += 1
        if args.max_steps and steps >= args.max_steps:
            break
    train_s, train_cpu = time.perf_counter() - t0, time.process_time() - c0
    total = -(-len(A.G.train_pairs(ds)[0]) // args.batch)
    t0, c0 = time.perf_counter(), time.process_time()
    evaluate(model, ds, EvalConfig(split="valid", mask_history=True, batch_size=1024))
    eval_s, eval_cpu = time.perf_counter() - t0, time.process_time() - c0
    out = {
        "items": args.items,
        "users": args.users,
        "train_interactions": int(len(A.G.train_pairs(ds)[0])),
        "feature_dim": args.dim,
        "knn_edges": int(knn._nnz()),
        "threads": torch.get_num_threads(),
        "data_seconds": round(data_s, 1),
        "encode_and_knn_seconds": round(setup_s, 1),
        "encode_and_knn_cpu_seconds": round(setup_cpu, 1),
        "steps_per_epoch": total,
        "steps_timed": steps,
        "seconds_per_step": round(train_s / steps, 3),
        "cpu_seconds_per_step": round(train_cpu / steps, 3),
        "epoch_seconds": round(train_s / steps * total, 1),
        "epoch_cpu_seconds": round(train_cpu / steps * total, 1),
        "valid_full_ranking_seconds": round(eval_s, 1),
        "valid_full_ranking_cpu_seconds": round(eval_cpu, 1),
        "peak_rss_gb": round(peak_gb(), 2),
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
