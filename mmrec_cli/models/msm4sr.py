"""MSM4SR (MP4SR): multimodal pre-training for sequential recommendation via contrastive learning.

Zhang, Zhou, Zeng, Shen, ACM TORS 2024. Equation numbers below are those of the paper (see
../shared/papers/000_*.txt and 001_*.txt).

Item side, for each modality m in {text, image}:
    x_i^m   a stack of S vectors per item (sentences of the text; images or image-word sentences),
            read from the features artifact as `<m>_stack` (N, S, D) + `<m>_stack_mask` (N, S), or the
            single vector `<m>` (N, D) taken as a stack of one (the example data: CLIP text, CLIP image)
    e_i^m   attention pooling over the stack                      alpha = softmax((x W1 + b1) W2 + b2)  (3)
    z_i^m   mixture of experts  sum_k g_k LayerNorm(Dropout(e W_k)),  g = softmax(e W3)            (4-5)
Sequence side (pre-training):
    sequence random dropout (each sequence loses items with a rate drawn from U(0, seq_dropout); the
    first item stays), complementary sequence mixup (each position swaps its text and image vectors
    with probability p ~ U(0, mixup_max), mixup_max <= 0.5) giving M^t and M^v, one transformer (shared
    by both, with position embeddings) giving h^t and h^v, and the projections of eq. 6:
        m^_t = h^t W_t + b_t,  m~_t = h^v W_t + b_t,  m^_v = h^v W_v + b_v,  m~_v = h^t W_v + b_v.
Pre-training loss (eq. 11):  L = NIP_t + NIP_v + lambda (CMCL_t + CMCL_v), with f(a, b) = exp(cos(a, b) / tau)
    NIP_t  = -mean_j log [f(m^_j, z_j) + f(m~_j, z_j)] / sum_j' [f(m^_j, z_j') + f(m~_j, z_j')]   (7)
             z_j = z^t of sequence j's next item, in-batch negatives
    CMCL_t = -mean_j [l(m^_j, m~_j) + l(m~_j, m^_j)] / 2,                                          (8-9)
             l(a_j, b_j) = log f(a_j, b_j) / [sum_j' f(a_j, b_j') + sum_{j' != j} f(a_j, a_j')]
    (the image terms alike with m^_v, m~_v, z^v). Other sequences of the batch whose next item is the
    same item are no negatives (`mask_same_target`, as in the official code). The paper sums over the
    batch; this implementation averages (the official code does too), which only rescales the loss.
Fine-tuning (eq. 12-13): no sequence dropout and no mixup; item ID embeddings E are added to the
modality features of the input items and of the candidates, and
    y = softmax( sum_m cos(h^m, F^m + E) / tau_ft ),  cross-entropy over all items,
as the official code does (cosine scores divided by a temperature). Deviation from the printed eq. 12,
which has dot products and no temperature: that is `score = dot`, slower to learn on the example data
(README). `modalities = text` / `image`
keeps one term of eq. 12 (MSM4SR-T / MSM4SR-V; the paper pre-trains those on both modalities).

One modality (text-only data such as most public datasets, or features with one of the two): the
model uses what the features have. Pre-training is then NIP on that modality alone, with its one view
(the m~ term of eq. 7 and the mixup need the other modality's view, CMCL needs two views of an item:
both are off), and fine-tuning has the one term of eq. 12. This is not in the paper.

Training instances (`instances`): `windows` (default) makes every position of a user's window one
(prefix -> next item) instance, so a batch of B windows gives the in-batch negatives of all its
positions, the same user's other positions among them; `prefixes` makes each prefix its own row,
shuffled across users, as RecBole (the official code's base) does: a batch's negatives then come
from other users' sequences, and sequence dropout moves the one target to the new last position.

Ablations (paper Table: w/o NIP, w/o CMCL, w/o mixup, w/o pre-train, E2E) are Config fields:
`nip=false`, `cmcl=false`, `mixup=false`, no `--init`, `e2e=true` (fine-tuning loss + pre-training loss).

What the image modality is: the paper turns each image into its top-N CLIP vocabulary words
(`image_words`, 15) encoded by the text encoder; where only image features exist (the example data:
CLIP ViT-B/32 image vectors) those are used. `image_source` records which one a model was trained
on (the features artifact's `encoders`, stored in the model's metadata, name the producer too).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmrec_cli.data import batches as B
from mmrec_cli.errors import bad_input
from mmrec_cli.models import MAX_LEN, ModelSpec
from mmrec_cli.training.distributed import batch_rows

MODALITIES: tuple[str, ...] = ("text", "image")
IGNORE = -100


@dataclass
class Config:
    max_len: int = MAX_LEN
    hidden: int = 64  # official code: hidden 64, 2 layers, 2 heads, inner 256
    layers: int = 2
    heads: int = 2
    inner: int = 256
    dropout: float = 0.2  # hidden dropout of the sequence encoder (official: 0.2)
    attn_dropout: float = 0.2
    adaptor_dropout: float = 0.2  # the Dropout inside each expert, eq. 4 (official: 0.2)
    experts: int = 8  # O of eq. 5
    pool_hidden: int = 64  # width of W1 in the attention pooling, eq. 3
    pool_relu: bool = False  # eq. 3 is linear; the official code puts a ReLU between W1 and W2
    temperature: float = 0.07  # tau of f(a, b) = exp(cos(a, b) / tau) in eq. 7-9
    finetune_temperature: float = 0.07  # tau of the fine-tuning logits (eq. 12)
    score: str = "cosine"  # fine-tuning logits: cosine / finetune_temperature (official code) | dot (eq. 12 as printed)
    lam: float = 0.01  # lambda of eq. 11
    nip: bool = True  # modality-specific next-item prediction (eq. 7); false = "w/o NIP"
    cmcl: bool = True  # cross-modality contrastive learning (eq. 8-9); false = "w/o CMCL"
    mixup: bool = True  # complementary sequence mixup; false = "w/o Mixup"
    mixup_max: float = 0.5  # swap probability p ~ U(0, mixup_max), the paper's p <= 0.5
    seq_dropout: float = 0.2  # items of a sequence dropped with a rate ~ U(0, seq_dropout) (official: 0.2)
    project: bool = True  # the projections of eq. 6 (false: the transformer outputs are used directly)
    mask_same_target: bool = True  # sequences with the same next item are no in-batch negatives
    modalities: tuple[str, ...] = ()  # terms of eq. 12: text,image | text (-T) | image (-V); empty: those the features have
    id_embeddings: bool = True  # add item ID embeddings in fine-tuning (eq. 12)
    e2e: bool = False  # "E2E": the fine-tuning loss plus the pre-training loss, in one stage
    image_source: str = "clip-image"  # what `image` holds: clip-image (image vectors) | clip-words (top-N words, text-encoded)
    image_words: int = 15  # N of the paper's top-N image words (for clip-words features)
    init_std: float = 0.02
    instances: str = "windows"  # windows: a loss at every position of a user's window | prefixes: each prefix its own instance (RecBole, the official code)
    bucket: int = 8  # training batches: windows sorted by length within groups of bucket x batch_size (less padding); 1 = plain


def train_batches(ds, cfg: Config, train_cfg, epoch: int, stage: str = "finetune"):
    """Training batches of `cfg.instances`, length-bucketed (data/batches.py `bucketed`): each instance
    once per epoch, in an order fixed by (seed, epoch), so a resumed run repeats it."""
    bs, seed = train_cfg.batch_size, train_cfg.seed
    if cfg.instances == "prefixes":
        for batch in B.prefix_batches(ds, cfg.max_len, bs, seed, epoch, cfg.bucket):
            yield batch | {"targets": last_targets(batch)}
    elif cfg.bucket <= 1:
        yield from B.train_batches(ds, cfg.max_len, bs, seed, epoch)
    else:
        yield from B.window_batches(ds, cfg.max_len, bs, seed, epoch, cfg.bucket)


class Model(nn.Module):
    def __init__(self, cfg: Config, num_items: int, features: dict | None = None):
        super().__init__()
        self.cfg = cfg
        self.num_items = num_items
        _check_config(cfg)
        if not features:
            raise bad_input("msm4sr reads item features (text, image); pass --features FEATS.safetensors")
        present = [m for m in MODALITIES if m in features or f"{m}_stack" in features]
        missing = [m for m in cfg.modalities if m not in present]
        if missing or not present:
            raise bad_input(f"msm4sr: the features lack modality '{(missing or MODALITIES)[0]}' (have: {', '.join(present) or 'none'}); set model.modalities to the ones present")
        self.present = tuple(present)
        self.mods = tuple(cfg.modalities) or self.present  # the terms of eq. 12
        self.encoders = nn.ModuleDict()
        for m in present:
            stack, mask = _stack(features, m, num_items)
            self.register_buffer(f"{m}_stack", stack, persistent=False)
            self.register_buffer(f"{m}_stack_mask", mask, persistent=False)
            self.encoders[m] = ModalityEncoder(stack.shape[-1], cfg)
        H = cfg.hidden
        self.pos_emb = nn.Embedding(cfg.max_len, H)
        self.item_emb = nn.Embedding(num_items + 1, H, padding_idx=0)  # fine-tuning only; row 0 = padding
        self.norm = nn.LayerNorm(H, eps=1e-12)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        self.proj = nn.ModuleDict({m: nn.Linear(H, H) for m in MODALITIES}) if cfg.project else None  # W_t, W_v (eq. 6)
        self.apply(self._init)
        for enc in self.encoders.values():
            nn.init.zeros_(enc.gate.weight)  # equal expert weights at the start (as the official code)

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

    # ---- item side (eq. 3-5) -------------------------------------------------------------
    def item_repr(self, m: str, idx: torch.Tensor) -> torch.Tensor:
        """z^m (n, H) of the 0-based items `idx` (n,)."""
        stack, mask = getattr(self, f"{m}_stack"), getattr(self, f"{m}_stack_mask")
        return self.encoders[m](stack[idx], mask[idx])

    def _tables(self, mods, items: torch.Tensor, extra: torch.Tensor | None = None):
        """z^m for the items of a padded (B, L) batch (0 on padding) and of the 0-based `extra` items."""
        need = items[items > 0] - 1
        if extra is not None:
            need = torch.cat([need, extra])
        uniq, inv = torch.unique(need, return_inverse=True)
        n_seq = int((items > 0).sum())
        out = {}
        for m in mods:
            z = self.item_repr(m, uniq)  # (n, H)
            seq = z.new_zeros(*items.shape, z.shape[-1])
            seq[items > 0] = z[inv[:n_seq]]
            out[m] = (seq, z[inv[n_seq:]])
        return out

    # ---- sequence side -----------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Transformer over right-padded input vectors (B, L, H) -> hidden state at each position."""
        L = x.shape[1]
        assert L <= self.cfg.max_len, f"sequence length {L} > max_len {self.cfg.max_len}"
        x = self.drop(self.norm(x + self.pos_emb.weight[:L]))
        for block in self.blocks:
            x = block(x)
        return x

    def _finetune_inputs(self, items: torch.Tensor, full: bool) -> tuple[dict, dict]:
        """Per active modality: the input vectors (B, L, H) and the candidate table (F^m + E)."""
        mods = self.mods
        if full:
            idx = torch.arange(self.num_items, device=items.device)
            tables = {m: self.item_repr(m, idx) for m in mods}
            if self.cfg.id_embeddings:
                tables = {m: t + self.item_emb.weight[1:] for m, t in tables.items()}
            pad = {m: torch.cat([t.new_zeros(1, t.shape[1]), t]) for m, t in tables.items()}
            return {m: pad[m][items] for m in mods}, tables
        seqs = self._tables(mods, items)
        ids = self.item_emb(items) if self.cfg.id_embeddings else 0.0
        return {m: seqs[m][0] + ids for m in mods}, {}

    def loss(self, batch: dict) -> torch.Tensor:
        """Fine-tuning loss (eq. 12-13): cross-entropy over all items at every real position."""
        items, targets = batch["items"], batch["targets"]
        keep = targets >= 0
        inputs, tables = self._finetune_inputs(items, full=True)
        logits = 0.0
        for m in self.mods:
            logits = logits + self._logits(self.encode(inputs[m])[keep], tables[m])  # (P, N)
        loss = F.cross_entropy(logits, targets[keep])
        if self.cfg.e2e:
            loss = loss + self.pretrain_loss(batch)
        return loss

    def users(self, batch: dict) -> dict:
        """h^m (B, H) at the last real position, for each active modality (no ID lookups beyond the batch)."""
        inputs, _ = self._finetune_inputs(batch["items"], full=False)
        last = (batch["lengths"] - 1).clamp(min=0)
        rows = torch.arange(batch["items"].shape[0], device=batch["items"].device)
        return {m: self.encode(x)[rows, last] for m, x in inputs.items()}

    def score_users(self, users: dict, items: torch.Tensor) -> torch.Tensor:
        """The logits of eq. 12 for the 0-based `items` (n,): (B, n)."""
        out = 0.0
        for m, h in users.items():
            cand = self.item_repr(m, items)
            if self.cfg.id_embeddings:
                cand = cand + self.item_emb.weight[items + 1]
            out = out + self._logits(h, cand)
        return out

    def _logits(self, h: torch.Tensor, cand: torch.Tensor) -> torch.Tensor:
        """One modality's term of eq. 12: (P, H) x (n, H) -> (P, n)."""
        if self.cfg.score == "dot":
            return h @ cand.T
        return F.normalize(h, dim=-1) @ F.normalize(cand, dim=-1).T / self.cfg.finetune_temperature

    # ---- pre-training (eq. 6-11) ---------------------------------------------------------
    def pretrain_loss(self, batch: dict) -> torch.Tensor:
        cfg = self.cfg
        items, targets = batch["items"], batch["targets"]
        if self.training and cfg.seq_dropout > 0:
            drop = prefix_random_dropout if cfg.instances == "prefixes" else seq_random_dropout
            items, targets = drop(items, targets, cfg.seq_dropout)
        keep = targets >= 0
        tgt = targets[keep]  # (P,) next item of each instance
        batch["num_targets"] = len(tgt)  # what the mean is over, for --nproc's weights (`count_targets`)
        if len(self.present) == 1:
            return self._single_modality_nip(items, keep, tgt)
        z = self._tables(MODALITIES, items, tgt)
        zt_seq, zt_pos = z["text"]
        zv_seq, zv_pos = z["image"]
        if self.training and cfg.mixup and cfg.mixup_max > 0:
            mt, mv = complementary_mixup(zt_seq, zv_seq, items > 0, cfg.mixup_max)
        else:
            mt, mv = zt_seq, zv_seq
        ht = self.encode(mt)[keep]  # (P, H)
        hv = self.encode(mv)[keep]
        if self.proj is not None:
            hat_t, til_t = self.proj["text"](ht), self.proj["text"](hv)
            hat_v, til_v = self.proj["image"](hv), self.proj["image"](ht)
        else:
            hat_t, til_t, hat_v, til_v = ht, hv, hv, ht
        # the in-batch negatives are the whole global batch's, whatever share of it this process has
        views = (hat_t, til_t, hat_v, til_v) if cfg.cmcl else ()
        (tgt_all, zt_all, zv_all, *views_all), own = batch_rows(tgt, zt_pos, zv_pos, *views)  # (P_all, ...), (P,)
        same = same_target(tgt, tgt_all, own) if cfg.mask_same_target else None
        tau = cfg.temperature
        loss = ht.new_zeros(())
        if cfg.nip:
            loss = loss + nip_loss(hat_t, til_t, zt_all, tau, same, own) + nip_loss(hat_v, til_v, zv_all, tau, same, own)
        if cfg.cmcl:
            t_all, v_all = views_all[:2], views_all[2:]
            loss = loss + cfg.lam * (cmcl_loss(hat_t, til_t, tau, same, own, t_all) + cmcl_loss(hat_v, til_v, tau, same, own, v_all))
        return loss

    def _single_modality_nip(self, items: torch.Tensor, keep: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        """Eq. 7 with the one view a single modality has: InfoNCE of m^ against the next item's z."""
        (m,) = self.present
        seq, pos = self._tables((m,), items, tgt)[m]
        h = self.encode(seq)[keep]  # (P, H)
        hat = self.proj[m](h) if self.proj is not None else h
        (tgt_all, pos_all), own = batch_rows(tgt, pos)
        same = same_target(tgt, tgt_all, own) if self.cfg.mask_same_target else None
        return nip_loss(hat, None, pos_all, self.cfg.temperature, same, own)


class ModalityEncoder(nn.Module):
    """Attention pooling over an item's stack (eq. 3), then a mixture of experts (eq. 4-5)."""

    def __init__(self, dim: int, cfg: Config):
        super().__init__()
        self.w1 = nn.Linear(dim, cfg.pool_hidden)
        self.w2 = nn.Linear(cfg.pool_hidden, 1)
        self.relu = cfg.pool_relu
        self.O, self.H = cfg.experts, cfg.hidden
        self.experts = nn.Linear(dim, cfg.experts * cfg.hidden, bias=False)  # W_1..W_O side by side
        self.expert_drop = nn.Dropout(cfg.adaptor_dropout)
        self.ln_weight = nn.Parameter(torch.ones(cfg.experts, cfg.hidden))  # one LayerNorm per expert
        self.ln_bias = nn.Parameter(torch.zeros(cfg.experts, cfg.hidden))
        self.gate = nn.Linear(dim, cfg.experts, bias=False)  # W_3

    def pool(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """e (n, D) from stacks x (n, S, D) with mask (n, S); an item with no row gets zeros."""
        a = self.w1(x)
        if self.relu:
            a = F.relu(a)
        a = self.w2(a).squeeze(-1).masked_fill(~mask, float("-inf"))  # (n, S)
        alpha = torch.softmax(a, dim=-1).nan_to_num(0.0)
        return (alpha.unsqueeze(-1) * x).sum(1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        e = self.pool(x, mask)
        y = self.expert_drop(self.experts(e).view(-1, self.O, self.H))  # (n, O, H)
        y = F.layer_norm(y, (self.H,), eps=1e-12) * self.ln_weight + self.ln_bias  # E_k(e)
        g = torch.softmax(self.gate(e), dim=-1)  # (n, O)
        return (g.unsqueeze(-1) * y).sum(1)  # z (n, H)


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


# ---- the pieces of pre-training, as plain functions (tested one by one) ---------------------


def seq_random_dropout(items: torch.Tensor, targets: torch.Tensor, max_rate: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop items of each right-padded sequence with a rate ~ U(0, max_rate), keeping the first item.

    The kept positions are moved left; each keeps its own target (the item that followed it in the
    full sequence), so every prediction is "this sub-sequence -> the true next item".
    """
    real = items > 0
    rate = torch.rand(items.shape[0], 1, device=items.device) * max_rate
    drop = (torch.rand(items.shape, device=items.device) < rate) & real
    drop[:, 0] = False
    kept = real & ~drop
    order = torch.argsort((~kept).to(torch.int8), dim=1, stable=True)
    kept_sorted = kept.gather(1, order)
    new_items = items.gather(1, order).masked_fill(~kept_sorted, 0)
    new_targets = targets.gather(1, order).masked_fill(~kept_sorted, IGNORE)
    return new_items, new_targets


def prefix_random_dropout(items: torch.Tensor, targets: torch.Tensor, max_rate: float) -> tuple[torch.Tensor, torch.Tensor]:
    """`seq_random_dropout` for prefix instances (one target, at the last real position): the prefix
    loses items and its target moves to the new last position, "this sub-sequence -> the true next item"."""
    target = targets.max(dim=1).values  # (B,) the one target of each row (the rest is IGNORE)
    new_items, _ = seq_random_dropout(items, targets, max_rate)
    new_targets = torch.full_like(targets, IGNORE)
    rows = torch.arange(items.shape[0], device=items.device)
    new_targets[rows, (new_items > 0).sum(1) - 1] = target
    return new_items, new_targets


def last_targets(batch: dict) -> torch.Tensor:
    """(B, L) targets of a prefix batch: its `target` at the last real position, IGNORE elsewhere."""
    targets = torch.full_like(batch["items"], IGNORE)
    targets[torch.arange(len(targets)), batch["lengths"] - 1] = batch["target"]
    return targets


def complementary_mixup(zt: torch.Tensor, zv: torch.Tensor, real: torch.Tensor, max_p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """M^t, M^v: each real position swaps its text and image vectors with probability p ~ U(0, max_p)."""
    p = torch.rand(zt.shape[0], 1, device=zt.device) * max_p
    swap = ((torch.rand(real.shape, device=zt.device) < p) & real).unsqueeze(-1)
    return torch.where(swap, zv, zt), torch.where(swap, zt, zv)


def same_target(tgt: torch.Tensor, every: torch.Tensor | None = None, own: torch.Tensor | None = None) -> torch.Tensor:
    """(P, P_all) True where two different instances share the next item (no negatives of each other):
    the instances' targets `tgt` (P,) against the whole batch's `every` (P_all,), in which `own` (P,) are
    their positions (several processes, see `batch_rows`; None: the batch is the instances)."""
    if own is None:
        same = tgt[:, None] == tgt[None, :]
        return same & ~torch.eye(len(tgt), dtype=torch.bool, device=tgt.device)
    same = tgt[:, None] == every[None, :]
    same[torch.arange(len(tgt), device=tgt.device), own] = False
    return same


def own_entries(x: torch.Tensor, own: torch.Tensor | None) -> torch.Tensor:
    """(P,) each row's entry for its own instance in (P, P_all) scores: the diagonal, or column own[i]."""
    return x.diagonal() if own is None else x.gather(1, own[:, None])[:, 0]


def nip_loss(hat: torch.Tensor, til: torch.Tensor | None, z: torch.Tensor, tau: float, same: torch.Tensor | None = None, own: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. 7, averaged over the batch: hat, til (P, H) sequence projections, z (P_all, H) the whole batch's
    next-item z^m, own (P,) the position of each instance's own next item in z (None: z is (P, H), row i).
    Without `til` (one modality): the InfoNCE of hat against z, in-batch negatives."""
    if til is None:
        hat, z = F.normalize(hat, dim=-1), F.normalize(z, dim=-1)
        a = hat @ z.T / tau  # (P, P_all)
        if same is not None:
            a = a.masked_fill(same, float("-inf"))
        return F.cross_entropy(a, torch.arange(len(a), device=a.device) if own is None else own)
    hat, til, z = (F.normalize(t, dim=-1) for t in (hat, til, z))
    a, b = hat @ z.T / tau, til @ z.T / tau  # (P, P_all)
    if same is not None:
        a, b = a.masked_fill(same, float("-inf")), b.masked_fill(same, float("-inf"))
    pos = torch.logsumexp(torch.stack([own_entries(a, own), own_entries(b, own)]), dim=0)
    return (torch.logsumexp(torch.cat([a, b], dim=1), dim=1) - pos).mean()


def cmcl_loss(hat: torch.Tensor, til: torch.Tensor, tau: float, same: torch.Tensor | None = None, own: torch.Tensor | None = None, every: tuple | None = None) -> torch.Tensor:
    """Eq. 8-9, averaged over the batch: the symmetric cross-modal contrast of m^ and m~ (P, H) against the
    whole batch's `every` = (m^, m~) (P_all, H each), in which `own` (P,) are the rows' positions (None: the
    batch is these rows)."""
    hat, til = F.normalize(hat, dim=-1), F.normalize(til, dim=-1)
    if own is None:
        hat_all, til_all = hat, til
        block = torch.eye(len(hat), dtype=torch.bool, device=hat.device)
    else:
        hat_all, til_all = (F.normalize(t, dim=-1) for t in every)
        block = F.one_hot(own, len(hat_all)).bool()
    block = block if same is None else block | same

    def one_side(x, y_all, x_all):
        cross = x @ y_all.T / tau  # (P, P_all)
        inner = (x @ x_all.T / tau).masked_fill(block, float("-inf"))
        if same is not None:
            cross = cross.masked_fill(same, float("-inf"))
        return own_entries(cross, own) - torch.logsumexp(torch.cat([cross, inner], dim=1), dim=1)

    return -(one_side(hat, til_all, hat_all) + one_side(til, hat_all, til_all)).mean() / 2


def _stack(features: dict, m: str, num_items: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, S, D) float stack and (N, S) bool mask of modality m, from `<m>_stack` or the vector `<m>`."""
    if f"{m}_stack" in features:
        stack = features[f"{m}_stack"].float()
        mask = features.get(f"{m}_stack_mask")
        mask = torch.ones(stack.shape[:2], dtype=torch.bool) if mask is None else mask.bool()
    else:
        stack = features[m].float().unsqueeze(1)
        mask = torch.ones(stack.shape[:2], dtype=torch.bool)
    if f"{m}_mask" in features:
        mask = mask & features[f"{m}_mask"].bool().view(-1, 1)
    if stack.dim() != 3 or stack.shape[0] != num_items or mask.shape != stack.shape[:2]:
        raise bad_input(f"msm4sr: feature '{m}' has shape {tuple(stack.shape)}, mask {tuple(mask.shape)}; expected ({num_items}, S, D) and ({num_items}, S)")
    return stack.contiguous(), mask.contiguous()


def _check_config(cfg: Config) -> None:
    if any(m not in MODALITIES for m in cfg.modalities) or len(set(cfg.modalities)) != len(cfg.modalities):
        raise bad_input(f"model.modalities={','.join(cfg.modalities)}: choose text,image (MSM4SR), text (MSM4SR-T) or image (MSM4SR-V)")
    if not 0 <= cfg.mixup_max <= 0.5:
        raise bad_input(f"model.mixup_max={cfg.mixup_max}: the paper's mixup probability is at most 0.5")
    if cfg.instances not in ("windows", "prefixes"):
        raise bad_input(f"model.instances={cfg.instances}: choose windows or prefixes")
    if not 0 <= cfg.seq_dropout < 1:
        raise bad_input(f"model.seq_dropout={cfg.seq_dropout}: must be in [0, 1)")
    if cfg.hidden % cfg.heads:
        raise bad_input(f"model.hidden={cfg.hidden} is not divisible by model.heads={cfg.heads}")
    if not (cfg.nip or cfg.cmcl):
        raise bad_input("model.nip and model.cmcl are both off: pre-training would have no loss")
    if cfg.score not in ("cosine", "dot"):
        raise bad_input(f"model.score={cfg.score}: choose cosine or dot")
    if cfg.temperature <= 0 or cfg.finetune_temperature <= 0:
        raise bad_input("model.temperature and model.finetune_temperature must be positive")


SPEC = ModelSpec(
    name="msm4sr",
    config=Config,
    build=Model,
    train_batches=train_batches,
    modalities=MODALITIES,
    architecture=("max_len", "hidden", "layers", "heads", "inner", "experts", "pool_hidden", "project"),
    fresh=("item_emb.",),
    train_defaults={"metric": "recall@20", "patience": 20, "clip_grad": 5.0},  # the official code's model selection
)
