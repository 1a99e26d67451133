"""MISSRec throughput: interest clustering (DPC-KNN, k-means) and training, in sequences per second.

    .venv/bin/python bench/missrec_bench.py [--device cpu|cuda] [--steps 8] [--synthetic 4096]

(scikit-learn, the peer of the k-means++ starts, comes with `pip install -e '.[bench]'`.)

Prints one JSON object:
  cluster_dpc_knn     per-sequence DPC-KNN over the example users' histories (text + image tokens of
                      each item, raw CLIP features), batched: sequences/s; and over synthetic
                      sequences of 50 items (100 tokens of 300 dimensions, the model's adapter space)
  cluster_kmeans      k-means over all item tokens of the catalogue (what the model re-runs every epoch):
                      seconds; its k-means++ starts alone, beside scikit-learn's `kmeans_plusplus` on the
                      same tokens (the peer); and the per-sequence interest lookup + de-duplication that follows: sequences/s
  train_*             training sequences (prefix -> next item examples) per second: fine-tuning with
                      k-means interests (the public code) and with on-the-fly DPC-KNN, and pre-training
Timings are medians of repeats; the CPU figures depend on torch's threads (printed).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
EXAMPLE = os.path.join(HERE, "..", "examples", "scientific")


def timed(fn, repeat: int = 3, sync=lambda: None) -> float:
    out = []
    for _ in range(repeat):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def sklearn_starts(x, n_clusters: int, seed: int):
    """The peer of `plusplus_starts`: scikit-learn's `kmeans_plusplus` on the same sample of tokens."""
    import torch
    from sklearn.cluster import kmeans_plusplus

    from mmrec_cli.models import missrec_interests as CL

    pool = CL.start_pool(x.shape[0], n_clusters, torch.Generator().manual_seed(seed))
    return kmeans_plusplus(x[pool.to(x.device)].float().cpu().numpy(), n_clusters, random_state=seed)[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=8, help="training steps timed per setting")
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--synthetic", type=int, default=4096, help="synthetic sequences of 50 items for DPC-KNN")
    args = ap.parse_args()

    import torch

    from mmrec_cli.data.batches import prefixes
    from mmrec_cli.io import unisrec
    from mmrec_cli.models import missrec as MR
    from mmrec_cli.models import missrec_interests as CL
    from mmrec_cli.training.loop import TrainConfig

    dev = torch.device(args.device)
    sync = (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else (lambda: None)
    ds = unisrec.import_dataset(EXAMPLE)
    feats = {m: torch.from_numpy(unisrec.read_feature_file(__import__("pathlib").Path(EXAMPLE) / f"Scientific.{s}", ds.num_items)) for m, s in (("text", "feat1CLS"), ("image", "feat3CLS"))}
    out: dict = {"device": str(dev), "threads": torch.get_num_threads(), "users": ds.num_users, "items": ds.num_items}

    # ---- DPC-KNN per sequence
    tokens = CL.space_tokens(feats, ["text", "image"]).to(dev)
    hists = CL.histories(ds, "test", 50)
    with torch.inference_mode():
        sec = timed(lambda: CL.user_interests(tokens, 2, hists, 0.5, 0.1, batch_size=512), sync=sync)
    out["cluster_dpc_knn_example_seq_per_s"] = round(len(hists) / sec, 1)
    g = torch.Generator().manual_seed(0)
    B, T, D = args.synthetic, 100, 300
    x = torch.randn(B, T, D, generator=g).to(dev)
    lengths = torch.randint(2, T + 1, (B,), generator=g).to(dev)
    mask = torch.arange(T, device=dev)[None, :] < lengths[:, None]

    def dpc_synthetic():
        for s in range(0, B, 512):
            n = mask[s : s + 512].sum(1)
            CL.dpc_knn(x[s : s + 512], mask[s : s + 512], CL.counts(0.5, n), CL.counts(0.1, n))

    with torch.inference_mode():
        sec = timed(dpc_synthetic, sync=sync)
    out["cluster_dpc_knn_synthetic_len50_seq_per_s"] = round(B / sec, 1)

    # ---- k-means over the catalogue's tokens (adapter space size), then per-sequence interests
    model = MR.Model(MR.Config(), ds.num_items, feats).to(dev)
    with torch.inference_mode():
        all_tokens = model.all_tokens().flatten(0, 1)
        C = model.interest_centroids.shape[0]
        sec = timed(lambda: CL.kmeans(all_tokens, C, 10, 0), sync=sync)
        out["cluster_kmeans_catalogue_s"] = round(sec, 3)
        out["cluster_kmeans_tokens"] = int(all_tokens.shape[0])
        out["cluster_kmeans_clusters"] = int(C)
        sec = timed(lambda: CL.plusplus_starts(all_tokens, C, 0), sync=sync)
        out["cluster_kmeans_plusplus_starts_s"] = round(sec, 3)
        out["cluster_kmeans_plusplus_starts_sklearn_s"] = round(timed(lambda: sklearn_starts(all_tokens, C, 0)), 3)
        table, _ = CL.kmeans(all_tokens, C, 10, 0)
        table = table.view(ds.num_items, 2)
        ids = torch.zeros(len(hists), 50, dtype=torch.long)
        for u, h in enumerate(hists):
            ids[u, : len(h)] = torch.from_numpy(h + 1)
        ids = ids.to(dev)

        def lookup():
            for s in range(0, len(hists), 512):
                it = ids[s : s + 512]
                CL.unique_rows(table[(it - 1).clamp_min(0)].flatten(1), (it > 0)[:, :, None].expand(-1, -1, 2).flatten(1))

        sec = timed(lookup, sync=sync)
        out["cluster_kmeans_lookup_seq_per_s"] = round(len(hists) / sec, 1)

    # ---- training
    tc = TrainConfig(batch_size=args.batch_size, seed=0)
    for name, cfg, pretrain in (
        ("train_finetune_kmeans", MR.Config(), False),
        ("train_finetune_dpc_knn", MR.Config(interests="dpc-knn"), False),
        ("train_pretrain_kmeans", MR.Config(ids=False), True),
    ):
        torch.manual_seed(0)
        model = MR.Model(cfg, ds.num_items, feats).to(dev)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        batches = list(MR.train_batches(ds, cfg, tc, 0))
        if cfg.interests == "kmeans":
            model.refresh_interests(0)
        seqs, times = 0, []
        for i, b in enumerate(batches[: args.steps + 1]):
            b = {k: (v.to(dev) if torch.is_tensor(v) else v) for k, v in b.items()}
            sync()
            t0 = time.perf_counter()
            opt.zero_grad()
            (model.pretrain_loss(b) if pretrain else model.loss(b)).backward()
            opt.step()
            sync()
            if i:  # the first step warms up
                times.append(time.perf_counter() - t0)
                seqs += len(b["target"])
        out[f"{name}_seq_per_s"] = round(seqs / sum(times), 1)
    epoch_examples = len(prefixes(ds, 50)[1])
    out["train_examples_per_epoch"] = int(epoch_examples)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
