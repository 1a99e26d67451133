"""The memory of one UniSRec pre-training step: resident memory before and after the forward pass and after the
backward pass, on the largest batch (the most positions) of an epoch.

    OMP_NUM_THREADS=1 MALLOC_MMAP_THRESHOLD_=65536 .venv/bin/python bench/unisrec_step_memory.py DATASET FEATURES [BATCH_SIZE]

DATASET and FEATURES as `mmrec pretrain unisrec` takes them (e.g. bench/transfer_quality.sh's
examples/out/transfer/instr.safetensors and instr_feats_wd.safetensors); the model settings of
examples/configs/unisrec_pretrain.json, BATCH_SIZE its train.batch_size unless given. The small mmap threshold makes
glibc return freed blocks at once, so the resident memory follows what the step holds.
"""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path

import torch

from mmrec_cli import api
from mmrec_cli.models import unisrec


def rss_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096 / 2**20


class Train:
    def __init__(self, batch_size: int, seed: int):
        self.batch_size, self.seed = batch_size, seed


def main() -> None:
    if len(sys.argv) not in (3, 4):
        raise SystemExit(__doc__)
    torch.manual_seed(0)
    example = json.loads((Path(__file__).resolve().parents[1] / "examples/configs/unisrec_pretrain.json").read_text())
    cfg = unisrec.Config(**example["model"])
    batch_size = int(sys.argv[3]) if len(sys.argv) == 4 else example["train"]["batch_size"]
    ds = api.load_dataset(sys.argv[1])
    model = unisrec.Model(cfg, ds.num_items, api.load_features(sys.argv[2], ds))
    model.train()
    batches = list(unisrec.train_batches(ds, cfg, Train(batch_size, example["train"]["seed"]), 0, "pretrain"))
    big = max(batches, key=lambda b: b["items"].numel())
    before = rss_mb()
    loss = model.pretrain_loss(big)
    forward = rss_mb()
    loss.backward()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"batch {tuple(big['items'].shape)} of {len(batches)}: before {before:.0f} MB, after the forward pass {forward:.0f} MB "
          f"(+{forward - before:.0f}), after the backward pass {rss_mb():.0f} MB; peak {peak:.0f} MB")


if __name__ == "__main__":
    main()
