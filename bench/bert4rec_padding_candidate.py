"""mmrec's BERT4Rec trained with RecBole's softmax, through mmrec's own `finetune` and `eval`: a diagnostic.

    .venv/bin/python bench/bert4rec_padding_candidate.py [--seeds 2020,2022] [--work DIR]

RecBole 1.2's BERT4Rec scores one candidate more than the items: the padding row of its item table (drawn at random
like every item row, never a target) with an output bias of its own. This script gives mmrec's BERT4Rec that
candidate in its training loss, for this process only (the padding row drawn as RecBole draws it, N(0, 0.02), and a
bias parameter), then runs `mmrec finetune bert4rec` on the example data exported for RecBole
(examples/out/recbole/ds.safetensors, made by bench/recbole_reference.sh) with examples/configs/bert4rec.json and
each seed, and `mmrec eval --split test`. Compare each seed's per-epoch validation NDCG@10 (DIR/pad_sSEED.log) and
test figures with the same seed's plain run (`mmrec finetune bert4rec ... --seed SEED`). Scoring at evaluation is
mmrec's (items only). A diagnostic, not a benchmark.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def patch() -> None:
    """Give bert4rec.Model RecBole's training softmax (the padding row and its bias as one more candidate)."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    from mmrec_cli.models import bert4rec

    build = bert4rec.Model.__init__

    def __init__(self, cfg, num_items, features=None):
        build(self, cfg, num_items, features)
        with torch.no_grad():
            self.item_emb.weight[0].normal_(0, cfg.init_std)  # RecBole's init draws the padding row too
        self.pad_bias = nn.Parameter(torch.zeros(1))

    # Copied from bench/bert4rec_recbole_batches.py's padded_loss, which cannot be imported here: that module
    # imports RecBole, found only in .venv-recbole
    def loss(self, batch):
        h = self.encode(batch["items"])  # (B, L, D)
        keep = batch["targets"] >= 0
        logits = h[keep] @ self.item_emb.weight[: self.num_items + 1].T + torch.cat([self.pad_bias, self.out_bias])  # (P, 1 + N)
        return F.cross_entropy(logits, batch["targets"][keep] + 1)

    bert4rec.Model.__init__, bert4rec.Model.loss = __init__, loss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="2020,2022")
    ap.add_argument("--work", type=Path, default=ROOT / "examples/out/recbole/padding_candidate")
    ap.add_argument("--mmrec", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)  # one patched mmrec command
    args = ap.parse_args()
    if args.mmrec is not None:
        patch()
        from mmrec_cli.cli.app import main as mmrec

        sys.argv = ["mmrec", *args.mmrec]
        mmrec()
        return
    data = ROOT / "examples/out/recbole/ds.safetensors"
    if not data.exists():
        sys.exit(f"{data} is missing: run bench/recbole_reference.sh first (it exports the example data)")
    args.work.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds.split(","):
        model, log = args.work / f"pad_s{seed}.safetensors", args.work / f"pad_s{seed}.log"
        steps = [["finetune", "bert4rec", data, "--config", ROOT / "examples/configs/bert4rec.json", "--seed", seed, "-o", model],
                 ["eval", model, data, "--split", "test", "-o", args.work / f"pad_s{seed}.test.json"]]
        for step in steps:
            if step[0] == "finetune" and model.exists():
                continue
            with open(log, "a") as err:
                subprocess.run([sys.executable, __file__, "--mmrec", *map(str, step)], stderr=err, check=True)
        print(f"seed {seed}: " + log.read_text().strip().splitlines()[-1])


if __name__ == "__main__":
    main()
