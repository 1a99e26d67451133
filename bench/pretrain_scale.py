"""Pre-training at the size of the UniSRec / MISSRec pre-training set: memory and speed of one epoch.

    .venv/bin/python bench/pretrain_scale.py [--model msm4sr|missrec|unisrec] [--scale 1.0] [--batches 20] [--precision fp32] [--set KEY=VALUE]
    .venv/bin/python bench/pretrain_scale.py --write DIR [--scale 1.0]

Builds, in memory, a synthetic dataset the size of the five Amazon pre-training domains of UniSRec (1,361,408 users,
446,975 items, 14,029,229 interactions at --scale 1; each user at least 3 interactions, log-normal lengths,
Zipf-like item popularity) and 384-d text features (one vector per item, as the embedded MiniLM gives), then runs
the model's pre-training as `mmrec pretrain` does (its example config, examples/configs/MODEL_pretrain.json; Adam)
on --batches batches spread evenly over an epoch, in a fresh process per model. It prints: the time to build the
data, the time the model's batch function takes to go through a whole epoch without training (its per-epoch work in
Python), the batches in an epoch, seconds per training batch (the mean of the timed batches, after 2 warm-up
batches, and the slowest: batches of long sequences cost many times the median), the epoch time that makes (batches
x mean, the first batch counted at its own time, which holds the model's once-an-epoch work such as MISSRec's
re-clustering of the catalogue, plus the batch function's own time), training examples (a history and its next item) per second, and peak
RSS. An estimate on the machine it runs on, not a test; --scale shrinks every count alike for a quick look.
--precision bf16|fp16 runs each step's forward pass under autocast, as `mmrec pretrain --precision` does; repeated,
it runs the model once per precision, in turn, for figures side by side. --set changes the example config as `mmrec
pretrain --set` does (e.g. model.packed=true). --write DIR saves the same data as mmrec artifacts
(DIR/ds.safetensors, DIR/feats.safetensors) instead, so that a whole epoch of `mmrec pretrain` can be timed.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
USERS, ITEMS, INTERACTIONS, DIM = 1_361_408, 446_975, 14_029_229, 384


def synthetic(scale: float, seed: int = 0):
    """(dataset, features): users with >= 3 interactions adding up to about INTERACTIONS x scale."""
    import numpy as np
    import torch

    from mmrec_cli.data import dataset as D

    rng = np.random.default_rng(seed)
    users, items = max(10, int(USERS * scale)), max(100, int(ITEMS * scale))
    mean_extra = INTERACTIONS / USERS - 3
    lengths = 3 + np.minimum(np.rint(rng.lognormal(np.log(mean_extra) - 0.5, 1.0, users)).astype(np.int64), 2000)
    popularity = 1.0 / np.arange(1, items + 1) ** 0.8
    seq_items = rng.choice(items, size=int(lengths.sum()), p=popularity / popularity.sum()).astype(np.int64)
    ds = D.from_arrays(lengths, seq_items, [f"i{i}" for i in range(items)], [f"u{u}" for u in range(users)])
    text = torch.from_numpy(rng.standard_normal((items, DIM), dtype=np.float32))
    return ds, {"text": torch.nn.functional.normalize(text, dim=1)}


def run(model_name: str, scale: float, batches: int, precision: str, sets: list[str]) -> dict:
    import numpy as np
    import torch

    from mmrec_cli import models
    from mmrec_cli.training import distributed, loading

    t0 = time.perf_counter()
    ds, features = synthetic(scale)
    build_s = time.perf_counter() - t0
    spec = models.get(model_name)
    cfg = loading.resolve_stage(spec, str(ROOT / "examples" / "configs" / f"{model_name}_pretrain.json"), sets, {})  # as `mmrec pretrain`
    model_cfg, train_cfg = cfg.model, cfg.train
    torch.manual_seed(train_cfg.seed)
    model = spec.build(model_cfg, ds.num_items, features)
    t0 = time.perf_counter()
    n_batches = n_examples = 0
    for batch in spec.train_batches(ds, model_cfg, train_cfg, 0, "pretrain"):
        n_batches += 1
        n_examples += int((batch["targets"] >= 0).sum()) if "targets" in batch else len(batch["items"])  # windows or prefixes
    epoch_batches_s = time.perf_counter() - t0
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=train_cfg.lr)
    model.train()
    # Batches differ a lot in cost (long sequences make more targets, and in-batch losses grow as their square), so
    # time `batches` of them spread evenly over the epoch, after 2 warm-up batches, and take the mean.
    timed = {int(i) for i in np.linspace(2, n_batches - 1, min(batches, n_batches - 2))} if n_batches > 2 else set(range(n_batches))
    times, first_s = [], 0.0
    for i, batch in enumerate(spec.train_batches(ds, model_cfg, train_cfg, 0, "pretrain")):
        if i > max(timed):
            break
        if i >= 2 and i not in timed:
            continue
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with distributed.autocast("cpu", precision):
            loss = model.pretrain_loss(batch)
        loss.backward()
        opt.step()
        if i == 0:
            first_s = time.perf_counter() - t  # with the model's once-an-epoch work (MISSRec clusters the catalogue)
        if i in timed:
            times.append(time.perf_counter() - t)
    per_batch = statistics.mean(times)
    epoch_s = (n_batches - 1) * per_batch + first_s + epoch_batches_s
    return {
        "model": model_name, "precision": precision, "set": sets, "users": ds.num_users, "items": ds.num_items, "interactions": int(ds.offsets[-1]),
        "build_data_s": round(build_s, 1), "epoch_batch_function_s": round(epoch_batches_s, 1), "batches_per_epoch": n_batches,
        "batch_size": train_cfg.batch_size, "first_batch_s": round(first_s, 1), "s_per_batch": round(per_batch, 3), "s_per_batch_max": round(max(times), 3), "epoch_minutes": round(epoch_s / 60, 1),
        "examples_per_epoch": n_examples, "examples_per_s": round(n_examples / epoch_s, 1), "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
    }


def write(out: Path, scale: float) -> None:
    """The synthetic data as mmrec artifacts: a dataset and a features file of its text vectors."""
    from mmrec_cli.data import dataset as D
    from mmrec_cli.io import feature_file

    out.mkdir(parents=True, exist_ok=True)
    ds, features = synthetic(scale)
    config = {"scale": scale}
    D.save(ds, str(out / "ds.safetensors"), "bench/pretrain_scale.py --write", config, {})
    encoder = {"text": {"name": "synthetic", "dim": DIM}}
    feature_file.save(str(out / "feats.safetensors"), {"text": features["text"].numpy()}, ds.item_ids, "bench/pretrain_scale.py --write", config, {}, encoder)
    print(f"wrote {out}/ds.safetensors ({ds.num_users:,} users, {ds.num_items:,} items, {int(ds.offsets[-1]):,} interactions) "
          f"and {out}/feats.safetensors; time an epoch with\n  mmrec pretrain MODEL {out}/ds.safetensors --features {out}/feats.safetensors "
          f"--config examples/configs/MODEL_pretrain.json --epochs 1 -o {out}/MODEL.safetensors")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", action="append", choices=["msm4sr", "missrec", "unisrec"], help="repeatable (default: msm4sr and missrec)")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--precision", action="append", choices=["fp32", "bf16", "fp16"], help="repeatable (default: fp32)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a setting over the example config, as `mmrec pretrain --set` (repeatable)")
    ap.add_argument("--write", type=Path, help="write the data as DIR/ds.safetensors and DIR/feats.safetensors and stop (to time `mmrec pretrain` on them)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    precisions = args.precision or ["fp32"]
    if args.write:
        write(args.write, args.scale)
        return
    if args.child:
        print(json.dumps(run(args.child, args.scale, args.batches, precisions[0], args.set)), flush=True)
        return
    for name in args.model or ["msm4sr", "missrec"]:  # a process each, so that each peak RSS is its own
        for numbers in precisions:
            child = [sys.executable, __file__, "--child", name, "--scale", str(args.scale), "--batches", str(args.batches), "--precision", numbers] + [f"--set={s}" for s in args.set]
            p = subprocess.run(child, capture_output=True, text=True)
            print(p.stdout.strip() if p.returncode == 0 else f"{name} {numbers}: failed ({p.returncode}): {p.stderr.strip()[-500:]}", flush=True)


if __name__ == "__main__":
    main()
