"""MMMLP: all-MLP multimodal sequential recommendation (Liang et al., WWW 2023).

Three mixer modules read the user's sequence three ways: the image features, the text features and
trainable item-ID embeddings of the items, each (B, N, D_m). A mixer module is a stack of blocks

    X = X + TokenMix(LayerNorm(X))      mixes across the N sequence positions, channel by channel
    X = X + ChannelMix(LayerNorm(X))    Linear(D_m, r_D) -> GELU -> Linear(r_D, D_m), per position

with GELU and dropout. Late fusion concatenates the three outputs and maps them with one Linear to
the hidden width, where a fusion mixer module (the same blocks) runs; the prediction layer scores
every item by the dot product of the last position's state with the (tied) item-ID embeddings, and
training minimises cross-entropy over all items. `feature_output = true` (not in the paper) adds
Linear(text) + Linear(image) of each item to its output vector.

Causality (how mmrec trains it). mmrec trains on its standard right-padded sequence batches with a
loss at every position (`mmrec_cli.data.batches`), so the token mixing must not let position j see
items after j. TokenMix is therefore a *causal* MLP: Linear(N -> r_N) -> GELU -> Linear(r_N -> N)
whose r_N hidden units are each given a position p(h) = floor(h * N / r_N); unit h reads only
positions <= p(h) and writes only to positions >= p(h) (MADE-style masks on both weights). The
output at j thus depends on positions <= j alone (tested), padding after a sequence's end never
reaches it, and a batch shorter than N uses exactly the leading rows/columns of the weights. With
r_N fixed, the token mixing costs O(N * r_N * D) and holds 2 * N * r_N weights: linear in the
sequence length, MMMLP's claim (`bench/mmmlp_bench.py` measures it). When r_N < N a position sees
the items before it through the hidden units placed at or before it (its own item always reaches
it through the residual).

Departures from the paper, all settable: the paper does not give r_N, r_D, depth or dropout
(`examples/configs/mmmlp.json` holds values chosen on Scientific validation); `modal_dim` > 0
projects the frozen image and text features to that width before their mixers (0 = the paper's
layout: mixers at the features' own width, 512 for CLIP ViT-B/32, about 8x the compute).
With one modality (text-only data, or `modalities = text` / `image`) the other mixer is left out and
the fusion reads the remaining feature mixer and the ID mixer: the paper's single-modality ablations.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmrec_cli.data import batches as B
from mmrec_cli.errors import bad_input
from mmrec_cli.models import MAX_LEN, ModelSpec

MODALITIES: tuple[str, ...] = ("text", "image")


@dataclass
class Config:
    max_len: int = MAX_LEN  # N: the token-mixing width
    hidden: int = 64  # D_S: item-ID embedding and fusion width
    layers: int = 2  # blocks per modality / ID mixer module
    fusion_layers: int = 1  # blocks of the fusion mixer
    token_hidden: int = 64  # r_N
    channel_hidden: int = 256  # r_D
    modal_dim: int = 0  # 0 = mixers at the feature width; > 0 = project features to this width first
    feature_output: bool = False  # True: output item vectors = ID embedding + Linear(text) + Linear(image)
    dropout: float = 0.5
    init_std: float = 0.02
    modalities: tuple[str, ...] = ()  # mixers of these features (empty: every one the features have); text or image alone = the paper's ablations


class Model(nn.Module):
    def __init__(self, cfg: Config, num_items: int, features: dict | None = None):
        super().__init__()
        self.cfg = cfg
        feats = features or {}
        self.mods = select_modalities(cfg, feats)
        widths = {}
        for m in self.mods:
            table = feats[m].float()
            if f"{m}_mask" in feats:
                table = table * feats[f"{m}_mask"].float()[:, None]
            # row 0 = padding; frozen, not stored in the model artifact (the features file is given again)
            self.register_buffer(f"{m}_table", torch.cat([torch.zeros(1, table.shape[1]), table]), persistent=False)
            widths[m] = cfg.modal_dim or table.shape[1]
        self.proj = nn.ModuleDict({m: nn.Linear(feats[m].shape[1], cfg.modal_dim) for m in self.mods}) if cfg.modal_dim else None
        self.out_proj = nn.ModuleDict({m: nn.Linear(feats[m].shape[1], cfg.hidden) for m in self.mods}) if cfg.feature_output else None
        self.item_emb = nn.Embedding(num_items + 1, cfg.hidden, padding_idx=0)
        self.drop = nn.Dropout(cfg.dropout)
        self.mixers = nn.ModuleDict({m: MixerModule(cfg, widths[m], cfg.layers) for m in self.mods})
        self.mixers["id"] = MixerModule(cfg, cfg.hidden, cfg.layers)
        self.fuse = nn.Linear(sum(widths.values()) + cfg.hidden, cfg.hidden)
        self.fusion = MixerModule(cfg, cfg.hidden, cfg.fusion_layers)
        self.norm = nn.LayerNorm(cfg.hidden)
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
        """Fused state at every position (B, L, hidden) of right-padded item sequences (B, L)."""
        assert items.shape[1] <= self.cfg.max_len, f"sequence length {items.shape[1]} > max_len {self.cfg.max_len}"
        outs = []
        for m in self.mods:
            x = self.get_buffer(f"{m}_table")[items]  # (B, L, D_m)
            if self.proj is not None:
                x = self.proj[m](x)
            outs.append(self.mixers[m](self.drop(x)))
        outs.append(self.mixers["id"](self.drop(self.item_emb(items))))
        return self.norm(self.fusion(self.fuse(torch.cat(outs, dim=-1))))

    def users(self, batch: dict) -> torch.Tensor:
        """The fused state at each row's last item (B, hidden)."""
        h = self.encode(batch["items"])
        last = (batch["lengths"] - 1).clamp(min=0)
        return h[torch.arange(h.shape[0]), last]  # (B, hidden)

    def item_vectors(self, items: torch.Tensor) -> torch.Tensor:
        """Output vectors (n, hidden) of 0-based items: the tied ID embeddings (+ features, see Config)."""
        v = self.item_emb.weight[items + 1]
        if self.out_proj is not None:
            for m in self.mods:
                v = v + self.out_proj[m](self.get_buffer(f"{m}_table")[items + 1])
        return v

    def loss(self, batch: dict) -> torch.Tensor:
        h = self.encode(batch["items"])  # (B, L, hidden)
        keep = batch["targets"] >= 0
        logits = h[keep] @ self.item_vectors(torch.arange(self.item_emb.num_embeddings - 1, device=h.device)).T  # (P, N_items)
        return F.cross_entropy(logits, batch["targets"][keep])

    def score_users(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return users @ self.item_vectors(items).T  # (B, n)


def select_modalities(cfg: Config, feats: dict) -> list[str]:
    """The feature mixers to build: cfg.modalities, or every modality the features have."""
    present = [m for m in MODALITIES if m in feats]
    if any(m not in MODALITIES for m in cfg.modalities):
        raise bad_input(f"model.modalities={','.join(cfg.modalities)}: choose among {', '.join(MODALITIES)}")
    missing = [m for m in cfg.modalities if m not in present]
    if missing or not present:
        raise bad_input(f"mmmlp reads text and/or image features; the features file lacks {', '.join(missing or MODALITIES)}")
    return list(cfg.modalities) or present


class MixerModule(nn.Module):
    """A stack of mixer blocks at width `dim`."""

    def __init__(self, cfg: Config, dim: int, layers: int):
        super().__init__()
        self.blocks = nn.ModuleList(MixerBlock(cfg, dim) for _ in range(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x


class MixerBlock(nn.Module):
    """X = X + TokenMix(LN(X)) across positions; X = X + ChannelMix(LN(X)) across features."""

    def __init__(self, cfg: Config, dim: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.tokens = CausalTokenMix(cfg.max_len, cfg.token_hidden)
        self.norm2 = nn.LayerNorm(dim)
        self.channels = nn.Sequential(nn.Linear(dim, cfg.channel_hidden), nn.GELU(), nn.Linear(cfg.channel_hidden, dim))
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.tokens(self.norm1(x)))
        return x + self.drop(self.channels(self.norm2(x)))


class CausalTokenMix(nn.Module):
    """Linear(N -> r_N) -> GELU -> Linear(r_N -> N) over the position axis, shared by all channels,
    masked so that output position j depends on input positions <= j only."""

    def __init__(self, n: int, hidden: int, init_std: float = 0.02):
        super().__init__()
        self.w1 = nn.Parameter(torch.randn(hidden, n) * init_std)
        self.b1 = nn.Parameter(torch.zeros(hidden))
        self.w2 = nn.Parameter(torch.randn(n, hidden) * init_std)
        self.b2 = nn.Parameter(torch.zeros(n))
        place = torch.arange(hidden) * n // hidden  # p(h), non-decreasing
        pos = torch.arange(n)
        self.register_buffer("mask1", (pos[None, :] <= place[:, None]).float(), persistent=False)  # (r_N, N)
        self.register_buffer("mask2", (place[None, :] <= pos[:, None]).float(), persistent=False)  # (N, r_N)
        self.register_buffer("place", place, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        L = x.shape[1]
        h_used = int((self.place < L).sum())  # hidden units placed inside the first L positions
        w1 = (self.w1 * self.mask1)[:h_used, :L]
        w2 = (self.w2 * self.mask2)[:L, :h_used]
        h = F.gelu(torch.einsum("hl,bld->bhd", w1, x) + self.b1[:h_used, None])  # (B, h_used, D)
        return torch.einsum("lh,bhd->bld", w2, h) + self.b2[:L, None]  # (B, L, D)


SPEC = ModelSpec(name="mmmlp", config=Config, build=Model, train_batches=B.sequence_batches, modalities=MODALITIES)
