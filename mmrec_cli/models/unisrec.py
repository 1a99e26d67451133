"""UniSRec: universal sequence representations from item text (Hou et al., KDD 2022).

The text-based transferable baseline of the multimodal papers (MISSRec compares against it). An item is
its text vector (a frozen sentence encoder's, `mmrec extract --text bert`) through a mixture-of-experts
adaptor of parametric whitening layers; a SASRec-style transformer reads the adapted items of a sequence:

    PW_e(x)   = (x - b_e) W_e                          one expert: parametric whitening (eq. 2)
    g(x)      = softmax(x W_gate + noise)              gates; in training noise = N(0, 1) * (softplus(x W_noise) + 0.01)
    v_i       = sum_e g_e(x_i) PW_e(dropout(x_i))      the adapted item (eq. 3), (H,)
    input_t   = v_{s_t} (+ z_{s_t} with IDs) + p_t      LayerNorm, dropout, causal transformer layers
    u         = normalise(output at the last item)
    score_i   = <u, normalise(v_i (+ z_i))> / temperature

Pre-training (eq. 4-6): sequence-item InfoNCE against the other targets of the batch + lambda x
sequence-sequence InfoNCE against an augmented view (items dropped, or in some batches the word-dropped
text of `extract --word-drop` at a share of the positions); in both, the batch's other examples with the
same target are left out of the negatives. No item IDs in pre-training. Fine-tuning: cross-entropy over all
items; after pre-training the positions and the transformer layers stay frozen (the public code's
`fix_enc`) unless `full`; `ids` adds item-ID embeddings (transductive) or not (inductive).

Deviations from the public code (RUCAIBox/UniSRec), each for speed on the CPU, none changes the model:
- The adaptor runs once per batch over the items the batch needs (the whole catalogue when fine-tuning,
  which the full softmax needs anyway), not once per token: an item's dropout mask and gating noise are
  shared by its occurrences in the batch. In evaluation there is no dropout or noise: the same values.
- Fine-tuning puts a loss at every position of a sequence (as mmrec's SASRec), the public code one per
  prefix: the same supervision for a causal transformer.

`packed` (off by default) does the same for pre-training: each window is read once and every position is an
example, in batches of at most batch_size examples, so an epoch runs the transformer over each interaction once
instead of once per prefix that holds it (8x fewer seconds an epoch at the size of the paper's pre-training data,
docs/benchmarks.md). The examples are the public code's; the batches are not: a user's prefixes share a batch, so
a window's other examples are left out of its negatives, and its views drop the same items.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmrec_cli.data import batches as B
from mmrec_cli.errors import bad_input, mismatch
from mmrec_cli.models import MAX_LEN, ModelSpec
from mmrec_cli.training.distributed import batch_rows

MODALITIES: tuple[str, ...] = ("text",)


@dataclass
class Config:
    max_len: int = MAX_LEN
    hidden: int = 300
    layers: int = 2
    heads: int = 2
    inner: int = 256
    dropout: float = 0.5
    attn_dropout: float = 0.5
    experts: int = 8
    adaptor_dropout: float = 0.2
    noisy_gating: bool = True
    temperature: float = 0.07
    seq_seq_weight: float = 1e-3  # lambda
    item_drop: float = 0.2  # pre-training view: drop each item (but the first) with this probability ...
    item_drop_prob: float = 0.9  # ... in this share of batches; the others take the word-dropped text at this share of positions
    ids: bool = True  # item-ID embeddings (transductive); false = text only (inductive)
    full: bool = False  # with a pre-trained init: train everything instead of freezing positions and transformer
    init_std: float = 0.02
    bucket: bool = True  # batches of similar lengths (less padding); their order stays shuffled
    packed: bool = False  # pre-training reads each window once, every position an example (at most batch_size a batch)


class Model(nn.Module):
    def __init__(self, cfg: Config, num_items: int, features: dict | None = None):
        super().__init__()
        self.cfg = cfg
        if not features or "text" not in features:
            raise bad_input("unisrec reads item text features ('text'); extract them with `mmrec extract --text bert`")
        text = features["text"].float()
        if text.shape[0] != num_items:
            raise mismatch(f"features 'text' have {text.shape[0]} rows for {num_items} items")
        self.register_buffer("text", text, persistent=False)  # (N, D)
        aug = features.get("text_aug")  # `extract --word-drop`: the second pre-training view
        self.register_buffer("text_aug", None if aug is None else aug.float(), persistent=False)
        H = cfg.hidden
        self.adaptor = MoEAdaptor(text.shape[1], H, cfg.experts, cfg.adaptor_dropout, cfg.noisy_gating)
        self.item_emb = nn.Embedding(num_items + 1, H, padding_idx=0) if cfg.ids else None
        self.pos_emb = nn.Embedding(cfg.max_len, H)
        self.norm = nn.LayerNorm(H, eps=1e-12)
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
        if isinstance(m, MoEAdaptor):
            nn.init.normal_(m.weight, std=self.cfg.init_std)

    @property
    def max_len(self) -> int:
        return self.cfg.max_len

    # ----- items -------------------------------------------------------------------------------

    def adapted(self, items: torch.Tensor, source: torch.Tensor | None = None) -> torch.Tensor:
        """Adapted text (n, H) of 0-based `items` (n,), from `source` (N, D) (default: the text)."""
        return self.adaptor((self.text if source is None else source)[items])

    def candidates(self, items: torch.Tensor, use_ids: bool = True) -> torch.Tensor:
        """Normalised item vectors (n, H) of 0-based `items`: adapted text (+ ID embedding)."""
        v = self.adapted(items)
        if use_ids and self.item_emb is not None:
            v = v + self.item_emb(items + 1)
        return F.normalize(v, dim=-1)

    # ----- sequences ---------------------------------------------------------------------------

    def encode(self, items: torch.Tensor, tokens: torch.Tensor, use_ids: bool = True) -> torch.Tensor:
        """Normalised outputs (B, L, H) at every position of sequences `items` (B, L) (index + 1, right
        padded) whose adapted items are `tokens` (B, L, H)."""
        L = items.shape[1]
        assert L <= self.cfg.max_len, f"sequence length {L} > max_len {self.cfg.max_len}"
        x = tokens + self.pos_emb(torch.arange(L, device=items.device))
        if use_ids and self.item_emb is not None:
            x = x + self.item_emb(items)
        x = self.drop(self.norm(x))
        for block in self.layers:
            x = block(x)
        return F.normalize(x, dim=-1)

    def tokens(self, items: torch.Tensor, table: torch.Tensor | None = None) -> torch.Tensor:
        """Adapted items (B, L, H) of sequences (B, L): rows of `table` (N, H), or adapted here (padding: 0)."""
        idx = (items - 1).clamp_min(0)
        t = table[idx] if table is not None else self.adapted(idx.flatten()).view(*items.shape, -1)
        return t * (items > 0)[..., None]

    def users(self, batch: dict) -> torch.Tensor:
        """u (B, H): the normalised output at each row's last item."""
        h = self.encode(batch["items"], self.tokens(batch["items"]))
        return last(h, batch["lengths"])

    def score_users(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return users @ self.candidates(items.to(users.device)).T  # (B, n)

    # ----- losses ------------------------------------------------------------------------------

    def loss(self, batch: dict) -> torch.Tensor:
        """Fine-tuning: cross-entropy over all items at every position (the adaptor runs once over the catalogue)."""
        items = batch["items"]
        table = self.adapted(torch.arange(self.text.shape[0], device=items.device))  # (N, H)
        h = self.encode(items, self.tokens(items, table))  # (B, L, H)
        cand = table if self.item_emb is None else table + self.item_emb.weight[1:]
        keep = batch["targets"] >= 0
        logits = h[keep] @ F.normalize(cand, dim=-1).T / self.cfg.temperature  # (P, N)
        return F.cross_entropy(logits, batch["targets"][keep])

    def pretrain_loss(self, batch: dict) -> torch.Tensor:
        """Sequence-item + lambda * sequence-sequence InfoNCE over the batch (eq. 4-6); no item IDs.

        The examples are the rows' last positions (a batch of prefixes), or with "targets" (cfg.packed) every
        position that has a next item: the same outputs, as attention is causal. There a window's other
        examples are no negatives of its own (as prefixes of one user, they seldom share a batch of prefixes)."""
        items, lengths = batch["items"], batch["lengths"]
        if "targets" in batch:  # packed windows (B, L)
            rows, cols = (batch["targets"] >= 0).nonzero(as_tuple=True)  # (P,) the examples, row-major
            target, group = batch["targets"][rows, cols], batch["user"][rows]
        else:  # prefixes (B, L)
            rows, cols = torch.arange(len(items), device=items.device), lengths - 1
            target, group = batch["target"], None
        if group is None:  # the whole global batch's rows (every process's, under --nproc)
            (target_all,), own = batch_rows(target)
        else:
            (target_all, group_all), own = batch_rows(target, group)
        view_items, _, swap, at = self.augment(items, lengths)
        needed = torch.cat([items.flatten(), view_items.flatten(), target_all + 1])
        uniq, inverse = torch.unique(needed.clamp_min(1) - 1, return_inverse=True)  # 0-based items of the batch
        table = self.adapted(uniq)  # (U, H): the batch's items only
        slot_items, slot_view = inverse[: items.numel()].view(items.shape), inverse[items.numel() : -len(target_all)].view(view_items.shape)
        h = self.encode(items, table[slot_items] * (items > 0)[..., None], use_ids=False)  # (B, L, H)
        u = h[rows, cols]  # (P, H)
        view = table[slot_view] * (view_items > 0)[..., None]
        if swap is not None:  # the word-dropped text at the swapped positions
            aug = self.adapted((view_items - 1).clamp_min(0)[swap], self.text_aug)
            view = view.masked_scatter(swap[..., None], aug)
        u_aug = self.encode(view_items, view, use_ids=False)[rows, at[rows, cols]]  # the view of each example
        same = target[:, None] == target_all[None, :]  # (P, P_all): other examples with the same target are no negatives
        if group is not None:
            same |= group[:, None] == group_all[None, :]
        own_cols = torch.arange(len(target), device=target.device) if own is None else own
        same[torch.arange(len(target), device=target.device), own_cols] = False
        (u_aug_all,), _ = batch_rows(u_aug)
        si = info_nce(u, F.normalize(table[inverse[-len(target_all) :]], dim=-1), same, self.cfg.temperature, own)
        ss = info_nce(u, u_aug_all, same, self.cfg.temperature, own)
        return si + self.cfg.seq_seq_weight * ss

    def augment(self, items: torch.Tensor, lengths: torch.Tensor):
        """The second view (items, lengths, positions of the word-dropped text or None, at): item drop in
        item_drop_prob of the batches, else the word-dropped text at a share item_drop of the positions
        (item drop again where the features have no word-dropped text). at (B, L): where each position's
        prefix ends in the view (its last kept item)."""
        valid = items > 0
        if self.text_aug is None or float(torch.rand(())) < self.cfg.item_drop_prob:
            keep = (torch.rand(items.shape, device=items.device) >= self.cfg.item_drop) & valid
            keep[:, 0] = valid[:, 0]
            return compact(items, keep), keep.sum(1), None, (keep.long().cumsum(1) - 1).clamp_min(0)
        at = torch.arange(items.shape[1], device=items.device).expand_as(items)
        return items, lengths, (torch.rand(items.shape, device=items.device) < self.cfg.item_drop) & valid, at


class MoEAdaptor(nn.Module):
    """sum_e g_e(x) PW_e(dropout(x)) with PW_e(x) = (x - b_e) W_e (eq. 2-3), all experts in one einsum.

    weight (E, D, H), bias (E, D); the gate and noise projections start at zero (uniform gates)."""

    def __init__(self, d_in: int, d_out: int, experts: int, dropout: float, noisy: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(experts, d_in, d_out))
        self.bias = nn.Parameter(torch.zeros(experts, d_in))
        self.gate = nn.Parameter(torch.zeros(d_in, experts))
        self.noise = nn.Parameter(torch.zeros(d_in, experts))
        self.drop = nn.Dropout(dropout)
        self.noisy = noisy

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = x @ self.gate  # (n, E)
        if self.noisy and self.training:
            logits = logits + torch.randn_like(logits) * (F.softplus(x @ self.noise) + 1e-2)
        g = torch.softmax(logits, -1)
        xe = self.drop(x[:, None, :].expand(-1, self.weight.shape[0], -1)) - self.bias  # (n, E, D): a mask per expert
        y = torch.einsum("ned,edh->neh", xe, self.weight)  # every expert's output (n, E, H)
        return (g[:, :, None] * y).sum(1)


# Copied from mmrec_cli.models.sasrec.Block (tests/test_conformance.py checks that the two stay equal)
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


# ----- pure functions ---------------------------------------------------------------------------


def last(h: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The row (B, H) at each sequence's last item of h (B, L, H)."""
    return h[torch.arange(h.shape[0], device=h.device), (lengths - 1).clamp_min(0)]


def info_nce(u: torch.Tensor, pos: torch.Tensor, same: torch.Tensor, tau: float, own: torch.Tensor | None = None) -> torch.Tensor:
    """mean_j -log( exp(<u_j, pos_own(j)>/tau) / sum_k exp(<u_j, pos_k>/tau) ), the k with `same` (B, B_all) left out;
    pos (B_all, H) the whole batch's, in which own (B,) are the rows' positions (None: the diagonal)."""
    logits = (u @ pos.T / tau).masked_fill(same, -math.inf)
    return F.cross_entropy(logits, torch.arange(u.shape[0], device=u.device) if own is None else own)


def compact(items: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Move the kept items of each row to its front, in order; the rest becomes padding (0).

    Deliberate copy of mmrec_cli.models.missrec.compact (one model, one file)."""
    B_, L = items.shape
    slot = torch.where(keep, keep.long().cumsum(1) - 1, L)
    out = items.new_zeros(B_, L + 1).scatter_(1, slot, torch.where(keep, items, 0))
    return out[:, :L]


# ----- training data and fine-tuning after pre-training --------------------------------------------


def train_batches(ds, cfg: Config, train_cfg, epoch: int, stage: str = "finetune"):
    """Fine-tuning: users' windows with a target at every position. Pre-training: every prefix -> its next
    item (RecBole's instances, as the public code). With cfg.bucket, every run of 64 batches is sorted by
    length before it is cut into batches, and the batches are shuffled: less padding, the same examples.
    cfg.packed pre-trains on the fine-tuning windows instead, at most batch_size examples a batch."""
    bucket = 64 if cfg.bucket else 0
    if stage == "pretrain" and cfg.packed:
        return B.window_batches(ds, cfg.max_len, train_cfg.batch_size, train_cfg.seed, epoch, bucket, by_examples=True)
    if stage == "pretrain":
        return B.prefix_batches(ds, cfg.max_len, train_cfg.batch_size, train_cfg.seed, epoch, bucket)
    return B.window_batches(ds, cfg.max_len, train_cfg.batch_size, train_cfg.seed, epoch, bucket)


def after_init(model: Model, log=lambda s: None, loaded: frozenset[str] = frozenset()) -> None:
    """After a pre-trained state is loaded: freeze positions and transformer layers unless cfg.full."""
    if model.cfg.full:
        log("unisrec: training all parameters (full=true)")
        return
    for module in (model.pos_emb, model.layers):
        for p in module.parameters():
            p.requires_grad_(False)
    n = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log(f"unisrec: positions and transformer frozen; training {n:,} values: MoE adaptor, input LayerNorm" + (", item IDs" if model.item_emb is not None else ""))


SPEC = ModelSpec(
    name="unisrec",
    config=Config,
    build=Model,
    train_batches=train_batches,
    modalities=MODALITIES,
    architecture=("hidden", "layers", "heads", "inner", "experts", "max_len"),
    fresh=("item_emb.",),
    after_init=after_init,
)
