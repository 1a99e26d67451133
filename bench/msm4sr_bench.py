"""MSM4SR throughput: pre-training and fine-tuning sequences per second, evaluation users per second,
and peak memory (resource.getrusage ru_maxrss).

    python bench/msm4sr_bench.py                      # the example Scientific data (CLIP text + image)
    python bench/msm4sr_bench.py --dataset D --features F --steps 20 --batch-size 256 --threads 1
    python bench/msm4sr_bench.py --instances prefixes --batch-size 1024   # as examples/configs/msm4sr_finetune.json

A "sequence" is one batch row: with `--instances windows` (the default) a user's train window (up to
max_len + 1 items, a target at every position), with `--instances prefixes` one prefix and its next
item (RecBole's instances, the example fine-tuning config); "instances" counts the (prefix -> next
item) targets, which compares the two batchings. Each step is forward + backward + Adam on one
batch, in training mode (dropout, sequence dropout and mixup on for pre-training). Batches come from the model's own
length-bucketed batcher, as in `mmrec pretrain/finetune`. Peak memory is that of the whole process
(features, model, optimizer and the largest batch).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def load(args):
    import torch

    from mmrec_cli.data import dataset as D
    from mmrec_cli.io import unisrec

    if args.dataset:
        from mmrec_cli.models import msm4sr
        from mmrec_cli.training import loading

        ds = D.load(args.dataset)
        feats, _ = loading.features_for(msm4sr.SPEC, ds, args.features)
        return ds, feats
    src = ROOT / "examples" / "scientific" / "Scientific"
    ds = unisrec.import_dataset(str(src))
    feats = {m: torch.from_numpy(unisrec.read_feature_file(src.parent / f"Scientific.{s}", ds.num_items)) for m, s in (("text", "feat1CLS"), ("image", "feat3CLS"))}
    return ds, feats


def throughput(net, batches, loss_fn, steps: int, warmup: int = 2) -> tuple[float, float, int]:
    import torch

    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=1e-3)
    net.train()
    seqs, targets, elapsed, done = 0, 0, 0.0, 0
    while done < steps + warmup:
        for batch in batches(done):
            t0 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            loss_fn(batch).backward()
            opt.step()
            if done >= warmup:
                elapsed += time.perf_counter() - t0
                seqs += batch["items"].shape[0]
                targets += int((batch["targets"] >= 0).sum())
            done += 1
            if done >= steps + warmup:
                break
    return seqs / elapsed, targets / elapsed, seqs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", help="dataset artifact (default: the example Scientific data, imported in memory)")
    ap.add_argument("--features", help="features artifact of --dataset (text + image)")
    ap.add_argument("--steps", type=int, default=20, help="timed training steps per stage")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    ap.add_argument("--instances", choices=("windows", "prefixes"), default="windows", help="training rows: user windows or RecBole's prefixes")
    ap.add_argument("--layers", type=int, default=1, help="transformer layers (the example configs: 1; the official code: 2)")
    args = ap.parse_args()
    if args.dataset and not args.features:
        ap.error("--dataset needs --features")

    import torch

    from mmrec_cli.evaluation.ranking import EvalConfig, evaluate
    from mmrec_cli.models import msm4sr as M
    from mmrec_cli.training.loop import TrainConfig

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    ds, feats = load(args)
    cfg, tcfg = M.Config(layers=args.layers, instances=args.instances), TrainConfig(batch_size=args.batch_size)
    net = M.Model(cfg, ds.num_items, feats)
    print(f"data: {ds.num_users} users, {ds.num_items} items; features " + ", ".join(f"{k} {tuple(v.shape)}" for k, v in feats.items()))
    print(f"model: {sum(p.numel() for p in net.parameters()):,} parameters, {cfg.layers} layer(s); batch {args.batch_size} {args.instances}, {args.threads} thread(s), torch {torch.__version__}")

    pre, pre_i, n_pre = throughput(net, lambda e: M.train_batches(ds, cfg, tcfg, e, "pretrain"), net.pretrain_loss, args.steps)
    print(f"pre-training:  {pre:8.1f} sequences/s  {pre_i:8.1f} instances/s  ({n_pre} sequences in {args.steps} steps)")
    ft, ft_i, n_ft = throughput(net, lambda e: M.train_batches(ds, cfg, tcfg, e, "finetune"), net.loss, args.steps)
    print(f"fine-tuning:   {ft:8.1f} sequences/s  {ft_i:8.1f} instances/s  ({n_ft} sequences in {args.steps} steps)")
    t0 = time.perf_counter()
    metrics, _ = evaluate(net, ds, EvalConfig(split="valid"))
    dt = time.perf_counter() - t0
    print(f"evaluation:    {metrics['users'] / dt:8.1f} users/s      (full ranking of {ds.num_items} items)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(f"peak memory:   {peak / 1024:8.1f} MiB (ru_maxrss of this process)")


if __name__ == "__main__":
    main()
