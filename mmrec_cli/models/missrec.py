"""MISSRec: multimodal interest-aware sequence representation, pre-training and transfer (Wang et al., ACM MM 2023).

Items are represented by their features only (text and image, through one adapter per modality;
linear as the public code, or a mixture of linear experts), optionally plus an ID embedding
(transductive). A user's sequence becomes two token sequences:

    interests  the clusters of the sequence's item tokens (one token per item and modality), each the
               mean of its member tokens; fed to K_e transformer encoder layers (no positions) -> xi
    queries    per item: sum of its modality tokens + position (+ ID), LayerNorm, dropout; fed to K_d
               decoder layers that attend over the encoded interests
    user       u = the decoder output at the last item, L2-normalised

Interests come from one of (Config.interests):
    "kmeans"   the public code: k-means over all item tokens of the catalogue in the adapter space,
               re-clustered before every epoch; a sequence's interests = its distinct clusters,
               embedded by the cluster centroids of that epoch
    "dpc-knn"  the paper: DPC-KNN over the sequence's own tokens, on the fly in every forward
    PATH       an `mmrec cluster` artifact: fixed assignments (a catalogue table from k-means, or
               per-user DPC-KNN centres, to which every history token goes by nearest centre)

Candidates are fused per user (dynamic fusion): with s_m = <u, x_m / |x_m|> for modality m,
score = sum_m s_m softmax_m(alpha * s_m), between mean (alpha = 0, the start) and max pooling;
with IDs, score = (<u, z / |z|> + 2 * fused) / 3 as the public code. Logits are score / temperature.

Losses: fine-tuning = full-softmax cross-entropy + gamma * R; pre-training = sequence-item InfoNCE
(in-batch) + lambda * sequence-sequence InfoNCE between the sequence and an augmented view (items
dropped, or as the public code the word-dropped text TEXT_aug of `extract --word-drop` at some positions;
feature dimensions dropped where the features have no TEXT_aug) + gamma * R,
with R = ||mean_m xi_m||^2 = (1/M^2) sum_{m,m'} <xi_m, xi_m'> per sequence (the orthogonal
regulariser). Training examples are every prefix of a user's train sequence -> its next item
(`train_batches`): the decoder is bidirectional and the interests see the whole input, as in the
public code, so one target per example.

Training memory: the largest pre-training batch of the example data (688 prefixes of up to 33 items,
up to 57 interests) kept 3.4 GB of activations for its backward pass, most in the attention blocks of
its two views. In training, the queries and each attention and feed-forward block of the encoder and
the decoder keep none: each block runs again in the backward pass from its input, under the random
state of its first run (`recomputed`), so the dropout masks, the values and the gradients are the same
bits. The first view of a pre-training batch also runs again as a whole, its blocks' inputs included
(the backward pass goes through the second view first). That step's memory falls from 3.6 GB to 0.8 GB,
for about 1.5x the computation of a pre-training epoch and 1.2x of a fine-tuning one
(`bench/missrec_memory.py`). Where memory allows, `model.recompute = false` keeps the activations instead:
the same values and gradients, bit for bit, without the extra computation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmrec_cli.data import batches as B
from mmrec_cli.errors import bad_input, mismatch
from mmrec_cli.models import MAX_LEN, ModelSpec
from mmrec_cli.models import missrec_interests as CL
from mmrec_cli.training.distributed import batch_rows

MODALITIES: tuple[str, ...] = ("text", "image")


@dataclass
class Config:
    max_len: int = MAX_LEN
    hidden: int = 300
    inner: int = 256
    heads: int = 4
    enc_layers: int = 1  # K_e
    dec_layers: int = 1  # K_d
    dropout: float = 0.5
    temperature: float = 0.07
    seq_seq_weight: float = 1e-3  # lambda
    orth_weight: float = 1e-4  # gamma
    interests: str = "kmeans"  # kmeans | dpc-knn | path of an `mmrec cluster` artifact
    interest_ratio: float = 0.5  # clusters = ceil(ratio * tokens): of the catalogue (kmeans) or of each sequence (dpc-knn)
    knn_ratio: float = 0.1  # DPC-KNN neighbours = ceil(ratio * tokens of the sequence)
    kmeans_iters: int = 10
    adapter: Literal["linear", "moe"] = "linear"
    experts: int = 8
    fusion: Literal["dynamic", "mean"] = "dynamic"
    ids: bool = True  # ID embeddings (transductive); false = features only (inductive)
    full: bool = False  # with a pre-trained init: train everything instead of freezing the transformer
    item_drop: float = 0.2  # pre-training augmentation: drop each item (but the first) with this probability ...
    item_drop_prob: float = 0.9  # ... in this share of batches; the others take the word-dropped text (TEXT_aug) at this share of positions ...
    feature_drop: float = 0.2  # ... or, without TEXT_aug features, feature drop: at this share of positions, zero this share of feature dimensions
    init_std: float = 0.02
    bucket: bool = True  # batches of similar lengths (less padding); their order stays shuffled
    recompute: bool = True  # training memory: blocks run again in the backward pass (see "Training memory"); false keeps their activations: faster, the same bits


class Model(nn.Module):
    def __init__(self, cfg: Config, num_items: int, features: dict | None = None):
        super().__init__()
        self.cfg = cfg
        self.num_items = num_items
        self.mods = [m for m in MODALITIES if features and m in features]
        if not self.mods:
            raise bad_input(f"missrec reads item features {' and '.join(MODALITIES)}; the features artifact has neither")
        for m in self.mods:
            f = features[m].float()
            if f.shape[0] != num_items:
                raise mismatch(f"features '{m}' have {f.shape[0]} rows for {num_items} items")
            self.register_buffer(f"feat_{m}", f, persistent=False)
        # the word-dropped text (`extract --word-drop`): the second pre-training view, as the public code's .feat2CLS
        aug = features.get("text_aug") if "text" in self.mods else None
        self.register_buffer("feat_text_aug", None if aug is None else aug.float(), persistent=False)
        H = cfg.hidden
        self.adapters = nn.ModuleDict({m: _adapter(cfg, features[m].shape[1], H) for m in self.mods})
        self.pos_emb = nn.Embedding(cfg.max_len, H)
        self.item_emb = nn.Embedding(num_items + 1, H, padding_idx=0) if cfg.ids else None
        self.norm = nn.LayerNorm(H, eps=1e-12)
        self.drop = nn.Dropout(cfg.dropout)
        common = dict(d_model=H, nhead=cfg.heads, dim_feedforward=cfg.inner, dropout=cfg.dropout, activation="gelu", layer_norm_eps=1e-12, batch_first=True)
        self.encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(**common), cfg.enc_layers, norm=nn.LayerNorm(H, eps=1e-12), enable_nested_tensor=False)
        self.decoder = nn.TransformerDecoder(nn.TransformerDecoderLayer(**common), cfg.dec_layers, norm=nn.LayerNorm(H, eps=1e-12))
        self.fusion = nn.Parameter(torch.zeros(()))  # alpha
        self._init_interests(cfg, num_items)
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

    # ----- interests -------------------------------------------------------------------------

    def _init_interests(self, cfg: Config, num_items: int) -> None:
        """Buffers of the interest source: a catalogue table (kmeans, file), per-user centres (file), or none."""
        M = len(self.mods)
        self.mode = cfg.interests
        self._epoch = None
        if cfg.interests == "kmeans":
            C = max(1, math.ceil(cfg.interest_ratio * num_items * M))
            self._table_buffers(torch.zeros(num_items, M, dtype=torch.long), C)
        elif cfg.interests != "dpc-knn":
            tensors, meta = _read_interests(cfg.interests, self.mods)
            self.mode = meta["scope"]  # "catalogue" | "users"
            if self.mode == "catalogue":
                if tensors["table"].shape[0] != num_items:
                    raise mismatch(f"{cfg.interests}: interests of {tensors['table'].shape[0]} items, the dataset has {num_items}; cluster this dataset")
                self._table_buffers(tensors["table"].long(), int(meta["clusters"]))
            else:
                off, cen = tensors["offsets"].long(), tensors["centres"].long()
                sizes = off[1:] - off[:-1]
                table = torch.full((len(sizes), max(1, int(sizes.max()))), -1, dtype=torch.long)
                cols = torch.arange(len(cen)) - torch.repeat_interleave(off[:-1], sizes)
                table[torch.repeat_interleave(torch.arange(len(sizes)), sizes), cols] = cen
                self.register_buffer("user_centres", table)
                self.register_buffer("space", self.space_tokens(), persistent=False)

    def _table_buffers(self, table: torch.Tensor, clusters: int) -> None:
        self.register_buffer("interest_table", table)  # (N, M) cluster of each item token
        self.register_buffer("interest_centroids", torch.zeros(clusters, self.cfg.hidden))
        self.register_buffer("interest_epoch", torch.tensor(-1))  # epoch of the last refresh; -1 = never

    def all_tokens(self) -> torch.Tensor:
        """Adapted tokens of every item and modality (N, M, H)."""
        return torch.stack([self.adapters[m](getattr(self, f"feat_{m}")) for m in self.mods], 1)

    @torch.no_grad()
    def refresh_interests(self, epoch: int) -> None:
        """Catalogue modes: re-cluster (kmeans) and recompute the centroids in the current adapter space."""
        tokens = self.all_tokens().flatten(0, 1)  # (N*M, H), token id = item * M + m
        C = self.interest_centroids.shape[0]
        if self.mode == "kmeans":
            assign, _ = CL.kmeans(tokens, C, self.cfg.kmeans_iters, seed=epoch)
            self.interest_table.copy_(assign.view_as(self.interest_table))
        flat = self.interest_table.flatten()
        sums = tokens.new_zeros(C, tokens.shape[1]).index_add_(0, flat, tokens)
        cnt = torch.bincount(flat, minlength=C).clamp_min(1).to(tokens.dtype)
        self.interest_centroids.copy_(sums / cnt[:, None])
        self.interest_epoch.fill_(epoch)

    def _sync(self, batch: dict) -> None:
        """Before every epoch's first batch (and once before scoring): refresh catalogue interests."""
        if self.mode not in ("kmeans", "catalogue"):
            return
        epoch = batch.get("epoch")
        if epoch is not None and epoch != self._epoch:
            self.refresh_interests(int(epoch))
            self._epoch = epoch
        elif int(self.interest_epoch) < 0:
            self.refresh_interests(0)

    def interest_tokens(self, items: torch.Tensor, tokens: torch.Tensor, valid: torch.Tensor, users: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Interest embeddings (B, K, H) and mask (B, K) of sequences `items` (B, L) with adapted `tokens` (B, L, M, H)."""
        B, L, M, H = tokens.shape
        tok = tokens.reshape(B, L * M, H)
        tmask = valid[:, :, None].expand(B, L, M).reshape(B, L * M)
        if self.mode in ("kmeans", "catalogue"):
            ids = self.interest_table[(items - 1).clamp_min(0)].reshape(B, L * M)
            uniq, mask = CL.unique_rows(ids, tmask)
            return self.interest_centroids[uniq], mask
        n = tmask.sum(1)
        if self.mode == "dpc-knn":
            with torch.no_grad():
                assign, _, mask = CL.dpc_knn(tok.detach(), tmask, CL.counts(self.cfg.interest_ratio, n), CL.counts(self.cfg.knn_ratio, n))
            emb, _ = CL.cluster_means(tok, assign, tmask, mask.shape[1])
            return emb, mask
        # per-user centres of an `mmrec cluster` artifact: nearest centre in the clustering space
        if users is None:
            raise bad_input("per-user interests need the batch's users")
        centres = self.user_centres[users]  # (B, K) token ids, -1 = none
        cmask = centres >= 0
        space = self.space
        with torch.no_grad():
            x = space[((items - 1).clamp_min(0)[:, :, None] * M + torch.arange(M, device=items.device)).reshape(B, L * M)]
            assign = CL.nearest(x, tmask, space[centres.clamp_min(0)], cmask)
        emb, cnt = CL.cluster_means(tok, assign, tmask, centres.shape[1])
        return emb, cnt > 0

    def space_tokens(self) -> torch.Tensor:
        """The clustering space of `mmrec cluster`: L2-normalised raw features, token id = item * M + m."""
        return CL.space_tokens({m: getattr(self, f"feat_{m}") for m in self.mods}, self.mods)

    # ----- sequences and candidates -----------------------------------------------------------

    def encode(self, items: torch.Tensor, lengths: torch.Tensor, users: torch.Tensor | None = None, feature_mask: torch.Tensor | None = None, use_ids: bool = True, aug_text: torch.Tensor | None = None):
        """(u (B, H) normalised, encoded interests xi (B, K, H), interest mask (B, K)) of item sequences (B, L);
        `use_ids=False` leaves the ID embeddings out of the queries (pre-training: IDs do not transfer);
        `feature_mask` (B, L, >= D) zeroes feature dimensions where False (or 0.0); `aug_text` (B, L) bool
        takes the word-dropped text (TEXT_aug) instead of the text where True.

        In training (train mode, gradients on) the sequence goes through the blocks one by one
        (`_encode_blocks`), none of which keeps its activations for the backward pass: see the module's
        "Training memory". Otherwise (evaluation, scoring) through the nn.Transformer stacks.
        """
        if self.training and torch.is_grad_enabled():
            return self._encode_blocks(items, lengths, users, feature_mask, use_ids, aug_text)
        valid = items > 0
        q, tokens = self.queries(items, feature_mask, use_ids, aug_text)
        interests, imask = self.interest_tokens(items, tokens, valid, users)
        # a stack of 0 layers is its norm alone (nn.Transformer* stacks index their first layer)
        xi = self.encoder(interests, src_key_padding_mask=~imask) if len(self.encoder.layers) else self.encoder.norm(interests)
        out = self.decoder(q, xi, tgt_key_padding_mask=~valid, memory_key_padding_mask=~imask) if len(self.decoder.layers) else self.decoder.norm(q)
        return F.normalize(last(out, lengths), dim=-1), xi, imask

    def queries(self, items: torch.Tensor, feature_mask: torch.Tensor | None, use_ids: bool, aug_text: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The decoder's queries (B, L, H) (per item: sum of its modality tokens + position (+ ID), LayerNorm,
        dropout) and the adapted item tokens (B, L, M, H) of sequences `items` (B, L)."""
        valid = items > 0
        idx = (items - 1).clamp_min(0)
        tokens = []
        for m in self.mods:
            f = getattr(self, f"feat_{m}")[idx]  # (B, L, D)
            if m == "text" and aug_text is not None:
                f = torch.where(aug_text[..., None], self.feat_text_aug[idx], f)
            if feature_mask is not None:
                f = f * feature_mask[..., : f.shape[-1]].to(f.dtype)
            tokens.append(self.adapters[m](f))
        tokens = torch.stack(tokens, 2) * valid[:, :, None, None]  # (B, L, M, H)
        L = items.shape[1]
        assert L <= self.cfg.max_len, f"sequence length {L} > max_len {self.cfg.max_len}"
        q = tokens.sum(2) + self.pos_emb(torch.arange(L, device=items.device))
        if use_ids and self.item_emb is not None:
            q = q + self.item_emb(items)
        return self.drop(self.norm(q)), tokens

    def _encode_blocks(self, items, lengths, users, feature_mask, use_ids, aug_text):
        """encode() in training: the queries and every attention and feed-forward block of the encoder and
        the decoder recomputed in the backward pass. The blocks are those of nn.TransformerEncoder /
        nn.TransformerDecoder (post-norm), called in their order with their arguments: the same values."""
        valid = items > 0
        q, tokens = self._run(self.queries, items, feature_mask, use_ids, aug_text)  # (B, L, H), (B, L, M, H)
        interests, imask = self.interest_tokens(items, tokens, valid, users)  # (B, K, H), (B, K)
        # nn.TransformerEncoder hands its layers the padding mask as a float mask (0 / -inf)
        pad = torch.zeros_like(imask, dtype=interests.dtype).masked_fill_(~imask, -math.inf)
        x = interests
        enc, dec = len(self.encoder.layers), len(self.decoder.layers)
        for i, layer in enumerate(self.encoder.layers):
            x = self._run(attention_block, layer.self_attn, layer.dropout1, layer.norm1, x, pad)
            final = self.encoder.norm if i == enc - 1 else None  # the stack's norm, with its last layer
            x = self._run(feed_forward_block, layer, layer.dropout2, layer.norm2, x, final)
        xi = x if enc else self.encoder.norm(x)  # (B, K, H)
        y = q
        for i, layer in enumerate(self.decoder.layers):
            y = self._run(attention_block, layer.self_attn, layer.dropout1, layer.norm1, y, ~valid)
            y = self._run(attention_block, layer.multihead_attn, layer.dropout2, layer.norm2, y, ~imask, xi)
            if i < dec - 1:
                y = self._run(feed_forward_block, layer, layer.dropout3, layer.norm3, y)
            else:  # the stack's norm and the last item's row: only (B, H) leaves the last block
                y = self._run(feed_forward_block, layer, layer.dropout3, layer.norm3, y, self.decoder.norm, lengths)
        u = y if dec else last(self.decoder.norm(y), lengths)  # (B, H)
        return F.normalize(u, dim=-1), xi, imask

    def _run(self, fn, *args):
        """fn(*args), run again in the backward pass when `cfg.recompute` (`recomputed`): the same results either way."""
        return recomputed(fn, *args) if self.cfg.recompute else fn(*args)

    def candidates(self, items: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Normalised adapted features of items (0-based; None = all), one (n, H) per modality."""
        out = []
        for m in self.mods:
            f = getattr(self, f"feat_{m}")
            out.append(F.normalize(self.adapters[m](f if items is None else f[items]), dim=-1))
        return out

    def logits(self, u: torch.Tensor, items: torch.Tensor | None = None, use_ids: bool = True) -> torch.Tensor:
        """Fused scores / temperature (B, n) of users u (B, H) for items (n,) (None = all)."""
        s = [u @ x.T for x in self.candidates(items)]  # M x (B, n)
        if self.cfg.fusion == "mean" or len(s) == 1:
            fused = sum(s) / len(s)
        elif len(s) == 2:  # the same softmax over two scores, as a sigmoid (much faster on the CPU)
            fused = s[1] + torch.sigmoid(self.fusion * (s[0] - s[1])) * (s[0] - s[1])
        else:
            st = torch.stack(s, -1)
            fused = (st * torch.softmax(self.fusion * st, -1)).sum(-1)
        if use_ids and self.item_emb is not None:
            z = self.item_emb.weight[1:] if items is None else self.item_emb(items + 1)
            fused = (u @ F.normalize(z, dim=-1).T + 2 * fused) / 3
        return fused / self.cfg.temperature

    def encode_batch(self, batch: dict, use_ids: bool = True) -> tuple:
        """encode() of a training batch, after the interests of its epoch are refreshed."""
        self._sync(batch)
        return self.encode(batch["items"], batch["lengths"], batch.get("user"), use_ids=use_ids)

    def score_users(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.logits(users, items.to(users.device))

    def users(self, batch: dict, rows: int = 128) -> torch.Tensor:
        """u (B, H) of a (large) evaluation batch, encoded in groups of similar length cut to their longest row."""
        self._sync(batch)
        items, lengths, users = batch["items"], batch["lengths"], batch.get("user")
        order = torch.argsort(lengths, stable=True)
        out = None
        for s in range(0, len(order), rows):
            idx = order[s : s + rows]
            L = max(1, int(lengths[idx].max()))
            u, _, _ = self.encode(items[idx, :L], lengths[idx], None if users is None else users[idx])
            out = u.new_empty(len(order), u.shape[1]) if out is None else out
            out[idx] = u
        return out

    # ----- losses -----------------------------------------------------------------------------

    def loss(self, batch: dict) -> torch.Tensor:
        """Fine-tuning: cross-entropy over all items + gamma * orthogonal regulariser."""
        u, xi, imask = self.encode_batch(batch)
        return F.cross_entropy(self.logits(u), batch["target"]) + self.cfg.orth_weight * orthogonality(xi, imask).mean()

    def pretrain_loss(self, batch: dict) -> torch.Tensor:
        """Sequence-item InfoNCE + lambda * sequence-sequence InfoNCE (vs an augmented view) + gamma * R.
        No item IDs, whatever model.ids says: the official pre-training has none (IDs cannot transfer)."""
        self._sync(batch)
        # The first view is also recomputed as a whole (its blocks' inputs too): the backward pass runs through
        # the second view first, which would otherwise find the first view's block inputs still held.
        u, xi, imask = self._run(self.encode, batch["items"], batch["lengths"], batch.get("user"), None, False)
        items, lengths, fmask, aug_text = self.augment(batch["items"], batch["lengths"])
        u_aug, _, _ = self.encode(items, lengths, batch.get("user"), fmask, False, aug_text)
        # the in-batch negatives are the whole global batch's, whatever share of it this process has
        (target_all, u_all, u_aug_all), own = batch_rows(batch["target"], u, u_aug)  # (B_all, ...), (B,)
        si = seq_item_loss(self.logits(u, target_all, use_ids=False), own)
        ss = seq_seq_loss(u, u_aug, self.cfg.temperature, own, (u_all, u_aug_all))
        return si + self.cfg.seq_seq_weight * ss + self.cfg.orth_weight * orthogonality(xi, imask).mean()

    def augment(self, items: torch.Tensor, lengths: torch.Tensor):
        """The second view (items, lengths, feature mask or None, word-dropped text positions or None): item
        drop in item_drop_prob of the batches; in the others, as the public code, the word-dropped text
        (TEXT_aug) at a share item_drop of the positions, or without TEXT_aug feature drop."""
        valid = items > 0
        if float(torch.rand(())) < self.cfg.item_drop_prob:
            keep = (torch.rand(items.shape, device=items.device) >= self.cfg.item_drop) & valid
            keep[:, 0] = valid[:, 0]
            return compact(items, keep), keep.sum(1), None, None
        if self.feat_text_aug is not None:
            return items, lengths, None, (torch.rand(items.shape, device=items.device) < self.cfg.item_drop) & valid
        D = max(getattr(self, f"feat_{m}").shape[1] for m in self.mods)
        pos = torch.rand(items.shape, device=items.device) < self.cfg.feature_drop
        dims = torch.rand(*items.shape, D, device=items.device) >= self.cfg.feature_drop
        return items, lengths, dims | ~pos[:, :, None], None  # (B, L, D) bool: keep


# ----- fine-tuning after pre-training ---------------------------------------------------------


def after_init(model: Model, log=lambda s: None, loaded: frozenset[str] = frozenset()) -> None:
    """Called once a pre-trained state is loaded: re-cluster a catalogue whose interests were not loaded
    (another catalogue: the table would be all cluster 0 with a zero centroid); freeze the transformer
    unless cfg.full."""
    if model.mode == "kmeans" and "interest_table" not in loaded:
        model.interest_epoch.fill_(-1)  # refreshed before the first batch or score
    if model.cfg.full:
        log("missrec: training all parameters (full=true)")
        return
    for module in (model.pos_emb, model.encoder, model.decoder):
        for p in module.parameters():
            p.requires_grad_(False)
    train = [n for n, p in model.named_parameters() if p.requires_grad]
    log(f"missrec: transformer and positions frozen; training {len(train)} tensors ({sum(p.numel() for p in model.parameters() if p.requires_grad):,} values): adapters, input LayerNorm, fusion" + (", item IDs" if model.item_emb is not None else ""))


# ----- pure functions ---------------------------------------------------------------------------


def orthogonality(xi: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(1/M^2) sum_{m,m'} <xi_m, xi_m'> over each row's M valid interests = ||mean_m xi_m||^2 -> (B,)."""
    w = mask.to(xi.dtype)
    mean = (xi * w[:, :, None]).sum(1) / w.sum(1, keepdim=True).clamp_min(1)
    return (mean * mean).sum(-1)


def seq_item_loss(logits: torch.Tensor, own: torch.Tensor | None = None) -> torch.Tensor:
    """-log softmax of each row's own item in (B, B_all) in-batch logits <u_i, v_j> / tau, averaged; own (B,) the
    rows' positions among the whole batch's (several processes, see `batch_rows`; None: the diagonal)."""
    return F.cross_entropy(logits, torch.arange(logits.shape[0], device=logits.device) if own is None else own)


def seq_seq_loss(u: torch.Tensor, u_aug: torch.Tensor, tau: float, own: torch.Tensor | None = None, every: tuple | None = None) -> torch.Tensor:
    """-log exp(<u_i,u'_i>/tau) / (sum_j exp(<u_i,u'_j>/tau) + sum_{j != i} exp(<u_i,u_j>/tau)), averaged; j over
    the whole batch's `every` = (u, u') (B_all, H each), in which `own` (B,) are the rows' positions (None: the
    batch is these rows).

    The paper's sequence-sequence loss without the constant self term <u_i, u_i> (= 1 for normalised u).
    """
    B = u.shape[0]
    if own is None:
        u_all, aug_all, own = u, u_aug, torch.arange(B, device=u.device)
        self_pair = torch.eye(B, dtype=torch.bool, device=u.device)
    else:
        (u_all, aug_all), self_pair = every, F.one_hot(own, every[0].shape[0]).bool()
    same = (u @ u_all.T / tau).masked_fill(self_pair, -math.inf)
    return F.cross_entropy(torch.cat([u @ aug_all.T / tau, same], 1), own)


def last(out: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The output (B, H) at each row's last item: out (B, L, H), lengths (B,)."""
    return out[torch.arange(out.shape[0], device=out.device), (lengths - 1).clamp_min(0)]


def recomputed(fn, *args):
    """fn(*args), keeping none of its activations for the backward pass: they are recomputed there, from
    the arguments, under the random state of the first call (the same dropout masks), so the gradients are
    those of fn itself. Without gradients, simply fn(*args)."""
    if not torch.is_grad_enabled():
        return fn(*args)
    from torch.utils.checkpoint import checkpoint

    return checkpoint(fn, *args, use_reentrant=False)


def attention_block(attn: nn.MultiheadAttention, drop: nn.Module, norm: nn.Module, x: torch.Tensor, pad: torch.Tensor, mem: torch.Tensor | None = None) -> torch.Tensor:
    """norm(x + drop(attn(x, kv, kv))) with kv = x (self-attention; mem None) or mem (cross-attention): a block of
    a post-norm nn.TransformerEncoderLayer / DecoderLayer; x (B, T, H), mem (B, S, H), pad (B, S or T) key
    padding mask. One tensor as query and key selects nn.MultiheadAttention's packed projection, as in the
    layers: it is taken here, not passed twice (a recomputation passes each argument as a tensor of its own)."""
    kv = x if mem is None else mem
    return norm(x + drop(attn(x, kv, kv, attn_mask=None, key_padding_mask=pad, need_weights=False, is_causal=False)[0]))


def feed_forward_block(layer: nn.Module, drop: nn.Module, norm: nn.Module, x: torch.Tensor, final: nn.Module | None = None, lengths: torch.Tensor | None = None) -> torch.Tensor:
    """norm(x + drop(linear2(dropout(activation(linear1(x)))))), the feed-forward block of a post-norm layer
    (B, T, H); then the stack's `final` norm when given, and the rows at `lengths` - 1 (B, H) when given."""
    x = norm(x + drop(layer.linear2(layer.dropout(layer.activation(layer.linear1(x))))))
    if final is not None:
        x = final(x)
    return x if lengths is None else last(x, lengths)


def compact(items: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Move the kept items of each row to its front, in order; the rest becomes padding (0)."""
    B, L = items.shape
    slot = torch.where(keep, keep.long().cumsum(1) - 1, L)
    out = items.new_zeros(B, L + 1).scatter_(1, slot, torch.where(keep, items, 0))
    return out[:, :L]


def _adapter(cfg: Config, d_in: int, d_out: int) -> nn.Module:
    return nn.Linear(d_in, d_out) if cfg.adapter == "linear" else MoEAdapter(d_in, d_out, cfg.experts)


class MoEAdapter(nn.Module):
    """A softmax-gated mixture of linear experts: sum_e g_e(x) (W_e x + b_e)."""

    def __init__(self, d_in: int, d_out: int, experts: int):
        super().__init__()
        self.experts, self.d_out = experts, d_out
        self.proj = nn.Linear(d_in, d_out * experts)
        self.gate = nn.Linear(d_in, experts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.proj(x).unflatten(-1, (self.experts, self.d_out))
        return (torch.softmax(self.gate(x), -1).unsqueeze(-1) * y).sum(-2)


def _read_interests(path: str, mods: list[str]) -> tuple[dict, dict]:
    from mmrec_cli.io import artifacts

    tensors, meta = artifacts.load(path, kind="interests")
    if meta.get("modalities") != list(mods):
        raise mismatch(f"{path}: interests over modalities {meta.get('modalities')}, the model reads {list(mods)}; cluster the same features")
    return tensors, meta


# ----- training data --------------------------------------------------------------------------


def train_batches(ds, cfg: Config, train_cfg, epoch: int, stage: str = "finetune"):
    """Shuffled prefix batches; the order depends only on (seed, epoch). Each batch carries its epoch.

    With cfg.bucket, every run of 64 batches is sorted by length before it is cut into batches, and
    the batches are shuffled: the same examples per epoch with a fraction of the padding.
    """
    check_interests(cfg, ds)
    for batch in B.prefix_batches(ds, cfg.max_len, train_cfg.batch_size, train_cfg.seed, epoch, bucket=64 if cfg.bucket else 0):
        yield batch | {"epoch": epoch}


def check_interests(cfg: Config, ds) -> None:
    """An interests artifact must belong to the dataset trained on."""
    if cfg.interests in ("kmeans", "dpc-knn"):
        return
    from mmrec_cli.io import artifacts

    meta = artifacts.read_meta(cfg.interests, kind="interests")
    want, got = (meta["dataset"]["fingerprint"], ds.fingerprint()) if meta["scope"] == "users" else (meta["dataset"]["item_fingerprint"], ds.item_fingerprint())
    if want != got:
        raise mismatch(f"{cfg.interests}: interests of dataset {meta['dataset'].get('path')}, not of {ds.meta.get('path')}; run `mmrec cluster` on this dataset")


SPEC = ModelSpec(
    name="missrec",
    config=Config,
    build=Model,
    train_batches=train_batches,
    modalities=MODALITIES,
    architecture=("hidden", "inner", "heads", "enc_layers", "dec_layers", "adapter", "experts", "max_len"),
    fresh=("item_emb.", "interest_table", "interest_centroids", "user_centres"),
    after_init=after_init,
    same_results=("recompute",),  # bit-identical either way (tests/test_missrec_memory.py)
    mmap_threshold=4 << 20,  # its recomputed blocks fragment glibc's heap: peak 2.3-2.6 GB -> 1.4 GB (docs, "Training memory")
)
