"""MMMLP against SASRec: training sequences per second at sequence lengths 50, 200 and 1,000.

    .venv/bin/python bench/mmmlp_bench.py [--lengths 50,200,1000] [--batch 16] [--steps 3] [--items 2000]
                                          [--mmmlp-config examples/configs/mmmlp.json]

Synthetic data: `--items` items with random 512-d text and image features (CLIP ViT-B/32's width) and
full-length random sequences, so every position of every row carries a loss. One training step =
forward, full-softmax cross-entropy at every position, backward, Adam step. Each (model, length)
runs one warm-up step and then `--steps` timed steps; the figure is sequences (and positions) per
second of the median step, by wall time and by this process's CPU time (the latter does not depend on
what else runs on a shared machine; with OMP_NUM_THREADS=1 it is one core's work). MMMLP's token mixing is causal with a fixed hidden size r_N, so its cost
per position should stay flat as the length grows, while SASRec's attention grows with it. The
output layer (positions x items) is the same for both and also linear in the length; `--items`
keeps it small so the encoders dominate. Threads: torch's default unless OMP_NUM_THREADS is set.
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


def make(name: str, length: int, items: int, mmmlp_overrides: dict):
    import torch

    from mmrec_cli.models import mmmlp, sasrec

    torch.manual_seed(0)
    if name == "sasrec":
        return sasrec.Model(sasrec.Config(max_len=length), items)
    g = torch.Generator().manual_seed(0)
    feats = {"text": torch.randn(items, 512, generator=g), "image": torch.randn(items, 512, generator=g)}
    return mmmlp.Model(mmmlp.Config(**(mmmlp_overrides | {"max_len": length})), items, feats)


def step_times(model, length: int, batch: int, items: int, steps: int) -> list[float]:
    import torch

    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(1)
    seq = torch.randint(0, items, (batch, length + 1), generator=g)
    b = {"items": seq[:, :-1] + 1, "targets": seq[:, 1:], "lengths": torch.full((batch,), length), "user": torch.arange(batch)}
    model.train()
    times = []
    for _ in range(steps + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        opt.zero_grad(set_to_none=True)
        model.loss(b).backward()
        opt.step()
        times.append((time.perf_counter() - t0, time.process_time() - c0))
    return times[1:]


def main() -> None:
    import torch

    ap = argparse.ArgumentParser()
    ap.add_argument("--lengths", default="50,200,1000")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--items", type=int, default=2000)
    ap.add_argument("--mmmlp-config", default=os.path.join(HERE, "..", "examples", "configs", "mmmlp.json"))
    args = ap.parse_args()
    overrides = {}
    if args.mmmlp_config and os.path.exists(args.mmmlp_config):
        overrides = {k: v for k, v in json.load(open(args.mmmlp_config)).get("model", {}).items() if k != "max_len"}
    print(f"threads {torch.get_num_threads()}, batch {args.batch}, items {args.items}, mmmlp {overrides or 'defaults'}")
    print(f"{'model':<8} {'length':>7} {'params':>10} {'s/step':>8} {'cpu s/step':>10} {'seq/s':>9} {'seq/cpu-s':>10} {'positions/cpu-s':>16}")
    rows = []
    for length in (int(x) for x in args.lengths.split(",")):
        for name in ("sasrec", "mmmlp"):
            model = make(name, length, args.items, overrides)
            times = step_times(model, length, args.batch, args.items, args.steps)
            t = statistics.median(w for w, _ in times)
            c = statistics.median(c for _, c in times)
            params = sum(p.numel() for p in model.parameters())
            row = {"model": name, "length": length, "params": params, "seconds_per_step": round(t, 4), "cpu_seconds_per_step": round(c, 4),
                   "seq_per_s": round(args.batch / t, 2), "seq_per_cpu_s": round(args.batch / c, 2), "positions_per_cpu_s": round(args.batch * length / c)}
            rows.append(row)
            print(f"{name:<8} {length:>7} {params:>10,} {t:>8.3f} {c:>10.3f} {row['seq_per_s']:>9.2f} {row['seq_per_cpu_s']:>10.2f} {row['positions_per_cpu_s']:>16,}", flush=True)
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
