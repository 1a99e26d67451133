"""FMLP-Rec: learnable frequency-domain filters in an all-MLP encoder over item IDs (Zhou et al., WWW 2022,
"Filter-enhanced MLP is All You Need for Sequential Recommendation").

An ID-only baseline that replaces SASRec's self-attention by a filter over the sequence's frequencies:

    F^0 = Dropout(LayerNorm(E[v_t] + P[t]))           item + learned position embeddings, t = 1..max_len
    X   = FFT(F^l)                                    along the sequence, (max_len // 2 + 1) frequencies
    X~  = W^l * X                                     a learnable complex filter, one weight per frequency
                                                      and channel (the layer's only sequence mixing)
    F~  = LayerNorm(F^l + Dropout(IFFT(X~)))          back to positions; residual, LayerNorm
    F^{l+1} = LayerNorm(F~ + Dropout(FFN(F~)))        point-wise FFN: hidden -> 4 hidden, GELU, -> hidden
    score(u, i) = F^L_{last} . E[i]                   the last position's output against the (tied) items

The filter is a circular convolution over the whole sequence: every position sees every other, later
ones included, so the only output that is read is the last position's, whose items all come before the
target. Sequences are therefore padded on the left to max_len, as in the official code, so that the last
item always sits at the last position (mmrec's batches are right-padded; `left_aligned` moves them), and
each training example is a prefix of a user's training sequence whose target is the next item
(`train.batch_size` counts prefixes).

Departures from the official code:
- the loss is cross-entropy over all items (RecBole's CE, as every model here), where the official code
  uses binary cross-entropy against one sampled negative;
- the training instances are RecBole's (every training item but a user's first, after the last max_len
  items before it), where the official code takes the prefixes of a user's last max_len training items
  only, the empty one before the first item included;
- each layer's filter is drawn on its own, with std init_std; the official code draws one with std 0.02
  and copies its layer, so that every layer's filter starts equal;
- the padding row of the item table is zero (it gets no gradient in either).

Config fields and the official code's arguments: max_len = max_seq_length, hidden = hidden_size, layers =
num_hidden_layers, dropout = hidden_dropout_prob, init_std = initializer_range; the FFN's inner size is
4 x hidden and its activation GELU, as there.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmrec_cli.data import batches as B
from mmrec_cli.errors import out_of_range
from mmrec_cli.models import MAX_LEN, ModelSpec


@dataclass
class Config:
    max_len: int = MAX_LEN  # max_seq_length: the sequence length every input is padded to (the filters' size)
    hidden: int = 64  # hidden_size
    layers: int = 2  # num_hidden_layers
    dropout: float = 0.5  # hidden_dropout_prob: embeddings, filter and FFN outputs
    init_std: float = 0.02  # initializer_range: the embeddings, linear weights and filters


class Model(nn.Module):
    def __init__(self, cfg: Config, num_items: int, features: dict | None = None):
        super().__init__()
        if cfg.max_len < 1:
            raise out_of_range("config: model.max_len", cfg.max_len, "1 or more")
        self.cfg = cfg
        self.item_emb = nn.Embedding(num_items + 1, cfg.hidden, padding_idx=0)  # row 0 = padding
        self.pos_emb = nn.Embedding(cfg.max_len, cfg.hidden)
        self.norm = nn.LayerNorm(cfg.hidden, eps=1e-12)
        self.drop = nn.Dropout(cfg.dropout)
        self.layers = nn.ModuleList(FilterBlock(cfg) for _ in range(cfg.layers))
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

    def encode(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The output at the last position (B, D) of right-padded item sequences (B, L), L <= max_len."""
        L, M = items.shape[1], self.cfg.max_len
        assert L <= M, f"sequence length {L} > max_len {M}"
        x = left_aligned(items, lengths, M)  # (B, M): padding first, the last item at position M - 1
        pos = torch.arange(M, device=items.device)
        h = self.drop(self.norm(self.item_emb(x) + self.pos_emb(pos)))  # (B, M, D)
        if not self.layers:
            return h[:, -1]
        for block in self.layers[:-1]:
            h = block(h)
        return self.layers[-1].last(h)  # (B, D): only the last position of the last layer is read

    def users(self, batch: dict) -> torch.Tensor:
        return self.encode(batch["items"], batch["lengths"])  # (B, D)

    def loss(self, batch: dict) -> torch.Tensor:
        """Cross-entropy over all items of each prefix's next item `target` (B,)."""
        u = self.encode(batch["items"], batch["lengths"])  # (B, D)
        return F.cross_entropy(u @ self.item_emb.weight[1:].T, batch["target"])  # (B, N) logits

    def score_users(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return users @ self.item_emb.weight[items + 1].T  # (B, D) x (n, D) -> (B, n)


class FilterBlock(nn.Module):
    """One layer: the learnable filter, then the point-wise FFN, each with dropout, residual and LayerNorm."""

    def __init__(self, cfg: Config):
        super().__init__()
        # (1, M // 2 + 1, D, 2): real and imaginary parts of W, one per frequency and channel
        self.filter = nn.Parameter(torch.randn(1, cfg.max_len // 2 + 1, cfg.hidden, 2) * cfg.init_std)
        self.norm1 = nn.LayerNorm(cfg.hidden, eps=1e-12)
        self.ff = nn.Sequential(nn.Linear(cfg.hidden, 4 * cfg.hidden), nn.GELU(), nn.Linear(4 * cfg.hidden, cfg.hidden))
        self.norm2 = nn.LayerNorm(cfg.hidden, eps=1e-12)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        M = x.shape[1]
        # the FFT in fp32 (no half-precision FFT of every length on every device)
        f = torch.fft.rfft(x.float(), dim=1, norm="ortho")  # (B, M // 2 + 1, D), complex
        y = torch.fft.irfft(f * torch.view_as_complex(self.filter), n=M, dim=1, norm="ortho").to(x.dtype)  # (B, M, D)
        x = self.norm1(x + self.drop(y))
        return self.norm2(x + self.drop(self.ff(x)))

    def last(self, x: torch.Tensor) -> torch.Tensor:
        """forward(x)[:, -1] (B, D) alone. The filtered sequence is x circularly convolved with the kernel
        k = IFFT(W) (M, D) (the ortho scalings of the two transforms cancel); its last position is
        sum_s x_s k_{M-1-s}, so the FFN runs on one position instead of M."""
        M = x.shape[1]
        k = torch.fft.irfft(torch.view_as_complex(self.filter)[0], n=M, dim=0)  # (M, D)
        y = torch.einsum("bsd,sd->bd", x.float(), k.flip(0)).to(x.dtype)  # (B, D)
        h = self.norm1(x[:, -1] + self.drop(y))
        return self.norm2(h + self.drop(self.ff(h)))


def left_aligned(items: torch.Tensor, lengths: torch.Tensor, width: int) -> torch.Tensor:
    """(B, width) of right-padded rows (B, L): each row's items moved to its end, padding (0) before them."""
    L = items.shape[1]
    src = torch.arange(width, device=items.device)[None, :] - (width - lengths[:, None])  # (B, width) source column
    real = src >= 0
    return items.gather(1, src.clamp(0, max(L - 1, 0))).masked_fill(~real, 0)


def train_batches(ds, cfg: Config, train_cfg, epoch: int, stage: str = "finetune"):
    """Shuffled batches of every training prefix with its next item `target`; the order depends only on (seed, epoch)."""
    yield from B.prefix_batches(ds, cfg.max_len, train_cfg.batch_size, train_cfg.seed, epoch)


SPEC = ModelSpec(name="fmlprec", config=Config, build=Model, train_batches=train_batches)
