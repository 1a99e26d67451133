"""BERT4Rec: a bidirectional transformer over item IDs trained by masked item prediction (Sun et al., CIKM 2019).

The ID-only bidirectional baseline, laid out as RecBole's BERT4Rec (paper sections in brackets):

    h^0_i = Dropout(LayerNorm(E[v_i] + P[i]))                      item + learned position embeddings (§3.4)
    H^l   = Trm(H^{l-1}), l = 1..layers                            post-LN layers, every position attends to
                                                                   every item of its row, both sides (§3.3)
    o_i   = LayerNorm(GELU(W^P h^L_i + b^P))                       the output head (§3.5)
    score(o_i, v) = o_i . E[v] + b^O_v                             tied item embeddings (+ the output bias b^O)

Items are 1..N, padding 0 and the [mask] token N + 1, a row of the item table that is never scored.

Training (the Cloze task, §3.6): every item of an input is replaced by [mask] with probability
`mask_ratio` (a row that draws none gets one masked position, uniform over its items), and the loss is
the cross-entropy over all items at the masked positions, averaged over them. `loss_masks = "recbole"`
follows RecBole 1.2 instead: no forced mask, and of a row's masked positions the loss reads only the
last int(mask_ratio * max_len) and never position 0 (the others stay masked in the input). The inputs are RecBole's
training instances: the history before each training item but a user's first (its last max_len items) is
one row, so `train.batch_size` counts these prefixes as RecBole's train_batch_size does (a user's last
training item is therefore never an input in training, as in RecBole). A share `ft_ratio` of the
batches (drawn per batch) instead masks only each row's last item, the samples of §3.6 that "only mask
the last item in the input sequences ... like fine-tuning" and so match the evaluation task (RecBole
1.2's ft_ratio, 0.5 by default there and here; 0 gives Cloze batches only). The masks are drawn in
`train_batches` from (seed, epoch): every process of a distributed run and a resumed run draw the same.

Evaluation and recommendation: [mask] is appended after the history and its output is the user vector;
a history of max_len items or more keeps its last max_len - 1, so that history + [mask] fits max_len
(`drop_oldest`: every history loses its oldest item first, as in RecBole).

Departures from RecBole 1.2: RecBole's evaluation appends [mask] and then drops the first column of
every row, so a history shorter than max_len also loses its oldest item (here it is kept whole); RecBole
puts at most int(mask_ratio * max_len) masked positions of a row in the loss (the last ones), never a
mask at position 0, and no loss for a row that drew no mask (here, by default, every masked position counts
and every row has one; `loss_masks = "recbole"` gives RecBole's rule); RecBole's logits include the padding row as a candidate item (here only the N items).
Measured on the example data: with the default rule, validation peaked early and fell at 2 of 4 seeds, where patience
10 stopped the runs; with RecBole's rule the curves follow RecBole's, so examples/configs/bert4rec.json sets it
(docs/models/bert4rec.md has the runs; which part of the rule matters is not isolated). The same four trained models
scored on RecBole's evaluation rows (`drop_oldest`) gave a higher validation NDCG@10 at 3 of the 4 seeds, so the
example config sets that too.

Config fields and their RecBole keys: max_len = MAX_ITEM_LIST_LENGTH, hidden = hidden_size, layers =
n_layers, heads = n_heads, inner = inner_size, dropout = hidden_dropout_prob, attn_dropout =
attn_dropout_prob, act = hidden_act, norm_eps = layer_norm_eps, init_std = initializer_range,
mask_ratio = mask_ratio, ft_ratio = ft_ratio, output_bias = the output bias b^O (always on in RecBole 1.2,
absent before 1.2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmrec_cli.data import batches as B
from mmrec_cli.errors import out_of_range
from mmrec_cli.models import MAX_LEN, ModelSpec

ACTIVATIONS = {"gelu": F.gelu, "relu": F.relu, "swish": F.silu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}


@dataclass
class Config:
    max_len: int = MAX_LEN  # MAX_ITEM_LIST_LENGTH: positions, the appended [mask] included
    hidden: int = 64  # hidden_size
    layers: int = 2  # n_layers
    heads: int = 2  # n_heads
    inner: int = 256  # inner_size: the feed-forward width
    dropout: float = 0.2  # hidden_dropout_prob
    attn_dropout: float = 0.2  # attn_dropout_prob
    act: Literal["gelu", "relu", "swish", "tanh", "sigmoid"] = "gelu"  # hidden_act (of the feed-forward layers)
    norm_eps: float = 1e-12  # layer_norm_eps
    init_std: float = 0.02  # initializer_range
    mask_ratio: float = 0.2  # mask_ratio: the probability that an input item is masked in training
    ft_ratio: float = 0.5  # ft_ratio: the probability that a training batch masks only each row's last item
    # which masked positions the loss reads: "all" (every row gets one at least), or "recbole" (RecBole 1.2's
    # rule: no forced mask; of a row's masks the last int(mask_ratio * max_len), never position 0)
    loss_masks: Literal["all", "recbole"] = "all"
    # evaluation and recommendation drop a history's oldest item before appending [mask], as RecBole 1.2 does
    drop_oldest: bool = False
    output_bias: bool = True  # b^O, a learned bias per item added to the scores


class Model(nn.Module):
    def __init__(self, cfg: Config, num_items: int, features: dict | None = None):
        super().__init__()
        for name, rate in (("mask_ratio", cfg.mask_ratio), ("ft_ratio", cfg.ft_ratio)):
            if not 0.0 <= rate <= 1.0:
                raise out_of_range(f"config: model.{name}", rate, "a rate in [0, 1]")
        if not cfg.norm_eps > 0:
            raise out_of_range("config: model.norm_eps", cfg.norm_eps, "a positive number, e.g. 1e-12")
        self.cfg = cfg
        self.num_items = num_items
        self.mask = num_items + 1  # the [mask] token's index
        self.item_emb = nn.Embedding(num_items + 2, cfg.hidden, padding_idx=0)  # 0 padding, 1..N items, N+1 [mask]
        self.pos_emb = nn.Embedding(cfg.max_len, cfg.hidden)
        self.norm = nn.LayerNorm(cfg.hidden, eps=cfg.norm_eps)
        self.drop = nn.Dropout(cfg.dropout)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        # W^P, b^P, GELU and a LayerNorm (RecBole's output_ffn, output_gelu, output_ln)
        eps = cfg.norm_eps
        self.head = nn.Sequential(nn.Linear(cfg.hidden, cfg.hidden), nn.GELU(), nn.LayerNorm(cfg.hidden, eps=eps))
        self.out_bias = nn.Parameter(torch.zeros(num_items)) if cfg.output_bias else None  # b^O (N,)
        self.apply(self._init)

    # Copied from mmrec_cli.models.sasrec.Model._init
    def _init(self, m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=self.cfg.init_std)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)
        if isinstance(m, nn.Embedding) and m.padding_idx is not None:
            nn.init.zeros_(m.weight[m.padding_idx])  # the padding row stays zero, as nn.Embedding builds it

    @property
    def max_len(self) -> int:
        return self.cfg.max_len

    def encode(self, items: torch.Tensor) -> torch.Tensor:
        """The output o_i at every position (B, L, D) of right-padded sequences (B, L) of items and [mask]."""
        L = items.shape[1]
        assert L <= self.cfg.max_len, f"sequence length {L} > max_len {self.cfg.max_len}"
        pos = torch.arange(L, device=items.device)
        x = self.drop(self.norm(self.item_emb(items) + self.pos_emb(pos)))  # (B, L, D)
        attend = (items > 0)[:, None, None, :]  # (B, 1, 1, L): keys that are an item or [mask]
        for block in self.layers:
            x = block(x, attend)
        return self.head(x)  # (B, L, D)

    def users(self, batch: dict) -> torch.Tensor:
        """The output at the [mask] appended after each history (B, D)."""
        items = batch["items"]  # (B, L)
        assert items.shape[1] <= self.cfg.max_len, f"sequence length {items.shape[1]} > max_len {self.cfg.max_len}"
        x, at = with_mask(items, batch["lengths"], self.mask, self.cfg.max_len, self.cfg.drop_oldest)  # (B, L'), (B,)
        return self.encode(x)[torch.arange(len(at)), at]  # (B, D)

    def loss(self, batch: dict) -> torch.Tensor:
        """Cross-entropy over all items at the masked positions (`targets` (B, L) >= 0)."""
        h = self.encode(batch["items"])  # (B, L, D)
        keep = batch["targets"] >= 0
        if not keep.any():  # loss_masks="recbole": a batch can read no position (RecBole's loss is then 0/0)
            return h.sum() * 0.0
        logits = self.score_users(h[keep], torch.arange(self.num_items, device=h.device))  # (P, N)
        return F.cross_entropy(logits, batch["targets"][keep])

    def score_users(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        scores = users @ self.item_emb.weight[items + 1].T  # (B, D) x (n, D) -> (B, n)
        return scores if self.out_bias is None else scores + self.out_bias[items]


# The layout of mmrec_cli.models.sasrec.Block, deliberately copied, with a padding mask in place of the causal one
class Block(nn.Module):
    """Post-LN transformer layer with bidirectional attention over a row's items (RecBole's TransformerLayer)."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.heads = cfg.heads
        self.qkv = nn.Linear(cfg.hidden, 3 * cfg.hidden)
        self.out = nn.Linear(cfg.hidden, cfg.hidden)
        self.attn_drop = cfg.attn_dropout
        self.ff1 = nn.Linear(cfg.hidden, cfg.inner)
        self.ff2 = nn.Linear(cfg.inner, cfg.hidden)
        self.act = ACTIVATIONS[cfg.act]
        self.norm1 = nn.LayerNorm(cfg.hidden, eps=cfg.norm_eps)
        self.norm2 = nn.LayerNorm(cfg.hidden, eps=cfg.norm_eps)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, attend: torch.Tensor) -> torch.Tensor:
        B, L, D = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)  # (B, h, L, d)
        p = self.attn_drop if self.training else 0.0
        # every row has a key to attend to: its [mask] or an item
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=attend, dropout_p=p)
        x = self.norm1(x + self.drop(self.out(a.transpose(1, 2).reshape(B, L, D))))
        return self.norm2(x + self.drop(self.ff2(self.act(self.ff1(x)))))


def with_mask(items: torch.Tensor, lengths: torch.Tensor, mask: int, max_len: int, drop_oldest: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Histories (B, L <= max_len) with [mask] appended: the last min(length, max_len - 1) items, then [mask]
    (`drop_oldest`: the last min(length, max_len) - 1, RecBole's reconstruct_test_data).

    Returns the new right-padded rows (B, min(L + 1, max_len)) and the position of each row's [mask] (B,)."""
    n, L = items.shape
    # (B,) history items kept
    keep = (lengths.clamp(max=max_len) - 1).clamp(min=0) if drop_oldest else lengths.clamp(max=max_len - 1)
    width = min(L + 1, max_len)
    pos = torch.arange(width, device=items.device)
    src = (pos + (lengths - keep)[:, None]).clamp(max=L - 1)  # (B, width): where each kept item is in `items`
    out = torch.where(pos < keep[:, None], items.gather(1, src), 0)
    out[torch.arange(n), keep] = mask
    return out, keep


def mask_items(batch: dict, mask: int, ratio: float, rng: np.random.Generator, recbole_cap: int | None = None) -> dict:
    """The Cloze inputs of a batch: each item masked with probability `ratio`, at least one per row.

    `items` gets [mask] at the chosen positions and `targets` (B, L) their 0-based items (IGNORE elsewhere).
    With `recbole_cap` (RecBole's int(mask_ratio * max_len)), no row gets a forced mask and the targets are
    the last `recbole_cap` chosen positions of each row, position 0 excepted."""
    items, lengths = batch["items"], batch["lengths"]
    n, L = items.shape
    real = torch.arange(L) < lengths[:, None]  # (B, L)
    chosen = torch.from_numpy(rng.random((n, L)) < ratio) & real
    if recbole_cap is None:
        one = torch.from_numpy((rng.random(n) * lengths.numpy()).astype(np.int64))  # (B,) a uniform position of each row
        none = ~chosen.any(1)
        chosen[none, one[none]] = True
        read = chosen
    else:
        from_end = chosen.flip(1).cumsum(1).flip(1)  # (B, L): chosen positions at or after each one
        read = chosen & (from_end <= recbole_cap) & (torch.arange(L) > 0)
    rest = {k: v for k, v in batch.items() if k != "target"}
    return rest | {"items": torch.where(chosen, mask, items), "targets": torch.where(read, items - 1, B.IGNORE)}


def mask_last(batch: dict, mask: int, recbole: bool = False) -> dict:
    """The §3.6 fine-tuning inputs of a batch: each row's last item replaced by [mask] and made its only target
    (RecBole's _append_mask_last). With `recbole`, a row of one item is masked but not read (RecBole never reads
    position 0)."""
    items, lengths = batch["items"], batch["lengths"]  # (B, L), (B,)
    last = torch.arange(items.shape[1]) == (lengths - 1)[:, None]  # (B, L)
    read = last & (lengths[:, None] > 1) if recbole else last
    rest = {k: v for k, v in batch.items() if k != "target"}
    return rest | {"items": torch.where(last, mask, items), "targets": torch.where(read, items - 1, B.IGNORE)}


def train_batches(ds, cfg: Config, train_cfg, epoch: int, stage: str = "finetune"):
    """RecBole's prefix histories, shuffled and masked; the order and the masks depend only on (seed, epoch)."""
    rng = np.random.default_rng([train_cfg.seed % 2**63, epoch])
    cap = int(cfg.mask_ratio * cfg.max_len) if cfg.loss_masks == "recbole" else None
    for batch in B.prefix_batches(ds, cfg.max_len, train_cfg.batch_size, train_cfg.seed, epoch):
        if cfg.ft_ratio > 0 and rng.random() < cfg.ft_ratio:  # no draw at 0: Cloze-only runs keep their masks
            yield mask_last(batch, ds.num_items + 1, cap is not None)
        else:
            yield mask_items(batch, ds.num_items + 1, cfg.mask_ratio, rng, cap)


SPEC = ModelSpec(name="bert4rec", config=Config, build=Model, train_batches=train_batches)
