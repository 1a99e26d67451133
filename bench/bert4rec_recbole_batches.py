"""BERT4Rec, mmrec's model against RecBole's, on RecBole's own training batches: a diagnostic of where their
validation curves part.

    .venv-recbole/bin/python bench/bert4rec_recbole_batches.py MODE [--epochs 15] [--seed 2020]

Run by RecBole's Python (.venv-recbole, made by bench/recbole_reference.sh) after that script has exported the
example data (examples/out/recbole/recbole/scientific/). RecBole 1.2.1's own data loader and MaskItemSequence
transform make every training batch (Cloze masks, its ft_ratio batches, its loss positions), and one plain loop
(Adam, lr 0.001, batches of 2,048 prefixes) trains MODE on them:

- recbole: RecBole's BERT4Rec (its calculate_loss); with the same seed this repeats RecBole's own trainer's curve.
- mmrec: mmrec's BERT4Rec with its own initial weights; the batch's masked positions become its `targets`.
- mmrec-recbole-init: mmrec's BERT4Rec starting from RecBole's initial weights (copied layer by layer); with
  --check, first prints both models' loss on the first batch with dropout off (drawing that batch moves RecBole's
  masks on by one batch).

--padding-candidate gives the mmrec modes RecBole's softmax: the padding row of the item table (a random vector,
a candidate but never a target) and a trainable bias of its own join the items as a candidate of the loss; with it, the
gradients of mmrec-recbole-init equal RecBole's on a batch to 4e-7 (dropout off), where they otherwise differ by about
1 % in every encoder weight.

--dropout P sets both dropout rates of either model (hidden and attention; default RecBole's 0.2): at 0, the
recbole and mmrec-recbole-init modes start from the same weights and see the same batches, so their curves differ
only by what the models compute.

Each epoch prints the mean training loss and validation NDCG@10 over all items (the target's rank among the 1,585
items, history not excluded, as both tools evaluate); the mmrec modes score the history kept whole, and with
--both-rows also with its oldest item dropped (RecBole's evaluation rows). RecBole's validation loader applies the
masking transform too, which draws random numbers: a second evaluation moves the next epoch's masks, so runs that
should see the same batches evaluate once. A diagnostic, not a benchmark: no file is written.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
_torch_load = torch.load
torch.load = lambda *a, **k: _torch_load(*a, **{**k, "weights_only": False})  # RecBole's own checkpoints (as recbole_run.py)

import yaml  # noqa: E402
from recbole.config import Config  # noqa: E402
from recbole.data import create_dataset, data_preparation  # noqa: E402
from recbole.model.sequential_recommender import BERT4Rec  # noqa: E402
from recbole.utils import init_seed  # noqa: E402

from mmrec_cli.models import bert4rec  # noqa: E402

DATA = ROOT / "examples/out/recbole/recbole/scientific/scientific.yaml"
SEQ, LEN = "item_id_list", "item_length"


def recbole_data(seed: int, dropout: float):
    data_path = (ROOT / yaml.safe_load(DATA.read_text())["data_path"]).resolve()
    settings = {"data_path": str(data_path), "loss_type": "CE", "train_neg_sample_args": None, "train_batch_size": 2048,
                "learning_rate": 0.001, "seed": seed, "reproducibility": True, "gpu_id": "", "show_progress": False,
                "MAX_ITEM_LIST_LENGTH": 50, "checkpoint_dir": "/tmp/bert4rec_recbole_batches",
                "hidden_dropout_prob": dropout, "attn_dropout_prob": dropout}
    cfg = Config(model="BERT4Rec", config_file_list=[str(DATA)], config_dict=settings)
    init_seed(seed, True)
    ds = create_dataset(cfg)
    train, valid, _ = data_preparation(cfg, ds)
    return cfg, train, valid, ds.item_num - 1  # RecBole's ids 1..N are mmrec's item indices + 1; [mask] N + 1 in both


def mmrec_batch(inter) -> dict:
    """RecBole's masked batch in mmrec's form: targets (B, L) hold the 0-based item at each position RecBole's loss reads."""
    items, where, pos = inter["Mask_item_id_list"], inter["MASK_INDEX"], inter["Pos_item_id"]
    targets = torch.full_like(items, -100)
    rows = torch.arange(items.shape[0])[:, None].expand_as(where)
    read = where > 0  # RecBole's loss reads MASK_INDEX > 0 (its padding is 0)
    targets[rows[read], where[read]] = pos[read] - 1
    return {"items": items, "lengths": inter[LEN], "targets": targets}


def padded_loss(model: bert4rec.Model, batch: dict, pad_bias: torch.Tensor) -> torch.Tensor:
    """The loss as RecBole computes it: the padding row (with `pad_bias`) is a candidate besides the N items."""
    h = model.encode(batch["items"])
    read = batch["targets"] >= 0
    logits = h[read] @ model.item_emb.weight[: model.num_items + 1].T + torch.cat([pad_bias, model.out_bias])
    return torch.nn.functional.cross_entropy(logits, batch["targets"][read] + 1)


def copy_recbole_weights(model: bert4rec.Model, rb: BERT4Rec) -> None:
    with torch.no_grad():
        model.item_emb.weight.copy_(rb.item_embedding.weight)
        model.pos_emb.weight.copy_(rb.position_embedding.weight)
        model.norm.load_state_dict(rb.LayerNorm.state_dict())
        for block, layer in zip(model.layers, rb.trm_encoder.layer):
            a, f = layer.multi_head_attention, layer.feed_forward
            block.qkv.weight.copy_(torch.cat([a.query.weight, a.key.weight, a.value.weight]))
            block.qkv.bias.copy_(torch.cat([a.query.bias, a.key.bias, a.value.bias]))
            block.out.load_state_dict(a.dense.state_dict())
            block.norm1.load_state_dict(a.LayerNorm.state_dict())
            block.ff1.load_state_dict(f.dense_1.state_dict())
            block.ff2.load_state_dict(f.dense_2.state_dict())
            block.norm2.load_state_dict(f.LayerNorm.state_dict())
        model.head[0].load_state_dict(rb.output_ffn.state_dict())
        model.head[2].load_state_dict(rb.output_ln.state_dict())
        model.out_bias.copy_(rb.output_bias[1:])  # RecBole's has a padding entry first


def ndcg10(model, valid, n_items: int, recbole: bool, drop_oldest: bool = False) -> float:
    model.eval()
    total = count = 0
    with torch.no_grad():
        for inter, *_ in valid:
            if recbole:
                scores = model.full_sort_predict(inter)[:, 1:]  # RecBole's rows: oldest item dropped
            else:
                model.cfg.drop_oldest = drop_oldest
                scores = model.score_users(model.users({"items": inter[SEQ], "lengths": inter[LEN]}), torch.arange(n_items))
            target = scores.gather(1, (inter["item_id"] - 1)[:, None])
            rank = (scores > target).sum(1) + 1
            total += torch.where(rank <= 10, 1 / torch.log2(rank.float() + 1), torch.zeros(())).sum().item()
            count += len(rank)
    model.train()
    return total / count


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("mode", choices=["recbole", "mmrec", "mmrec-recbole-init"])
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--seed", type=int, default=2020)
    ap.add_argument("--dropout", type=float, default=0.2, help="both dropout rates of either model")
    ap.add_argument("--padding-candidate", action="store_true", help="mmrec modes: RecBole's softmax, with the padding row")
    ap.add_argument("--both-rows", action="store_true", help="mmrec modes: also validate with the oldest item dropped")
    ap.add_argument("--check", action="store_true", help="mmrec-recbole-init: compare the first batch's losses first")
    args = ap.parse_args()
    sys.argv = sys.argv[:1]  # RecBole's Config also reads --key=value from the command line
    cfg, train, valid, n_items = recbole_data(args.seed, args.dropout)
    init_seed(args.seed, True)
    recbole = args.mode == "recbole"
    model = BERT4Rec(cfg, train._dataset) if recbole else bert4rec.Model(bert4rec.Config(dropout=args.dropout, attn_dropout=args.dropout), n_items)
    if args.mode == "mmrec-recbole-init":
        init_seed(args.seed, True)
        rb = BERT4Rec(cfg, train._dataset)
        copy_recbole_weights(model, rb)
    if args.mode == "mmrec-recbole-init" and args.check:
        model.eval(), rb.eval()
        first = next(iter(train))
        with torch.no_grad():
            print(f"first batch, dropout off: loss mmrec {model.loss(mmrec_batch(first)).item():.6f}, "
                  f"RecBole {rb.calculate_loss(first).item():.6f} (RecBole's softmax also holds the padding row)", flush=True)
        model.train()
    pad_bias = torch.zeros(1, requires_grad=True)
    params = [*model.parameters(), pad_bias] if args.padding_candidate and not recbole else list(model.parameters())
    opt = torch.optim.Adam(params, lr=0.001)
    for epoch in range(args.epochs):
        t0, losses = time.perf_counter(), []
        for inter in train:
            opt.zero_grad()
            if recbole:
                loss = model.calculate_loss(inter)
            elif args.padding_candidate:
                loss = padded_loss(model, mmrec_batch(inter), pad_bias)
            else:
                loss = model.loss(mmrec_batch(inter))
            loss.backward()
            opt.step()
            losses.append(loss.item())
        if recbole:
            valid_text = f"valid NDCG@10 {ndcg10(model, valid, n_items, True):.4f}"
        elif args.both_rows:
            keep, drop = ndcg10(model, valid, n_items, False), ndcg10(model, valid, n_items, False, True)
            valid_text = f"valid NDCG@10 {keep:.4f} (oldest item dropped: {drop:.4f})"
        else:
            valid_text = f"valid NDCG@10 {ndcg10(model, valid, n_items, False):.4f}"
        print(f"epoch {epoch + 1}: loss {sum(losses) / len(losses):.4f}, {valid_text}, {time.perf_counter() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
