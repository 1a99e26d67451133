"""SASRec: self-attentive sequential recommendation on item IDs alone (Kang & McAuley, ICDM 2018).

The ID-only baseline every multimodal model in mmrec is measured against. Layout follows RecBole's
SASRec: item + position embeddings, LayerNorm, dropout, post-LN transformer layers with GELU,
causal attention, and scores as the dot product with the (tied) item embeddings; cross-entropy
over all items. Unlike RecBole, training puts a loss at every position of a user's sequence
(`mmrec_cli.data.batches`), which is the same supervision as RecBole's one-sequence-per-prefix.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmrec_cli.data.batches import sequence_batches
from mmrec_cli.models import MAX_LEN, ModelSpec


@dataclass
class Config:
    max_len: int = MAX_LEN
    hidden: int = 64
    layers: int = 2
    heads: int = 2
    inner: int = 256
    dropout: float = 0.5
    attn_dropout: float = 0.5
    init_std: float = 0.02


class Model(nn.Module):
    def __init__(self, cfg: Config, num_items: int, features: dict | None = None):
        super().__init__()
        self.cfg = cfg
        self.item_emb = nn.Embedding(num_items + 1, cfg.hidden, padding_idx=0)  # row 0 = padding
        self.pos_emb = nn.Embedding(cfg.max_len, cfg.hidden)
        self.norm = nn.LayerNorm(cfg.hidden, eps=1e-12)
        self.drop = nn.Dropout(cfg.dropout)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        self.apply(self._init)

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

    def encode(self, items: torch.Tensor, layers: int | None = None) -> torch.Tensor:
        """Hidden state at every position (B, L, D) of right-padded item sequences (B, L), after the first
        `layers` layers (None: all)."""
        L = items.shape[1]
        assert L <= self.cfg.max_len, f"sequence length {L} > max_len {self.cfg.max_len}"
        pos = torch.arange(L, device=items.device)
        x = self.drop(self.norm(self.item_emb(items) + self.pos_emb(pos)))  # (B, L, D)
        for block in self.layers[:layers]:
            x = block(x)
        return x

    def users(self, batch: dict) -> torch.Tensor:
        """The hidden state at each row's last item (B, D). Only that position of the last layer is needed:
        its query alone goes through it (`last_query`), which saves most of that layer's work."""
        last = (batch["lengths"] - 1).clamp(min=0)
        if not self.layers:
            h = self.encode(batch["items"])
            return h[torch.arange(h.shape[0]), last]
        h = self.encode(batch["items"], len(self.layers) - 1)  # (B, L, D)
        return last_query(self.layers[-1], h, last)  # (B, D)

    def loss(self, batch: dict) -> torch.Tensor:
        h = self.encode(batch["items"])  # (B, L, D)
        keep = batch["targets"] >= 0
        logits = h[keep] @ self.item_emb.weight[1:].T  # (P, N) for the P real positions
        return F.cross_entropy(logits, batch["targets"][keep])

    def score_users(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return users @ self.item_emb.weight[items + 1].T  # (B, D) x (n, D) -> (B, n)


class Block(nn.Module):
    """Post-LN transformer layer with causal attention (RecBole's SASRec layout)."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.heads = cfg.heads
        self.qkv = nn.Linear(cfg.hidden, 3 * cfg.hidden)
        self.out = nn.Linear(cfg.hidden, cfg.hidden)
        self.attn_drop = cfg.attn_dropout
        self.ff = nn.Sequential(nn.Linear(cfg.hidden, cfg.inner), nn.GELU(), nn.Linear(cfg.inner, cfg.hidden))
        self.norm1 = nn.LayerNorm(cfg.hidden, eps=1e-12)
        self.norm2 = nn.LayerNorm(cfg.hidden, eps=1e-12)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, L, D = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)  # (B, h, L, d)
        p = self.attn_drop if self.training else 0.0
        a = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)  # right padding: no key mask needed
        x = self.norm1(x + self.drop(self.out(a.transpose(1, 2).reshape(B, L, D))))
        return self.norm2(x + self.drop(self.ff(x)))


def last_query(block: Block, x: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
    """block(x) at each row's position `last` only (B, D), for x (B, L, D): keys and values from every position,
    one query per row, the attention masked to the positions up to it (what the causal mask lets it see)."""
    B, L, D = x.shape
    h, d = block.heads, D // block.heads
    w, b = block.qkv.weight, block.qkv.bias  # rows: q, k, v
    x_last = x[torch.arange(B, device=x.device), last]  # (B, D)
    q = F.linear(x_last, w[:D], b[:D]).view(B, h, 1, d)
    k, v = F.linear(x, w[D:], b[D:]).view(B, L, 2, h, d).permute(2, 0, 3, 1, 4)  # (B, h, L, d)
    seen = (torch.arange(L, device=x.device)[None, :] <= last[:, None]).view(B, 1, 1, L)
    p = block.attn_drop if block.training else 0.0
    a = F.scaled_dot_product_attention(q, k, v, attn_mask=seen, dropout_p=p)  # (B, h, 1, d)
    y = block.norm1(x_last + block.drop(block.out(a.reshape(B, D))))
    return block.norm2(y + block.drop(block.ff(y)))


SPEC = ModelSpec(name="sasrec", config=Config, build=Model, train_batches=sequence_batches)
